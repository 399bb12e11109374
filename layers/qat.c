#include "layers/qat.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/add.h"
#include "layers/linear.h"
#include "layers/relu.h"
#include "src/alloc.h"
#include "src/parallel.h"
#include "src/qmodel.h"

void tq_qat_cfg_defaults(tq_qat_cfg *c) {
    memset(c, 0, sizeof *c);
    c->w_bits = 8;
    c->per_channel = 1;
    c->quant_bias = 1;
    c->ste = TQ_STE_CLIPPED;
    c->obs = TQ_OBS_EMA;
    c->w_mse = 0;
}

int tq_qat_cfg_bits(const tq_qat_cfg *c, int u) { return u >= 0 && u < TQ_QAT_MAX_UNITS && c->unit_bits[u] ? c->unit_bits[u] : c->w_bits; }

int tq_qat_cfg_act_bits(const tq_qat_cfg *c, int u, int n_units) {
    if (u >= 0 && u < TQ_QAT_MAX_UNITS && c->unit_act_bits[u]) return c->unit_act_bits[u];
    return u < n_units - 1 && c->act_bits == 16 ? 16 : 8;
}

/* The quantizers of one unit (stage or dense layer) of `channels` outputs: per-channel weights,
 * the output activation with its observer, and the bias at s_in * s_w. */
static const float input_scale = TQ_INPUT_SCALE;

static tq_status init_unit(const tq_qat_cfg *cfg, int u, int n_units, int channels, tq_fq *w, tq_fq *a, tq_observer *o, tq_bias_q *bq,
                           const tq_fq *in) {
    TQ_TRY(tq_fq_init_weight(w, tq_qat_cfg_bits(cfg, u), cfg->per_channel, channels));
    w->ste = cfg->ste;
    w->mse_range = cfg->w_mse;
    tq_observer_init(o, cfg->obs);
    tq_fq_init_act(a, o);
    if (tq_qat_cfg_act_bits(cfg, u, n_units) == 16) tq_fq_set_act16(a);
    a->ste = cfg->ste;
    /* a 16-bit side on either end makes the layer TFLite's 16x8 kind: int64 bias, 64-bit requantization */
    a->req_wide = bq->wide = a->bits == 16 || (in && in->bits == 16);
    if (cfg->quant_bias) { /* evaluation rounds the output as the integer path requantizes it */
        a->req_w = w;
        a->req_in = in ? &in->scale[0] : &input_scale;
    }
    bq->w = w;
    bq->in = in;
    return TQ_OK;
}

tq_status tq_qat_new(tq_qat **out, const tq_qat_cfg *cfg, int n_units, int n_stages, const int *channels, const int *src) {
    *out = NULL;
    if (n_units < 1 || n_units > TQ_QAT_MAX_UNITS || n_stages < 0 || n_stages >= n_units)
        TQ_FAIL(TQ_E_ARG, "quantization: %d units of which %d stages (1..%d units, a dense layer last)", n_units, n_stages, TQ_QAT_MAX_UNITS);
    for (int u = 0; u < TQ_QAT_MAX_UNITS; u++) {
        int b = cfg->unit_bits[u];
        if (b && (b < 2 || b > 8)) TQ_FAIL(TQ_E_ARG, "quantization: unit %d's weights at %d bits (2..8)", u + 1, b);
        if (b && u >= n_units)
            TQ_FAIL(TQ_E_ARG, "quantization: a width for unit %d of a model with %d (its convolutions and dense layers)", u + 1, n_units);
        int a = cfg->unit_act_bits[u];
        if (a && a != 8 && a != 16) TQ_FAIL(TQ_E_ARG, "quantization: unit %d's activations at %d bits (8 or 16)", u + 1, a);
        if (a && u >= n_units)
            TQ_FAIL(TQ_E_ARG, "quantization: an activation width for unit %d of a model with %d (its convolutions and dense layers)",
                    u + 1, n_units);
        if (a == 16 && u == n_units - 1)
            TQ_FAIL(TQ_E_ARG, "quantization: the last layer's output at 16 bits: the logits are int8 (the runtime's output)");
    }
    if (cfg->act_bits && cfg->act_bits != 8 && cfg->act_bits != 16)
        TQ_FAIL(TQ_E_ARG, "quantization: activations at %d bits (8 or 16)", cfg->act_bits);
    tq_qat *q = tq_calloc(1, sizeof *q);
    if (!q) TQ_FAIL(TQ_E_NOMEM, "cannot allocate quantization state");
    q->cfg = *cfg;
    q->n_units = n_units;
    q->n_stages = n_stages;
    /* each unit reads an earlier one's quantized output (the first: the input, s = 1/255) */
    for (int u = 0; u < n_units; u++) {
        int from = src ? src[u] : u - 1;
        tq_status st = from < -1 || from >= u ? tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "quantization: unit %d reads unit %d (an earlier one, or 0 for the input)", u + 1, from + 1)
                                              : init_unit(cfg, u, n_units, channels[u], &q->wfq[u], &q->afq[u], &q->aobs[u], &q->bq[u],
                                                          from >= 0 ? &q->afq[from] : NULL);
        if (st != TQ_OK) {
            tq_free(q);
            return st;
        }
    }
    *out = q;
    return TQ_OK;
}

void tq_qat_free(tq_qat *q) {
    if (!q) return;
    for (int u = 0; u < TQ_QAT_MAX_UNITS; u++) tq_observer_free(&q->aobs[u]);
    tq_free(q);
}

void tq_qat_set_frozen(tq_qat *q, int frozen) {
    for (int u = 0; q && u < q->n_units; u++) q->aobs[u].frozen = frozen;
}

void tq_qat_set_observer(tq_qat *q, tq_obs_kind kind) {
    if (!q) return;
    q->cfg.obs = kind;
    for (int u = 0; u < q->n_units; u++) q->aobs[u].kind = kind;
}

/* The scale of the activation a quantizer gives (NULL: the network's input, p/255). */
static float scale_of(const tq_fq *fq) { return fq ? fq->scale[0] : TQ_INPUT_SCALE; }

/* ---- bias fake quant: b^[o] = round(b[o] / (s_in s_w[o])) * s_in s_w[o], the int32 the
 * integer path adds to its accumulator. STE: db = dy (the rounding is far below a weight's). */

/* an op whose output has its (first) input's shape */
static tq_status same_shape(tq_node *n) {
    n->rows = n->in[0]->rows;
    n->cols = n->in[0]->cols;
    return TQ_OK;
}

/* out[o] = b[o] on its int32 grid s_in * s_w[o]; unchanged while calibrating or before the input
 * range has been observed. out may be b. */
static void round_bias(const tq_bias_q *bq, const float *b, float *out, int C, int mode) {
    float s_in = scale_of(bq->in);
    if (mode == TQ_RUN_CALIBRATE || (bq->in && bq->in->obs && bq->in->obs->n_seen == 0)) {
        memmove(out, b, (size_t)C * sizeof *out);
        return;
    }
    for (int o = 0; o < C; o++) {
        float s = s_in * bq->w->scale[bq->w->per_channel ? o : 0];
        double q = nearbyint((double)b[o] / (double)s);
        if (bq->wide) /* int64, within the runtime's 2^46 (the converter refuses beyond) */
            q = q > 70368744177664.0 ? 70368744177664.0 : q < -70368744177664.0 ? -70368744177664.0 : q;
        else
            q = q > 2147483647.0 ? 2147483647.0 : q < -2147483648.0 ? -2147483648.0 : q;
        out[o] = (float)(q * (double)s);
    }
}

static void bq_forward(tq_node *n, int mode) { round_bias(n->ctx, n->in[0]->val, n->val, n->cols, mode); }

static void round_folded_bias(const void *ctx, float *bias, int C, int mode) { round_bias(ctx, bias, bias, C, mode); }

static void bq_backward(tq_node *n) {
    if (!n->in[0]->grad) return;
    for (int o = 0; o < n->cols; o++) n->in[0]->grad[o] += n->grad[o];
}

static const tq_op op_bias_quant = {"bias_quant", same_shape, bq_forward, bq_backward, 0};

/* A fake quant: with learned scales (LSQ) their parameters are a leaf of the graph. */
static tq_node *fake_quant(tq_graph *g, tq_node *x, tq_fq *fq) {
    if (!fq->learned) return tq_fake_quant(g, x, fq);
    return tq_fake_quant_lsq(g, x, tq_leaf(g, "log_scale", 1, fq->n_ch, fq->learned, fq->learned_grad), fq);
}

/* ---- exact accumulators (16-bit units in evaluation) ----
 * The integer layer's sums, int64, from the integers the float values stand for: an input x on its
 * grid is (q - z) s_in, so round(x / s_in) is q - z (the network's input p/255 gives p = q + 128);
 * a weight round(W^ / s_w); the bias as the converter rounds it, nearbyint(b / (s_in s_w)) from
 * the float bias (with batch norm, the folded one: beta - s mean, s = gamma / sqrt(var + eps)).
 * Inputs: x, W^, then the bias b (or none; with batch norm gamma and beta are the ctx's). Only
 * evaluation computes them. */
static tq_status exact_shape(tq_node *n) {
    const tq_qexact *E = n->ctx;
    n->rows = n->in[0]->rows;
    n->cols = E->cs ? E->cs->OH * E->cs->OW * E->cs->OC : n->in[1]->rows;
    n->aux_len = 2 * tq_node_numel(n); /* an int64 in each pair of floats */
    return TQ_OK;
}

static void exact_forward(tq_node *n, int mode) {
    const tq_qexact *E = n->ctx;
    if (mode != TQ_RUN_EVAL || (E->in && E->in->obs && E->in->obs->n_seen == 0)) return;
    const tq_conv_shape *cs = E->cs;
    const float *x = n->in[0]->val, *W = n->in[1]->val, s_in = scale_of(E->in);
    const int OC = cs ? cs->OC : n->in[1]->rows, K = n->in[1]->cols, B = n->rows;
    int32_t *wq = tq_malloc((size_t)OC * (size_t)K * sizeof(int32_t));
    int64_t *bq = tq_malloc((size_t)OC * sizeof(int64_t));
    int32_t *xq = tq_malloc(tq_node_numel(n->in[0]) * sizeof(int32_t));
    if (!wq || !bq || !xq) { /* no sums: INT64_MIN says so, and the fake quant takes the float estimate */
        tq_free(wq), tq_free(bq), tq_free(xq);
        const int64_t none = INT64_MIN;
        for (size_t i = 0; i < tq_node_numel(n); i++) memcpy(n->aux + 2 * i, &none, sizeof none);
        return;
    }
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) xq[i] = (int32_t)nearbyintf(x[i] / s_in);
    for (int o = 0; o < OC; o++) {
        float sw = E->w->scale[E->w->per_channel ? o : 0], b = 0.0f;
        for (int k = 0; k < K; k++) wq[(size_t)o * K + k] = (int32_t)nearbyintf(W[(size_t)o * K + k] / sw);
        if (E->bn) { /* the folded bias as layers/model.c's unit_folded computes it */
            b = E->beta[o] - tq_bn_fold_scale(E->gamma[o], E->bn->running_var[o], E->bn->eps) * E->bn->running_mean[o];
        } else if (n->n_in > 2) {
            b = n->in[2]->val[o];
        }
        float sb = s_in * sw;
        bq[o] = (int64_t)nearbyint((double)b / (double)sb);
    }
    for (int r = 0; r < B; r++)
        for (int j = 0; j < n->cols; j++) {
            int o = j % OC;
            int64_t acc = bq[o];
            const int32_t *xr = xq + (size_t)r * (size_t)n->in[0]->cols, *wr = wq + (size_t)o * K;
            if (!cs) {
                for (int k = 0; k < K; k++) acc += (int64_t)xr[k] * wr[k];
            } else {
                int p = j / OC, oy = p / cs->OW, ox = p % cs->OW, kk = 0;
                for (int ky = 0; ky < cs->KH; ky++)
                    for (int kx = 0; kx < cs->KW; kx++) {
                        int iy = oy * cs->stride - cs->pad + ky, ix = ox * cs->stride_w - cs->pad_w + kx;
                        int inside = iy >= 0 && iy < cs->H && ix >= 0 && ix < cs->W;
                        const int32_t *px = inside ? xr + ((size_t)iy * cs->W + (size_t)ix) * (size_t)cs->C : xr; /* (unread outside) */
                        if (cs->depthwise) {
                            if (inside) acc += (int64_t)px[o / (cs->OC / cs->C)] * wr[kk];
                            kk++;
                            continue;
                        }
                        for (int c = 0; c < cs->C; c++, kk++)
                            if (inside) acc += (int64_t)px[c] * wr[kk];
                    }
            }
            memcpy(n->aux + 2 * ((size_t)r * n->cols + j), &acc, sizeof acc);
        }
    tq_free(wq), tq_free(bq), tq_free(xq);
}

static void exact_backward(tq_node *n) { (void)n; } /* evaluation only: nothing flows back */

static const tq_op op_exact = {"exact_acc", exact_shape, exact_forward, exact_backward, 0};

/* y's output quantizer: with exact sums in evaluation for a 16-bit unit, plain otherwise. */
static tq_node *output_fq(tq_graph *g, tq_node *y, tq_fq *a, tq_qexact *E, tq_node *const *in, int n_in, int relu) {
    if (!a->req_wide || !a->req_w || a->learned) return fake_quant(g, y, a); /* (LSQ's learned scale: its own op) */
    a->req_relu = relu;
    return tq_fake_quant_exact(g, y, tq_graph_apply(g, &op_exact, E, n_in, (tq_node **)in), a);
}

tq_node *tq_qat_layer(tq_graph *g, tq_qat *q, int l, tq_node *x, tq_node *W, tq_node *b, int relu) {
    tq_node *Wq = fake_quant(g, W, &q->wfq[l]);
    /* the bias quantizer reads s_w from the weight quantizer, so it must run after it: it does,
     * being recorded later on the tape */
    tq_node *bq = q->cfg.quant_bias ? tq_graph_apply(g, &op_bias_quant, &q->bq[l], 1, &b) : b;
    tq_node *y = tq_linear(g, x, Wq, bq);
    if (relu) y = tq_relu(g, y);
    q->exact[l] = (tq_qexact){.w = &q->wfq[l], .in = q->bq[l].in};
    tq_node *in[3] = {x, Wq, b};
    return output_fq(g, y, &q->afq[l], &q->exact[l], in, b ? 3 : 2, relu);
}

tq_node *tq_qat_stage(tq_graph *g, tq_qat *q, int s, tq_node *x, tq_node *W, tq_node *b, tq_node *gamma, tq_node *beta,
                      tq_bn *bn, int relu, const tq_conv_shape *cs) {
    tq_node *y;
    if (bn && b) /* batch norm subtracts the batch mean: a bias before it would be silently lost */
        return tq_graph_fail(g, tq_error_set_(TQ_E_ARG, __FILE__, __LINE__,
                                              "qat stage %d: a bias and batch norm (beta is the bias: give b = NULL)", s));
    if (bn) { /* the fold: the quantizer sees W * s_bn, the weights the integer model will hold */
        if (q->cfg.quant_bias) { /* with the running statistics, the bias it will hold too */
            bn->round_bias = round_folded_bias;
            bn->round_bias_ctx = &q->bq[s];
        }
        tq_node *Wq = fake_quant(g, tq_bn_fold_weights(g, W, gamma, bn), &q->wfq[s]);
        y = tq_bn_unfold_output(g, tq_conv2d(g, x, Wq, NULL, cs), gamma, bn);
        y = relu == 1 ? tq_batchnorm_relu(g, y, gamma, beta, bn) : tq_activation(g, tq_batchnorm(g, y, gamma, beta, bn), relu);
        q->exact[s] = (tq_qexact){.w = &q->wfq[s], .in = q->bq[s].in, .cs = cs, .bn = bn, .gamma = gamma->val, .beta = beta->val};
        tq_node *in[2] = {x, Wq};
        return output_fq(g, y, &q->afq[s], &q->exact[s], in, 2, relu);
    }
    tq_node *Wq = fake_quant(g, W, &q->wfq[s]);
    tq_node *bq = b && q->cfg.quant_bias ? tq_graph_apply(g, &op_bias_quant, &q->bq[s], 1, &b) : b;
    y = tq_activation(g, tq_conv2d(g, x, Wq, bq, cs), relu);
    q->exact[s] = (tq_qexact){.w = &q->wfq[s], .in = q->bq[s].in, .cs = cs};
    tq_node *in[3] = {x, Wq, b};
    return output_fq(g, y, &q->afq[s], &q->exact[s], in, b ? 3 : 2, relu);
}

/* ---- add and average pool on the integer grid ---- */


static tq_status qadd_shape(tq_node *n) {
    TQ_TRY(tq_add_shape(n));
    n->aux_len = tq_node_numel(n); /* the STE mask */
    return TQ_OK;
}

/* One slice of the thread pool's share of the add: the float sum (and ReLU, with its mask) when
 * `sum`, then, when `quantize`, that sum replaced by the int8 ADD's output on the inputs' integers. */
typedef struct {
    tq_node *n;
    int32_t M0[3], sh[3], zy, lo, hi;
    float sa, sb, sy;
    int sum, quantize, slices;
} qadd_job;

static void qadd_slice(void *ctx, int t) {
    const qadd_job *j = ctx;
    tq_node *n = j->n;
    const tq_qadd *A = n->ctx;
    const float *a = n->in[0]->val, *b = n->in[1]->val;
    size_t i0, i1;
    tq_slice(tq_node_numel(n), t, j->slices, &i0, &i1);
    for (size_t i = i0; j->sum && i < i1; i++) {
        float v = a[i] + b[i];
        n->val[i] = A->relu && !(v > 0.0f) ? 0.0f * v : v; /* 0 * NaN stays NaN */
        n->aux[i] = A->relu && !(v > 0.0f) ? 0.0f : 1.0f;
    }
    for (size_t i = i0; j->quantize && i < i1; i++) {
        if (n->val[i] != n->val[i]) continue; /* NaN: left for the loss to report */
        /* the clipped STE's range, from the float sum */
        float u = (float)j->zy + nearbyintf(n->val[i] / j->sy);
        if (u < (float)A->y->qmin || u > (float)A->y->qmax) n->aux[i] = 0.0f;
        /* q - z, clamped in float before the cast: a damaged model's scales can put a value off
         * any int8 grid (or make it inf or NaN), and casting such a float to int is undefined */
        float fa = nearbyintf(a[i] / j->sa), fb = nearbyintf(b[i] / j->sb);
        fa = fa > 255.0f ? 255.0f : fa >= -255.0f ? fa : -255.0f; /* NaN -> -255 */
        fb = fb > 255.0f ? 255.0f : fb >= -255.0f ? fb : -255.0f;
        const int32_t qa = (int32_t)fa, qb = (int32_t)fb;
        int64_t r = (int64_t)tq_requantize_ref(qa * (1 << 20), j->M0[0], j->sh[0]) + tq_requantize_ref(qb * (1 << 20), j->M0[1], j->sh[1]);
        r = r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r;
        int64_t q = (int64_t)tq_requantize_ref((int32_t)r, j->M0[2], j->sh[2]) + j->zy;
        q = q < j->lo ? j->lo : q > j->hi ? j->hi : q;
        n->val[i] = (float)(q - j->zy) * j->sy;
    }
}

static void qadd_forward(tq_node *n, int mode) {
    const tq_qadd *A = n->ctx;
    tq_fq *fy = A->y;
    size_t N = tq_node_numel(n);
    qadd_job j = {.n = n, .sum = 1, .slices = N >= TQ_SLICE_MIN / 4 ? TQ_SLICES : 1};
    if (mode != TQ_RUN_EVAL) { /* the observer sees the float sum first, then the sum is quantized with it */
        tq_parallel_for(j.slices, qadd_slice, &j);
        (void)tq_fq_update(fy, n->val, n->in[0]->rows, n->in[0]->cols, 1);
        j.sum = 0;
    }
    j.quantize = fy->enabled && mode != TQ_RUN_CALIBRATE && fy->obs->n_seen > 0;
    if (!j.sum && !j.quantize) return;
    if (j.quantize) { /* x = (q - z) s on each input's grid, so round(x / s) is q - z exactly */
        j.sa = scale_of(A->a), j.sb = scale_of(A->b);
        j.sy = fy->scale[0], j.zy = fy->zero_point[0];
        tq_add_multipliers(j.sa, j.sb, j.sy, j.M0, j.sh);
        j.lo = A->relu ? j.zy : fy->qmin, j.hi = fy->qmax;
    }
    tq_parallel_for(j.slices, qadd_slice, &j);
}

static void qadd_backward(tq_node *n) {
    size_t N = tq_node_numel(n);
    for (int j = 0; j < 2; j++) {
        float *d = n->in[j]->grad;
        if (!d) continue;
        for (size_t i = 0; i < N; i++) d[i] += n->grad[i] * n->aux[i];
    }
}

static const tq_op op_qadd = {"quantized_add", qadd_shape, qadd_forward, qadd_backward, 0};

tq_node *tq_qat_add(tq_graph *g, tq_qat *q, int s, tq_node *a, tq_node *b, int src_b, int relu) {
    if (s < 0 || s >= q->n_stages || src_b < -1 || src_b >= s)
        return tq_graph_fail(g, tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "qat add: stage %d reading stage %d", s, src_b));
    q->qadd[s] = (tq_qadd){.a = q->bq[s].in, .b = src_b >= 0 ? &q->afq[src_b] : NULL, .y = &q->afq[s], .relu = relu};
    tq_node *in[2] = {a, b};
    return tq_graph_apply(g, &op_qadd, &q->qadd[s], 2, in);
}

/* Rings of quantizers (fake_quant.h): circular lists, joined by swapping two successors. */
static void ring_join(tq_fq *x, tq_fq *y) {
    if (!x->ring) x->ring = x;
    if (!y->ring) y->ring = y;
    for (const tq_fq *r = x->ring; r != x; r = r->ring)
        if (r == y) return; /* one ring already */
    if (x == y) return;
    tq_fq *t = x->ring;
    x->ring = y->ring;
    y->ring = t;
}

tq_status tq_qat_share_concat(tq_qat *q, int t, int a, int b) {
    if (t < 0 || t >= q->n_stages || a < 0 || b < 0 || a >= t || b >= t)
        TQ_FAIL(TQ_E_ARG, "quantization: concat stage %d joins %d and %d: want two earlier stages (not the network's input)", t + 1,
                a + 1, b + 1);
    tq_fq *ft = &q->afq[t];
    ft->obs = &q->aobs[a]; /* read only: nothing observes through a concat's quantizer */
    ring_join(&q->afq[a], &q->afq[b]);
    ring_join(&q->afq[a], ft);
    return TQ_OK;
}

/* x is the float pool's average of values on the grid: count (x / s + z) is the window's integer
 * sum (to float error, far below 1/2 for windows under 2^15 values), which the int8 pool divides
 * rounding half away from zero. */
static void qpool_forward(tq_node *n, int mode) {
    const tq_qpool *P = n->ctx;
    const float *x = n->in[0]->val;
    size_t N = tq_node_numel(n);
    if (!P->fq->enabled || mode == TQ_RUN_CALIBRATE || (P->fq->obs && P->fq->obs->n_seen == 0)) {
        memcpy(n->val, x, N * sizeof(float));
        return;
    }
    const float s = P->fq->scale[0];
    const int32_t z = P->fq->zero_point[0];
    const int64_t c = P->count;
    for (size_t i = 0; i < N; i++) {
        if (x[i] != x[i]) {
            n->val[i] = x[i];
            continue;
        }
        int64_t sum = (int64_t)nearbyint((double)c * ((double)x[i] / (double)s + (double)z));
        int64_t v = sum > 0 ? (sum + c / 2) / c : (sum - c / 2) / c;
        n->val[i] = (float)(v - z) * s;
    }
}

static void qpool_backward(tq_node *n) {
    if (!n->in[0]->grad) return;
    size_t N = tq_node_numel(n);
    for (size_t i = 0; i < N; i++) n->in[0]->grad[i] += n->grad[i];
}

static const tq_op op_qpool = {"pool_round", same_shape, qpool_forward, qpool_backward, 0};

tq_node *tq_qat_avgpool(tq_graph *g, tq_qat *q, int s, tq_node *x, const tq_pool_shape *ps) {
    tq_node *y = tq_pool2d(g, x, ps);
    if (!ps->avg) return y;
    q->qpool[s] = (tq_qpool){.fq = &q->afq[s], .count = ps->K * ps->KW};
    return tq_graph_apply(g, &op_qpool, &q->qpool[s], 1, &y);
}

/* ---- files ---- */

tq_record_name tq_unit_record(int u, int n_stages, const char *what) {
    tq_record_name r;
    if (u < n_stages) snprintf(r.s, sizeof r.s, "stages.%d.%s", u, what);
    else snprintf(r.s, sizeof r.s, "layers.%d.%s", u - n_stages, what);
    return r;
}

tq_status tq_qat_save_state(const tq_qat *q, tq_ckpt *c) {
    char v[32];
    snprintf(v, sizeof v, "%d", q->cfg.w_bits);
    TQ_TRY(tq_ckpt_set_meta(c, "w_bits", v));
    int mixed = 0;
    for (int u = 0; u < TQ_QAT_MAX_UNITS; u++) mixed |= q->cfg.unit_bits[u] != 0;
    if (mixed) { /* "8,4,2": every unit's width (absent in files of one width, and before per-unit widths) */
        char list[3 * TQ_QAT_MAX_UNITS + 1] = "";
        for (int u = 0, n = 0; u < q->n_units; u++)
            n += snprintf(list + n, sizeof list - (size_t)n, "%s%d", u ? "," : "", tq_qat_cfg_bits(&q->cfg, u));
        TQ_TRY(tq_ckpt_set_meta(c, "unit_bits", list));
    }
    int wide = 0;
    for (int u = 0; u < q->n_units; u++) wide |= tq_qat_cfg_act_bits(&q->cfg, u, q->n_units) == 16;
    if (wide) { /* "16,16,8": every unit's output width (absent where all are 8, and before 16-bit activations) */
        char list[3 * TQ_QAT_MAX_UNITS + 1] = "";
        for (int u = 0, n = 0; u < q->n_units; u++)
            n += snprintf(list + n, sizeof list - (size_t)n, "%s%d", u ? "," : "", tq_qat_cfg_act_bits(&q->cfg, u, q->n_units));
        TQ_TRY(tq_ckpt_set_meta(c, "unit_act_bits", list));
    }
    TQ_TRY(tq_ckpt_set_meta(c, "per_channel", q->cfg.per_channel ? "1" : "0"));
    TQ_TRY(tq_ckpt_set_meta(c, "quant_bias", q->cfg.quant_bias ? "1" : "0"));
    TQ_TRY(tq_ckpt_set_meta(c, "ste", q->cfg.ste == TQ_STE_PLAIN ? "plain" : q->cfg.ste == TQ_STE_LSQ ? "lsq" : "clipped"));
    TQ_TRY(tq_ckpt_set_meta(c, "observer", tq_obs_kind_name(q->cfg.obs)));
    TQ_TRY(tq_ckpt_set_meta(c, "w_range", q->cfg.w_mse ? "mse" : "maxabs"));
    for (int u = 0; u < q->n_units; u++) {
        const tq_observer *o = &q->aobs[u];
        const float st[4] = {o->min, o->max, (float)o->n_seen, (float)o->frozen};
        TQ_TRY(tq_ckpt_add_copy(c, tq_unit_record(u, q->n_stages, "act_observer").s, 1, 4, st));
    }
    return TQ_OK;
}

tq_status tq_qat_cfg_load(tq_qat_cfg *cfg, const tq_ckpt *c, const char *path) {
    tq_qat_cfg_defaults(cfg);
    const char *wb = tq_ckpt_meta(c, "w_bits"), *pc = tq_ckpt_meta(c, "per_channel"), *qb = tq_ckpt_meta(c, "quant_bias"),
               *ste = tq_ckpt_meta(c, "ste"), *obs = tq_ckpt_meta(c, "observer");
    if (!wb || !pc || !qb || !ste || !obs || tq_obs_kind_parse(obs) < 0)
        TQ_FAIL(TQ_E_FORMAT, "%s: quantized model without a complete quantization configuration", path);
    cfg->w_bits = (int)strtol(wb, NULL, 10);
    const char *ub = tq_ckpt_meta(c, "unit_bits");
    for (int u = 0; ub && *ub; u++) { /* checked against the model's units by tq_qat_new */
        char *end;
        long b = strtol(ub, &end, 10);
        if (u == TQ_QAT_MAX_UNITS || end == ub || b < 2 || b > 8 || (*end && *end != ','))
            TQ_FAIL(TQ_E_FORMAT, "%s: bad per-layer weight widths '%s'", path, tq_ckpt_meta(c, "unit_bits"));
        cfg->unit_bits[u] = (int)b;
        ub = *end ? end + 1 : end;
    }
    const char *ab = tq_ckpt_meta(c, "unit_act_bits");
    for (int u = 0; ab && *ab; u++) { /* checked against the model's units by tq_qat_new */
        char *end;
        long b = strtol(ab, &end, 10);
        if (u == TQ_QAT_MAX_UNITS || end == ab || (b != 8 && b != 16) || (*end && *end != ','))
            TQ_FAIL(TQ_E_FORMAT, "%s: bad per-layer activation widths '%s'", path, tq_ckpt_meta(c, "unit_act_bits"));
        cfg->unit_act_bits[u] = (int)b;
        ab = *end ? end + 1 : end;
    }
    cfg->per_channel = pc[0] == '1';
    cfg->quant_bias = qb[0] == '1';
    if (strcmp(ste, "plain") && strcmp(ste, "lsq") && strcmp(ste, "clipped"))
        TQ_FAIL(TQ_E_FORMAT, "%s: unknown straight-through estimator '%s'", path, ste);
    cfg->ste = !strcmp(ste, "plain") ? TQ_STE_PLAIN : !strcmp(ste, "lsq") ? TQ_STE_LSQ : TQ_STE_CLIPPED;
    cfg->obs = (tq_obs_kind)tq_obs_kind_parse(obs);
    const char *wr = tq_ckpt_meta(c, "w_range"); /* absent before it existed: max|x| */
    if (wr && strcmp(wr, "mse") && strcmp(wr, "maxabs")) TQ_FAIL(TQ_E_FORMAT, "%s: unknown weight range rule '%s'", path, wr);
    cfg->w_mse = wr && !strcmp(wr, "mse");
    return TQ_OK;
}

static tq_status load_observer(tq_observer *o, tq_fq *fq, const tq_ckpt *c, const char *path, const char *name) {
    const tq_ckpt_tensor *t = tq_ckpt_find(c, name);
    /* the count is a float in the file: range-checked before the cast (NaN and 1e30 fail here) */
    if (!t || t->rows != 1 || t->cols != 4 || !(t->data[2] >= 0.0f && t->data[2] <= 1e15f) || !(t->data[0] <= t->data[1]) ||
        !isfinite(t->data[0]) || !isfinite(t->data[1]))
        TQ_FAIL(TQ_E_FORMAT, "%s: missing or bad %s", path, name);
    o->min = t->data[0];
    o->max = t->data[1];
    o->n_seen = (int64_t)t->data[2];
    o->frozen = t->data[3] != 0.0f;
    if (o->n_seen) TQ_TRY(tq_fq_update(fq, NULL, 0, 0, 0));
    return TQ_OK;
}

tq_status tq_qat_load_observers(tq_qat *q, const tq_ckpt *c, const char *path) {
    for (int u = 0; u < q->n_units; u++) TQ_TRY(load_observer(&q->aobs[u], &q->afq[u], c, path, tq_unit_record(u, q->n_stages, "act_observer").s));
    for (int u = 0; u < q->n_stages; u++) /* a concat's output: its inputs' scale, once both are back */
        if (q->afq[u].ring) TQ_TRY(tq_fq_update(&q->afq[u], NULL, 0, 0, 0));
    return TQ_OK;
}
