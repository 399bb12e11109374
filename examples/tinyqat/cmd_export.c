/* tinyqat export: an integer model as a self-contained C module (pipeline/export.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "pipeline/export.h"

int cmd_export(int argc, char **argv) {
    const char *cdir = NULL, *dataset = NULL, *data = NULL, *prefix = NULL;
    int n_test = 0, json = 0;
    cli_opt opts[] = {
        {"--c", CLI_STR, &cdir, "write the C module into this folder (created, with its parents)", 0, 0},
        {"--prefix", CLI_STR, &prefix, "start every name of the module with this instead of tq_ (kws_: kws_model_classify), so "
         "two models build into one firmware", 0, 0, NULL, "tq_"},
        {"--test-images", CLI_INT, &n_test, "also write N test images with the host's logits (tq_test_data.h)", 0, 1000000},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"export", "MODEL.tqm --c DIR [options]",
                                "Write an integer model as a freestanding C module for microcontrollers.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    if (!cdir) {
        fprintf(stderr, "tinyqat export: --c DIR is required (see 'tinyqat export --help')\n");
        return 2;
    }
    tq_qmodel q;
    if (tq_qmodel_load(&q, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_dataset te;
    memset(&te, 0, sizeof te);
    if (n_test > 0 && (rc = cli_load_data(dataset, data, NULL, &te))) {
        tq_qmodel_free(&q);
        return rc;
    }
    if (tq_export_c_prefixed(&q, cdir, pos[0], n_test > 0 ? &te : NULL, n_test, prefix) != TQ_OK) rc = cli_fail("export");
    else {
        printf("exported %s (%s) to %s/: tq_model.{h,c}, int8_infer.{h,c}%s\n", pos[0], q.spec, cdir,
               n_test ? ", tq_test_data.h" : "");
        if (json) {
            cJSON *j = cli_json_new();
            cli_json_str(j, "model", pos[0]);
            cli_json_str(j, "dir", cdir);
            cli_json_num(j, "test_images", n_test && te.n < (uint32_t)n_test ? te.n : (uint32_t)n_test, 0);
            cli_json_num(j, "scratch_bytes", (double)tq_int8_net_predict_scratch_bytes(&q.net), 0);
            cli_json_print(j);
        }
    }
    tq_dataset_free(&te);
    tq_qmodel_free(&q);
    return rc;
}
