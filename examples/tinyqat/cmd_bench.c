/* tinyqat bench: one FP32 training epoch of DigitsNet against its floor, the same epoch's
 * matrix products alone (the 8 sgemm calls per step that forward + backward make, with the
 * same shapes), measured in the same run on the same machine. The ratio says how much the
 * rest (ReLU, bias, loss, Adam, batching, shuffling) costs on top of OpenBLAS. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "src/alloc.h"
#include "src/ops.h"

/* MNIST's shape, for timing on random images when no data is there. */
enum { MNIST_N = 60000, MNIST_SIDE = 28, MNIST_CLASSES = 10 };

static double gemm_epoch(int B, int steps, int D, int C) {
    const int H1 = 100, H2 = 100; /* DigitsNet's hidden layers */
    size_t sizes[] = {(size_t)B * D, (size_t)H1 * D, (size_t)B * H1, (size_t)H2 * H1, (size_t)B * H2, (size_t)C * H2,
                      (size_t)B * C};
    float *buf[7], *grad[7];
    tq_rng r;
    tq_rng_seed(&r, 1);
    for (int i = 0; i < 7; i++) {
        buf[i] = tq_malloc(sizes[i] * sizeof(float));
        grad[i] = tq_calloc(sizes[i], sizeof(float));
        for (size_t k = 0; k < sizes[i]; k++) buf[i][k] = tq_rng_uniform_in(&r, -1, 1);
    }
    float *x = buf[0], *W1 = buf[1], *h1 = buf[2], *W2 = buf[3], *h2 = buf[4], *W3 = buf[5], *z = buf[6];
    double t0 = cli_now();
    for (int s = 0; s < steps; s++) {
        tq_sgemm(0, 1, B, H1, D, 1, x, D, W1, D, 0, h1, H1);
        tq_sgemm(0, 1, B, H2, H1, 1, h1, H1, W2, H1, 0, h2, H2);
        tq_sgemm(0, 1, B, C, H2, 1, h2, H2, W3, H2, 0, z, C);
        tq_sgemm(1, 0, C, H2, B, 1, grad[6], C, h2, H2, 1, grad[5], H2);  /* dW3 */
        tq_sgemm(0, 0, B, H2, C, 1, grad[6], C, W3, H2, 1, grad[4], H2);  /* dh2 */
        tq_sgemm(1, 0, H2, H1, B, 1, grad[4], H2, h1, H1, 1, grad[3], H1); /* dW2 */
        tq_sgemm(0, 0, B, H1, H2, 1, grad[4], H2, W2, H1, 1, grad[2], H1); /* dh1 */
        tq_sgemm(1, 0, H1, D, B, 1, grad[2], H1, x, D, 1, grad[1], D);    /* dW1 */
    }
    double dt = cli_now() - t0;
    for (int i = 0; i < 7; i++) {
        tq_free(buf[i]);
        tq_free(grad[i]);
    }
    return dt;
}

int cmd_bench(int argc, char **argv) {
    int batch = 64, threads = 1, repeats = 3, json = 0;
    const char *dataset = NULL, *data = NULL;
    cli_opt opts[] = {
        {"--batch", CLI_INT, &batch, "batch size", 1, 60000},
        {"--threads", CLI_INT, &threads, "BLAS threads", 1, 256},
        {"--repeats", CLI_INT, &repeats, "epochs to time (the best one is reported)", 1, 100},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"bench", "[options]",
                                "Time one FP32 training epoch of DigitsNet (in-100r-100r-out, Adam) against its GEMMs alone.", 0, 0};
    const char *pos[1];
    int n_pos, rc = cli_parse(&cmd, opts, sizeof opts / sizeof opts[0], argc, argv, pos, &n_pos);
    if (rc) return rc == 1 ? 0 : 2;
    tq_dataset tr;
    memset(&tr, 0, sizeof tr);
    char dir[1024];
    if (tq_dataset_dir(dataset, data, dir, sizeof dir) != TQ_OK) {
        fprintf(stderr, "tinyqat bench: %s\n", tq_last_error());
        return 2;
    }
    int synthetic = tq_dataset_load(&tr, dir, TQ_SPLIT_TRAIN) != TQ_OK;
    if (synthetic) { /* timing does not depend on pixel values: random images of MNIST's size */
        tr.n = MNIST_N, tr.h = tr.w = MNIST_SIDE, tr.c = 1, tr.classes = MNIST_CLASSES;
        snprintf(tr.source, sizeof tr.source, "random images");
        tr.images = tq_malloc((size_t)tr.n * tq_dataset_pixels(&tr));
        tr.labels = tq_malloc(tr.n);
        if (!tr.images || !tr.labels) {
            tq_dataset_free(&tr);
            return cli_fail("bench");
        }
        tq_rng r;
        tq_rng_seed(&r, 2);
        for (size_t i = 0; i < (size_t)tr.n * tq_dataset_pixels(&tr); i++) tr.images[i] = (uint8_t)tq_rng_below(&r, 256);
        for (uint32_t i = 0; i < tr.n; i++) tr.labels[i] = (uint8_t)tq_rng_below(&r, MNIST_CLASSES);
        printf("(MNIST not found: timing on random images of the same size)\n");
    }
    tq_set_threads(threads);
    int steps = (int)((tr.n + (uint32_t)batch - 1) / (uint32_t)batch);
    double best_train = 1e30, best_gemm = 1e30;
    tq_model m;
    for (int rep = 0; rep < repeats; rep++) {
        if (tq_model_for_data(&m, "digitsnet", &tr, 0) != TQ_OK) {
            tq_dataset_free(&tr);
            return cli_fail(NULL);
        }
        tq_train_cfg cfg;
        tq_train_cfg_defaults(&cfg);
        cfg.epochs = 1;
        cfg.batch = batch;
        cfg.threads = threads;
        tq_train_result res;
        if (tq_train(&m, &tr, NULL, &cfg, &res) != TQ_OK) {
            tq_model_free(&m);
            tq_dataset_free(&tr);
            return cli_fail("bench");
        }
        if (res.seconds_total < best_train) best_train = res.seconds_total;
        double g = gemm_epoch(batch, steps, m.dims[0], m.dims[m.n_layers]);
        if (g < best_gemm) best_gemm = g;
        tq_model_free(&m);
        printf("run %d: epoch %.3f s, GEMMs alone %.3f s\n", rep + 1, res.seconds_total, g);
    }
    double rss = cli_peak_rss_mb();
    printf("\nFP32 epoch (batch %d, %d steps, %d thread(s)): %.3f s, %.0f samples/s\n", batch, steps, threads, best_train,
           tr.n / best_train);
    printf("GEMMs alone (same shapes, same run):          %.3f s\n", best_gemm);
    printf("epoch / GEMM floor: %.2fx   peak RSS %.1f MB\n", best_train / best_gemm, rss);
    if (json) {
        cJSON *j = cli_json_new();
        cli_json_num(j, "seconds_per_epoch", best_train, 4);
        cli_json_num(j, "samples_per_second", tr.n / best_train, 0);
        cli_json_num(j, "gemm_seconds", best_gemm, 4);
        cli_json_num(j, "ratio", best_train / best_gemm, 3);
        cli_json_num(j, "batch", batch, 0);
        cli_json_num(j, "threads", threads, 0);
        cli_json_num(j, "peak_rss_mb", rss, 1);
        cJSON_AddBoolToObject(j, "synthetic", synthetic);
        cli_json_print(j);
    }
    tq_dataset_free(&tr);
    return 0;
}
