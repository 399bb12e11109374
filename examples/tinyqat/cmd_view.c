/* tinyqat view: MNIST digits as a grid (PNG or SVG), or the test digits models get wrong, side by side. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "plot/canvas.h"
#include "figures.h"
#include "src/alloc.h"

#define MAX_MODELS 4

int cmd_view(int argc, char **argv) {
    const char *out = "digits.png", *dataset = NULL, *data = NULL, *mis = NULL, *split = "test";
    int count = 32, json = 0;
    cli_opt opts[] = {
        {"--misclassified", CLI_STR, &mis, "show the test digits this model gets wrong (more models may follow as arguments)", 0, 0},
        {"--count", CLI_INT, &count, "digits per panel", 1, 400},
        {"--split", CLI_STR, &split, "test or train (plain grid only)", 0, 0},
        {"--out", CLI_STR, &out, "the picture to write: SVG when it ends in .svg, else PNG", 0, 0},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"view", "[--misclassified MODEL [MODEL...]] [options]",
                                "Draw images with their labels, or each model's mistakes on the test set as predicted/true.", 0, MAX_MODELS - 1};
    const char *pos[MAX_MODELS];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (strcmp(split, "test") && strcmp(split, "train")) {
        fprintf(stderr, "tinyqat view: --split must be test or train, not '%s'\n", split);
        return 2;
    }
    if (n_pos && !mis) {
        fprintf(stderr, "tinyqat view: models given without --misclassified\n");
        return 2;
    }
    if (tq_canvas_format_of(out) == TQ_CANVAS_UNKNOWN) {
        fprintf(stderr, "tinyqat view: --out %s: pictures are written as .png or .svg: name the file so\n", out);
        return 2;
    }
    if (!tq_canvas_supported()) {
        fprintf(stderr, "tinyqat view: this tinyqat was built without cairo and cannot draw: install libcairo2-dev and rebuild\n");
        return 1;
    }
    tq_dataset ds;
    int test = mis || !strcmp(split, "test");
    if ((rc = cli_load_data(dataset, data, test ? NULL : &ds, test ? &ds : NULL))) return rc;
    const char *models[MAX_MODELS];
    int nm = 0;
    if (mis) models[nm++] = mis;
    for (int i = 0; i < n_pos; i++) models[nm++] = pos[i];
    uint32_t *idx[MAX_MODELS] = {0};
    uint8_t *pred[MAX_MODELS] = {0};
    int n[MAX_MODELS] = {0};
    char titles[MAX_MODELS][96];
    const char *tp[MAX_MODELS];
    rc = 0;
    if (!nm) {
        idx[0] = tq_malloc((size_t)count * sizeof(uint32_t));
        if (!idx[0]) rc = cli_fail("view");
        for (int i = 0; !rc && i < count && (uint32_t)i < ds.n; i++) idx[0][n[0]++] = (uint32_t)i;
        snprintf(titles[0], sizeof titles[0], "%s %s, first %d", dataset ? dataset : "MNIST", split, n[0]);
        tp[0] = titles[0];
    }
    for (int k = 0; k < nm && !rc; k++) {
        tq_model m;
        float acc;
        idx[k] = tq_malloc((size_t)count * sizeof(uint32_t));
        pred[k] = tq_malloc(ds.n);
        if (!idx[k] || !pred[k]) {
            rc = cli_fail("view");
            break;
        }
        if (tq_model_load(&m, models[k]) != TQ_OK) {
            rc = cli_fail(NULL);
            break;
        }
        if (tq_evaluate(&m, &ds, &acc, NULL, pred[k]) != TQ_OK) rc = cli_fail("view");
        tq_model_free(&m);
        for (uint32_t i = 0; !rc && i < ds.n && n[k] < count; i++)
            if (pred[k][i] != ds.labels[i]) idx[k][n[k]++] = i;
        const char *base = strrchr(models[k], '/') ? strrchr(models[k], '/') + 1 : models[k];
        snprintf(titles[k], sizeof titles[k], "%s: %.2f%%", base, (double)acc);
        tp[k] = titles[k];
    }
    if (!rc) {
        if (fig_digits(out, &ds, (const uint32_t *const *)idx, n, nm ? (const uint8_t *const *)pred : NULL, tp, nm ? nm : 1) != TQ_OK)
            rc = cli_fail("view");
        else if (nm)
            printf("wrote %s: the first %d mistakes of %d model(s), labelled predicted/true\n", out, count, nm);
        else
            printf("wrote %s: %d digits with their labels\n", out, n[0]);
        if (!rc && json) {
            cJSON *j = cli_json_new();
            cli_json_str(j, "image", out);
            cli_json_num(j, "models", nm, 0);
            cli_json_num(j, "digits_per_panel", nm ? count : n[0], 0);
            cli_json_print(j);
        }
    }
    for (int k = 0; k < MAX_MODELS; k++) {
        tq_free(idx[k]);
        tq_free(pred[k]);
    }
    tq_dataset_free(&ds);
    return rc;
}
