#include "layers/batchnorm.h"

#include <math.h>
#include <stdint.h>
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

/* The lanes the passes below run over (see there): 16 when C divides it and a row (the unit a
 * batch slice is made of) is whole lanes, else C. */
static int bn_lanes(const tq_node *n) {
    const int C = ((const tq_bn *)n->ctx)->C;
    return 16 % C == 0 && n->cols % 16 == 0 ? 16 : C;
}

/* aux: a, b (y = a x + b), shift, inv (xh = (x - shift) inv), each per lane, then per batch slice
 * two double sums per lane (the statistics' or the gradient's partial sums), each slice's on its
 * own cache lines (16 floats apart) so that two threads never write the same line. */
static size_t bn_slice_stride(int L) { return ((size_t)4 * L + 15) / 16 * 16; }
static size_t bn_aux_len(const tq_node *n) { return 4 * (size_t)bn_lanes(n) + 16 + (size_t)TQ_SLICES * bn_slice_stride(bn_lanes(n)); }

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
    n->aux_len = bn_aux_len(n);
    return TQ_OK;
}

/* Every loop below runs over positions (rows of C contiguous channels), the channel innermost, so
 * it vectorizes and needs no division. Sums are in double: a channel of a batch has tens of
 * thousands of values. Nothing per value is kept between forward and backward: backward
 * recomputes xh (and the ReLU's mask) from x, which costs less than writing and reading them
 * back (these tensors are larger than a core's cache). */

/* The three passes below are written once over "lanes": L consecutive values whose channels are
 * lane % C. With 16 % C == 0 (C = 1, 2, 4, 8, 16) they take L = 16, a constant, so that the sums
 * stay in registers across positions (with L = C in memory, each position would wait for the
 * previous one's store); otherwise L = C. The per-channel arrays come expanded to L lanes. */
#define BN_LANES 16

/* s1 += sum (x - k), s2 += sum (x - k)^2 per lane, over n values: one pass; k (the running mean)
 * keeps the sums small, so var = s2/N - (s1/N)^2 does not cancel. */
static inline __attribute__((always_inline)) void moments_l(const float *restrict x, size_t n, int L, const float *restrict k,
                                                            double *restrict s1, double *restrict s2) {
    double a1[4096], a2[4096];
    for (int l = 0; l < L; l++) a1[l] = a2[l] = 0.0;
    for (size_t i = 0; i < n; i += (size_t)L, x += L)
        for (int l = 0; l < L; l++) {
            double d = (double)x[l] - k[l];
            a1[l] += d;
            a2[l] += d * d;
        }
    for (int l = 0; l < L; l++) s1[l] = a1[l], s2[l] = a2[l];
}

/* y = a x + b, then max(0, y) when the op ends in a ReLU */
static inline __attribute__((always_inline)) void affine_l(const float *restrict x, float *restrict y, size_t n, int L,
                                                           const float *restrict a, const float *restrict b, int relu) {
    for (size_t i = 0; i < n; i += (size_t)L, x += L, y += L)
        for (int l = 0; l < L; l++) {
            float v = a[l] * x[l] + b[l];
            y[l] = relu && !(v > 0.0f) ? 0.0f : v;
        }
}

/* With a ReLU, dz = dy where a x + b > 0 (recomputed exactly as forward computed it), else 0.
 * sdy = sum dz, sdyxh = sum dz xh per lane, xh = (x - shift) inv. */
static inline __attribute__((always_inline)) void grad_sums_l(const float *restrict dy, const float *restrict x, size_t n, int L,
                                                              const float *restrict a, const float *restrict b,
                                                              const float *restrict shift, const float *restrict inv, int relu,
                                                              double *restrict sdy, double *restrict sdyxh) {
    double a1[4096], a2[4096];
    for (int l = 0; l < L; l++) a1[l] = a2[l] = 0.0;
    for (size_t i = 0; i < n; i += (size_t)L, dy += L, x += L)
        for (int l = 0; l < L; l++) {
            float d = relu && !(a[l] * x[l] + b[l] > 0.0f) ? 0.0f : dy[l];
            a1[l] += d;
            a2[l] += (double)d * ((x[l] - shift[l]) * inv[l]);
        }
    for (int l = 0; l < L; l++) sdy[l] = a1[l], sdyxh[l] = a2[l];
}

/* dx (+)= ga (dz - gb - xh gc) (batch statistics), or ga dz (gb = gc = 0); = when `assign` */
static inline __attribute__((always_inline)) void grad_x_l(float *restrict dx, const float *restrict dy, const float *restrict x,
                                                           size_t n, int L, const float *restrict a, const float *restrict b,
                                                           const float *restrict shift, const float *restrict inv, int relu,
                                                           int assign, const float *restrict ga, const float *restrict gb,
                                                           const float *restrict gc) {
    for (size_t i = 0; i < n; i += (size_t)L, dx += L, dy += L, x += L)
        for (int l = 0; l < L; l++) {
            float d = relu && !(a[l] * x[l] + b[l] > 0.0f) ? 0.0f : dy[l];
            float v = ga[l] * (d - gb[l] - (x[l] - shift[l]) * inv[l] * gc[l]);
            dx[l] = assign ? v : dx[l] + v;
        }
}

TQ_SIMD_CLONES static void channel_moments(const float *x, size_t n, int L, const float *k, double *s1, double *s2) {
    if (L == BN_LANES) moments_l(x, n, BN_LANES, k, s1, s2);
    else moments_l(x, n, L, k, s1, s2);
}
TQ_SIMD_CLONES static void affine(const float *x, float *y, size_t n, int L, const float *a, const float *b, int relu) {
    if (L == BN_LANES && relu) affine_l(x, y, n, BN_LANES, a, b, 1);
    else if (L == BN_LANES) affine_l(x, y, n, BN_LANES, a, b, 0);
    else affine_l(x, y, n, L, a, b, relu);
}
TQ_SIMD_CLONES static void grad_sums(const float *dy, const float *x, size_t n, int L, const float *a, const float *b,
                                     const float *shift, const float *inv, int relu, double *sdy, double *sdyxh) {
    if (L == BN_LANES && relu) grad_sums_l(dy, x, n, BN_LANES, a, b, shift, inv, 1, sdy, sdyxh);
    else if (L == BN_LANES) grad_sums_l(dy, x, n, BN_LANES, a, b, shift, inv, 0, sdy, sdyxh);
    else grad_sums_l(dy, x, n, L, a, b, shift, inv, relu, sdy, sdyxh);
}
TQ_SIMD_CLONES static void grad_x(float *dx, const float *dy, const float *x, size_t n, int L, const float *a, const float *b,
                                  const float *shift, const float *inv, int relu, int assign, const float *ga, const float *gb,
                                  const float *gc) {
#define GRAD_X(L_, relu_, assign_) grad_x_l(dx, dy, x, n, L_, a, b, shift, inv, relu_, assign_, ga, gb, gc)
    if (L == BN_LANES && relu && assign) GRAD_X(BN_LANES, 1, 1);
    else if (L == BN_LANES && relu) GRAD_X(BN_LANES, 1, 0);
    else if (L == BN_LANES && assign) GRAD_X(BN_LANES, 0, 1);
    else if (L == BN_LANES) GRAD_X(BN_LANES, 0, 0);
    else GRAD_X(L, relu, assign);
#undef GRAD_X
}

/* Each pass is a task per batch slice (src/parallel.h); a slice's sums go to its own partials,
 * added up afterwards in slice order, so the bytes do not depend on the thread count. */
typedef struct {
    tq_node *n;
    int relu, L;
    const float *ga, *gb, *gc; /* backward's per-lane factors */
} bn_job;

static const tq_op op_bn, op_bn_relu;

/* Slice t of n's rows as a run of values: it starts at value *off and is the returned count long
 * (whole positions of C channels, possibly none). */
static size_t slice_values(const tq_node *n, int t, size_t *off) {
    size_t r0, r1;
    tq_slice((size_t)n->rows, t, TQ_SLICES, &r0, &r1);
    *off = r0 * (size_t)n->cols;
    return (r1 - r0) * (size_t)n->cols;
}

/* the per-lane arrays in aux, and slice t's two partial sums */
typedef struct {
    float *a, *b, *shift, *inv;
    double *s1, *s2;
    int L;
} bn_aux;

/* p rounded up to a cache line's start (the aux buffers keep 16 floats to spare for it) */
static float *line_start(float *p) {
    uintptr_t at = (uintptr_t)p;
    return (float *)(at + (64 - at % 64) % 64);
}

static bn_aux aux_of(const tq_node *n, int t) {
    const int L = bn_lanes(n);
    float *f = n->aux;
    double *d = (double *)(void *)(line_start(f + 4 * (size_t)L) + (size_t)t * bn_slice_stride(L));
    return (bn_aux){f, f + L, f + 2 * L, f + 3 * L, d, d + L, L};
}

/* s1[c], s2[c] = the slices' partial sums of channel c, added slice by slice, lane by lane: a fixed
 * order, whatever thread computed which slice */
static void sum_partials(const tq_node *n, int C, double *s1, double *s2) {
    for (int c = 0; c < C; c++) s1[c] = s2[c] = 0.0;
    for (int t = 0; t < TQ_SLICES; t++) {
        bn_aux P = aux_of(n, t);
        for (int l = 0; l < P.L; l++) s1[l % C] += P.s1[l], s2[l % C] += P.s2[l];
    }
}

/* lanes l >= C repeat channel l % C */
static void expand(float *v, int C, int L) {
    for (int l = C; l < L; l++) v[l] = v[l % C];
}

/* A slice is whole rows, so whole lanes (bn_lanes), and starts on a lane with channel 0. */
static void moments_slice(void *ctx, int t) {
    const bn_job *j = ctx;
    bn_aux A = aux_of(j->n, 0), P = aux_of(j->n, t);
    size_t o, len = slice_values(j->n, t, &o);
    for (int l = 0; l < j->L; l++) P.s1[l] = P.s2[l] = 0.0;
    if (len) channel_moments(j->n->in[0]->val + o, len, j->L, A.shift, P.s1, P.s2);
}

static void affine_slice(void *ctx, int t) {
    const bn_job *j = ctx;
    bn_aux A = aux_of(j->n, 0);
    size_t o, len = slice_values(j->n, t, &o);
    if (len) affine(j->n->in[0]->val + o, j->n->val + o, len, j->L, A.a, A.b, j->relu);
}

static void bn_forward(tq_node *n, int mode) {
    tq_bn *bn = n->ctx;
    const int C = bn->C;
    const float *gamma = n->in[1]->val, *beta = n->in[2]->val;
    const size_t N = tq_node_numel(n) / (size_t)C;
    bn_aux A = aux_of(n, 0);
    bn_job j = {n, n->op == &op_bn_relu, A.L, NULL, NULL, NULL};
    bn->batch_stats = mode == TQ_RUN_TRAIN && !bn->frozen;
    if (bn->batch_stats) {
        for (int c = 0; c < C; c++) A.shift[c] = bn->running_mean[c];
        expand(A.shift, C, A.L);
        tq_parallel_for(TQ_SLICES, moments_slice, &j);
        double s1[4096], s2[4096]; /* C <= 4096 (bn_shape) */
        sum_partials(n, C, s1, s2);
        for (int c = 0; c < C; c++) {
            double d = s1[c] / (double)N, mean = bn->running_mean[c] + d, var = s2[c] / (double)N - d * d;
            if (var < 0.0) var = 0.0;
            A.inv[c] = (float)(1.0 / sqrt(var + (double)bn->eps));
            A.shift[c] = (float)mean;
            A.a[c] = gamma[c] * A.inv[c];
            A.b[c] = beta[c] - A.a[c] * A.shift[c];
            double unbiased = N > 1 ? var * (double)N / (double)(N - 1) : var;
            bn->running_mean[c] += bn->momentum * ((float)mean - bn->running_mean[c]);
            bn->running_var[c] += bn->momentum * ((float)unbiased - bn->running_var[c]);
        }
    } else {
        for (int c = 0; c < C; c++) { /* the folded scale and bias as conversion computes them (layers/model.c) */
            A.inv[c] = 1.0f / sqrtf(bn->running_var[c] + bn->eps);
            A.shift[c] = bn->running_mean[c];
            A.a[c] = gamma[c] * A.inv[c];
            A.b[c] = beta[c] - A.a[c] * bn->running_mean[c];
        }
        if (bn->round_bias) bn->round_bias(bn->round_bias_ctx, A.b, C, mode);
    }
    expand(A.a, C, A.L), expand(A.b, C, A.L), expand(A.shift, C, A.L), expand(A.inv, C, A.L);
    tq_parallel_for(TQ_SLICES, affine_slice, &j);
}

static void grad_sums_slice(void *ctx, int t) {
    const bn_job *j = ctx;
    bn_aux A = aux_of(j->n, 0), P = aux_of(j->n, t);
    size_t o, len = slice_values(j->n, t, &o);
    for (int l = 0; l < j->L; l++) P.s1[l] = P.s2[l] = 0.0;
    if (len) grad_sums(j->n->grad + o, j->n->in[0]->val + o, len, j->L, A.a, A.b, A.shift, A.inv, j->relu, P.s1, P.s2);
}

static void grad_x_slice(void *ctx, int t) {
    const bn_job *j = ctx;
    bn_aux A = aux_of(j->n, 0);
    size_t o, len = slice_values(j->n, t, &o);
    if (len)
        grad_x(j->n->in[0]->grad + o, j->n->grad + o, j->n->in[0]->val + o, len, j->L, A.a, A.b, A.shift, A.inv, j->relu,
               TQ_GRAD_ASSIGNED(j->n->in[0]), j->ga, j->gb, j->gc);
}

static void bn_backward(tq_node *n) {
    const tq_bn *bn = n->ctx;
    const int C = bn->C;
    const size_t N = tq_node_numel(n) / (size_t)C;
    const float *gamma = n->in[1]->val;
    bn_aux A = aux_of(n, 0);
    bn_job j = {n, n->op == &op_bn_relu, A.L, NULL, NULL, NULL};
    tq_parallel_for(TQ_SLICES, grad_sums_slice, &j);
    double sdy[4096], sdyxh[4096];
    sum_partials(n, C, sdy, sdyxh);
    if (n->in[1]->grad)
        for (int c = 0; c < C; c++) n->in[1]->grad[c] += (float)sdyxh[c];
    if (n->in[2]->grad)
        for (int c = 0; c < C; c++) n->in[2]->grad[c] += (float)sdy[c];
    if (!n->in[0]->grad) return;
    /* batch statistics: dx = gamma inv / N (N dy - sum dy - xh sum(dy xh)) = ga (dy - mean dy - xh mean(dy xh));
     * running ones: dx = gamma inv dy */
    float ga[4096], gb[4096], gc[4096];
    for (int c = 0; c < C; c++) {
        ga[c] = gamma[c] * A.inv[c];
        gb[c] = bn->batch_stats ? (float)(sdy[c] / (double)N) : 0.0f;
        gc[c] = bn->batch_stats ? (float)(sdyxh[c] / (double)N) : 0.0f;
    }
    expand(ga, C, A.L), expand(gb, C, A.L), expand(gc, C, A.L);
    j.ga = ga, j.gb = gb, j.gc = gc;
    tq_parallel_for(TQ_SLICES, grad_x_slice, &j);
}

static const tq_op op_bn = {"batchnorm", bn_shape, bn_forward, bn_backward, 1};
static const tq_op op_bn_relu = {"batchnorm_relu", bn_shape, bn_forward, bn_backward, 1};

tq_node *tq_batchnorm(tq_graph *g, tq_node *x, tq_node *gamma, tq_node *beta, tq_bn *bn) {
    tq_node *in[3] = {x, gamma, beta};
    return tq_graph_apply(g, &op_bn, bn, 3, in);
}

tq_node *tq_batchnorm_relu(tq_graph *g, tq_node *x, tq_node *gamma, tq_node *beta, tq_bn *bn) {
    tq_node *in[3] = {x, gamma, beta};
    return tq_graph_apply(g, &op_bn_relu, bn, 3, in);
}

/* ---- the fold's per-channel scale ----
 * Two ops: weights [OC][K] times s, row c being channel c (bn_fold_w), and outputs [B][S*C]
 * divided by s, column j being channel j % C (bn_unfold_y). aux keeps s. */

static size_t unfold_stride(int C) { return ((size_t)2 * C + 15) / 16 * 16; }

/* slice t's partial sums of y / s's backward, 64-byte aligned */
static double *unfold_partial(const tq_node *n, int t) {
    const int C = ((const tq_bn *)n->ctx)->C;
    return (double *)(void *)(line_start(n->aux + 2 * (size_t)C) + (size_t)t * unfold_stride(C));
}

static tq_status scale_shape(tq_node *n, int per_row) {
    const tq_bn *bn = n->ctx;
    tq_node *x = n->in[0];
    if (bn->C < 1 || bn->C > 4096) TQ_FAIL(TQ_E_SHAPE, "bn scale: %d channels (1..4096)", bn->C);
    if (per_row ? x->rows != bn->C : x->cols % bn->C)
        TQ_FAIL(TQ_E_SHAPE, "bn scale: a [%d][%d] tensor does not hold %d channels", x->rows, x->cols, bn->C);
    n->rows = x->rows;
    n->cols = x->cols;
    /* s, then 1/sigma, then (for y / s) per batch slice C double partial sums, on their own lines */
    n->aux_len = 2 * (size_t)bn->C + (per_row ? 0 : 16 + (size_t)TQ_SLICES * unfold_stride(bn->C));
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

typedef struct {
    tq_node *n;
    const float *f;
} unfold_job;

static void unfold_slice(void *ctx, int t) {
    const unfold_job *j = ctx;
    const int C = ((const tq_bn *)j->n->ctx)->C;
    size_t o, len = slice_values(j->n, t, &o);
    if (len) scale_rows(j->n->val + o, j->n->in[0]->val + o, j->f, len / (size_t)C, C);
}

/* backward of y / s on slice t: its partial sum of dy x per channel, and dx += dy f */
static void unfold_grad_slice(void *ctx, int t) {
    const unfold_job *j = ctx;
    const tq_node *n = j->n;
    const int C = ((const tq_bn *)n->ctx)->C;
    double *acc = unfold_partial(n, t);
    size_t o, len = slice_values(n, t, &o);
    for (int c = 0; c < C; c++) acc[c] = 0.0;
    if (!len) return;
    dot_rows(acc, n->grad + o, n->in[0]->val + o, len / (size_t)C, C);
    if (n->in[0]->grad) {
        float *dx = n->in[0]->grad + o;
        const float *dy = n->grad + o;
        if (TQ_GRAD_ASSIGNED(n->in[0])) scale_rows(dx, dy, j->f, len / (size_t)C, C);
        else
            for (size_t i = 0; i < len; i += (size_t)C)
                for (int c = 0; c < C; c++) dx[i + c] += dy[i + c] * j->f[c];
    }
}

float tq_bn_fold_scale(float gamma, float var, float eps) {
    float s = gamma * (1.0f / sqrtf(var + eps));
    /* gamma = 0 would make y / s divide by zero: a channel that BN zeroes anyway keeps a tiny
     * scale of gamma's sign instead, the same in the fold and the unfold */
    return fabsf(s) >= 1e-12f ? s : copysignf(1e-12f, gamma);
}

static void scale_forward(tq_node *n, int per_row) {
    const tq_bn *bn = n->ctx;
    const int C = bn->C;
    const float *gamma = n->in[1]->val, *x = n->in[0]->val;
    float *sc = n->aux, *sinv = n->aux + C, f[4096];
    for (int c = 0; c < C; c++) {
        sinv[c] = 1.0f / sqrtf(bn->running_var[c] + bn->eps);
        sc[c] = tq_bn_fold_scale(gamma[c], bn->running_var[c], bn->eps); /* gamma sinv, never 0 */
        f[c] = per_row ? sc[c] : 1.0f / sc[c];
    }
    if (per_row) /* row c of W times s[c] */
        for (int c = 0; c < C; c++)
            for (int k = 0; k < n->cols; k++) n->val[(size_t)c * n->cols + k] = x[(size_t)c * n->cols + k] * f[c];
    else { /* y / s: positions of C channels, a task per batch slice */
        unfold_job j = {n, f};
        tq_parallel_for(TQ_SLICES, unfold_slice, &j);
    }
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
    } else { /* a task per batch slice, the partial sums added in slice order */
        float f[4096];
        for (int c = 0; c < C; c++) f[c] = 1.0f / sc[c];
        unfold_job j = {n, f};
        tq_parallel_for(TQ_SLICES, unfold_grad_slice, &j);
        for (int t = 0; t < TQ_SLICES; t++) {
            const double *part = unfold_partial(n, t);
            for (int c = 0; c < C; c++) acc[c] += part[c];
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
static const tq_op op_fold_w = {"bn_fold_w", fold_w_shape, fold_w_forward, fold_w_backward, 0};
static const tq_op op_unfold_y = {"bn_unfold_y", unfold_y_shape, unfold_y_forward, unfold_y_backward, 1};

tq_node *tq_bn_fold_weights(tq_graph *g, tq_node *W, tq_node *gamma, tq_bn *bn) {
    tq_node *in[2] = {W, gamma};
    return tq_graph_apply(g, &op_fold_w, bn, 2, in);
}

tq_node *tq_bn_unfold_output(tq_graph *g, tq_node *y, tq_node *gamma, tq_bn *bn) {
    tq_node *in[2] = {y, gamma};
    return tq_graph_apply(g, &op_unfold_y, bn, 2, in);
}
