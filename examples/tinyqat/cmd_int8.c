/* tinyqat convert / infer: the integer model file and the integer-only path on the host. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "layers/qat.h"
#include "src/alloc.h"
#include "src/qmodel.h"
#include "train.h"

int cmd_convert(int argc, char **argv) {
    const char *out = "digitsnet.tqm";
    int json = 0;
    cli_opt opts[] = {
        {"--out", CLI_STR, &out, "where to write the integer model (.tqm)", 0, 0},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"convert", "MODEL [options]",
                                "Convert a PTQ or QAT model into int8 weights, int32 biases and requantization multipliers.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    tq_model m;
    if (tq_model_load(&m, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_qmodel q;
    rc = 0;
    if (tq_qat_to_int8(&m, &q) != TQ_OK) rc = cli_fail(pos[0]);
    else {
        if (tq_qmodel_save(&q, out) != TQ_OK) rc = cli_fail("convert");
        else {
            size_t bytes = 0;
            for (int l = 0; l < q.n_layers; l++) bytes += (size_t)q.layer[l].out * (q.layer[l].in + 4);
            printf("converted %s (%s, %d layers) -> %s: %zu bytes of int8 weights and int32 biases\n", pos[0], q.spec,
                   q.n_layers, out, bytes);
            printf("\n%5s %9s %11s %5s %11s %5s %9s | channel 0: %11s %11s %5s\n", "layer", "shape", "s_in", "z_in", "s_out",
                   "z_out", "clamp", "M", "M0", "shift");
            for (int l = 0; l < q.n_layers; l++) {
                const tq_qlayer *L = &q.layer[l];
                char shape[24], clamp[24];
                snprintf(shape, sizeof shape, "%dx%d", L->out, L->in);
                snprintf(clamp, sizeof clamp, "[%d,%d]", L->act_min, L->act_max);
                double M = (double)L->in_scale * L->w_scale[0] / L->out_scale;
                printf("%5d %9s %11.6g %5d %11.6g %5d %9s | %22.9f %11d %5d\n", l, shape, (double)L->in_scale, L->in_zp,
                       (double)L->out_scale, L->out_zp, clamp, M, L->mult[0], L->shift[0]);
            }
            if (json) {
                cJSON *j = cli_json_new();
                cli_json_str(j, "model", out);
                cli_json_str(j, "from", pos[0]);
                cli_json_str(j, "spec", q.spec);
                cli_json_num(j, "layers", q.n_layers, 0);
                cli_json_num(j, "weight_and_bias_bytes", (double)bytes, 0);
                cli_json_print(j);
            }
        }
        tq_qmodel_free(&q);
    }
    tq_model_free(&m);
    return rc;
}

int cmd_infer(int argc, char **argv) {
    const char *data = NULL, *compare = NULL;
    int json = 0, repeats = 5;
    const char *kernel_s = "auto";
    cli_opt opts[] = {
        {"--compare", CLI_STR, &compare, "the simulated (fake-quant) model to compare predictions and logits with", 0, 0},
        {"--kernel", CLI_STR, &kernel_s, "auto, ref (portable), avx2 or vnni: all give the same integers", 0, 0},
        {"--repeats", CLI_INT, &repeats, "timed passes over the test set (the best is reported)", 1, 1000},
        {"--data", CLI_STR, &data, "MNIST directory (else $MNIST_DIR, else data/mnist)", 0, 0},
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"infer", "MODEL.tqm [options]",
                                "Run the 10,000 test images through the integer-only path: accuracy and images/s.", 1, 1};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    int kparsed = tq_kernel_parse(kernel_s);
    if (kparsed < 0) {
        fprintf(stderr, "tinyqat infer: --kernel must be auto, ref, avx2 or vnni, not '%s'\n", kernel_s);
        return 2;
    }
    tq_kernel kernel = (tq_kernel)kparsed;
    tq_qmodel q;
    if (tq_qmodel_load(&q, pos[0]) != TQ_OK) return cli_fail(NULL);
    tq_mnist te;
    if (tq_load_split(data, TQ_MNIST_TEST, &te)) {
        tq_qmodel_free(&q);
        return 1;
    }
    int nout = q.layer[q.n_layers - 1].out;
    if (te.rows * te.cols != (uint32_t)q.layer[0].in) {
        fprintf(stderr, "tinyqat infer: %s takes %d inputs, the images have %u\n", pos[0], q.layer[0].in, te.rows * te.cols);
        tq_mnist_free(&te);
        tq_qmodel_free(&q);
        return 1;
    }
    int8_t *logits = tq_malloc((size_t)te.n * nout);
    uint8_t *pred = tq_malloc(te.n);
    tq_qfast *f = NULL;
    if (!logits || !pred || tq_qfast_init(&f, &q) != TQ_OK) {
        rc = cli_fail("infer");
        goto out;
    }
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = cli_now();
        if (tq_qfast_run(f, te.images, te.n, logits, pred, kernel) != TQ_OK) {
            rc = cli_fail("infer");
            goto out;
        }
        double dt = cli_now() - t0;
        if (dt < best) best = dt;
    }
    long correct = 0;
    for (uint32_t i = 0; i < te.n; i++) correct += pred[i] == te.labels[i];
    double acc = 100.0 * (double)correct / te.n;
    if (kernel == TQ_KERNEL_AUTO) kernel = tq_qfast_best(f);
    printf("%s (%s): integer-only test accuracy %.2f%% on %u images; %.2f ms, %.0f images/s (%s kernel, best of %d)\n",
           pos[0], q.spec, acc, te.n, best * 1e3, te.n / best, tq_kernel_name(kernel), repeats);
    long disagree = -1;
    int max_diff = -1;
    float sim_acc = 0;
    if (compare) {
        tq_model m;
        if (tq_model_load(&m, compare) != TQ_OK) {
            rc = cli_fail(NULL);
            goto out;
        }
        if (!m.qat || m.dims[m.n_layers] != nout) {
            fprintf(stderr, "tinyqat infer: --compare %s: not a quantized model with %d outputs\n", compare, nout);
            tq_model_free(&m);
            rc = 1;
            goto out;
        }
        float *sim = tq_malloc((size_t)te.n * nout * sizeof(float));
        if (!sim || tq_predict_logits(&m, &te, sim) != TQ_OK) {
            tq_free(sim);
            tq_model_free(&m);
            rc = cli_fail("infer --compare");
            goto out;
        }
        /* the simulated logits are fake-quantized: x^ = (q - z) s, so q = round(x^/s) + z */
        float s_out = m.qat->afq[m.n_layers - 1].scale[0];
        int32_t z_out = m.qat->afq[m.n_layers - 1].zero_point[0];
        disagree = 0;
        max_diff = 0;
        long sim_correct = 0;
        for (uint32_t i = 0; i < te.n; i++) {
            const float *z = sim + (size_t)i * nout;
            int bs = 0;
            for (int c = 0; c < nout; c++) {
                if (z[c] > z[bs]) bs = c;
                int qs = (int)nearbyintf(z[c] / s_out) + z_out, d = qs - logits[(size_t)i * nout + c];
                d = d < 0 ? -d : d;
                if (d > max_diff) max_diff = d;
            }
            disagree += bs != pred[i];
            sim_correct += bs == te.labels[i];
        }
        sim_acc = (float)(100.0 * (double)sim_correct / te.n);
        printf("vs the simulated model %s: %.2f%% there; %ld of %u predictions differ (%.3f%% identical); largest logit difference %d output step(s)\n",
               compare, (double)sim_acc, disagree, te.n, 100.0 * (double)(te.n - (uint32_t)disagree) / te.n, max_diff);
        tq_free(sim);
        tq_model_free(&m);
    }
    if (json) {
        cJSON *j = cli_json_new();
        cli_json_num(j, "test_accuracy", acc, 2);
        cli_json_num(j, "images_per_second", te.n / best, 0);
        cli_json_num(j, "milliseconds", best * 1e3, 3);
        cli_json_str(j, "kernel", tq_kernel_name(kernel));
        cli_json_str(j, "model", pos[0]);
        if (compare) {
            cli_json_num(j, "disagreements", (double)disagree, 0);
            cli_json_num(j, "max_logit_diff", max_diff, 0);
            cli_json_num(j, "simulated_test_accuracy", sim_acc, 2);
            cli_json_str(j, "compared_with", compare);
        }
        cli_json_print(j);
    }
out:
    tq_qfast_free(f);
    tq_free(logits);
    tq_free(pred);
    tq_mnist_free(&te);
    tq_qmodel_free(&q);
    return rc;
}
