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

/* The matrix products of one training step of m at batch B, shape by shape, as the ops make them:
 * per convolution (im2col) y = col W^T, dW += dy^T col and, past the first stage, dcol = dy W;
 * per dense layer y = x W^T, dW += dy^T x and, unless it reads the input, dx = dy W. Depthwise
 * convolutions use no GEMM. */
typedef struct {
    int ta, tb, M, N, K;
} gemm_shape;

static int step_gemms(const tq_model *m, int B, gemm_shape *g) {
    int n = 0;
    for (int s = 0; s < m->n_stages; s++) {
        const tq_conv_shape *c = &m->stage[s].conv;
        if (c->depthwise) continue;
        int P = B * c->OH * c->OW, K = c->KH * c->KW * c->C;
        g[n++] = (gemm_shape){0, 1, P, c->OC, K};
        g[n++] = (gemm_shape){1, 0, c->OC, K, P};
        if (s > 0) g[n++] = (gemm_shape){0, 0, P, K, c->OC};
    }
    for (int l = 0; l < m->n_layers; l++) {
        int in = m->dims[l], out = m->dims[l + 1];
        g[n++] = (gemm_shape){0, 1, B, out, in};
        g[n++] = (gemm_shape){1, 0, out, in, B};
        if (l > 0 || m->n_stages) g[n++] = (gemm_shape){0, 0, B, in, out};
    }
    return n;
}

static double gemm_epoch(const tq_model *m, int B, int steps) {
    gemm_shape g[3 * (TQ_MAX_STAGES + TQ_MAX_LAYERS)];
    int n = step_gemms(m, B, g);
    size_t big = 1;
    for (int i = 0; i < n; i++) {
        size_t a = (size_t)g[i].M * g[i].K, b = (size_t)g[i].K * g[i].N, c = (size_t)g[i].M * g[i].N;
        big = a > big ? a : big;
        big = b > big ? b : big;
        big = c > big ? c : big;
    }
    float *A = tq_malloc(big * sizeof(float)), *Bm = tq_malloc(big * sizeof(float)), *C = tq_calloc(big, sizeof(float));
    if (!A || !Bm || !C) {
        tq_free(A), tq_free(Bm), tq_free(C);
        return -1;
    }
    tq_rng r;
    tq_rng_seed(&r, 1);
    for (size_t k = 0; k < big; k++) A[k] = tq_rng_uniform_in(&r, -1, 1), Bm[k] = tq_rng_uniform_in(&r, -1, 1);
    double t0 = cli_now();
    for (int s = 0; s < steps; s++)
        for (int i = 0; i < n; i++) {
            const gemm_shape *q = &g[i];
            tq_sgemm(q->ta, q->tb, q->M, q->N, q->K, 1.0f, A, q->ta ? q->M : q->K, Bm, q->tb ? q->K : q->N, 1.0f, C, q->N);
        }
    double dt = cli_now() - t0;
    tq_free(A), tq_free(Bm), tq_free(C);
    return dt;
}

int cmd_bench(int argc, char **argv) {
    int batch = 64, threads = 1, repeats = 3, json = 0;
    const char *dataset = NULL, *data = NULL, *spec = "digitsnet";
    cli_opt opts[] = {
        {"--batch", CLI_INT, &batch, "batch size", 1, 60000},
        {"--threads", CLI_INT, &threads, "BLAS threads", 1, 256},
        {"--repeats", CLI_INT, &repeats, "epochs to time (the best one is reported)", 1, 100},
        {"--model", CLI_STR, &spec, "a preset (digitsnet, digitscnn) or a spec (see train --help)", 0, 0},
        CLI_DATA_OPTIONS(dataset, data),
        {"--json", CLI_FLAG, &json, "end with one JSON line of results", 0, 0},
    };
    static const cli_cmd cmd = {"bench", "[options]",
                                "Time one FP32 training epoch (Adam) against its matrix products alone, replayed with the same shapes.", 0, 0};
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
        if (tq_model_for_data(&m, spec, &tr, 0) != TQ_OK) {
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
        double g = gemm_epoch(&m, batch, steps);
        if (g < best_gemm) best_gemm = g;
        tq_model_free(&m);
        printf("run %d: epoch %.3f s, GEMMs alone %.3f s\n", rep + 1, res.seconds_total, g);
    }
    double rss = cli_peak_rss_mb();
    printf("\n%s, FP32 epoch (batch %d, %d steps, %d thread(s)): %.3f s, %.0f samples/s\n", spec, batch, steps, threads,
           best_train, tr.n / best_train);
    printf("GEMMs alone (same shapes, same run):          %.3f s\n", best_gemm);
    printf("epoch / GEMM floor: %.2fx   peak RSS %.1f MB\n", best_train / best_gemm, rss);
    if (json) {
        cJSON *j = cli_json_new();
        cli_json_num(j, "seconds_per_epoch", best_train, 4);
        cli_json_num(j, "samples_per_second", tr.n / best_train, 0);
        cli_json_num(j, "gemm_seconds", best_gemm, 4);
        cli_json_num(j, "ratio", best_train / best_gemm, 3);
        cli_json_num(j, "batch", batch, 0);
        cli_json_str(j, "model", spec);
        cli_json_num(j, "threads", threads, 0);
        cli_json_num(j, "peak_rss_mb", rss, 1);
        cJSON_AddBoolToObject(j, "synthetic", synthetic);
        cli_json_print(j);
    }
    tq_dataset_free(&tr);
    return 0;
}
