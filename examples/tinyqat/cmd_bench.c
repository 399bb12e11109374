/* tinyqat bench: one FP32 training epoch against its floor, the same epoch's matrix products
 * alone, replayed with the same shapes on one thread, measured in the same run on the same
 * machine: the dense layers' sgemm calls and the convolutions' products as this build computes
 * them (the direct AVX-512 kernels where they run, else im2col's sgemm calls). The ratio says how
 * much the rest (batch norm, ReLU, pooling, loss, Adam, batching, and with two threads the
 * products' share that did not split) costs on top of the products. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "layers/conv_direct.h"
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
    for (int u = 0; u < m->n_units; u++) { /* (a dense layer: its 1 x 1 convolution, P = B) */
        const tq_unit *U = &m->unit[u];
        const tq_conv_shape *c = &U->conv;
        if (!U->W || (U->kind == TQ_UNIT_CONV && (c->depthwise || tq_conv_direct(c)))) continue; /* direct convolutions: direct_epoch */
        int P = B * c->OH * c->OW, K = c->KH * c->KW * c->C;
        g[n++] = (gemm_shape){0, 1, P, c->OC, K};
        g[n++] = (gemm_shape){1, 0, c->OC, K, P};
        if (u > 0) g[n++] = (gemm_shape){0, 0, P, K, c->OC};
    }
    return n;
}

static double gemm_epoch(const tq_model *m, int B, int steps) {
    gemm_shape g[3 * TQ_MAX_UNITS];
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

/* The direct convolution kernels of one epoch: per step and stage, forward, weight gradient and
 * (past the first stage) input gradient on the whole batch, on one thread. */
static double direct_epoch(const tq_model *m, int B, int steps) {
    double total = 0;
    for (int st = 0; st < m->n_stages; st++) {
        const tq_conv_shape *c = &m->unit[st].conv;
        if (m->unit[st].kind != TQ_UNIT_CONV || !tq_conv_direct(c)) continue;
        tq_direct_geom g = tq_conv_direct_geom(c);
        size_t nx = (size_t)B * g.H * g.W * g.C, ny = (size_t)B * g.OH * g.OW * g.OC, nw = (size_t)g.KH * g.KW * g.C * g.OCp;
        float *x = tq_calloc(nx, sizeof(float)), *dx = tq_calloc(nx, sizeof(float)), *y = tq_calloc(ny, sizeof(float));
        float *Wt = tq_calloc(nw, sizeof(float)), *dWt = tq_calloc(nw, sizeof(float));
        if (!x || !dx || !y || !Wt || !dWt) {
            tq_free(x), tq_free(dx), tq_free(y), tq_free(Wt), tq_free(dWt);
            return -1;
        }
        double t0 = cli_now();
        for (int s = 0; s < steps; s++) {
            tq_direct_forward(&g, y, x, Wt, NULL, B);
            tq_direct_weights(&g, dWt, x, y, B);
            if (st > 0) tq_direct_data(&g, dx, y, Wt, B); /* Wt stands in for W: the same floats, read alike */
        }
        total += cli_now() - t0;
        tq_free(x), tq_free(dx), tq_free(y), tq_free(Wt), tq_free(dWt);
    }
    return total;
}

int cmd_bench(int argc, char **argv) {
    int batch = 64, threads = 1, repeats = 3, json = 0;
    const char *dataset = NULL, *data = NULL, *spec = "digitsnet";
    cli_opt opts[] = {
        {"--batch", CLI_INT, &batch, "batch size", 1, 60000},
        {"--threads", CLI_INT, &threads, "BLAS threads", 1, 256},
        {"--repeats", CLI_INT, &repeats, "epochs to time (the best one is reported)", 1, 100},
        {"--model", CLI_STR, &spec, "a preset (digitsnet, digitscnn, resnet8, dscnn, mobilenet) or a spec (see train --help)", 0, 0},
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
    int direct = 0; /* the convolutions ran the direct kernels */
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
        double g = gemm_epoch(&m, batch, steps), d = direct_epoch(&m, batch, steps);
        if (g < 0 || d < 0) {
            tq_model_free(&m);
            tq_dataset_free(&tr);
            fprintf(stderr, "tinyqat bench: out of memory for the products' replay\n");
            return 1;
        }
        if (g + d < best_gemm) best_gemm = g + d;
        direct = d > 0;
        tq_model_free(&m);
        printf("run %d: epoch %.3f s, products alone %.3f s\n", rep + 1, res.seconds_total, g + d);
    }
    double rss = cli_peak_rss_mb();
    printf("\n%s, FP32 epoch (batch %d, %d steps, %d thread(s)): %.3f s, %.0f samples/s\n", spec, batch, steps, threads,
           best_train, tr.n / best_train);
    printf("products alone (same shapes, one thread):     %.3f s (%s)\n", best_gemm,
           direct ? "direct convolution kernels and sgemm" : "sgemm");
    printf("epoch / products floor: %.2fx   peak RSS %.1f MB\n", best_train / best_gemm, rss);
    if (json) {
        cJSON *j = cli_json_new();
        cli_json_num(j, "seconds_per_epoch", best_train, 4);
        cli_json_num(j, "samples_per_second", tr.n / best_train, 0);
        cli_json_num(j, "gemm_seconds", best_gemm, 4); /* the products' floor (the name kept from when it was all sgemm) */
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
