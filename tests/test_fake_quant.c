/* The fake-quant op: forward equals the reference quantizer, the STE mask at its exact
 * boundaries, plain STE, per channel, LSQ's scale gradient, and QAT layers' gradients. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "src/autograd.h"
#include "src/fake_quant.h"
#include "runtime/int8_infer.h"
#include "src/qmodel.h"
#include "src/ops.h"
#include "src/rng.h"

/* L = sum(R .* x), the reduction that makes dL/dy = R (as in test_autograd.c) */
static tq_status wsum_shape(tq_node *n) {
    n->rows = n->cols = 1;
    return TQ_OK;
}
static void wsum_forward(tq_node *n, int mode) {
    (void)mode;
    double s = 0;
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) s += (double)((float *)n->ctx)[i] * n->in[0]->val[i];
    n->val[0] = (float)s;
}
static void wsum_backward(tq_node *n) {
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) n->in[0]->grad[i] += n->grad[0] * ((float *)n->ctx)[i];
}
static const tq_op op_wsum = {"wsum", wsum_shape, wsum_forward, wsum_backward, 0};

/* A fixed quantizer: s = 0.1, z = 0, [-128, 127], per tensor, no observer. 1/s = 10 exactly
 * in float32, and x * 10 for the x below lands where the comment says (checked in float32):
 *   12.74  -> 127.399994 -> 127    inside      passes
 *   12.75  -> 127.5      -> 128    above qmax  cut
 *  -12.85  -> -128.5     -> -128   (tie to even) inside, passes
 *  -12.86  -> -128.599991 -> -129  below qmin  cut                                          */
static void ste_mask_at_the_boundaries(void **state) {
    (void)state;
    tq_observer obs; /* an observer that has "seen" [-12.8, 12.7] and is frozen: s = 0.1 */
    tq_observer_init(&obs, TQ_OBS_MINMAX);
    tq_fq fq;
    tq_fq_init_act(&fq, &obs);
    obs.n_seen = 1;
    obs.frozen = 1;
    fq.scale[0] = 0.1f;
    fq.zero_point[0] = 0;
    float x[4] = {12.74f, 12.75f, -12.85f, -12.86f}, dx[4] = {0}, R[4] = {1, 1, 1, 1};
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "x", 1, 4, x, dx), &fq);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    assert_int_equal(tq_graph_backward(g, L), TQ_OK);
    float want_y[4] = {127 * 0.1f, 127 * 0.1f, -128 * 0.1f, -128 * 0.1f};
    float want_dx[4] = {1, 0, 1, 0};
    for (int i = 0; i < 4; i++) {
        assert_float_equal(y->val[i], want_y[i], 0.0f);
        assert_float_equal(dx[i], want_dx[i], 0.0f);
    }
    /* plain STE: everything passes */
    fq.ste = TQ_STE_PLAIN;
    memset(dx, 0, sizeof dx);
    tq_graph_forward(g, TQ_RUN_EVAL);
    tq_graph_backward(g, L);
    for (int i = 0; i < 4; i++) assert_float_equal(dx[i], 1.0f, 0.0f);
    tq_graph_free(g);
}

/* Weight mode, per channel: each row's scale is max|row| / 127 and the values are exactly
 * tq_quantize_ref's, for many random values (including ties, which the magic-number rounding
 * must break to even like nearbyintf). */
static void forward_equals_reference(void **state) {
    (void)state;
    enum { R = 6, C = 301 };
    float W[R * C];
    tq_rng r;
    tq_rng_seed(&r, 21);
    for (int i = 0; i < R * C; i++) W[i] = tq_rng_uniform_in(&r, -1, 1) * (float)(1 + i / C);
    W[7] = 0.5f * (1.0f / 127.0f) * 1.0f; /* lands near a tie */
    tq_fq fq;
    assert_int_equal(tq_fq_init_weight(&fq, 8, 1, R), TQ_OK);
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "W", R, C, W, NULL), &fq);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    float scales[R];
    assert_int_equal(tq_weight_scales(W, R, C, 8, 1, scales), TQ_OK);
    for (int row = 0; row < R; row++) {
        assert_float_equal(fq.scale[row], scales[row], 0.0f);
        for (int c = 0; c < C; c++) {
            int32_t q = tq_quantize_ref(W[row * C + c], scales[row], 0, -127, 127);
            assert_true(y->val[row * C + c] == tq_dequantize_ref(q, scales[row], 0));
        }
    }
    /* exact ties: with s = 1, x = k + 0.5 must round to even */
    float t[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, 127.0f};
    tq_fq f1;
    tq_fq_init_weight(&f1, 8, 0, 1);
    tq_graph *g2 = tq_graph_new();
    tq_node *y2 = tq_fake_quant(g2, tq_leaf(g2, "t", 1, 8, t, NULL), &f1);
    tq_graph_forward(g2, TQ_RUN_TRAIN); /* max |t| = 127 -> s = 1 */
    float want[8] = {0, 2, 2, 0, -2, -2, 126, 127};
    for (int i = 0; i < 8; i++) assert_float_equal(y2->val[i], want[i], 0.0f);
    tq_graph_free(g);
    tq_graph_free(g2);
}

/* LSQ: dL/ds = sum_i dy_i g d_i with g = 1/sqrt(numel qmax) and d_i = round(v) - v inside,
 * qmin - z below, qmax - z above (v = x/s). Checked against the formula computed here in
 * double, and against central finite differences of the straight-through surrogate
 * y(s) = s (x/s + c) = x + s c with c = round(v) - v frozen (inside; q s when clipped). */
static void lsq_scale_gradient(void **state) {
    (void)state;
    enum { N = 40 };
    float x[N], R[N], dx[N] = {0}, s[1] = {0.05f}, ds[1] = {0};
    tq_rng r;
    tq_rng_seed(&r, 22);
    for (int i = 0; i < N; i++) {
        /* keep v = x/s off rounding ties: v in k + [0.1, 0.4] or k + [0.6, 0.9] */
        int k = (int)tq_rng_below(&r, 400) - 200;
        float f = tq_rng_uniform_in(&r, 0.1f, 0.4f) + (tq_rng_below(&r, 2) ? 0.5f : 0.0f);
        x[i] = ((float)k + f) * 0.05f;
        R[i] = tq_rng_uniform_in(&r, -1, 1);
    }
    tq_fq fq;
    assert_int_equal(tq_fq_init_weight(&fq, 8, 0, 1), TQ_OK);
    fq.ste = TQ_STE_LSQ;
    tq_graph *g = tq_graph_new();
    tq_node *sn = tq_leaf(g, "s", 1, 1, s, ds);
    tq_node *y = tq_fake_quant_lsq(g, tq_leaf(g, "x", 1, N, x, dx), sn, &fq);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    assert_int_equal(tq_graph_status(g), TQ_OK);
    tq_graph_forward(g, TQ_RUN_TRAIN);
    tq_graph_backward(g, L);
    double gsc = 1.0 / sqrt((double)N * 127.0), want = 0, fd = 0;
    int below = 0, above = 0;
    for (int i = 0; i < N; i++) {
        double v = (double)x[i] / 0.05, u = nearbyint(v), d;
        if (u < -127) d = -127, below++;
        else if (u > 127) d = 127, above++;
        else d = u - v;
        want += R[i] * gsc * d;
        /* surrogate finite difference, eps = 1e-4 */
        double c = (u < -127 || u > 127) ? 0 : u - v, e = 1e-4;
        double yp = (u < -127) ? -127 * (0.05 + e) : (u > 127) ? 127 * (0.05 + e) : x[i] + (0.05 + e) * c;
        double ym = (u < -127) ? -127 * (0.05 - e) : (u > 127) ? 127 * (0.05 - e) : x[i] + (0.05 - e) * c;
        fd += R[i] * gsc * (yp - ym) / (2 * e);
    }
    assert_true(below > 0 && above > 0); /* all three branches exercised */
    assert_float_equal(ds[0], want, 1e-5);
    assert_float_equal(ds[0], fd, 1e-4);
    /* dx is the clipped STE: zero exactly for the clipped elements */
    for (int i = 0; i < N; i++) {
        double u = nearbyint((double)x[i] / 0.05);
        assert_float_equal(dx[i], (u < -127 || u > 127) ? 0.0f : R[i], 1e-6f);
    }
    /* in the log domain (training's LSQ): the node holds log s, its gradient is ds times s, and
     * the forward is the same quantizer */
    float lg[1] = {logf(0.05f)}, dlg[1] = {0}, y0[N];
    memcpy(y0, y->val, sizeof y0);
    fq.lsq_log = 1;
    tq_graph *g2 = tq_graph_new();
    tq_node *y2 = tq_fake_quant_lsq(g2, tq_leaf(g2, "x", 1, N, x, NULL), tq_leaf(g2, "logs", 1, 1, lg, dlg), &fq);
    tq_node *L2 = tq_graph_apply(g2, &op_wsum, R, 1, &y2);
    tq_graph_forward(g2, TQ_RUN_TRAIN);
    tq_graph_backward(g2, L2);
    for (int i = 0; i < N; i++) assert_float_equal(y2->val[i], y0[i], 1e-6f * (1.0f + fabsf(y0[i])));
    assert_float_equal(dlg[0], want * 0.05, 1e-6);
    tq_graph_free(g2);
    tq_graph_free(g);
}

/* At a near-tie x / s and x * (1/s) can round apart; the scale gradient must use the forward's
 * product (docs/QUANTIZATION.md §2), so d = round(v) - v with v = x * (1/s). Inputs found here:
 * for random scales, multiples (k + 1/2) s nudged by an ulp until the two rounds differ. */
static void lsq_gradient_rounds_as_the_forward(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 23);
    int found = 0;
    for (int trial = 0; trial < 200000 && found < 8; trial++) {
        float s = tq_rng_uniform_in(&r, 0.001f, 0.1f), inv = 1.0f / s;
        float x = ((float)((int)tq_rng_below(&r, 200) - 100) + 0.5f) * s;
        x = tq_rng_below(&r, 2) ? nextafterf(x, 1e9f) : x;
        if (nearbyintf(x * inv) == nearbyintf(x / s) || fabsf(x * inv) > 120.0f) continue;
        found++;
        float xs[1] = {x}, dx[1] = {0}, ls[1] = {logf(s)}, dls[1] = {0}, R[1] = {1.0f};
        tq_fq fq;
        assert_int_equal(tq_fq_init_weight(&fq, 8, 0, 1), TQ_OK);
        fq.ste = TQ_STE_LSQ;
        fq.lsq_log = 1;
        tq_graph *g = tq_graph_new();
        tq_node *y = tq_fake_quant_lsq(g, tq_leaf(g, "x", 1, 1, xs, dx), tq_leaf(g, "logs", 1, 1, ls, dls), &fq);
        tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
        tq_graph_forward(g, TQ_RUN_TRAIN);
        tq_graph_backward(g, L);
        float se = fq.scale[0], v = x * (1.0f / se); /* the scale the op used (exp of log s) */
        double want = (double)(nearbyintf(v) - v) / sqrt(127.0) * se;
        /* the forward's value is the same quantization of v */
        assert_float_equal(y->val[0], nearbyintf(v) * se, 1e-6f);
        if (fabs((double)dls[0] - want) > 1e-6) fail_msg("x %.9g s %.9g: gradient %.9g, want %.9g", (double)x, (double)se, (double)dls[0], want);
        tq_graph_free(g);
    }
    assert_true(found >= 4);
}

/* One rule for non-finite inputs: the op and tq_fake_quant_ref both give NaN for NaN and +-Inf. */
static void non_finite_gives_nan(void **state) {
    (void)state;
    float x[3] = {NAN, INFINITY, -INFINITY}, dx[3] = {0};
    tq_fq fq;
    assert_int_equal(tq_fq_init_weight(&fq, 8, 0, 1), TQ_OK);
    fq.scale[0] = 0.1f;
    fq.obs = NULL;
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "x", 1, 3, x, dx), &fq);
    tq_graph_forward(g, TQ_RUN_EVAL);
    tq_qparams p = {0.1f, 0, -127, 127};
    for (int i = 0; i < 3; i++) {
        assert_true(isnan(y->val[i]));
        assert_true(isnan(tq_fake_quant_ref(x[i], &p)));
    }
    assert_true(tq_fake_quant_ref(1.0f, &p) == 1.0f);
    tq_graph_free(g);
}

/* A disabled quantizer is the identity both ways (the FP32 model) */
static void disabled_is_identity(void **state) {
    (void)state;
    float x[3] = {0.123f, -7.7f, 1e6f}, dx[3] = {0}, R[3] = {1, 2, 3};
    tq_fq fq;
    tq_fq_init_weight(&fq, 4, 0, 1);
    fq.enabled = 0;
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "x", 1, 3, x, dx), &fq);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    tq_graph_forward(g, TQ_RUN_TRAIN);
    tq_graph_backward(g, L);
    for (int i = 0; i < 3; i++) {
        assert_true(y->val[i] == x[i]);
        assert_true(dx[i] == R[i]);
    }
    tq_graph_free(g);
}

/* 4-bit weights, per channel: levels -7..7; shape errors are reported. */
static void low_bits_and_shapes(void **state) {
    (void)state;
    float W[2 * 3] = {1.0f, 0.3f, -0.2f, 7.0f, 3.2f, -6.9f};
    tq_fq fq;
    assert_int_equal(tq_fq_init_weight(&fq, 4, 1, 2), TQ_OK);
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "W", 2, 3, W, NULL), &fq);
    tq_graph_forward(g, TQ_RUN_TRAIN);
    /* row 0: s = 1/7: 0.3*7 = 2.1 -> 2, -0.2*7 = -1.4 -> -1; row 1: s = 1: 3.2 -> 3, -6.9 -> -7 */
    assert_float_equal(y->val[1], 2.0f / 7.0f, 1e-6f);
    assert_float_equal(y->val[2], -1.0f / 7.0f, 1e-6f);
    assert_float_equal(y->val[4], 3.0f, 0.0f);
    assert_float_equal(y->val[5], -7.0f, 0.0f);
    tq_graph_free(g);
    g = tq_graph_new();
    assert_null(tq_fake_quant(g, tq_leaf(g, "W", 3, 3, W, NULL), &fq)); /* 2 channels, 3 rows */
    assert_int_equal(tq_graph_status(g), TQ_E_SHAPE);
    tq_graph_free(g);
    assert_int_equal(tq_fq_init_weight(&fq, 9, 1, 2), TQ_E_ARG);
}

/* The MSE weight range, worked by hand at 2 bits (qmax 1) on the row 1, .6, .6, .6, -.6: max|w|
 * gives s = 1 and error 4 (.4)^2 = .64; a clip c in [.6, 1.2] keeps every .6 at one step, with
 * error (1 - c)^2 + 4 (.6 - c)^2, least at c = .68 (.128); the search steps c by .01 of max|w|. */
static void mse_range_by_hand(void **state) {
    (void)state;
    const float w[5] = {1.0f, 0.6f, 0.6f, 0.6f, -0.6f};
    tq_fq fq;
    assert_int_equal(tq_fq_init_weight(&fq, 2, 1, 1), TQ_OK);
    assert_int_equal(tq_fq_update(&fq, w, 1, 5, 0), TQ_OK);
    assert_float_equal(fq.scale[0], 1.0f, 1e-7f);
    fq.mse_range = 1;
    assert_int_equal(tq_fq_update(&fq, w, 1, 5, 0), TQ_OK);
    assert_float_equal(fq.scale[0], 0.68f, 1e-6f);
    /* per tensor, two rows: the same search over all ten values */
    const float w2[10] = {1.0f, 0.6f, 0.6f, 0.6f, -0.6f, 1.0f, 0.6f, 0.6f, 0.6f, -0.6f};
    assert_int_equal(tq_fq_init_weight(&fq, 2, 0, 2), TQ_OK);
    fq.mse_range = 1;
    assert_int_equal(tq_fq_update(&fq, w2, 2, 5, 0), TQ_OK);
    assert_float_equal(fq.scale[0], 0.68f, 1e-6f);
    /* at 8 bits the clip that loses nothing (max|w|) is already the least error here */
    assert_int_equal(tq_fq_init_weight(&fq, 8, 1, 1), TQ_OK);
    fq.mse_range = 1;
    const float w3[3] = {1.27f, -0.5f, 0.01f};
    assert_int_equal(tq_fq_update(&fq, w3, 1, 3, 0), TQ_OK);
    assert_float_equal(fq.scale[0], 0.01f, 1e-6f);
}

/* In evaluation, an activation after a layer with weights rounds as the integer path does: the
 * accumulator acc = x / (s_in s_w), then TFLite's double rounding. Worked: acc = 64 and
 * M = s_in s_w / s_y = 0.0694316 (M0 = 1192826082, shift -3): 64 M = 4.44 rounds to 4 at once,
 * but the high multiply first gives round(64 M 2^3) = round(35.55) = 36, and 36 / 8 = 4.5 rounds
 * away from zero to 5, which is what the integer model outputs. Training keeps the single
 * rounding (and its STE). */
static void eval_rounds_as_the_integer_path(void **state) {
    (void)state;
    const float s_in = 1.0f / 255.0f;
    tq_fq w, a;
    assert_int_equal(tq_fq_init_weight(&w, 8, 1, 2), TQ_OK);
    w.scale[0] = 1.0f, w.scale[1] = 0.5f;
    tq_observer obs;
    tq_observer_init(&obs, TQ_OBS_MINMAX);
    const float range[2] = {0.0f, 255.0f * (s_in / 0.0694316161f)}; /* s_y = s_in / M, z = -128 */
    assert_int_equal(tq_observer_observe(&obs, range, 2), TQ_OK);
    tq_fq_init_act(&a, &obs);
    assert_int_equal(tq_fq_update(&a, NULL, 0, 0, 0), TQ_OK);
    a.req_w = &w;
    a.req_in = &s_in;
    int32_t M0, shift;
    tq_quantize_multiplier((double)s_in * 1.0 / (double)a.scale[0], &M0, &shift);
    assert_int_equal(shift, -3);
    assert_int_equal(tq_requantize_ref(64, M0, shift), 5);
    /* column 0: channel 0, acc 64; column 1: channel 1 (s_w = 0.5), acc 128: the same real value */
    float x[4] = {64.0f * (s_in * 1.0f), 128.0f * (s_in * 0.5f), 3.0f * s_in, -5.0f}, dx[4];
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", 2, 2, x, dx), *y = tq_fake_quant(g, xn, &a);
    assert_int_equal(tq_graph_status(g), TQ_OK);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    float z = (float)a.zero_point[0], sy = a.scale[0];
    assert_float_equal(y->val[0] / sy + z, 5.0f - 128.0f, 1e-3f);        /* the integer path's 5 */
    assert_float_equal(nearbyintf(x[0] / sy), 4.0f, 0.0f);                /* what single rounding says */
    int32_t M1, sh1;
    tq_quantize_multiplier((double)s_in * 0.5 / (double)sy, &M1, &sh1);
    assert_float_equal(y->val[1] / sy + z, (float)(tq_requantize_ref(128, M1, sh1) - 128), 1e-3f);
    assert_float_equal(y->val[2] / sy + z, (float)(tq_requantize_ref(3, M0, shift) - 128), 1e-3f);
    assert_float_equal(y->val[3] / sy + z, -128.0f, 1e-3f);              /* clamped */
    /* a training run rounds once, as PyTorch's fake quant (the observer frozen: s_y stays) */
    obs.frozen = 1;
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    assert_float_equal(y->val[0] / sy + z, 4.0f - 128.0f, 1e-3f);
    tq_graph_free(g);
    tq_observer_free(&obs);
}

/* A multiplier of 2^30 or more (an output scale tiny beside s_in s_w: fuzz_model found one in a
 * corrupted model) saturates, in the evaluation's rounding as in the kernels: 2^31 - 1 at shift
 * 30, and the zero point added without overflowing. Every nonzero accumulator clamps, zero gives z. */
static void eval_saturates_a_huge_multiplier(void **state) {
    (void)state;
    const float s_in = 1.0f;
    tq_fq w, a;
    assert_int_equal(tq_fq_init_weight(&w, 8, 1, 1), TQ_OK);
    w.scale[0] = 1.0f;
    tq_observer obs;
    tq_observer_init(&obs, TQ_OBS_MINMAX);
    const float range[2] = {-1e-8f, 1e-8f};
    assert_int_equal(tq_observer_observe(&obs, range, 2), TQ_OK);
    tq_fq_init_act(&a, &obs);
    assert_int_equal(tq_fq_update(&a, NULL, 0, 0, 0), TQ_OK);
    a.scale[0] = 1e-10f, a.zero_point[0] = 45; /* M = 1e10 */
    a.req_w = &w;
    a.req_in = &s_in;
    float x[3] = {5.0f, -5.0f, 0.0f}, dx[3];
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "x", 1, 3, x, dx), &a);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    assert_float_equal(y->val[0] / 1e-10f + 45.0f, 127.0f, 1e-3f);
    assert_float_equal(y->val[1] / 1e-10f + 45.0f, -128.0f, 1e-3f);
    assert_float_equal(y->val[2] / 1e-10f + 45.0f, 45.0f, 1e-3f);
    tq_graph_free(g);
    tq_observer_free(&obs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eval_saturates_a_huge_multiplier),
        cmocka_unit_test(ste_mask_at_the_boundaries), cmocka_unit_test(forward_equals_reference),
        cmocka_unit_test(lsq_scale_gradient),         cmocka_unit_test(lsq_gradient_rounds_as_the_forward),
        cmocka_unit_test(non_finite_gives_nan),         cmocka_unit_test(disabled_is_identity),
        cmocka_unit_test(low_bits_and_shapes),        cmocka_unit_test(mse_range_by_hand),
        cmocka_unit_test(eval_rounds_as_the_integer_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
