#include "src/fake_quant.h"

#include "runtime/int8_infer.h" /* tq_requantize_ref */
#include "src/parallel.h"
#include "src/qmodel.h"      /* tq_quantize_multiplier */
#include "src/simd.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* the fake quant with exact accumulators: fq_forward and fq_backward tell it by its op */
static const tq_op op_fake_quant_exact;

tq_status tq_fq_init_weight(tq_fq *fq, int bits, int per_channel, int rows) {
    memset(fq, 0, sizeof *fq);
    if (rows < 1 || rows > TQ_FQ_MAX_CH) TQ_FAIL(TQ_E_ARG, "fake quant: %d channels (at most %d)", rows, TQ_FQ_MAX_CH);
    TQ_TRY(tq_qrange(bits, 1, &fq->qmin, &fq->qmax));
    fq->bits = bits;
    fq->per_channel = per_channel;
    fq->n_ch = per_channel ? rows : 1;
    for (int c = 0; c < fq->n_ch; c++) fq->scale[c] = 1.0f;
    fq->enabled = 1;
    return TQ_OK;
}

void tq_fq_init_act(tq_fq *fq, tq_observer *obs) {
    memset(fq, 0, sizeof *fq);
    fq->bits = 8;
    fq->qmin = -128;
    fq->qmax = 127;
    fq->n_ch = 1;
    fq->scale[0] = 1.0f;
    fq->obs = obs;
    fq->enabled = 1;
}

void tq_fq_set_act16(tq_fq *fq) {
    fq->bits = 16;
    fq->qmin = -32768;
    fq->qmax = 32767;
    fq->zero_point[0] = 0;
}

/* The range an activation quantizer follows: its observer's, joined with the other observers of
 * its ring (a concat's inputs). *o is a copy for reading only; n_seen 0 when none has seen. */
static void act_range(const tq_fq *fq, tq_observer *o) {
    *o = *fq->obs;
    for (const tq_fq *r = fq->ring; r && r != fq; r = r->ring) {
        const tq_observer *x = r->obs;
        if (!x->n_seen) continue;
        if (!o->n_seen) o->min = x->min, o->max = x->max, o->n_seen = x->n_seen;
        o->min = fminf(o->min, x->min);
        o->max = fmaxf(o->max, x->max);
    }
}

/* An activation's s and z from the range o (act_range): affine int8, or symmetric int16. */
static tq_status range_qparams(const tq_fq *fq, const tq_observer *o, tq_qparams *p) {
    if (fq->bits != 16) return tq_observer_qparams(o, fq->qmin, fq->qmax, p);
    TQ_TRY(tq_qparams_symmetric(o->min, o->max, 32767, p));
    p->qmin = -32768;
    return TQ_OK;
}

TQ_SIMD_CLONES static float absmax(const float *restrict row, int cols) {
    uint32_t abits = 0;
    for (int c = 0; c < cols; c++) {
        uint32_t b;
        memcpy(&b, &row[c], 4);
        b &= 0x7fffffffu;
        abits = b > abits ? b : abits;
    }
    float a;
    memcpy(&a, &abits, 4);
    return a;
}

/* round-half-even for |v| <= 2^22 without a libm call (baseline x86-64 has no SSE4.1 round):
 * adding 1.5 * 2^23 lands v where the float spacing is exactly 1, so the addition itself rounds
 * to an integer, to even on ties, as nearbyintf does in the default rounding mode. Beyond 2^22
 * the value is far outside any int8 range and the clamp decides anyway. */
#define TQ_RND_MAGIC 12582912.0f
static inline float rne(float v) {
    v = v < -4194304.0f ? -4194304.0f : v;
    v = v > 4194304.0f ? 4194304.0f : v;
    return (v + TQ_RND_MAGIC) - TQ_RND_MAGIC;
}

/* The squared error of x[0..n) quantized with scale s, symmetric [-qmax, qmax]. */
TQ_SIMD_CLONES static float sq_error(const float *restrict x, size_t n, float s, float qmax) {
    float e = 0.0f, inv = 1.0f / s;
    for (size_t i = 0; i < n; i++) {
        float q = rne(x[i] * inv);
        q = q > qmax ? qmax : q < -qmax ? -qmax : q;
        float d = x[i] - q * s;
        e += d * d;
    }
    return e;
}

/* The MSE weight range (docs/QUANTIZATION.md §4): the clip c = max|x| (1 - k/100), k = 0..90,
 * whose scale c / qmax gives the least squared error, the largest clip on a tie. A function of
 * the weights alone, so conversion finds the same scale again. */
static float mse_scale(const float *x, size_t n, float amax, int32_t qmax) {
    float best = amax / (float)qmax, best_e = INFINITY;
    for (int k = 0; k <= 90 && amax > 0.0f; k++) {
        float s = amax * (1.0f - 0.01f * (float)k) / (float)qmax, e = sq_error(x, n, s, (float)qmax);
        if (e < best_e) best = s, best_e = e;
    }
    return best;
}

/* dx += dy * m, or dx = dy * m when the gradient is assigned (src/autograd.h) */
TQ_SIMD_CLONES static void mask_grad(float *restrict dx, const float *restrict dy, const float *restrict m, size_t n, int assign) {
    if (assign)
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * m[i];
    else
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * m[i];
}

tq_status tq_fq_update(tq_fq *fq, const float *x, int rows, int cols, int observe) {
    if (fq->obs) {
        if (observe && !fq->learned) TQ_TRY(tq_observer_observe(fq->obs, x, (size_t)rows * cols));
        tq_observer seen;
        act_range(fq, &seen);
        if (seen.n_seen == 0) return TQ_OK;
        tq_qparams p;
        TQ_TRY(range_qparams(fq, &seen, &p));
        fq->scale[0] = p.scale;
        fq->zero_point[0] = p.zero_point;
        for (tq_fq *r = fq->ring; r && r != fq; r = r->ring) r->scale[0] = p.scale, r->zero_point[0] = p.zero_point;
        if (fq->learned) { /* LSQ: the zero point from the observer, the scale learned */
            float s = fq->lsq_log ? expf(fq->learned[0]) : fabsf(fq->learned[0]);
            fq->scale[0] = s > FLT_EPSILON ? s : FLT_EPSILON;
        }
        return TQ_OK;
    }
    if (fq->learned) { /* LSQ: the learned scales, as the forward uses them */
        for (int c = 0; c < fq->n_ch; c++) {
            float s = fq->lsq_log ? expf(fq->learned[c]) : fabsf(fq->learned[c]);
            fq->scale[c] = s > FLT_EPSILON ? s : FLT_EPSILON;
            fq->zero_point[c] = 0;
        }
        return TQ_OK;
    }
    /* Weights: s = max|x| / qmax per row or per tensor, z = 0 (the same rule as tq_weight_scales).
     * The max runs on the bit patterns of |x|: for non-negative floats they order like the values,
     * the integer max vectorizes where a float max cannot (NaN rules), and a NaN, whose pattern is
     * above every number's, comes out as the max instead of vanishing. */
    float all = 0.0f;
    for (int r = 0; r < rows; r++) {
        float a = absmax(x + (size_t)r * cols, cols);
        if (fq->per_channel && r < fq->n_ch) {
            float s = fq->mse_range ? mse_scale(x + (size_t)r * cols, (size_t)cols, a, fq->qmax) : a / (float)fq->qmax;
            fq->scale[r] = s > FLT_EPSILON ? s : FLT_EPSILON;
            fq->zero_point[r] = 0;
        }
        all = a > all ? a : all;
    }
    if (!fq->per_channel) {
        float s = fq->mse_range ? mse_scale(x, (size_t)rows * (size_t)cols, all, fq->qmax) : all / (float)fq->qmax;
        fq->scale[0] = s > FLT_EPSILON ? s : FLT_EPSILON;
        fq->zero_point[0] = 0;
    }
    return TQ_OK;
}

/* One row: y = (clamp(z + rne(x/s)) - z) s, mask = 1 where the unclamped u is in range.
 * x * 0 is added to the output so a NaN or Inf input stays visible downstream. */
TQ_SIMD_CLONES static void fq_row(const float *restrict x, float *restrict y, float *restrict mask, int n, float s, int32_t z,
                   int32_t qmin, int32_t qmax) {
    const float inv = 1.0f / s, fz = (float)z, lo = (float)qmin, hi = (float)qmax;
    for (int i = 0; i < n; i++) {
        float u = fz + rne(x[i] * inv);
        float q = u < lo ? lo : u;
        q = q > hi ? hi : q;
        y[i] = (q - fz) * s + x[i] * 0.0f;
        mask[i] = (u >= lo ? 1.0f : 0.0f) * (u <= hi ? 1.0f : 0.0f);
    }
}

static tq_status fq_shape(tq_node *n) {
    tq_node *x = n->in[0];
    tq_fq *fq = n->ctx;
    if (fq->per_channel && x->rows != fq->n_ch)
        TQ_FAIL(TQ_E_SHAPE, "fake quant: %d per-channel scales for a tensor of %d rows", fq->n_ch, x->rows);
    if (n->op == &op_fake_quant_exact && (n->in[1]->rows != x->rows || n->in[1]->cols != x->cols || n->in[1]->aux_len < 2 * tq_node_numel(x)))
        TQ_FAIL(TQ_E_SHAPE, "fake quant: exact accumulators [%d][%d] for a [%d][%d] tensor", n->in[1]->rows, n->in[1]->cols, x->rows, x->cols);
    if (n->n_in == 2 && n->op != &op_fake_quant_exact && (n->in[1]->rows != 1 || n->in[1]->cols != fq->n_ch))
        TQ_FAIL(TQ_E_SHAPE, "fake quant (LSQ): scale is [%d][%d], want [1][%d]", n->in[1]->rows, n->in[1]->cols, fq->n_ch);
    n->rows = x->rows;
    n->cols = x->cols;
    n->aux_len = tq_node_numel(n); /* the STE mask */
    return TQ_OK;
}

/* Fake quant of the rows of slice t of `slices` (rows are independent). */
typedef struct {
    tq_node *n;
    int slices;
} fq_job;

static void fq_rows(void *ctx, int t) {
    const fq_job *j = ctx;
    tq_node *n = j->n, *x = n->in[0];
    const tq_fq *fq = n->ctx;
    size_t r0, r1;
    tq_slice((size_t)x->rows, t, j->slices, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        size_t c = fq->per_channel ? r : 0, off = r * (size_t)x->cols;
        fq_row(x->val + off, n->val + off, n->aux + off, x->cols, fq->scale[c], fq->zero_point[c], fq->qmin, fq->qmax);
    }
}

/* dx += dy * mask over slice t of the elements */
static void mask_slice(void *ctx, int t) {
    tq_node *n = ctx;
    size_t a, b;
    tq_slice(tq_node_numel(n), t, TQ_SLICES, &a, &b);
    mask_grad(n->in[0]->grad + a, n->grad + a, n->aux + a, b - a, TQ_GRAD_ASSIGNED(n->in[0]));
}

/* Evaluation of an activation after a layer with weights, rounded as the integer path does
 * (tq_fq.req_w): per channel the accumulator step s_in s_w[c] (the float product the bias fake
 * quant uses) and M0, shift of s_in s_w[c] / s_y (the converter's function). */
static void fq_requant(tq_node *n) {
    tq_node *x = n->in[0];
    /* exact accumulators (tq_fake_quant_exact), and the ReLU they have not been through */
    const float *exact = n->op == &op_fake_quant_exact ? n->in[1]->aux : NULL;
    const tq_fq *fq = n->ctx, *w = fq->req_w;
    const int C = w->per_channel ? w->n_ch : 1;
    const float s_in = *fq->req_in, s_y = fq->scale[0], fz = (float)fq->zero_point[0];
    float step[TQ_FQ_MAX_CH];
    int32_t M0[TQ_FQ_MAX_CH], shift[TQ_FQ_MAX_CH];
    for (int c = 0; c < C; c++) {
        step[c] = s_in * w->scale[c];
        tq_quantize_multiplier((double)s_in * (double)w->scale[c] / (double)s_y, &M0[c], &shift[c]);
    }
    size_t N = tq_node_numel(n);
    for (size_t i = 0; i < N; i++) {
        int c = (int)((i % (size_t)x->cols) % (size_t)C);
        double a = nearbyint((double)x->val[i] / (double)step[c]);
        int64_t e = INT64_MIN; /* INT64_MIN: no exact sum (its op ran out of memory) */
        if (exact) memcpy(&e, exact + 2 * i, sizeof e);
        if (e != INT64_MIN) a = (double)(fq->req_relu && e < 0 ? 0 : e); /* |e| < 2^47: exact in a double */
        /* the accumulator's range: int32, or int64 below 2^47 for a 16-bit layer (NaN: see below) */
        const double lim = fq->req_wide ? 140737488355328.0 : 2147483647.0;
        a = a != a ? 0.0 : a > lim ? lim : a < -lim - (fq->req_wide ? 0.0 : 1.0) ? -lim - (fq->req_wide ? 0.0 : 1.0) : a;
        /* in 64 bits: a left shift saturates near 2^31, where + z would overflow (the kernels add it
         * saturating too, runtime/kernels_ref.c) */
        int64_t q = (fq->req_wide ? (int64_t)tq_requantize64_ref((int64_t)a, M0[c], shift[c])
                                  : (int64_t)tq_requantize_ref((int32_t)a, M0[c], shift[c])) + fq->zero_point[0];
        q = q < fq->qmin ? fq->qmin : q > fq->qmax ? fq->qmax : q;
        if (e != INT64_MIN && fq->req_relu == 2) { /* ReLU6's top as the converter puts it: z + round(6 / s) */
            float t = roundf(6.0f / s_y);
            if (t < (float)(fq->qmax - fq->qmin) && q > fq->zero_point[0] + (int64_t)t) q = fq->zero_point[0] + (int64_t)t;
        }
        n->val[i] = ((float)q - fz) * s_y + x->val[i] * 0.0f; /* x * 0: a NaN stays visible */
        n->aux[i] = 1.0f;
    }
}

static void fq_forward(tq_node *n, int mode) {
    tq_node *x = n->in[0];
    tq_fq *fq = n->ctx;
    size_t N = tq_node_numel(n);
    int lsq = n->n_in == 2 && n->op != &op_fake_quant_exact;
    if (lsq && fq->obs && fq->obs->n_seen == 0 && mode != TQ_RUN_EVAL) {
        /* a learned activation scale starts where its observer puts it on the first batch seen;
         * the zero point stays there (the observer then rests: nothing else reads it) */
        tq_qparams p;
        tq_observer o;
        const int seen = tq_observer_observe(fq->obs, x->val, N) == TQ_OK;
        if (seen) act_range(fq, &o);
        if (seen && range_qparams(fq, &o, &p) == TQ_OK) {
            fq->zero_point[0] = p.zero_point;
            n->in[1]->val[0] = fq->lsq_log ? logf(p.scale) : p.scale;
        }
    }
    for (int c = 0; lsq && c < fq->n_ch; c++) { /* the learned scales, visible to the bias and export */
        float s = fq->lsq_log ? expf(n->in[1]->val[c]) : fabsf(n->in[1]->val[c]);
        fq->scale[c] = s > FLT_EPSILON ? s : FLT_EPSILON;
    }
    if (mode == TQ_RUN_EVAL && fq->enabled && fq->obs && fq->obs->n_seen && fq->req_w && fq->req_in) {
        fq_requant(n);
        return;
    }
    if (!lsq && (mode != TQ_RUN_EVAL || !fq->obs)) {
        /* A failure here (NaN values) leaves s, z as they were; the NaN itself flows on to the
         * loss, where training stops with a message. */
        (void)tq_fq_update(fq, x->val, x->rows, x->cols, mode != TQ_RUN_EVAL);
    }
    if (!fq->enabled || mode == TQ_RUN_CALIBRATE || (fq->obs && fq->obs->n_seen == 0)) {
        memcpy(n->val, x->val, N * sizeof(float));
        for (size_t i = 0; i < N; i++) n->aux[i] = 1.0f;
        return;
    }
    if (!lsq) { /* rows are independent: the thread pool's slices (same bytes for any thread count) */
        fq_job j = {n, N >= TQ_SLICE_MIN ? TQ_SLICES : 1};
        tq_parallel_for(j.slices, fq_rows, &j);
        return;
    }
    for (int r = 0; r < x->rows; r++) {
        int c = fq->per_channel ? r : 0;
        size_t off = (size_t)r * x->cols;
        fq_row(x->val + off, n->val + off, n->aux + off, x->cols, fq->scale[c], fq->zero_point[c], fq->qmin, fq->qmax);
    }
}

static void fq_backward(tq_node *n) {
    tq_node *x = n->in[0];
    tq_fq *fq = n->ctx;
    size_t N = tq_node_numel(n);
    if (x->grad) {
        float *restrict dx = x->grad;
        const float *restrict dy = n->grad, *restrict m = n->aux;
        if (fq->ste == TQ_STE_PLAIN && TQ_GRAD_ASSIGNED(x))
            memcpy(dx, dy, N * sizeof(float));
        else if (fq->ste == TQ_STE_PLAIN)
            for (size_t i = 0; i < N; i++) dx[i] += dy[i];
        else if (N >= TQ_SLICE_MIN)
            tq_parallel_for(TQ_SLICES, mask_slice, n);
        else
            mask_grad(dx, dy, m, N, TQ_GRAD_ASSIGNED(x));
    }
    if (n->n_in == 2 && n->op != &op_fake_quant_exact && n->in[1]->grad && fq->enabled) {
        /* LSQ scale gradient (Esser et al. 2020), g = 1/sqrt(numel * qmax) balances its size
         * against the weights' gradients. Accumulated per channel in double. */
        tq_node *sn = n->in[1];
        double g = 1.0 / sqrt((double)N * (double)fq->qmax);
        for (int r = 0; r < x->rows; r++) {
            int c = fq->per_channel ? r : 0;
            /* v = x (1/s), the product the forward rounded (fq_row): x / s differs from it in the
             * last bit now and then, and at a tie that bit flips round(v) - v from -1/2 to 1/2 */
            float s = fq->scale[c], inv = 1.0f / s, z = (float)fq->zero_point[c];
            double acc = 0;
            for (int i = 0; i < x->cols; i++) {
                size_t k = (size_t)r * x->cols + i;
                float v = x->val[k] * inv, u = z + rne(v);
                double d;
                if (u < (float)fq->qmin) d = (double)fq->qmin - z;
                else if (u > (float)fq->qmax) d = (double)fq->qmax - z;
                else d = (double)rne(v) - (double)v;
                acc += (double)n->grad[k] * d;
            }
            /* d|s|/ds = sign(s): the forward used |scale|; d exp(v)/dv = exp(v) = s */
            sn->grad[c] += (float)(acc * g) * (fq->lsq_log ? s : sn->val[c] < 0 ? -1.0f : 1.0f);
        }
    }
}

static const tq_op op_fake_quant = {"fake_quant", fq_shape, fq_forward, fq_backward, 1};
static const tq_op op_fake_quant_exact = {"fake_quant_exact", fq_shape, fq_forward, fq_backward, 1};

tq_node *tq_fake_quant_exact(tq_graph *g, tq_node *x, tq_node *acc, tq_fq *fq) {
    tq_node *in[2] = {x, acc};
    return tq_graph_apply(g, &op_fake_quant_exact, fq, 2, in);
}

tq_node *tq_fake_quant(tq_graph *g, tq_node *x, tq_fq *fq) {
    return tq_graph_apply(g, &op_fake_quant, fq, 1, &x);
}

tq_node *tq_fake_quant_lsq(tq_graph *g, tq_node *x, tq_node *scale, tq_fq *fq) {
    tq_node *in[2] = {x, scale};
    return tq_graph_apply(g, &op_fake_quant, fq, 2, in);
}
