#include "layers/batchnorm.h"

#include <math.h>
#include <string.h>

#include "src/fake_quant.h" /* the run modes */
#include "src/parallel.h"
#include "src/simd.h"

void tq_bn_init(tq_bn *bn, int C, float *running_mean, float *running_var) {
    *bn = (tq_bn){.C = C, .momentum = 0.1f, .eps = 1e-5f, .running_mean = running_mean, .running_var = running_var};
    for (int c = 0; c < C; c++) {
        running_mean[c] = 0.0f;
        running_var[c] = 1.0f;
    }
}

static tq_status bn_shape(tq_node *n) {
    const tq_bn *bn = n->ctx;
    tq_node *x = n->in[0];
    if (bn->C < 1 || bn->C > 4096) TQ_FAIL(TQ_E_SHAPE, "batch norm: %d channels (1..4096)", bn->C);
    if (x->cols % bn->C) TQ_FAIL(TQ_E_SHAPE, "batch norm: rows of %d values do not hold whole %d-channel positions", x->cols, bn->C);
    for (int i = 1; i < n->n_in; i++)
        if (n->in[i]->rows != 1 || n->in[i]->cols != bn->C)
            TQ_FAIL(TQ_E_SHAPE, "batch norm: gamma/beta are [%d][%d], want [1][%d]", n->in[i]->rows, n->in[i]->cols, bn->C);
    n->rows = x->rows;
    n->cols = x->cols;
    n->aux_len = tq_node_numel(n) + (size_t)bn->C; /* xh, then 1/sqrt(var + eps) per channel */
    return TQ_OK;
}

/* Every loop below runs over positions (rows of C contiguous channels), the channel innermost, so
 * it vectorizes and needs no division. Sums are in double: a channel of a batch has tens of
 * thousands of values. */
TQ_SIMD_CLONES static void channel_sums(const float *restrict x, size_t P, int C, double *restrict sum) {
    for (size_t p = 0; p < P; p++, x += C)
        for (int c = 0; c < C; c++) sum[c] += x[c];
}

TQ_SIMD_CLONES static void channel_sq_dev(const float *restrict x, size_t P, int C, const double *restrict mean,
                                          double *restrict var) {
    for (size_t p = 0; p < P; p++, x += C)
        for (int c = 0; c < C; c++) {
            double d = x[c] - mean[c];
            var[c] += d * d;
        }
}

/* xh = (x - shift) * inv; y = gamma xh + beta */
TQ_SIMD_CLONES static void normalize(const float *restrict x, float *restrict xh, float *restrict y, size_t P, int C,
                                     const float *restrict shift, const float *restrict inv, const float *restrict gamma,
                                     const float *restrict beta) {
    for (size_t p = 0; p < P; p++, x += C, xh += C, y += C)
        for (int c = 0; c < C; c++) {
            xh[c] = (x[c] - shift[c]) * inv[c];
            y[c] = gamma[c] * xh[c] + beta[c];
        }
}

/* y = a x + b per channel */
TQ_SIMD_CLONES static void affine(const float *restrict x, float *restrict y, size_t P, int C, const float *restrict a,
                                  const float *restrict b) {
    for (size_t p = 0; p < P; p++, x += C, y += C)
        for (int c = 0; c < C; c++) y[c] = a[c] * x[c] + b[c];
}

/* The elementwise halves run as tasks over batch slices (src/parallel.h); the channel sums stay
 * serial (cheap, and their order then never changes). */
typedef struct {
    tq_node *n;
    const float *shift, *inv, *gamma, *beta; /* forward */
    const float *fs, *fb;                    /* forward with a rounded folded bias: y = fs x + fb */
    const float *a, *b, *c3;                 /* backward */
} bn_job;

static void slice_positions(const tq_node *n, int t, size_t *p0, size_t *p1) {
    size_t per_row = (size_t)n->cols / (size_t)((const tq_bn *)n->ctx)->C;
    tq_slice((size_t)n->rows, t, TQ_SLICES, p0, p1);
    *p0 *= per_row;
    *p1 *= per_row;
}

static void normalize_slice(void *ctx, int t) {
    const bn_job *j = ctx;
    const int C = ((const tq_bn *)j->n->ctx)->C;
    size_t p0, p1;
    slice_positions(j->n, t, &p0, &p1);
    if (p1 > p0)
        normalize(j->n->in[0]->val + p0 * C, j->n->aux + p0 * C, j->n->val + p0 * C, p1 - p0, C, j->shift, j->inv, j->gamma, j->beta);
    if (p1 > p0 && j->fs) affine(j->n->in[0]->val + p0 * C, j->n->val + p0 * C, p1 - p0, C, j->fs, j->fb);
}

static void bn_forward(tq_node *n, int mode) {
    tq_bn *bn = n->ctx;
    const int C = bn->C;
    const float *x = n->in[0]->val, *gamma = n->in[1]->val, *beta = n->in[2]->val;
    const size_t total = tq_node_numel(n), N = total / (size_t)C;
    float *inv = n->aux + total, shift[4096], fs[4096], fb[4096];
    bn->batch_stats = mode == TQ_RUN_TRAIN && !bn->frozen;
    if (bn->batch_stats) {
        double mean[4096], var[4096]; /* C <= 4096 (bn_shape) */
        for (int c = 0; c < C; c++) mean[c] = var[c] = 0.0;
        channel_sums(x, N, C, mean);
        for (int c = 0; c < C; c++) mean[c] /= (double)N;
        channel_sq_dev(x, N, C, mean, var);
        for (int c = 0; c < C; c++) {
            var[c] /= (double)N;
            inv[c] = (float)(1.0 / sqrt(var[c] + (double)bn->eps));
            shift[c] = (float)mean[c];
            double unbiased = N > 1 ? var[c] * (double)N / (double)(N - 1) : var[c];
            bn->running_mean[c] += bn->momentum * ((float)mean[c] - bn->running_mean[c]);
            bn->running_var[c] += bn->momentum * ((float)unbiased - bn->running_var[c]);
        }
    } else {
        for (int c = 0; c < C; c++) {
            inv[c] = 1.0f / sqrtf(bn->running_var[c] + bn->eps);
            shift[c] = bn->running_mean[c];
            /* the folded scale and bias as conversion computes them (layers/model.c) */
            fs[c] = gamma[c] * inv[c];
            fb[c] = beta[c] - fs[c] * bn->running_mean[c];
        }
        if (bn->round_bias) bn->round_bias(bn->round_bias_ctx, fb, C, mode);
    }
    int folded = !bn->batch_stats && bn->round_bias;
    bn_job j = {n, shift, inv, gamma, beta, folded ? fs : NULL, folded ? fb : NULL, NULL, NULL, NULL};
    tq_parallel_for(TQ_SLICES, normalize_slice, &j);
}

TQ_SIMD_CLONES static void grad_sums(const float *restrict dy, const float *restrict xh, size_t P, int C, double *restrict sdy,
                                     double *restrict sdyxh) {
    for (size_t p = 0; p < P; p++, dy += C, xh += C)
        for (int c = 0; c < C; c++) {
            sdy[c] += dy[c];
            sdyxh[c] += (double)dy[c] * xh[c];
        }
}

/* dx += a (dy - b - xh c) per channel (batch statistics), or dx += a dy (b = c = 0) */
TQ_SIMD_CLONES static void grad_x(float *restrict dx, const float *restrict dy, const float *restrict xh, size_t P, int C,
                                  const float *restrict a, const float *restrict b, const float *restrict c3) {
    for (size_t p = 0; p < P; p++, dx += C, dy += C, xh += C)
        for (int c = 0; c < C; c++) dx[c] += a[c] * (dy[c] - b[c] - xh[c] * c3[c]);
}

static void grad_x_slice(void *ctx, int t) {
    const bn_job *j = ctx;
    const int C = ((const tq_bn *)j->n->ctx)->C;
    size_t p0, p1;
    slice_positions(j->n, t, &p0, &p1);
    if (p1 > p0) grad_x(j->n->in[0]->grad + p0 * C, j->n->grad + p0 * C, j->n->aux + p0 * C, p1 - p0, C, j->a, j->b, j->c3);
}

static void bn_backward(tq_node *n) {
    const tq_bn *bn = n->ctx;
    const int C = bn->C;
    const size_t total = tq_node_numel(n), N = total / (size_t)C;
    const float *dy = n->grad, *xh = n->aux, *inv = n->aux + total, *gamma = n->in[1]->val;
    double sdy[4096], sdyxh[4096];
    for (int c = 0; c < C; c++) sdy[c] = sdyxh[c] = 0.0;
    grad_sums(dy, xh, N, C, sdy, sdyxh);
    if (n->in[1]->grad)
        for (int c = 0; c < C; c++) n->in[1]->grad[c] += (float)sdyxh[c];
    if (n->in[2]->grad)
        for (int c = 0; c < C; c++) n->in[2]->grad[c] += (float)sdy[c];
    if (!n->in[0]->grad) return;
    /* batch statistics: dx = gamma inv / N (N dy - sum dy - xh sum(dy xh)) = a (dy - mean dy - xh mean(dy xh));
     * running ones: dx = gamma inv dy */
    float a[4096], b[4096], c3[4096];
    for (int c = 0; c < C; c++) {
        a[c] = gamma[c] * inv[c];
        b[c] = bn->batch_stats ? (float)(sdy[c] / (double)N) : 0.0f;
        c3[c] = bn->batch_stats ? (float)(sdyxh[c] / (double)N) : 0.0f;
    }
    bn_job j = {n, NULL, NULL, NULL, NULL, NULL, NULL, a, b, c3};
    tq_parallel_for(TQ_SLICES, grad_x_slice, &j);
}

static const tq_op op_bn = {"batchnorm", bn_shape, bn_forward, bn_backward};

tq_node *tq_batchnorm(tq_graph *g, tq_node *x, tq_node *gamma, tq_node *beta, tq_bn *bn) {
    tq_node *in[3] = {x, gamma, beta};
    return tq_graph_apply(g, &op_bn, bn, 3, in);
}

/* ---- the fold's per-channel scale ----
 * Two ops: weights [OC][K] times s, row c being channel c (bn_fold_w), and outputs [B][S*C]
 * divided by s, column j being channel j % C (bn_unfold_y). aux keeps s. */

static tq_status scale_shape(tq_node *n, int per_row) {
    const tq_bn *bn = n->ctx;
    tq_node *x = n->in[0];
    if (bn->C < 1 || bn->C > 4096) TQ_FAIL(TQ_E_SHAPE, "bn scale: %d channels (1..4096)", bn->C);
    if (per_row ? x->rows != bn->C : x->cols % bn->C)
        TQ_FAIL(TQ_E_SHAPE, "bn scale: a [%d][%d] tensor does not hold %d channels", x->rows, x->cols, bn->C);
    n->rows = x->rows;
    n->cols = x->cols;
    n->aux_len = 2 * (size_t)bn->C; /* s, then 1/sigma */
    return TQ_OK;
}

/* y = x * f per channel over P positions of C channels (vectorizes: no division, no modulo) */
TQ_SIMD_CLONES static void scale_rows(float *restrict y, const float *restrict x, const float *restrict f, size_t P, int C) {
    for (size_t p = 0; p < P; p++, x += C, y += C)
        for (int c = 0; c < C; c++) y[c] = x[c] * f[c];
}

/* sum over positions of dy * x, per channel */
TQ_SIMD_CLONES static void dot_rows(double *restrict acc, const float *restrict dy, const float *restrict x, size_t P, int C) {
    for (size_t p = 0; p < P; p++, x += C, dy += C)
        for (int c = 0; c < C; c++) acc[c] += (double)dy[c] * x[c];
}

static void scale_forward(tq_node *n, int per_row) {
    const tq_bn *bn = n->ctx;
    const int C = bn->C;
    const float *gamma = n->in[1]->val, *x = n->in[0]->val;
    float *sc = n->aux, *sinv = n->aux + C, f[4096];
    for (int c = 0; c < C; c++) {
        sinv[c] = 1.0f / sqrtf(bn->running_var[c] + bn->eps);
        sc[c] = gamma[c] * sinv[c];
        f[c] = per_row ? sc[c] : 1.0f / sc[c];
    }
    if (per_row) /* row c of W times s[c] */
        for (int c = 0; c < C; c++)
            for (int k = 0; k < n->cols; k++) n->val[(size_t)c * n->cols + k] = x[(size_t)c * n->cols + k] * f[c];
    else /* y / s: positions of C channels */
        scale_rows(n->val, x, f, tq_node_numel(n) / (size_t)C, C);
}

/* s = gamma / sigma, so ds/dgamma = 1 / sigma. y = x s: dy/dx = s, dy/ds = x.
 * y = x / s: dy/dx = 1/s, dy/ds = -x / s^2. */
static void scale_backward(tq_node *n, int per_row) {
    const tq_bn *bn = n->ctx;
    const int C = bn->C;
    const float *x = n->in[0]->val, *dy = n->grad, *sc = n->aux, *sinv = n->aux + C;
    double acc[4096];
    for (int c = 0; c < C; c++) acc[c] = 0.0;
    if (per_row) {
        for (int c = 0; c < C; c++)
            for (int k = 0; k < n->cols; k++) {
                size_t i = (size_t)c * n->cols + k;
                acc[c] += (double)dy[i] * x[i];
                if (n->in[0]->grad) n->in[0]->grad[i] += dy[i] * sc[c];
            }
    } else {
        size_t P = tq_node_numel(n) / (size_t)C;
        dot_rows(acc, dy, x, P, C);
        if (n->in[0]->grad) {
            float f[4096];
            for (int c = 0; c < C; c++) f[c] = 1.0f / sc[c];
            float *dx = n->in[0]->grad;
            for (size_t p = 0; p < P; p++)
                for (int c = 0; c < C; c++) dx[p * C + c] += dy[p * C + c] * f[c];
        }
    }
    if (n->in[1]->grad)
        for (int c = 0; c < C; c++)
            n->in[1]->grad[c] += (float)(acc[c] * (per_row ? 1.0 : -1.0 / ((double)sc[c] * sc[c])) * sinv[c]);
}

static tq_status fold_w_shape(tq_node *n) { return scale_shape(n, 1); }
static void fold_w_forward(tq_node *n, int mode) { (void)mode; scale_forward(n, 1); }
static void fold_w_backward(tq_node *n) { scale_backward(n, 1); }
static tq_status unfold_y_shape(tq_node *n) { return scale_shape(n, 0); }
static void unfold_y_forward(tq_node *n, int mode) { (void)mode; scale_forward(n, 0); }
static void unfold_y_backward(tq_node *n) { scale_backward(n, 0); }
static const tq_op op_fold_w = {"bn_fold_w", fold_w_shape, fold_w_forward, fold_w_backward};
static const tq_op op_unfold_y = {"bn_unfold_y", unfold_y_shape, unfold_y_forward, unfold_y_backward};

tq_node *tq_bn_fold_weights(tq_graph *g, tq_node *W, tq_node *gamma, tq_bn *bn) {
    tq_node *in[2] = {W, gamma};
    return tq_graph_apply(g, &op_fold_w, bn, 2, in);
}

tq_node *tq_bn_unfold_output(tq_graph *g, tq_node *y, tq_node *gamma, tq_bn *bn) {
    tq_node *in[2] = {y, gamma};
    return tq_graph_apply(g, &op_unfold_y, bn, 2, in);
}
