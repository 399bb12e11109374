/* The integer runtime: each reference kernel (linear, conv, depthwise, max and average pool)
 * against a plain int64 re-derivation written here, hand-worked pool rounding, the network
 * runner's memory contract, the pixel mapping, and the fast host kernel bit-identical to the
 * reference. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "src/alloc.h"
#include "runtime/int8_infer.h"
#include "src/qmodel.h"
#include "src/rng.h"
#include "tests/tq_test_tmpdir.h"

/* requant written again in 64-bit floor arithmetic (see test_requant.c) */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int32_t requant64(int64_t acc, int32_t M0, int32_t shift) {
    int64_t a = acc * ((int64_t)1 << (shift > 0 ? shift : 0));
    a = a > INT32_MAX ? INT32_MAX : a < INT32_MIN ? INT32_MIN : a;
    int64_t h = floor_div(a * M0 + ((int64_t)1 << 30), (int64_t)1 << 31);
    int e = shift < 0 ? -shift : 0;
    if (!e) return (int32_t)h;
    int64_t mag = h < 0 ? -h : h, r = (mag + ((int64_t)1 << (e - 1))) >> e;
    return (int32_t)(h < 0 ? -r : r);
}

typedef struct {
    int8_t w[64 * 100];
    int32_t b[64], m[64], s[64];
} layer_store;

static void random_layer(tq_rng *r, tq_s8_layer *L, layer_store *st, int in, int out, int relu) {
    for (int i = 0; i < in * out; i++) st->w[i] = (int8_t)((int)tq_rng_below(r, 255) - 127);
    for (int o = 0; o < out; o++) {
        st->b[o] = (int32_t)tq_rng_below(r, 20001) - 10000;
        st->m[o] = (1 << 30) + (int32_t)tq_rng_below(r, 1u << 30);
        st->s[o] = (int32_t)tq_rng_below(r, 12) - 11;
    }
    int32_t zy = (int32_t)tq_rng_below(r, 256) - 128;
    *L = (tq_s8_layer){.in = in, .out = out, .w = st->w, .bias = st->b, .mult = st->m, .shift = st->s,
                       .in_zp = (int32_t)tq_rng_below(r, 256) - 128, .out_zp = zy, .act_min = relu ? zy : -128, .act_max = 127,
                       .kind = TQ_S8_LINEAR, .in_h = 1, .in_w = 1, .in_c = in, .out_h = 1, .out_w = 1, .out_c = out,
                       .k = 1, .stride = 1};
}

static void linear_matches_int64_rederivation(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 41);
    static layer_store st;
    for (int trial = 0; trial < 300; trial++) {
        int in = 1 + (int)tq_rng_below(&r, 100), out = 1 + (int)tq_rng_below(&r, 64);
        tq_s8_layer L;
        random_layer(&r, &L, &st, in, out, trial & 1);
        int8_t x[100], y[64];
        for (int i = 0; i < in; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        tq_linear_s8_ref(&L, x, y);
        for (int o = 0; o < out; o++) {
            int64_t acc = L.bias[o];
            for (int i = 0; i < in; i++) acc += (int64_t)L.w[o * in + i] * ((int64_t)x[i] - L.in_zp);
            int64_t v = (int64_t)requant64(acc, L.mult[o], L.shift[o]) + L.out_zp;
            v = v < L.act_min ? L.act_min : v > L.act_max ? L.act_max : v;
            if (y[o] != (int8_t)v) fail_msg("trial %d output %d: kernel %d, re-derivation %lld", trial, o, y[o], (long long)v);
        }
    }
}

/* predict_u8 on pixels px (with `bytes` of scratch) gives the logits run gives on x = px - 128, and
 * returns their first maximum; 5 outputs. */
static void predict_is_run(const tq_int8_net *m, const uint8_t *px, const int8_t *x, int8_t *scratch, size_t bytes) {
    int8_t logits[5], y[5];
    int c = tq_int8_net_predict_u8(m, px, logits, scratch, bytes);
    static int8_t run_scratch[4096];
    assert_int_equal(tq_int8_net_run(m, x, y, run_scratch, sizeof run_scratch), TQ_INT8_OK);
    assert_memory_equal(logits, y, 5);
    int best = 0;
    for (int k = 1; k < 5; k++)
        if (y[k] > y[best]) best = k;
    assert_int_equal(c, best);
}

static void mlp_runner_contract(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 42);
    static layer_store a, b;
    tq_s8_layer layers[2];
    tq_int8_net m = {2, layers};
    random_layer(&r, &layers[0], &a, 20, 30, 1);
    random_layer(&r, &layers[1], &b, 30, 5, 0);
    layers[1].in_zp = layers[0].out_zp;
    /* the input and the output are the caller's: only the hidden 30 values need the arena */
    assert_int_equal(tq_int8_net_scratch_bytes(&m), 30);
    int8_t x[20], y[5], y2[5], hidden[30], scratch[30];
    for (int i = 0; i < 20; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
    memset(scratch, 0x55, sizeof scratch); /* no pre-fill is required */
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, sizeof scratch), TQ_INT8_OK);
    tq_linear_s8_ref(&layers[0], x, hidden);
    tq_linear_s8_ref(&layers[1], hidden, y2);
    assert_memory_equal(y, y2, 5);
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, 29), TQ_INT8_E_ARG);
    /* predict_u8: pixel p becomes q = p - 128 */
    layers[0].in_zp = -128;
    uint8_t px[20];
    for (int i = 0; i < 20; i++) {
        px[i] = (uint8_t)tq_rng_below(&r, 256);
        x[i] = (int8_t)(px[i] - 128);
    }
    predict_is_run(&m, px, x, scratch, sizeof scratch);
}

/* The runner refuses a network whose layers do not fit together, before it touches the arena:
 * each broken field of a good two-layer MLP alone. */
static void runner_checks_every_layer(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 47);
    static layer_store a, b;
    tq_s8_layer good[2], layers[2];
    tq_int8_net m = {2, layers};
    random_layer(&r, &good[0], &a, 20, 30, 1);
    random_layer(&r, &good[1], &b, 30, 5, 0);
    good[1].in_zp = good[0].out_zp;
    int8_t x[20] = {0}, y[5];
    static int8_t scratch[4096];
    memcpy(layers, good, sizeof good);
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_OK);
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, sizeof scratch), TQ_INT8_OK);
    for (int c = 0; c < 11; c++) {
        memcpy(layers, good, sizeof good);
        switch (c) {
        case 0: layers[1].in = layers[1].in_c = 300; break;  /* reads 300 values of a 30-value output */
        case 1: layers[1].in = 31; break;                     /* in != in_h in_w in_c */
        case 2: layers[0].out = 300; break;
        case 3: layers[1].in_zp++; break;                     /* the zero points do not meet */
        case 4: layers[0].w = NULL; break;
        case 5: layers[1].mult = NULL; break;
        case 6: layers[0].act_min = 200; break;
        case 7: layers[0].kind = 9; break;
        case 8: layers[0].in_h = 2, layers[0].in_c = 10; break; /* a linear layer on an image */
        case 9: layers[1].w_bits = 3; break;
        case 10: m.n_layers = TQ_INT8_MAX_LAYERS + 1; break;
        }
        assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
        assert_int_equal(tq_int8_net_run(&m, x, y, scratch, sizeof scratch), TQ_INT8_E_ARG);
        assert_int_equal(tq_int8_net_predict_u8(&m, (const uint8_t *)x, y, scratch, sizeof scratch), TQ_INT8_E_ARG);
        assert_int_equal(tq_int8_net_scratch_bytes(&m), 0);
        m.n_layers = 2;
    }
    assert_int_equal(tq_int8_net_check(NULL), TQ_INT8_E_ARG);
}

/* A left shift saturates the requantized value near 2^31; adding the output zero point then must
 * saturate too (int32 overflow would wrap it to the other end of the clamp). */
static void left_shift_with_zero_point_saturates(void **state) {
    (void)state;
    int8_t w[2] = {127, -127}, x[2], y;
    int32_t bias = 0, M0 = INT32_MAX, shift = 30;
    tq_s8_layer L = {.in = 2, .out = 1, .w = w, .bias = &bias, .mult = &M0, .shift = &shift, .in_zp = 0, .out_zp = 127,
                     .act_min = -128, .act_max = 127, .kind = TQ_S8_LINEAR, .in_h = 1, .in_w = 1, .in_c = 2, .out_h = 1,
                     .out_w = 1, .out_c = 1, .k = 1, .stride = 1};
    const int8_t xs[3][2] = {{127, -128}, {-128, 127}, {3, 3}}, want[3] = {127, -128, 127};
    for (int i = 0; i < 3; i++) {
        memcpy(x, xs[i], 2);
        tq_linear_s8_ref(&L, x, &y);
        assert_int_equal(y, want[i]);
        y = 0;
        tq_s8_layer_run(&L, x, NULL, &y, NULL);
        assert_int_equal(y, want[i]);
    }
}

/* ---- image layers ---- */

typedef struct {
    int8_t w[16 * 5 * 5 * 9];
    int32_t b[16], m[16], s[16];
} image_store;

/* A random conv (kind TQ_S8_CONV) or depthwise layer: sizes 1..9, kernels 1..5 that fit, stride
 * 1..3, padding below the kernel, zero points anywhere, multipliers above 1 now and then; with
 * graph = 1, half of them k x kw with their own strides and paddings across, and one more output
 * row or column now and then where TFLite's SAME would pad one more at the end. */
static void random_image_layer_g(tq_rng *r, tq_s8_layer *L, image_store *st, int kind, int graph) {
    int H = 1 + (int)tq_rng_below(r, 9), W = 1 + (int)tq_rng_below(r, 9), C = 1 + (int)tq_rng_below(r, 9);
    int k = 1 + (int)tq_rng_below(r, 5), pad = (int)tq_rng_below(r, (uint32_t)k), stride = 1 + (int)tq_rng_below(r, 3);
    while (k > H + 2 * pad || k > W + 2 * pad) k--;
    if (pad >= k) pad = k - 1;
    int kw = k, sw = stride, pw = pad;
    if (graph && tq_rng_below(r, 2)) {
        kw = 1 + (int)tq_rng_below(r, 5), pw = (int)tq_rng_below(r, (uint32_t)kw), sw = 1 + (int)tq_rng_below(r, 3);
        while (kw > W + 2 * pw) kw--;
        if (pw >= kw) pw = kw - 1;
    }
    int OC = kind == TQ_S8_DEPTHWISE ? C * (1 + (int)tq_rng_below(r, 3)) : 1 + (int)tq_rng_below(r, 16);
    if (OC > 16) OC = C * (16 / C);
    int nw = kind == TQ_S8_DEPTHWISE ? k * kw * OC : OC * k * kw * C;
    for (int i = 0; i < nw; i++) st->w[i] = (int8_t)((int)tq_rng_below(r, 255) - 127);
    for (int o = 0; o < OC; o++) {
        st->b[o] = (int32_t)tq_rng_below(r, 20001) - 10000;
        st->m[o] = (1 << 30) + (int32_t)tq_rng_below(r, 1u << 30);
        st->s[o] = (int32_t)tq_rng_below(r, 14) - 11; /* -11..2: some M > 1 */
    }
    int OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pw - kw) / sw + 1;
    if (graph && tq_rng_below(r, 2)) { /* the padding after: one more than before, less than a window */
        int after_h = OH * stride + k - H - pad, after_w = OW * sw + kw - W - pw;
        if (after_h <= pad + 1 && after_h <= k - 1) OH++;
        if (after_w <= pw + 1 && after_w <= kw - 1) OW++;
    }
    int32_t zy = (int32_t)tq_rng_below(r, 256) - 128;
    *L = (tq_s8_layer){.in = H * W * C, .out = OH * OW * OC, .w = st->w, .bias = st->b, .mult = st->m, .shift = st->s,
                       .in_zp = (int32_t)tq_rng_below(r, 256) - 128, .out_zp = zy, .act_min = tq_rng_below(r, 2) ? zy : -128,
                       .act_max = 127, .kind = kind, .in_h = H, .in_w = W, .in_c = C, .out_h = OH, .out_w = OW, .out_c = OC,
                       .k = k, .stride = stride, .pad = pad};
    if (graph && (kw != k || sw != stride || pw != pad || tq_rng_below(r, 4) == 0)) L->kw = kw, L->stride_w = sw, L->pad_w = pw;
}

static void random_image_layer(tq_rng *r, tq_s8_layer *L, image_store *st, int kind) { random_image_layer_g(r, L, st, kind, 0); }

/* conv and depthwise written out: every window position, padding skipped (it holds z_x) */
static int8_t image_ref64(const tq_s8_layer *L, const int8_t *x, int oy, int ox, int o) {
    int64_t acc = L->bias[o];
    int mult = L->out_c / L->in_c;
    int kw = L->kw ? L->kw : L->k, sw = L->kw ? L->stride_w : L->stride, pw = L->kw ? L->pad_w : L->pad;
    for (int ky = 0; ky < L->k; ky++)
        for (int kx = 0; kx < kw; kx++) {
            int iy = oy * L->stride + ky - L->pad, ix = ox * sw + kx - pw;
            if (iy < 0 || ix < 0 || iy >= L->in_h || ix >= L->in_w) continue;
            const int8_t *px = x + (iy * L->in_w + ix) * L->in_c;
            if (L->kind == TQ_S8_DEPTHWISE)
                acc += (int64_t)L->w[(ky * kw + kx) * L->out_c + o] * (px[o / mult] - L->in_zp);
            else
                for (int c = 0; c < L->in_c; c++)
                    acc += (int64_t)L->w[((o * L->k + ky) * kw + kx) * L->in_c + c] * (px[c] - L->in_zp);
        }
    int64_t v = (int64_t)requant64(acc, L->mult[o], L->shift[o]) + L->out_zp;
    return (int8_t)(v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v);
}

static void image_layers_match(int graph) {
    tq_rng r;
    tq_rng_seed(&r, 44 + (uint64_t)graph);
    static image_store st;
    int strided = 0, padded = 0, left = 0, nonsquare = 0, same = 0;
    for (int trial = 0; trial < 600; trial++) {
        int kind = trial & 1 ? TQ_S8_DEPTHWISE : TQ_S8_CONV;
        tq_s8_layer L;
        random_image_layer_g(&r, &L, &st, kind, graph);
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
        int8_t x[9 * 9 * 9], y[16 * 16 * 16], y2[16 * 16 * 16], patch[5 * 5 * 5 * 9]; /* 9 + 2*4 - 5 + 1 = 13, + 1; the patch: a window and two as int16 */
        for (int i = 0; i < L.in; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        assert_true(tq_s8_layer_scratch_bytes(&L) <= sizeof patch);
        if (kind == TQ_S8_CONV) tq_conv_s8_ref(&L, x, y, patch);
        else tq_depthwise_s8_ref(&L, x, y);
        tq_s8_layer_run(&L, x, NULL, y2, patch); /* the build's best kernel: the same integers */
        assert_memory_equal(y, y2, (size_t)L.out);
        for (int oy = 0; oy < L.out_h; oy++)
            for (int ox = 0; ox < L.out_w; ox++)
                for (int o = 0; o < L.out_c; o++) {
                    int8_t want = image_ref64(&L, x, oy, ox, o), got = y[(oy * L.out_w + ox) * L.out_c + o];
                    if (got != want) fail_msg("trial %d (%s) at %d,%d,%d: kernel %d, re-derivation %d", trial, kind == TQ_S8_CONV ? "conv" : "depthwise", oy, ox, o, got, want);
                }
        strided += L.stride > 1;
        padded += L.pad > 0;
        for (int o = 0; o < L.out_c; o++) left += L.shift[o] > 0;
        nonsquare += L.kw && L.kw != L.k;
        same += (L.out_h - 1) * L.stride + L.k - L.in_h - L.pad == L.pad + 1;
    }
    assert_true(strided > 100 && padded > 100 && left > 100); /* the cases the issue names were drawn */
    assert_true(!graph || (nonsquare > 100 && same > 50));
}

static void conv_and_depthwise_match_int64_rederivation(void **state) {
    (void)state;
    image_layers_match(0);
}

/* k x kw kernels, strides and paddings of their own across, SAME's extra row and column at the end */
static void nonsquare_and_same_match_int64_rederivation(void **state) {
    (void)state;
    image_layers_match(1);
}

/* Pools on hand-worked windows: the average rounds half away from zero (TFLite, CMSIS-NN), on the
 * raw values; the clamp applies to both. */
static void pools_by_hand(void **state) {
    (void)state;
    /* a 2x2 image of 4 channels, one 2x2 window: channel c holds the four values of case c */
    const int8_t win[4][4] = {{1, 2, 2, 2}, {-1, -2, -2, -1}, {1, 1, 0, 0}, {-1, -1, 0, 0}};
    const int8_t avg_want[4] = {2 /* 1.75 */, -2 /* -1.5 */, 1 /* 0.5 */, -1 /* -0.5 */};
    const int8_t max_want[4] = {2, -1, 1, 0};
    int8_t x[16], y[4];
    for (int p = 0; p < 4; p++)
        for (int c = 0; c < 4; c++) x[p * 4 + c] = win[c][p];
    tq_s8_layer L = {.in = 16, .out = 4, .in_zp = 0, .out_zp = 0, .act_min = -128, .act_max = 127, .kind = TQ_S8_AVGPOOL,
                     .in_h = 2, .in_w = 2, .in_c = 4, .out_h = 1, .out_w = 1, .out_c = 4, .k = 2, .stride = 2};
    tq_avgpool_s8_ref(&L, x, y);
    assert_memory_equal(y, avg_want, 4);
    L.kind = TQ_S8_MAXPOOL;
    tq_maxpool_s8_ref(&L, x, y);
    assert_memory_equal(y, max_want, 4);
    L.act_min = 0; /* a clamp, as CMSIS-NN's act_min */
    tq_maxpool_s8_ref(&L, x, y);
    const int8_t clamped[4] = {2, 0, 1, 0};
    assert_memory_equal(y, clamped, 4);
    /* 3x3 windows of -128: the sum (-1152) stays exact */
    int8_t big[9], one;
    memset(big, -128, sizeof big);
    tq_s8_layer A = {.in = 9, .out = 1, .act_min = -128, .act_max = 127, .kind = TQ_S8_AVGPOOL, .in_h = 3, .in_w = 3,
                     .in_c = 1, .out_h = 1, .out_w = 1, .out_c = 1, .k = 3, .stride = 1};
    tq_avgpool_s8_ref(&A, big, &one);
    assert_int_equal(one, -128);
}

/* Pools of k x kw windows (square in the first 400 trials; then any, a third of them global: the
 * whole image) against direct loops. */
static void pools_match_direct_loops(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 45);
    for (int trial = 0; trial < 800; trial++) {
        int H = 1 + (int)tq_rng_below(&r, 9), W = 1 + (int)tq_rng_below(&r, 9), C = 1 + (int)tq_rng_below(&r, 7);
        int k = 1 + (int)tq_rng_below(&r, 4), s = 1 + (int)tq_rng_below(&r, 3);
        while (k > H || k > W) k--;
        int kw = k, sw = s;
        if (trial >= 400) {
            k = 1 + (int)tq_rng_below(&r, (uint32_t)H), kw = 1 + (int)tq_rng_below(&r, (uint32_t)W), sw = 1 + (int)tq_rng_below(&r, 3);
            if (trial % 3 == 0) k = H, kw = W; /* global */
        }
        int lo = (int)tq_rng_below(&r, 40) - 128, avg = trial & 1;
        tq_s8_layer L = {.in = H * W * C, .act_min = lo, .act_max = 127, .kind = avg ? TQ_S8_AVGPOOL : TQ_S8_MAXPOOL,
                         .in_h = H, .in_w = W, .in_c = C, .out_h = (H - k) / s + 1, .out_w = (W - kw) / sw + 1, .out_c = C,
                         .k = k, .stride = s};
        if (trial >= 400) L.kw = kw, L.stride_w = sw;
        L.out = L.out_h * L.out_w * C;
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
        int8_t x[9 * 9 * 7], y[9 * 9 * 7];
        for (int i = 0; i < L.in; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        tq_s8_layer_run(&L, x, NULL, y, NULL);
        for (int oy = 0; oy < L.out_h; oy++)
            for (int ox = 0; ox < L.out_w; ox++)
                for (int c = 0; c < C; c++) {
                    int64_t sum = 0, mx = -1000;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int v = x[((oy * s + ky) * W + ox * sw + kx) * C + c];
                            sum += v;
                            mx = v > mx ? v : mx;
                        }
                    /* round half away from zero: floor(|sum|/n + 1/2) with the sign put back */
                    int64_t n = k * kw, mag = ((sum < 0 ? -sum : sum) * 2 + n) / (2 * n), v = avg ? (sum < 0 ? -mag : mag) : mx;
                    v = v < lo ? lo : v;
                    assert_int_equal(y[(oy * L.out_w + ox) * C + c], v);
                }
    }
}

/* The int8 ADD's parameters from its scales, as tinyqat's converter makes them (TFLite's). */
static void add_params(double s1, double s2, double so, int32_t *m, int32_t *sh) {
    double twice = 2 * (s1 > s2 ? s1 : s2);
    tq_quantize_multiplier(s1 / twice, &m[0], &sh[0]);
    tq_quantize_multiplier(s2 / twice, &m[1], &sh[1]);
    tq_quantize_multiplier(twice / (1048576.0 * so), &m[2], &sh[2]);
}

/* The add: a hand-worked case, then random ones against the int64 re-derivation and against the
 * real sum of the two inputs (within one output step where it is not clamped). */
static void add_by_hand_and_rederivation(void **state) {
    (void)state;
    int32_t m[3], sh[3];
    /* s 0.5, z 1 and s 0.25, z -2 into s 1, z 3: x 11 is 5.0, x2 6 is 2.0; 7.0 is 7 + 3 = 10 */
    add_params(0.5, 0.25, 1.0, m, sh);
    assert_int_equal(m[0], 1 << 30), assert_int_equal(sh[0], 0);   /* 0.5 */
    assert_int_equal(m[1], 1 << 30), assert_int_equal(sh[1], -1);  /* 0.25 */
    assert_int_equal(m[2], 1 << 30), assert_int_equal(sh[2], -19); /* 2^-20 */
    tq_s8_layer L = {.in = 2, .out = 2, .mult = m, .shift = sh, .in_zp = 1, .out_zp = 3, .act_min = -128, .act_max = 127,
                     .kind = TQ_S8_ADD, .in_h = 1, .in_w = 1, .in_c = 2, .out_h = 1, .out_w = 1, .out_c = 2, .k = 1, .stride = 1,
                     .in2_zp = -2};
    int8_t x[2] = {11, 1}, x2[2] = {6, -2}, y[2];
    tq_s8_layer_run(&L, x, x2, y, NULL);
    assert_int_equal(y[0], 10);
    assert_int_equal(y[1], 3); /* 0 + 0 */
    /* inputs shifted left (outside the header's ranges, the fuzzer's find): each saturates, and so
     * does their sum, instead of overflowing */
    {
        int32_t bm[3] = {1 << 30, 1 << 30, 1 << 30}, bs[3] = {12, 12, 0};
        tq_s8_layer S = L;
        S.mult = bm, S.shift = bs, S.in_zp = S.in2_zp = 0, S.out_zp = 0;
        int8_t big[2] = {127, -128}, out[2];
        tq_add_s8_ref(&S, big, big, out);
        assert_int_equal(out[0], 127), assert_int_equal(out[1], -128);
    }
    tq_rng r;
    tq_rng_seed(&r, 47);
    for (int trial = 0; trial < 2000; trial++) {
        double s1 = ldexp(1.0 + tq_rng_below(&r, 1000) / 1000.0, -(int)tq_rng_below(&r, 10));
        double s2 = ldexp(1.0 + tq_rng_below(&r, 1000) / 1000.0, -(int)tq_rng_below(&r, 10));
        double so = (s1 + s2) * (0.5 + tq_rng_below(&r, 1000) / 1000.0);
        add_params(s1, s2, so, m, sh);
        L.in_zp = (int32_t)tq_rng_below(&r, 256) - 128, L.in2_zp = (int32_t)tq_rng_below(&r, 256) - 128;
        L.out_zp = (int32_t)tq_rng_below(&r, 256) - 128;
        L.act_min = tq_rng_below(&r, 2) ? L.out_zp : -128;
        int8_t a[2], b[2], out[2];
        for (int i = 0; i < 2; i++) a[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128), b[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        tq_add_s8_ref(&L, a, b, out);
        for (int i = 0; i < 2; i++) {
            int64_t v = (int64_t)requant64((int64_t)requant64(((int64_t)a[i] - L.in_zp) * 1048576, m[0], sh[0]) +
                                               requant64(((int64_t)b[i] - L.in2_zp) * 1048576, m[1], sh[1]), m[2], sh[2]) + L.out_zp;
            v = v < L.act_min ? L.act_min : v > 127 ? 127 : v;
            assert_int_equal(out[i], v);
            double real = s1 * (a[i] - L.in_zp) + s2 * (b[i] - L.in2_zp), q = real / so + L.out_zp;
            if (q > L.act_min + 1 && q < 126) assert_true(fabs((out[i] - L.out_zp) * so - real) <= so);
        }
    }
}

/* conv 6x6x2 (k3 p1) -> max pool 2 -> flatten -> linear 27 -> 5: the runner against the layers
 * run one by one, its arena size worked out by hand, any scratch contents, too little refused. */
static void cnn_runner_contract(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 46);
    static image_store cs;
    static layer_store ls;
    tq_s8_layer layers[4];
    tq_int8_net m = {4, layers};
    tq_s8_layer *c = &layers[0], *p = &layers[1], *f = &layers[2], *l = &layers[3];
    do random_image_layer(&r, c, &cs, TQ_S8_CONV);
    while (c->out_h < 2 || c->out_w < 2 || c->out_h * c->out_w * c->out_c > 400);
    *p = (tq_s8_layer){.in = c->out, .in_zp = c->out_zp, .out_zp = c->out_zp, .act_min = -128, .act_max = 127,
                       .kind = TQ_S8_MAXPOOL, .in_h = c->out_h, .in_w = c->out_w, .in_c = c->out_c,
                       .out_h = c->out_h / 2, .out_w = c->out_w / 2, .out_c = c->out_c, .k = 2, .stride = 2};
    p->out = p->out_h * p->out_w * p->out_c;
    *f = (tq_s8_layer){.in = p->out, .out = p->out, .in_zp = p->out_zp, .out_zp = p->out_zp, .kind = TQ_S8_FLATTEN,
                       .in_h = p->out_h, .in_w = p->out_w, .in_c = p->out_c, .out_h = 1, .out_w = 1, .out_c = p->out, .k = 1,
                       .stride = 1};
    random_layer(&r, l, &ls, p->out, 5, 0);
    l->in_zp = p->out_zp;
    /* the patch: a window as int8 and two as int16 pairs (all but K % 4 of each), or with input
     * channels in fours the two as pairs alone (runtime/kernels_dsp.c), rounded up to a word */
    size_t K = (size_t)c->k * c->k * c->in_c, patch = c->in_c % 4 ? K + 4 * (K - K % 4) : 4 * K;
    patch = (patch + 3) / 4 * 4;
#define WORD(n) (((size_t)(n) + 3) / 4 * 4)
    /* the conv's output at the arena's start and its patch from the next word (the input is the
     * caller's); then the pool's input and output at the two ends; the linear reads the pool's
     * output and writes the caller's buffer */
    size_t arena = WORD(c->out) + patch > (size_t)c->out + p->out ? WORD(c->out) + patch : (size_t)c->out + p->out;
    assert_int_equal(tq_int8_net_scratch_bytes(&m), arena);
    int8_t x[9 * 9 * 9], y[5], y2[5], a[400], b[400], pb[5 * 5 * 5 * 9];
    static int8_t scratch[4096];
    for (int i = 0; i < c->in; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
    memset(scratch, 0x55, sizeof scratch);
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, arena), TQ_INT8_OK);
    tq_conv_s8_ref(c, x, a, pb);
    tq_maxpool_s8_ref(p, a, b);
    tq_linear_s8_ref(l, b, y2);
    assert_memory_equal(y, y2, 5);
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, arena - 1), TQ_INT8_E_ARG);
    /* from pixels: the input q = p - 128 goes into the arena first */
    c->in_zp = -128;
    uint8_t px[9 * 9 * 9];
    for (int i = 0; i < c->in; i++) px[i] = (uint8_t)(x[i] ^ 0x80);
    size_t need = tq_int8_net_predict_scratch_bytes(&m);
    /* the input at the start, the conv's patch, its output at the end; then as before */
    size_t want = WORD(c->in) + patch + c->out > (size_t)c->out + p->out ? WORD(c->in) + patch + c->out : (size_t)c->out + p->out;
#undef WORD
    assert_int_equal(need, want);
    memset(scratch, 0x33, sizeof scratch);
    predict_is_run(&m, px, x, scratch, need);
    int8_t logits[5];
    assert_int_equal(tq_int8_net_predict_u8(&m, px, logits, scratch, need - 1), TQ_INT8_E_ARG);
    layers[3].kind = TQ_S8_FLATTEN; /* a network ending in a flatten has no output layer */
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, sizeof scratch), TQ_INT8_E_ARG);
}

/* A conv or depthwise layer of a given shape, random weights (stores hold up to 16 x 5 x 5 x 9). */
static void shaped_layer(tq_rng *r, tq_s8_layer *L, image_store *st, int kind, int H, int W, int C, int OC, int k, int pad) {
    int nw = kind == TQ_S8_DEPTHWISE ? k * k * OC : OC * k * k * C;
    for (int i = 0; i < nw; i++) st->w[i] = (int8_t)((int)tq_rng_below(r, 255) - 127);
    for (int o = 0; o < OC; o++) {
        st->b[o] = (int32_t)tq_rng_below(r, 20001) - 10000;
        st->m[o] = (1 << 30) + (int32_t)tq_rng_below(r, 1u << 30);
        st->s[o] = (int32_t)tq_rng_below(r, 4) - 9;
    }
    int OH = H + 2 * pad - k + 1, OW = W + 2 * pad - k + 1;
    int32_t zy = (int32_t)tq_rng_below(r, 256) - 128;
    *L = (tq_s8_layer){.in = H * W * C, .out = OH * OW * OC, .w = st->w, .bias = st->b, .mult = st->m, .shift = st->s,
                       .in_zp = (int32_t)tq_rng_below(r, 256) - 128, .out_zp = zy, .act_min = zy, .act_max = 127, .kind = kind,
                       .in_h = H, .in_w = W, .in_c = C, .out_h = OH, .out_w = OW, .out_c = OC, .k = k, .stride = 1, .pad = pad};
}

/* A residual block: conv 6x6x3 -> 6x6x4 (0), conv (1), depthwise (2), add of 2 and 0 (3), global
 * average pool (4), flatten (5), linear -> 5 (6). The runner against the layers run one by one
 * into buffers of their own; the arena worked out by hand: at the add, the outputs of 0, 2 and 3
 * are alive (3 x 144 bytes), and the greedy plan fits everything else, patches too, into that. */
static void residual_graph_runner_contract(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 48);
    static image_store s0, s1, s2;
    static layer_store ls;
    int32_t am[3], as[3];
    tq_s8_layer L[7];
    tq_int8_net m = {7, L};
    shaped_layer(&r, &L[0], &s0, TQ_S8_CONV, 6, 6, 3, 4, 3, 1);
    shaped_layer(&r, &L[1], &s1, TQ_S8_CONV, 6, 6, 4, 4, 3, 1);
    L[1].in_zp = L[0].out_zp;
    shaped_layer(&r, &L[2], &s2, TQ_S8_DEPTHWISE, 6, 6, 4, 4, 3, 1);
    L[2].in_zp = L[1].out_zp;
    add_params(0.02, 0.05, 0.06, am, as);
    L[3] = (tq_s8_layer){.in = 144, .out = 144, .mult = am, .shift = as, .in_zp = L[2].out_zp, .out_zp = 5, .act_min = 5,
                         .act_max = 127, .kind = TQ_S8_ADD, .in_h = 6, .in_w = 6, .in_c = 4, .out_h = 6, .out_w = 6, .out_c = 4,
                         .k = 1, .stride = 1, .src = {3, 1}, .in2_zp = L[0].out_zp};
    L[4] = (tq_s8_layer){.in = 144, .out = 4, .in_zp = 5, .out_zp = 5, .act_min = -128, .act_max = 127, .kind = TQ_S8_AVGPOOL,
                         .in_h = 6, .in_w = 6, .in_c = 4, .out_h = 1, .out_w = 1, .out_c = 4, .k = 6, .stride = 1};
    L[5] = (tq_s8_layer){.in = 4, .out = 4, .in_zp = 5, .out_zp = 5, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 4,
                         .out_h = 1, .out_w = 1, .out_c = 4, .k = 1, .stride = 1};
    random_layer(&r, &L[6], &ls, 4, 5, 0);
    L[6].in_zp = 5;
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_OK);
    /* the peak, three moments alike: conv 1's, the outputs of 0 and 1 and its patch (4 input
     * channels: two windows gathered straight into int16 pairs, 4 x 36 bytes, where the
     * reference's 36-byte window fits too); the depthwise's (outputs 0, 1, 2); the add's (0, 2,
     * 3). Conv 0's (its output and 27 + 4 x 24 bytes of patch: 3 channels) is smaller */
    const size_t arena = 3 * 144;
    assert_int_equal(tq_int8_net_scratch_bytes(&m), arena);
    int8_t x[108], y[5], y2[5], a0[144], a1[144], a2[144], a3[144], a4[4], pb[256];
    static int8_t scratch[4096];
    for (int i = 0; i < 108; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
    memset(scratch, 0x55, sizeof scratch);
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, arena), TQ_INT8_OK);
    tq_conv_s8_ref(&L[0], x, a0, pb);
    tq_conv_s8_ref(&L[1], a0, a1, pb);
    tq_depthwise_s8_ref(&L[2], a1, a2);
    tq_add_s8_ref(&L[3], a2, a0, a3);
    tq_avgpool_s8_ref(&L[4], a3, a4);
    tq_linear_s8_ref(&L[6], a4, y2);
    assert_memory_equal(y, y2, 5);
    assert_int_equal(tq_int8_net_run(&m, x, y, scratch, arena - 1), TQ_INT8_E_ARG);
    /* from pixels: the input goes into the arena too, alive while layer 0 runs */
    L[0].in_zp = -128;
    uint8_t px[108];
    for (int i = 0; i < 108; i++) px[i] = (uint8_t)(x[i] ^ 0x80);
    size_t need = tq_int8_net_predict_scratch_bytes(&m);
    assert_int_equal(need, arena); /* the input (108) fits where 1 and 2 go later */
    memset(scratch, 0x33, sizeof scratch);
    predict_is_run(&m, px, x, scratch, need);
}

/* A dense residual graph whose first layer reads the pixels in place (predict_u8's other path):
 * linear 6 -> 4 (0), linear 4 -> 4 (1), add of 1 and 0 (2), linear 4 -> 5 (3); packed 4-bit
 * weights in layer 0, so its scratch is planned too. predict_u8 against run on p - 128. */
static void dense_graph_from_pixels(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 50);
    static layer_store s0, s1, s3;
    int32_t am[3], as[3];
    add_params(0.03, 0.02, 0.04, am, as);
    tq_s8_layer L[4];
    tq_int8_net m = {4, L};
    random_layer(&r, &L[0], &s0, 6, 4, 1);
    /* layer 0 at 4 bits: two weights a byte, each in [-7, 7] */
    static int8_t packed[12];
    memset(packed, 0, sizeof packed);
    for (int i = 0; i < 24; i++) {
        int v = (int)tq_rng_below(&r, 15) - 7;
        packed[i / 2] = (int8_t)(packed[i / 2] | (int8_t)((v & 15) << (4 * (i % 2))));
    }
    L[0].w = packed, L[0].w_bits = 4, L[0].in_zp = -128;
    random_layer(&r, &L[1], &s1, 4, 4, 0);
    L[1].in_zp = L[0].out_zp;
    L[2] = (tq_s8_layer){.in = 4, .out = 4, .mult = am, .shift = as, .in_zp = L[1].out_zp, .out_zp = -3, .act_min = -128,
                         .act_max = 127, .kind = TQ_S8_ADD, .in_h = 1, .in_w = 1, .in_c = 4, .out_h = 1, .out_w = 1, .out_c = 4,
                         .k = 1, .stride = 1, .src = {2, 1}, .in2_zp = L[0].out_zp};
    random_layer(&r, &L[3], &s3, 4, 5, 0);
    L[3].in_zp = -3;
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_OK);
    static int8_t scratch[4096];
    for (int t = 0; t < 50; t++) {
        uint8_t px[6];
        int8_t x[6];
        for (int i = 0; i < 6; i++) px[i] = (uint8_t)tq_rng_below(&r, 256), x[i] = (int8_t)(px[i] ^ 0x80);
        memset(scratch, t, sizeof scratch);
        predict_is_run(&m, px, x, scratch, tq_int8_net_predict_scratch_bytes(&m));
    }
}

/* Concat by hand: two pixels of 2 and 1 channels become two pixels of 3, the first input's
 * channels first; the checker wants one zero point and the second input's channel count. */
static void concat_by_hand(void **state) {
    (void)state;
    tq_s8_layer L = {.in = 4, .out = 6, .in_zp = 3, .out_zp = 3, .act_min = -128, .act_max = 127, .kind = TQ_S8_CONCAT, .in_h = 1,
                     .in_w = 2, .in_c = 2, .out_h = 1, .out_w = 2, .out_c = 3, .k = 1, .stride = 1, .in2_zp = 3, .in2_c = 1};
    const int8_t x[4] = {1, 2, 3, 4}, x2[2] = {-5, -6};
    int8_t y[6];
    tq_s8_layer_run(&L, x, x2, y, NULL);
    const int8_t want[6] = {1, 2, -5, 3, 4, -6};
    assert_memory_equal(y, want, 6);
    /* as a network it reads the input twice, so its second input has the input's 2 channels */
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    L.in2_c = 2, L.out_c = 4, L.out = 8;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
    L.in2_zp = 4; /* a concat copies: one zero point */
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    L.in2_zp = 3, L.out_c = 3, L.out = 6; /* 2 + 2 is not 3 */
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
}

/* TFLite Micro's int8 MEAN in its three forms (runtime/int8_infer.h), worked by hand on a 2 x 2
 * image of one channel at one scale (M = 1: M0 = 2^30, shift 1), z = 2:
 *   q = 10 11 12 13: sum(q - z) = 38, sum q = 46
 *     form 0: round(38 / 4) = round(9.5) = 10, + 2 = 12 (half away from zero)
 *     form 1: M 2^-2 (M0 2^30, shift -1): 38 / 4 = 9.5, rounded up by the doubling high mul = 10, + 2 = 12
 *     form 2: 46 / 4 = 11.5, truncated: 11
 *   q = -10 -11 -12 -13: sum(q - z) = -54, sum q = -46
 *     form 0: round(-13.5) = -14, + 2 = -12;  form 1: -13.5 -> -14 (ties away from zero), -12;  form 2: -11
 * then random layers against a re-derivation written here (1/n folded into M in double
 * arithmetic, and the int64 requant above), and the checker's refusals. */
static void mean_by_hand_and_rederivation(void **state) {
    (void)state;
    int32_t m[2], sh[2];
    tq_s8_layer L = {.in = 4, .out = 1, .mult = m, .shift = sh, .in_zp = 2, .out_zp = 2, .act_min = -128, .act_max = 127,
                     .kind = TQ_S8_MEAN, .in_h = 2, .in_w = 2, .in_c = 1, .out_h = 1, .out_w = 1, .out_c = 1, .k = 1, .stride = 1};
    const int8_t xs[2][4] = {{10, 11, 12, 13}, {-10, -11, -12, -13}};
    const int8_t want[2][3] = {{12, 12, 11}, {-12, -12, -11}};
    for (int form = 0; form < 3; form++) {
        tq_mean_multiplier(form, 0.1f, 0.1f, 4, &m[0], &sh[0]);
        m[1] = form, sh[1] = 0;
        const int32_t want_m[3] = {1 << 30, 1 << 30, 0}, want_s[3] = {1, -1, 0};
        assert_int_equal(m[0], want_m[form]), assert_int_equal(sh[0], want_s[form]);
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
        for (int t = 0; t < 2; t++) {
            int8_t y;
            tq_s8_layer_run(&L, xs[t], NULL, &y, NULL);
            if (y != want[t][form]) fail_msg("form %d, case %d: %d, by hand %d", form, t, y, want[t][form]);
        }
    }
    /* refused: a fourth form, form 2 with two zero points, a second pair that is not (form, 0), an image out */
    m[1] = 3;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    m[1] = 2, L.out_zp = 3, L.act_min = -128;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    L.out_zp = 2, sh[1] = 1;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    sh[1] = 0, L.out_h = 2, L.out = 2;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);

    tq_rng r;
    tq_rng_seed(&r, 88);
    static int8_t x[40 * 40 * 5];
    for (int trial = 0; trial < 600; trial++) {
        const int H = 1 + (int)tq_rng_below(&r, 40), W = 1 + (int)tq_rng_below(&r, 40), C = 1 + (int)tq_rng_below(&r, 5), n = H * W;
        const int form = trial % 3;
        const int32_t zi = (int32_t)tq_rng_below(&r, 256) - 128, zo = form == 2 ? zi : (int32_t)tq_rng_below(&r, 256) - 128;
        const float si = tq_rng_uniform_in(&r, 0.001f, 0.1f), so = form == 2 ? si : si * tq_rng_uniform_in(&r, 0.2f, 3.0f);
        tq_mean_multiplier(form, si, so, n, &m[0], &sh[0]);
        m[1] = form, sh[1] = 0;
        tq_s8_layer M = {.in = n * C, .out = C, .mult = m, .shift = sh, .in_zp = zi, .out_zp = zo, .act_min = -128, .act_max = 127,
                         .kind = TQ_S8_MEAN, .in_h = H, .in_w = W, .in_c = C, .out_h = 1, .out_w = 1, .out_c = C, .k = 1, .stride = 1};
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &M}), TQ_INT8_OK);
        for (int i = 0; i < n * C; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        int8_t y[5];
        tq_s8_layer_run(&M, x, NULL, y, NULL);
        int32_t M0, S;
        tq_quantize_multiplier((double)si / (double)so, &M0, &S);
        for (int c = 0; c < C; c++) {
            int64_t sum = 0, raw = 0, v;
            for (int p = 0; p < n; p++) sum += x[p * C + c] - zi, raw += x[p * C + c];
            if (form == 2) {
                v = raw / n;
            } else if (form == 0) {
                double q = (double)requant64(sum, M0, S) / n;
                v = (int64_t)(q < 0 ? ceil(q - 0.5) : floor(q + 0.5)) + zo; /* half away from zero */
            } else { /* k = floor(log2 n), bounded as TFLite bounds it; M0 2^k / n floored */
                int k = (int)floor(log2((double)n) + 1e-9);
                k = k > 32 ? 32 : k, k = k > 31 + S ? 31 + S : k;
                v = (int64_t)requant64(sum, (int32_t)floor(ldexp((double)M0, k) / n), S - k) + zo;
            }
            v = v < -128 ? -128 : v > 127 ? 127 : v;
            if (y[c] != v) fail_msg("trial %d (form %d, %dx%d): channel %d: kernel %d, re-derivation %lld", trial, form, H, W, c, y[c], (long long)v);
        }
    }
}

/* What the graph runner refuses: an input from a later layer (or itself: a cycle), an output
 * nobody reads, a zero point that is not its source's, a second input on a kind with one. */
static void graph_checks(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 49);
    static image_store s0, s1;
    int32_t am[3], as[3];
    add_params(0.02, 0.05, 0.06, am, as);
    tq_s8_layer L[3], keep[3];
    tq_int8_net m = {3, L};
    shaped_layer(&r, &L[0], &s0, TQ_S8_CONV, 4, 4, 2, 3, 3, 1);
    shaped_layer(&r, &L[1], &s1, TQ_S8_CONV, 4, 4, 3, 3, 3, 1);
    L[1].in_zp = L[0].out_zp;
    L[2] = (tq_s8_layer){.in = 48, .out = 48, .mult = am, .shift = as, .in_zp = L[1].out_zp, .out_zp = 0, .act_min = -128,
                         .act_max = 127, .kind = TQ_S8_ADD, .in_h = 4, .in_w = 4, .in_c = 3, .out_h = 4, .out_w = 4, .out_c = 3,
                         .k = 1, .stride = 1, .src = {2, 1}, .in2_zp = L[0].out_zp};
    memcpy(keep, L, sizeof L);
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_OK);
    L[2].src[1] = 3; /* itself */
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
    memcpy(L, keep, sizeof L);
    L[1].src[0] = 3; /* a later layer */
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
    memcpy(L, keep, sizeof L);
    L[2].in2_zp ^= 1;
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
    memcpy(L, keep, sizeof L);
    L[1].src[1] = 1; /* a conv has one input */
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
    memcpy(L, keep, sizeof L);
    L[2].src[0] = 1, L[2].in_zp = L[0].out_zp; /* 0 + 0: layer 1's output is read by nobody */
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
    memcpy(L, keep, sizeof L);
    L[2].in_h = 2, L[2].in = 24; /* shapes that do not meet */
    assert_int_equal(tq_int8_net_check(&m), TQ_INT8_E_ARG);
    /* both inputs the network's: the second must be the input's shape and zero point too (a
     * concat reading 2 channels of a 1-channel input read past it: libFuzzer's find) */
    tq_s8_layer c = {.in = 16, .out = 32, .in_zp = -128, .out_zp = -128, .act_min = -128, .act_max = 127, .kind = TQ_S8_CONCAT,
                     .in_h = 4, .in_w = 4, .in_c = 1, .out_h = 4, .out_w = 4, .out_c = 2, .k = 1, .stride = 1, .src = {0, 0},
                     .in2_zp = -128, .in2_c = 1};
    tq_int8_net one = {1, &c};
    assert_int_equal(tq_int8_net_check(&one), TQ_INT8_OK);
    c.in2_c = 2, c.out_c = 3, c.out = 48;
    assert_int_equal(tq_int8_net_check(&one), TQ_INT8_E_ARG);
    c.in2_c = 1, c.out_c = 2, c.out = 32, c.in2_zp = 0;
    assert_int_equal(tq_int8_net_check(&one), TQ_INT8_E_ARG);
}

/* A random integer model through the same conversion the real ones take. */
static void random_qmodel(tq_rng *r, tq_qmodel *q, const int *dims, int n_layers, float out_scale_mul, int bits) {
    tq_qlayer_src src[4];
    static float W[4][800 * 120], B[4][120], S[4][120];
    for (int l = 0; l < n_layers; l++) {
        int in = dims[l], out = dims[l + 1];
        for (int i = 0; i < in * out; i++) W[l][i] = tq_rng_uniform_in(r, -0.3f, 0.3f);
        for (int o = 0; o < out; o++) {
            B[l][o] = tq_rng_uniform_in(r, -0.2f, 0.2f);
            S[l][o] = tq_rng_uniform_in(r, 0.001f, 0.003f);
        }
        src[l] = (tq_qlayer_src){.in = in, .out = out, .relu = l < n_layers - 1, .w_bits = bits, .W = W[l], .b = B[l],
                                 .w_scale = S[l], .in_scale = l ? 0.05f : 1.0f / 255.0f, .out_scale = 0.05f * out_scale_mul,
                                 .in_zp = -128, .out_zp = l < n_layers - 1 ? -128 : 3};
    }
    assert_int_equal(tq_qmodel_convert(q, "test", src, n_layers), TQ_OK);
}

/* Every fast kernel this CPU has against the reference, on 37 random images (not a multiple of
 * the batch or of 4): has[k] is set for each kernel that ran (and matched). */
static void kernels_match_reference(tq_rng *r, const tq_qmodel *q, const char *what, int has[TQ_KERNEL_VNNI + 1]) {
    enum { N = 37 };
    int in = q->layer[0].in, out = q->layer[q->n_layers - 1].out;
    uint8_t *px = tq_malloc((size_t)N * in), pf[N], pr[N];
    int8_t *lf = tq_malloc((size_t)N * out), *lr = tq_malloc((size_t)N * out);
    for (int i = 0; i < N * in; i++) px[i] = (uint8_t)tq_rng_below(r, 256);
    tq_qfast *f;
    assert_int_equal(tq_qfast_init(&f, q), TQ_OK);
    assert_int_equal(tq_qfast_run(f, px, N, lr, pr, TQ_KERNEL_REF), TQ_OK);
    for (tq_kernel k = TQ_KERNEL_AVX2; k <= TQ_KERNEL_VNNI; k++) {
        has[k] = tq_qfast_run(f, px, N, lf, pf, k) == TQ_OK;
        if (!has[k]) continue;
        for (int i = 0; i < N * out; i++)
            if (lf[i] != lr[i]) fail_msg("%s: logit %d: %s %d, reference %d", what, i, tq_kernel_name(k), lf[i], lr[i]);
        assert_memory_equal(pf, pr, N);
    }
    tq_qfast_free(f);
    tq_free(px);
    tq_free(lf);
    tq_free(lr);
}

static void fast_kernel_is_bit_identical(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 43);
    const int shapes[][5] = {{784, 100, 100, 10, 0}, {3, 5, 0, 0, 0}, {17, 33, 1, 0, 0}, {100, 10, 0, 0, 0}, {65, 16, 17, 0, 0}};
    const int nl[] = {3, 1, 2, 1, 2};
    int checked[TQ_KERNEL_VNNI + 1] = {0}, missing[TQ_KERNEL_VNNI + 1] = {0};
    for (int t = 0; t < 5; t++)
        for (int big = 0; big < 2; big++) { /* big: out scale 1000x smaller, so M > 1 and shift > 0 */
            tq_qmodel q;
            random_qmodel(&r, &q, shapes[t], nl[t], big ? 0.001f : 1.0f, 8);
            if (big) {
                int any = 0;
                for (int l = 0; l < q.n_layers; l++)
                    for (int o = 0; o < q.layer[l].out; o++) any |= q.layer[l].shift[o] > 0;
                if (nl[t] > 1) assert_true(any); /* layer 0 (s_in = 1/255) stays below 1 */
            }
            char what[48];
            snprintf(what, sizeof what, "shape %d%s", t, big ? " (M > 1)" : "");
            int has[TQ_KERNEL_VNNI + 1] = {0};
            kernels_match_reference(&r, &q, what, has);
            for (tq_kernel k = TQ_KERNEL_AVX2; k <= TQ_KERNEL_VNNI; k++) {
                missing[k] |= !has[k];
                checked[k] += has[k];
                if (has[k]) print_message("%s: %s kernel matches the reference on 37 images\n", what, tq_kernel_name(k));
            }
            tq_qmodel_free(&q);
        }
    /* A kernel the CPU lacks is a skip, said as one (cmocka counts it), never a silent pass;
     * the reference itself is always there, so at least one fast kernel or a skip is reported. */
    for (tq_kernel k = TQ_KERNEL_AVX2; k <= TQ_KERNEL_VNNI; k++) {
        if (missing[k]) assert_int_equal(checked[k], 0); /* a CPU has a kernel or not, never both */
        else assert_int_equal(checked[k], 10);
    }
}

/* A random CNN through the converter: conv (any stride, padding, channel count) -> max pool ->
 * conv -> flatten -> linear; out_scale_mul < 1 makes some multipliers exceed 1. */
static void random_cnn(tq_rng *r, tq_qmodel *q, float out_scale_mul, int digits_like, int bits) {
    static float W[3][20 * 5 * 5 * 20], B[3][20], S[3][20];
    int H = 6 + (int)tq_rng_below(r, 8), C = 1 + (int)tq_rng_below(r, 4), O1 = 3 + (int)tq_rng_below(r, 18);
    int k1 = 1 + (int)tq_rng_below(r, 5), s1 = 1 + (int)tq_rng_below(r, 2), p1 = (int)tq_rng_below(r, (uint32_t)k1);
    if (digits_like) C = 1, k1 = 5, s1 = 1, p1 = 0; /* one channel, 5 x 5, unpadded: the first layer's own path */
    int H1 = (H + 2 * p1 - k1) / s1 + 1, pk = H1 >= 4 ? 2 : 1, H2 = (H1 - pk) / pk + 1;
    int O2 = 1 + (int)tq_rng_below(r, 20), k2 = H2 >= 3 ? 3 : 1, p2 = k2 == 3 ? (int)tq_rng_below(r, 2) : 0;
    int H3 = H2 + 2 * p2 - k2 + 1, flat = H3 * H3 * O2, classes = 2 + (int)tq_rng_below(r, 9);
    const int sizes[3][2] = {{O1, k1 * k1 * C}, {O2, k2 * k2 * O1}, {classes, flat}};
    for (int l = 0; l < 3; l++) {
        for (int i = 0; i < sizes[l][0] * sizes[l][1]; i++) W[l][i] = tq_rng_uniform_in(r, -0.3f, 0.3f);
        for (int o = 0; o < sizes[l][0]; o++) B[l][o] = tq_rng_uniform_in(r, -0.2f, 0.2f), S[l][o] = tq_rng_uniform_in(r, 0.001f, 0.003f);
    }
    tq_qlayer_src src[6] = {
        {.relu = 1, .w_bits = bits, .W = W[0], .b = B[0], .w_scale = S[0], .in_scale = 1.0f / 255, .out_scale = 0.05f * out_scale_mul,
         .in_zp = -128, .out_zp = -128, .kind = TQ_S8_CONV, .in_h = H, .in_w = H, .in_c = C, .out_h = H1, .out_w = H1,
         .out_c = O1, .k = k1, .stride = s1, .pad = p1},
        {.in_scale = 0.05f * out_scale_mul, .out_scale = 0.05f * out_scale_mul, .in_zp = -128, .out_zp = -128,
         .kind = TQ_S8_MAXPOOL, .in_h = H1, .in_w = H1, .in_c = O1, .out_h = H2, .out_w = H2, .out_c = O1, .k = pk, .stride = pk},
        {.w_bits = bits, .W = W[1], .b = B[1], .w_scale = S[1], .in_scale = 0.05f * out_scale_mul, .out_scale = 0.07f * out_scale_mul,
         .in_zp = -128, .out_zp = 5, .kind = TQ_S8_CONV, .in_h = H2, .in_w = H2, .in_c = O1, .out_h = H3, .out_w = H3,
         .out_c = O2, .k = k2, .stride = 1, .pad = p2},
        {.in_scale = 0.07f * out_scale_mul, .out_scale = 0.07f * out_scale_mul, .in_zp = 5, .out_zp = 5, .kind = TQ_S8_FLATTEN,
         .in_h = H3, .in_w = H3, .in_c = O2, .out_h = 1, .out_w = 1, .out_c = flat, .k = 1, .stride = 1},
        {.in = flat, .out = classes, .w_bits = bits, .W = W[2], .b = B[2], .w_scale = S[2], .in_scale = 0.07f * out_scale_mul,
         .out_scale = 0.1f, .in_zp = 5, .out_zp = -3},
    };
    if (tq_qmodel_convert(q, "random cnn", src, 5) != TQ_OK) fail_msg("%s", tq_last_error());
}

/* The AVX2 and VNNI kernels run CNNs as windows through the dense kernel: the same integers as
 * the reference on random shapes (stride 2, padding, channel counts off the vector width; the
 * first six like DigitsCNN's first layer, which has its own window path). */
static void cnn_fast_kernels_are_bit_identical(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 47);
    int checked = 0;
    for (int t = 0; t < 24; t++) {
        tq_qmodel q;
        random_cnn(&r, &q, t % 3 == 2 ? 0.001f : 1.0f, t < 6, 8);
        char what[32];
        snprintf(what, sizeof what, "random CNN %d", t);
        int has[TQ_KERNEL_VNNI + 1] = {0};
        kernels_match_reference(&r, &q, what, has);
        checked += has[TQ_KERNEL_AVX2] + has[TQ_KERNEL_VNNI];
        tq_qmodel_free(&q);
    }
    print_message("%d kernel runs on random CNNs matched the reference\n", checked);
    if (!checked) skip(); /* no fast kernel on this CPU: said, not passed */
}

/* A random graph through the converter: every kind, each on the vector kernels where it fits them
 * and on the reference kernels in their place where not (the host runs a graph layer by layer):
 *   0 conv (3x3, stride 1 padded or stride 2 SAME)   1 depthwise 3x3      2 add (1, 0)
 *   3 max pool 2x2   4 conv 3x1 (k x kw)   5 conv 1x1 (reads 3)   6 concat (4, 5)
 *   7 global average pool   8 flatten   9 linear */
static void random_graph(tq_rng *r, tq_qmodel *q, float mul) {
    static float W[5][20 * 9 * 20], B[5][40], S[5][40];
    const int H = 8 + 2 * (int)tq_rng_below(r, 3), C = 1 + (int)tq_rng_below(r, 3), O = 3 + (int)tq_rng_below(r, 18);
    const int O2 = 1 + (int)tq_rng_below(r, 17), classes = 2 + (int)tq_rng_below(r, 9), st = 1 + (int)tq_rng_below(r, 2);
    const int H1 = st == 1 ? H : H / 2, H2 = H1 / 2;
    for (int l = 0; l < 5; l++) {
        for (size_t i = 0; i < sizeof W[l] / sizeof W[l][0]; i++) W[l][i] = tq_rng_uniform_in(r, -0.3f, 0.3f);
        for (int o = 0; o < 40; o++) B[l][o] = tq_rng_uniform_in(r, -0.2f, 0.2f), S[l][o] = tq_rng_uniform_in(r, 0.001f, 0.003f);
    }
    const float s0 = 0.05f * mul, s1 = 0.06f * mul, s2 = 0.08f * mul, s3 = 0.07f * mul;
    tq_qlayer_src src[10] = {
        {.relu = 1, .w_bits = 8, .W = W[0], .b = B[0], .w_scale = S[0], .in_scale = 1.0f / 255, .out_scale = s0, .in_zp = -128,
         .out_zp = -128, .kind = TQ_S8_CONV, .in_h = H, .in_w = H, .in_c = C, .out_h = H1, .out_w = H1, .out_c = O, .k = 3,
         .stride = st, .pad = st == 1},
        {.w_bits = 8, .W = W[1], .b = B[1], .w_scale = S[1], .in_scale = s0, .out_scale = s1, .in_zp = -128, .out_zp = 3,
         .kind = TQ_S8_DEPTHWISE, .in_h = H1, .in_w = H1, .in_c = O, .out_h = H1, .out_w = H1, .out_c = O, .k = 3, .stride = 1,
         .pad = 1},
        {.relu = 1, .in_scale = s1, .in2_scale = s0, .out_scale = s2, .in_zp = 3, .in2_zp = -128, .out_zp = -128, .kind = TQ_S8_ADD,
         .in_h = H1, .in_w = H1, .in_c = O, .out_h = H1, .out_w = H1, .out_c = O, .k = 1, .stride = 1, .src = {0, 1}},
        {.in_scale = s2, .out_scale = s2, .in_zp = -128, .out_zp = -128, .kind = TQ_S8_MAXPOOL, .in_h = H1, .in_w = H1, .in_c = O,
         .out_h = H2, .out_w = H2, .out_c = O, .k = 2, .stride = 2},
        {.w_bits = 8, .W = W[2], .b = B[2], .w_scale = S[2], .in_scale = s2, .out_scale = s3, .in_zp = -128, .out_zp = 2,
         .kind = TQ_S8_CONV, .in_h = H2, .in_w = H2, .in_c = O, .out_h = H2, .out_w = H2, .out_c = O2, .k = 3, .stride = 1,
         .pad = 1, .kw = 1, .stride_w = 1},
        {.relu = 1, .w_bits = 8, .W = W[3], .b = B[3], .w_scale = S[3], .in_scale = s2, .out_scale = s3, .in_zp = -128, .out_zp = 2,
         .kind = TQ_S8_CONV, .in_h = H2, .in_w = H2, .in_c = O, .out_h = H2, .out_w = H2, .out_c = O2, .k = 1, .stride = 1,
         .src = {4}},
        {.in_scale = s3, .in2_scale = s3, .out_scale = s3, .in_zp = 2, .in2_zp = 2, .out_zp = 2, .kind = TQ_S8_CONCAT,
         .in_h = H2, .in_w = H2, .in_c = O2, .out_h = H2, .out_w = H2, .out_c = 2 * O2, .k = 1, .stride = 1, .src = {5, 6},
         .in2_c = O2},
        {.in_scale = s3, .out_scale = s3, .in_zp = 2, .out_zp = 2, .kind = TQ_S8_AVGPOOL, .in_h = H2, .in_w = H2, .in_c = 2 * O2,
         .out_h = 1, .out_w = 1, .out_c = 2 * O2, .k = H2, .stride = H2},
        {.in_scale = s3, .out_scale = s3, .in_zp = 2, .out_zp = 2, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 2 * O2,
         .out_h = 1, .out_w = 1, .out_c = 2 * O2, .k = 1, .stride = 1},
        {.in = 2 * O2, .out = classes, .w_bits = 8, .W = W[4], .b = B[4], .w_scale = S[4], .in_scale = s3, .out_scale = 0.1f * mul,
         .in_zp = 2, .out_zp = -1},
    };
    assert_int_equal(tq_qmodel_convert(q, "graph", src, 10), TQ_OK);
}

/* A random depthwise layer between a 1x1 conv and the classifier: kernels k x kw of 1..5, strides
 * of 1 or 2 down and across, padding per axis, 1..20 channels (tails of the 8-channel vectors). */
static void random_depthwise(tq_rng *r, tq_qmodel *q, float mul) {
    static float W[3][20 * 25 * 20], B[3][20], S[3][20];
    const int H = 6 + (int)tq_rng_below(r, 8), Wd = 6 + (int)tq_rng_below(r, 8), C = 1 + (int)tq_rng_below(r, 3), O = 1 + (int)tq_rng_below(r, 20);
    const int k = 1 + (int)tq_rng_below(r, 5), kw = 1 + (int)tq_rng_below(r, 5), sh = 1 + (int)tq_rng_below(r, 2), sw = 1 + (int)tq_rng_below(r, 2);
    const int p = (int)tq_rng_below(r, (uint32_t)k), pw = (int)tq_rng_below(r, (uint32_t)kw);
    const int OH = (H + 2 * p - k) / sh + 1, OW = (Wd + 2 * pw - kw) / sw + 1, flat = OH * OW * O, classes = 2 + (int)tq_rng_below(r, 9);
    for (int l = 0; l < 3; l++) {
        for (size_t i = 0; i < sizeof W[l] / sizeof W[l][0]; i++) W[l][i] = tq_rng_uniform_in(r, -0.3f, 0.3f);
        for (int o = 0; o < 20; o++) B[l][o] = tq_rng_uniform_in(r, -0.2f, 0.2f), S[l][o] = tq_rng_uniform_in(r, 0.001f, 0.003f);
    }
    static float Wl[20 * 13 * 13 * 10];
    for (int i = 0; i < flat * classes; i++) Wl[i] = tq_rng_uniform_in(r, -0.3f, 0.3f);
    tq_qlayer_src src[4] = {
        {.relu = 1, .w_bits = 8, .W = W[0], .b = B[0], .w_scale = S[0], .in_scale = 1.0f / 255, .out_scale = 0.05f * mul, .in_zp = -128,
         .out_zp = -128, .kind = TQ_S8_CONV, .in_h = H, .in_w = Wd, .in_c = C, .out_h = H, .out_w = Wd, .out_c = O, .k = 1, .stride = 1},
        {.relu = (int)tq_rng_below(r, 3), .w_bits = 8, .W = W[1], .b = B[1], .w_scale = S[1], .in_scale = 0.05f * mul,
         .out_scale = 0.06f * mul, .in_zp = -128, .out_zp = 4, .kind = TQ_S8_DEPTHWISE, .in_h = H, .in_w = Wd, .in_c = O, .out_h = OH,
         .out_w = OW, .out_c = O, .k = k, .stride = sh, .pad = p, .kw = kw, .stride_w = sw, .pad_w = pw},
        {.in_scale = 0.06f * mul, .out_scale = 0.06f * mul, .in_zp = 4, .out_zp = 4, .kind = TQ_S8_FLATTEN, .in_h = OH, .in_w = OW,
         .in_c = O, .out_h = 1, .out_w = 1, .out_c = flat, .k = 1, .stride = 1},
        {.in = flat, .out = classes, .w_bits = 8, .W = Wl, .b = B[2], .w_scale = S[2], .in_scale = 0.06f * mul, .out_scale = 0.1f,
         .in_zp = 4, .out_zp = -2},
    };
    if (tq_qmodel_convert(q, "random depthwise", src, 4) != TQ_OK) fail_msg("%s", tq_last_error());
}

/* `trials` networks from `make` (every third with small multipliers, which saturate less) on every
 * vector kernel the machine has, each against the reference. */
static void random_nets_match(void (*make)(tq_rng *, tq_qmodel *, float), uint64_t seed, int trials, const char *name) {
    tq_rng r;
    tq_rng_seed(&r, seed);
    int checked = 0;
    for (int t = 0; t < trials; t++) {
        tq_qmodel q;
        make(&r, &q, t % 3 == 2 ? 0.001f : 1.0f);
        char what[48];
        snprintf(what, sizeof what, "%s %d", name, t);
        int has[TQ_KERNEL_VNNI + 1] = {0};
        kernels_match_reference(&r, &q, what, has);
        checked += has[TQ_KERNEL_AVX2] + has[TQ_KERNEL_VNNI];
        tq_qmodel_free(&q);
    }
    print_message("%d kernel runs on %ss matched the reference\n", checked, name);
    if (!checked) skip();
}

/* The host's depthwise vector kernel (8 channels a vector) against the reference. */
static void depthwise_fast_kernel_is_bit_identical(void **state) {
    (void)state;
    random_nets_match(random_depthwise, 53, 40, "random depthwise layer");
}

static void graph_fast_kernels_are_bit_identical(void **state) {
    (void)state;
    random_nets_match(random_graph, 51, 16, "random graph");
}

/* ---- packed weights ---- */

/* w[0..n) packed at `bits` (4 or 2) into p: the layout runtime/int8_infer.h describes, written out
 * independently of the converter. */
static void pack(const int8_t *w, size_t n, int bits, int8_t *p) {
    size_t per = 8 / (size_t)bits;
    memset(p, 0, (n + per - 1) / per);
    for (size_t i = 0; i < n; i++) p[i / per] = (int8_t)((uint8_t)p[i / per] | (((uint8_t)w[i] & ((1u << bits) - 1)) << (bits * (i % per))));
}

/* Weights drawn again within [-(2^(bits-1) - 1), 2^(bits-1) - 1], packed into `packed`; P is L
 * reading them. */
static void packed_twin(tq_rng *r, tq_s8_layer *L, int8_t *w, size_t n, int bits, int8_t *packed, tq_s8_layer *P) {
    int qmax = (1 << (bits - 1)) - 1;
    for (size_t i = 0; i < n; i++) w[i] = (int8_t)((int)tq_rng_below(r, (uint32_t)(2 * qmax + 1)) - qmax);
    pack(w, n, bits, packed);
    *P = *L;
    P->w = packed;
    P->w_bits = bits;
}

/* Linear (odd lengths: rows that start mid-byte), conv and depthwise layers read 4- and 2-bit
 * weights packed and give the integers of the same weights one per byte, with the reference and
 * with the build's best kernel. */
static void packed_layers_match_int8(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 48);
    static layer_store ls;
    static image_store is;
    static int8_t packed[64 * 100];
    int odd = 0;
    for (int trial = 0; trial < 600; trial++) {
        int bits = trial & 1 ? 4 : 2, kind = trial % 3 == 0 ? TQ_S8_LINEAR : trial % 3 == 1 ? TQ_S8_CONV : TQ_S8_DEPTHWISE;
        tq_s8_layer L, P;
        size_t n;
        if (kind == TQ_S8_LINEAR) {
            int in = 1 + (int)tq_rng_below(&r, 100), out = 1 + (int)tq_rng_below(&r, 64);
            random_layer(&r, &L, &ls, in, out, trial & 2);
            n = (size_t)in * (size_t)out;
            packed_twin(&r, &L, ls.w, n, bits, packed, &P);
            odd += in * bits % 8 != 0;
        } else {
            random_image_layer(&r, &L, &is, kind);
            n = kind == TQ_S8_DEPTHWISE ? (size_t)(L.k * L.k * L.out_c) : (size_t)(L.out_c * L.k * L.k * L.in_c);
            packed_twin(&r, &L, is.w, n, bits, packed, &P);
        }
        int8_t x[9 * 9 * 9], y[13 * 13 * 16], y2[13 * 13 * 16], patch[5 * 5 * 5 * 9 + 16 * 5 * 5 * 9]; /* + mid-byte weights */
        for (int i = 0; i < L.in; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        assert_true(tq_s8_layer_scratch_bytes(&P) <= sizeof patch);
        tq_s8_layer_run(&L, x, NULL, y, patch);
        tq_s8_layer_run(&P, x, NULL, y2, patch);
        if (memcmp(y, y2, (size_t)L.out)) fail_msg("trial %d: %d-bit %s layer differs from int8", trial, bits, kind == 0 ? "linear" : "image");
        if (kind == TQ_S8_LINEAR) tq_linear_s8_ref(&P, x, y2);
        else if (kind == TQ_S8_CONV) tq_conv_s8_ref(&P, x, y2, patch);
        else tq_depthwise_s8_ref(&P, x, y2);
        assert_memory_equal(y, y2, (size_t)L.out);
    }
    assert_true(odd > 50);
}

/* A converted model with packed weights against its int8 twin (the weights unpacked), through
 * the runner, then every fast kernel against the reference. */
static void packed_model_matches_int8(const tq_qmodel *q, tq_rng *r, const char *what, int *checked) {
    tq_s8_layer twin[TQ_INT8_MAX_LAYERS];
    int8_t *unpacked[TQ_INT8_MAX_LAYERS] = {0};
    for (int l = 0; l < q->n_layers; l++) {
        twin[l] = q->view[l];
        size_t n = tq_qlayer_weights(&q->layer[l]);
        if (!n) continue;
        assert_int_equal(q->view[l].w_bits, tq_qlayer_storage_bits(q->layer[l].w_bits));
        unpacked[l] = tq_malloc(n);
        for (size_t i = 0; i < n; i++) unpacked[l][i] = (int8_t)tq_s8_unpack(q->layer[l].w, q->view[l].w_bits, i);
        twin[l].w = unpacked[l];
        twin[l].w_bits = 8;
    }
    tq_int8_net tn = {q->n_layers, twin};
    size_t sb = tq_int8_net_predict_scratch_bytes(&q->net), tb = tq_int8_net_predict_scratch_bytes(&tn);
    int in = q->layer[0].in, out = q->layer[q->n_layers - 1].out;
    uint8_t *px = tq_malloc((size_t)in);
    int8_t *scratch = tq_malloc((sb > tb ? sb : tb) + 1), a[64], b[64]; /* + 1: a model may need none */
    for (int i = 0; i < 8; i++) {
        for (int k = 0; k < in; k++) px[k] = (uint8_t)tq_rng_below(r, 256);
        int ca = tq_int8_net_predict_u8(&q->net, px, a, scratch, sb), cb = tq_int8_net_predict_u8(&tn, px, b, scratch, tb);
        assert_true(ca >= 0);
        if (ca != cb || memcmp(a, b, (size_t)out))
            fail_msg("%s: image %d: packed and int8 weights disagree (class %d, %d; logit 0 %d, %d)", what, i, ca, cb, a[0], b[0]);
    }
    int has[TQ_KERNEL_VNNI + 1] = {0};
    kernels_match_reference(r, q, what, has);
    *checked += has[TQ_KERNEL_AVX2] + has[TQ_KERNEL_VNNI];
    for (int l = 0; l < q->n_layers; l++) tq_free(unpacked[l]);
    tq_free(px);
    tq_free(scratch);
}

static void packed_models_match_int8(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 49);
    const int shapes[][4] = {{784, 100, 100, 10}, {17, 33, 1, 0}, {65, 16, 17, 0}, {3, 5, 0, 0}};
    const int nl[] = {3, 2, 2, 1};
    int checked = 0;
    for (int bits = 2; bits <= 4; bits++) {
        for (int t = 0; t < 4; t++) {
            tq_qmodel q;
            random_qmodel(&r, &q, shapes[t], nl[t], 1.0f, bits);
            char what[48];
            snprintf(what, sizeof what, "%d-bit dense shape %d", bits, t);
            packed_model_matches_int8(&q, &r, what, &checked);
            tq_qmodel_free(&q);
        }
        for (int t = 0; t < 6; t++) {
            tq_qmodel q;
            random_cnn(&r, &q, 1.0f, t < 2, bits);
            char what[48];
            snprintf(what, sizeof what, "%d-bit random CNN %d", bits, t);
            packed_model_matches_int8(&q, &r, what, &checked);
            tq_qmodel_free(&q);
        }
    }
    print_message("%d fast kernel runs on packed models matched the reference\n", checked);
}

/* One test per fast kernel, so a CPU without it shows a skipped test instead of a pass. */
static void kernel_available(void **state) {
    tq_kernel k = (tq_kernel)(intptr_t)*state;
    tq_qmodel q;
    tq_rng r;
    tq_rng_seed(&r, 5);
    const int shape[5] = {3, 5, 0, 0, 0};
    random_qmodel(&r, &q, shape, 1, 1.0f, 8);
    tq_qfast *f;
    assert_int_equal(tq_qfast_init(&f, &q), TQ_OK);
    uint8_t px[3] = {1, 2, 3}, pred;
    int8_t logits[5];
    tq_status st = tq_qfast_run(f, px, 1, logits, &pred, k);
    tq_qfast_free(f);
    tq_qmodel_free(&q);
    if (st != TQ_OK) {
        print_message("the %s kernel is not available on this CPU: its bit-identity is not checked here\n", tq_kernel_name(k));
        skip();
    }
}

static int set_avx2(void **state) { *state = (void *)(intptr_t)TQ_KERNEL_AVX2; return 0; }
static int set_vnni(void **state) { *state = (void *)(intptr_t)TQ_KERNEL_VNNI; return 0; }


/* ---- 16-bit activations (docs/QUANTIZATION.md §19) ---- */

/* CMSIS-NN's arm_nn_requantize_s64, written again: a 64-bit product shifted to 32 bits, then the
 * last shift with its rounding bit (the runtime uses TFLite's one-step form of the same). */
static int32_t requant_s64_cmsis(int64_t acc, int32_t M0, int32_t shift) {
    int32_t reduced = M0 < 0x7FFF0000 ? (M0 + (1 << 15)) >> 16 : 0x7FFF;
    int64_t v = (acc * reduced) >> (14 - shift);
    if (v > INT32_MAX || v < INT32_MIN) return v > 0 ? INT32_MAX : INT32_MIN; /* CMSIS-NN's would wrap: the runtime saturates */
    int32_t r = (int32_t)v;
    return (int32_t)(((int64_t)r + 1) >> 1);
}

static void requantize64_by_hand_and_cmsis(void **state) {
    (void)state;
    /* M0 = 2^30 is M = 1/2 at shift 0: its 16-bit form is 2^14; 3/2 and -3/2 round half up */
    assert_int_equal(tq_requantize64_ref(3, 1 << 30, 0), 2);
    assert_int_equal(tq_requantize64_ref(-3, 1 << 30, 0), -1);
    assert_int_equal(tq_requantize64_ref(-5, 1 << 30, 0), -2);
    /* M0 near 2^31 keeps 0x7fff: 2^20 * 32767 / 2^20 at shift -5, then 1000 * 32767 / 2^15 = 999.97 */
    assert_int_equal(tq_requantize64_ref((int64_t)1 << 20, 0x7fffffff, -5), 32767);
    assert_int_equal(tq_requantize64_ref(1000, 0x7fffffff, 0), 1000);
    /* the 16-bit multiplier rounds: (2^30 + 2^15 - 1) >> 16 stays 2^14, + 2^15 goes up */
    assert_int_equal(tq_requantize64_ref(1 << 16, (1 << 30) + (1 << 15) - 1, 0), 1 << 15);
    assert_int_equal(tq_requantize64_ref(1 << 16, (1 << 30) + (1 << 15), 0), (1 << 15) + 2);
    /* beyond shift 14 (M >= 2^14) it saturates; 2^40 at M = 2^14 / 2 overflows int32 and saturates */
    assert_int_equal(tq_requantize64_ref(5, 1 << 30, 15), INT32_MAX);
    assert_int_equal(tq_requantize64_ref(-5, 1 << 30, 15), INT32_MIN);
    assert_int_equal(tq_requantize64_ref((int64_t)1 << 40, 1 << 30, 14), INT32_MAX);
    tq_rng r;
    tq_rng_seed(&r, 61);
    for (int i = 0; i < 200000; i++) {
        int64_t acc = (int64_t)(tq_rng_u64(&r) % ((uint64_t)1 << 44)) - ((int64_t)1 << 43);
        int32_t M0 = (1 << 30) + (int32_t)tq_rng_below(&r, 1u << 30), sh = (int32_t)tq_rng_below(&r, 46) - 31;
        int64_t want = requant_s64_cmsis(acc, M0, sh), wide = ((int64_t)acc * (M0 < 0x7FFF0000 ? (M0 + (1 << 15)) >> 16 : 0x7FFF)) >> (14 - sh);
        if (wide > INT32_MAX || wide < INT32_MIN) continue; /* CMSIS-NN's 32-bit step would wrap: outside its range */
        if (tq_requantize64_ref(acc, M0, sh) != want) fail_msg("acc %lld M0 %d shift %d: %d, CMSIS-NN's form %lld", (long long)acc, M0, sh, tq_requantize64_ref(acc, M0, sh), (long long)want);
    }
}

/* A random conv, depthwise or linear layer with a 16-bit side (act16 1, 2 or 3) and its direct
 * loops: int64 sums from int64 biases, CMSIS-NN's requantization, the clamp. */
static void sixteen_bit_layers_match_direct_loops(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 62);
    static image_store st;
    static layer_store ls;
    int64_t b64[64];
    int seen[4] = {0};
    for (int trial = 0; trial < 900; trial++) {
        int kind = trial % 3 == 0 ? TQ_S8_CONV : trial % 3 == 1 ? TQ_S8_DEPTHWISE : TQ_S8_LINEAR;
        tq_s8_layer L;
        if (kind == TQ_S8_LINEAR) random_layer(&r, &L, &ls, 1 + (int)tq_rng_below(&r, 100), 1 + (int)tq_rng_below(&r, 64), (int)tq_rng_below(&r, 2));
        else random_image_layer_g(&r, &L, &st, kind, 1);
        int act16 = 1 + (int)tq_rng_below(&r, 3), in16 = act16 & 1, out16 = act16 >> 1;
        seen[act16]++;
        int32_t *mult = kind == TQ_S8_LINEAR ? ls.m : st.m, *sh = kind == TQ_S8_LINEAR ? ls.s : st.s;
        for (int o = 0; o < L.out_c; o++) {
            b64[o] = (int64_t)(tq_rng_u64(&r) % ((uint64_t)1 << 41)) - ((int64_t)1 << 40);
            sh[o] = in16 && !out16 ? -20 - (int)tq_rng_below(&r, 8) : -4 - (int)tq_rng_below(&r, 12);
            (void)mult;
        }
        L.act16 = act16, L.bias = NULL, L.bias64 = b64;
        if (in16) L.in_zp = 0;
        if (out16) L.out_zp = 0, L.act_min = tq_rng_below(&r, 2) ? 0 : -32768, L.act_max = 32767;
        /* alone it is no network: the network's input and output are int8 */
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
        static int16_t x16[9 * 9 * 9 + 100], y16[16 * 16 * 16 + 64];
        static int8_t x8[9 * 9 * 9 + 100], y8[16 * 16 * 16 + 64];
        for (int i = 0; i < L.in; i++) {
            x16[i] = (int16_t)((int)tq_rng_below(&r, 65536) - 32768);
            x8[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        }
        const void *x = in16 ? (const void *)x16 : (const void *)x8;
        void *y = out16 ? (void *)y16 : (void *)y8;
        static int16_t patch16[5 * 5 * 9];
        assert_true(tq_s8_layer_scratch_bytes(&L) <= sizeof patch16);
        tq_s8_layer_run(&L, x, NULL, y, (int8_t *)patch16);
        int kw = L.kw ? L.kw : L.k, sw = L.kw ? L.stride_w : L.stride, pw = L.kw ? L.pad_w : L.pad, mul = L.out_c / L.in_c;
        for (int oy = 0; oy < L.out_h; oy++)
            for (int ox = 0; ox < L.out_w; ox++)
                for (int o = 0; o < L.out_c; o++) {
                    int64_t acc = b64[o];
                    for (int ky = 0; ky < L.k; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * L.stride + ky - L.pad, ix = ox * sw + kx - pw;
                            if (iy < 0 || ix < 0 || iy >= L.in_h || ix >= L.in_w) continue;
                            for (int c = 0; c < L.in_c; c++) {
                                if (kind == TQ_S8_DEPTHWISE && c != o / mul) continue;
                                int at = (iy * L.in_w + ix) * L.in_c + c;
                                int64_t xv = (in16 ? x16[at] : x8[at]) - L.in_zp;
                                int w = kind == TQ_S8_DEPTHWISE ? L.w[(ky * kw + kx) * L.out_c + o] : L.w[((o * L.k + ky) * kw + kx) * L.in_c + c];
                                acc += w * xv;
                            }
                        }
                    int64_t v = (int64_t)requant_s64_cmsis(acc, L.mult[o], L.shift[o]) + L.out_zp;
                    v = v < L.act_min ? L.act_min : v > L.act_max ? L.act_max : v;
                    int at = (oy * L.out_w + ox) * L.out_c + o;
                    int64_t got = out16 ? y16[at] : y8[at];
                    if (got != v) fail_msg("trial %d (%s, act16 %d) at %d,%d,%d: kernel %lld, direct loops %lld", trial, tq_qlayer_kind_name(kind), act16, oy, ox, o, (long long)got, (long long)v);
                }
    }
    assert_true(seen[1] > 200 && seen[2] > 200 && seen[3] > 200);
}

/* int16 pools: the max and the rounded average over int16 windows, on hand-worked values. */
static void sixteen_bit_pools_by_hand(void **state) {
    (void)state;
    const int16_t x[8] = {-30000, 12345, 7, -8, 32767, -32768, 3, 4}; /* 2x2x2: channels interleaved */
    int16_t y[2];
    tq_s8_layer L = {.in = 8, .out = 2, .act_min = -32768, .act_max = 32767, .kind = TQ_S8_MAXPOOL, .in_h = 2, .in_w = 2,
                     .in_c = 2, .out_h = 1, .out_w = 1, .out_c = 2, .k = 2, .stride = 2, .act16 = 3};
    tq_s8_layer_run(&L, (const int8_t *)x, NULL, (int8_t *)y, NULL);
    assert_int_equal(y[0], 32767);
    assert_int_equal(y[1], 12345);
    L.kind = TQ_S8_AVGPOOL; /* (-30000 + 7 + 32767 + 3) / 4 = 694.25; (12345 - 8 - 32768 + 4) / 4 = -5106.75 */
    tq_s8_layer_run(&L, (const int8_t *)x, NULL, (int8_t *)y, NULL);
    assert_int_equal(y[0], 694);
    assert_int_equal(y[1], -5107);
}

/* A chain int8 -> int16 -> int16 -> int8 through the runners (outputs of two bytes in the arena,
 * the pixels fed as int8) equals the layers run one by one; and what does not chain is refused. */
static void sixteen_bit_chain_runner(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 63);
    static layer_store st[3];
    int64_t b64[3][64];
    tq_s8_layer L[3];
    const int dims[4] = {30, 64, 40, 10};
    for (int l = 0; l < 3; l++) {
        random_layer(&r, &L[l], &st[l], dims[l], dims[l + 1], l < 2);
        for (int o = 0; o < dims[l + 1]; o++) b64[l][o] = (int64_t)tq_rng_below(&r, 2000001) - 1000000, st[l].s[o] = l == 0 ? -2 : l == 1 ? -10 : -20;
        L[l].bias = NULL, L[l].bias64 = b64[l];
    }
    L[0].act16 = 2, L[1].act16 = 3, L[2].act16 = 1;
    L[0].in_zp = -128;
    L[0].out_zp = L[1].in_zp = L[1].out_zp = L[2].in_zp = 0;
    L[0].act_min = L[1].act_min = 0, L[0].act_max = L[1].act_max = 32767;
    tq_int8_net net = {3, L};
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_OK);
    size_t need = tq_int8_net_scratch_bytes(&net), needp = tq_int8_net_predict_scratch_bytes(&net);
    assert_true(need >= 2 * (64 + 40)); /* two int16 outputs live at once */
    static int8_t scratch[4096];
    assert_true(need <= sizeof scratch && needp <= sizeof scratch);
    uint8_t px[30];
    int8_t x[30], a8[10], b8[10];
    int16_t h1[64], h2[40];
    for (int i = 0; i < 30; i++) px[i] = (uint8_t)tq_rng_below(&r, 256), x[i] = (int8_t)(px[i] - 128);
    tq_layer_s16_ref(&L[0], x, h1, NULL);
    tq_layer_s16_ref(&L[1], h1, h2, NULL);
    tq_layer_s16_ref(&L[2], h2, a8, NULL);
    assert_int_equal(tq_int8_net_run(&net, x, b8, scratch, need), TQ_INT8_OK);
    assert_memory_equal(a8, b8, 10);
    int best = 0;
    for (int c = 1; c < 10; c++) best = a8[c] > a8[best] ? c : best;
    assert_int_equal(tq_int8_net_predict_u8(&net, px, b8, scratch, needp), best);
    assert_memory_equal(a8, b8, 10);
    L[2].act16 = 0; /* reads layer 1's int16 output as int8 */
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_E_ARG);
    L[2].act16 = 3, L[2].out_zp = 0; /* the network's output int16 */
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_E_ARG);
    L[2].act16 = 1, L[0].act16 = 3; /* the network's input read as int16 */
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_E_ARG);
    L[0].act16 = 2, L[1].in_zp = 5; /* an int16 side with a zero point */
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_E_ARG);
    L[1].in_zp = 0, L[1].bias64 = NULL; /* no int64 biases */
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_E_ARG);
    L[1].bias64 = b64[1];
    assert_int_equal(tq_int8_net_check(&net), TQ_INT8_OK);
}

/* TFLite's int8 SOFTMAX (CMSIS-NN's arm_softmax_s8, runtime/int8_infer.h). By hand: one value is
 * probability 1 (256 steps, clamped to 127); two, four equal values 1/2 and 1/4 (0 and -64); at
 * s_x = ln 2 / 8 a difference of 8 steps halves the exponential, so [0, -8] is 2/3 and 1/3 (43 and
 * -43); a difference past diff_min counts as 0 (-128), its neighbour 1. The fixed-point exp
 * against exp() over its whole domain (which checks its constants). Then 3,000 random rows against
 * the softmax in double of the same int8 inputs, rounded to 1/256: never more than a step apart,
 * and the multiplier against TFLite's formula; the checker's refusals; a model through a .tqm. */
static void softmax_by_hand_and_rederivation(void **state) {
    (void)state;
    int32_t m, sh;
    tq_s8_layer L = {.in = 1, .out = 1, .mult = &m, .shift = &sh, .in_zp = 0, .out_zp = -128, .act_min = -128, .act_max = 127,
                     .kind = TQ_S8_SOFTMAX, .in_h = 1, .in_w = 1, .in_c = 1, .out_h = 1, .out_w = 1, .out_c = 1, .k = 1, .stride = 1};
    const struct { int n; float s; int8_t x[4], want[4]; } hand[] = {
        {1, 0.1f, {5}, {127}},
        {2, 0.1f, {7, 7}, {0, 0}},
        {4, 0.05f, {-3, -3, -3, -3}, {-64, -64, -64, -64}},
        {2, 0.086643398f, {20, 12}, {43, -43}}, /* ln 2 / 8 */
        {2, 1.0f, {100, -100}, {127, -128}},    /* diff_min = -15 at this scale */
    };
    for (size_t t = 0; t < sizeof hand / sizeof hand[0]; t++) {
        const int n = hand[t].n;
        assert_int_equal(tq_softmax_multiplier(hand[t].s, &m, &sh), 0);
        L.in = L.out = L.in_c = L.out_c = n;
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
        int8_t y[4];
        tq_s8_layer_run(&L, hand[t].x, NULL, y, NULL);
        for (int i = 0; i < n; i++)
            if (y[i] != hand[t].want[i]) fail_msg("case %zu, value %d: %d, by hand %d", t, i, y[i], hand[t].want[i]);
    }
    /* s = 1: M = 2^26 = 2^30 2^(27 - 31) */
    assert_int_equal(tq_softmax_multiplier(1.0f, &m, &sh), 0);
    assert_true(m == 1 << 30 && sh == 27);
    /* s 2^26 >= 2^30: shift 31, M0 = s 2^26 itself, capped at 2^31 - 1 */
    assert_int_equal(tq_softmax_multiplier(24.0f, &m, &sh), 0);
    assert_true(m == 3 << 29 && sh == 31);
    assert_int_equal(tq_softmax_multiplier(100.0f, &m, &sh), 0);
    assert_true(m == INT32_MAX && sh == 31);
    assert_int_equal(tq_softmax_multiplier(1e-9f, &m, &sh), -1); /* below 2^-26: no multiplier */
    for (int64_t a = 0; a >= -(31LL << 26); a -= 4099) { /* Q5.26 down to -31 */
        double want = exp((double)a / 67108864.0) * 2147483648.0, got = tq_exp_q31_ref((int32_t)a);
        /* four Taylor terms on |t| <= 1/8 leave (1/8)^5 / 5! = 2.5e-7 of the value, plus the roundings */
        if (fabs(got - want) > 64 + 3e-7 * want) fail_msg("exp(%g): %.0f, exp() gives %.1f", (double)a / 67108864.0, got, want);
    }
    tq_rng r;
    tq_rng_seed(&r, 91);
    int off = 0, exact = 0, total = 0;
    for (int trial = 0; trial < 3000; trial++) {
        const int n = 1 + (int)tq_rng_below(&r, trial < 100 ? 511 : 40), rows = 1 + (int)tq_rng_below(&r, 3);
        const float s = tq_rng_uniform_in(&r, 0.002f, 0.5f);
        int8_t x[3 * 511], y[3 * 511];
        for (int i = 0; i < n * rows; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        assert_int_equal(tq_softmax_multiplier(s, &m, &sh), 0);
        /* TFLite: QuantizeMultiplierGreaterThanOne(s 2^26) */
        assert_true(fabs((double)m * ldexp(1.0, sh - 31) - (double)s * 67108864.0) <= ldexp(1.0, sh - 31));
        L.in = L.out = n * rows, L.in_c = L.out_c = n, L.in_w = L.out_w = rows;
        assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
        tq_s8_layer_run(&L, x, NULL, y, NULL);
        for (int p = 0; p < rows; p++) {
            const int8_t *xr = x + p * n, *yr = y + p * n;
            int mx = -128;
            double sum = 0;
            for (int i = 0; i < n; i++) mx = xr[i] > mx ? xr[i] : mx;
            for (int i = 0; i < n; i++) sum += exp((double)s * (xr[i] - mx));
            for (int i = 0; i < n; i++) {
                double v = rint(256.0 * exp((double)s * (xr[i] - mx)) / sum) - 128;
                v = v > 127 ? 127 : v;
                int d = abs(yr[i] - (int)v);
                if (d > 1) fail_msg("row of %d at s %g, value %d: %d, in double %g", n, (double)s, i, yr[i], v);
                off += d, exact += d == 0, total++;
            }
        }
    }
    print_message("softmax: %d of %d values equal the double softmax's, %d a step away\n", exact, total, off);
    assert_true(exact >= total - total / 1000);
    /* refused: an output off TFLite's grid, a row longer than 511, a right shift, a clamp */
    assert_int_equal(tq_softmax_multiplier(0.1f, &m, &sh), 0);
    L.in = L.out = L.in_c = L.out_c = 10, L.in_w = L.out_w = 1;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_OK);
    L.out_zp = 0;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    L.out_zp = -128, L.in = L.out = L.in_c = L.out_c = 512;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    L.in = L.out = L.in_c = L.out_c = 10, sh = -1;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    assert_int_equal(tq_softmax_multiplier(0.1f, &m, &sh), 0);
    L.act_max = 100;
    assert_int_equal(tq_int8_net_check(&(tq_int8_net){1, &L}), TQ_INT8_E_ARG);
    /* a dense layer's logits, then the softmax: saved and loaded to the same bytes and outputs;
     * the loader refuses a softmax writing another grid */
    float W[20], b[2] = {0.1f, -0.2f}, sw[2] = {0.01f, 0.02f};
    for (int i = 0; i < 20; i++) W[i] = tq_rng_uniform_in(&r, -1, 1);
    tq_qlayer_src src[2] = {{.in = 10, .out = 2, .w_bits = 8, .W = W, .b = b, .w_scale = sw, .in_scale = 0.05f, .out_scale = 0.04f,
                             .in_zp = 3, .out_zp = -7},
                            {.in_scale = 0.04f, .out_scale = 1.0f / 256, .in_zp = -7, .out_zp = -128, .kind = TQ_S8_SOFTMAX, .in_h = 1,
                             .in_w = 1, .in_c = 2, .out_h = 1, .out_w = 1, .out_c = 2, .k = 1, .stride = 1}};
    tq_qmodel q, back;
    assert_int_equal(tq_qmodel_convert(&q, "10-2-softmax", src, 2), TQ_OK);
    assert_int_equal(tq_qmodel_check_scales(&q, "test"), TQ_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/softmax.tqm", dir);
    assert_int_equal(tq_qmodel_save(&q, path), TQ_OK);
    assert_int_equal(tq_qmodel_load(&back, path), TQ_OK);
    assert_true(back.layer[1].kind == TQ_S8_SOFTMAX && back.layer[1].mult[0] == q.layer[1].mult[0] &&
                back.layer[1].shift[0] == q.layer[1].shift[0]);
    int8_t x[10], y1[2], y2[2];
    for (int i = 0; i < 10; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
    size_t sb = tq_int8_net_scratch_bytes(&q.net);
    void *scratch = tq_malloc(sb);
    assert_int_equal(tq_int8_net_run(&q.net, x, y1, scratch, sb), TQ_INT8_OK);
    assert_int_equal(tq_int8_net_run(&back.net, x, y2, scratch, sb), TQ_INT8_OK);
    assert_memory_equal(y1, y2, 2);
    assert_int_equal((y1[0] + 128) + (y1[1] + 128), 256); /* two probabilities: they sum to 1 exactly or within the rounding */
    tq_free(scratch);
    tq_qmodel_free(&back);
    q.layer[1].mult[0]++; /* a multiplier its scale does not give */
    assert_int_equal(tq_qmodel_check_scales(&q, "test"), TQ_E_FORMAT);
    q.layer[1].mult[0]--;
    src[1].out_zp = 0;
    assert_int_equal(tq_qmodel_convert(&back, "10-2-softmax", src, 2), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "softmax"));
    tq_qmodel_free(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_matches_int64_rederivation),
        cmocka_unit_test(mlp_runner_contract),
        cmocka_unit_test(runner_checks_every_layer),
        cmocka_unit_test(left_shift_with_zero_point_saturates),
        cmocka_unit_test(conv_and_depthwise_match_int64_rederivation),
        cmocka_unit_test(nonsquare_and_same_match_int64_rederivation),
        cmocka_unit_test(pools_by_hand),
        cmocka_unit_test(pools_match_direct_loops),
        cmocka_unit_test(add_by_hand_and_rederivation),
        cmocka_unit_test(residual_graph_runner_contract),
        cmocka_unit_test(graph_checks),
        cmocka_unit_test(dense_graph_from_pixels),
        cmocka_unit_test(concat_by_hand),
        cmocka_unit_test(mean_by_hand_and_rederivation),
        cmocka_unit_test(softmax_by_hand_and_rederivation),
        cmocka_unit_test(requantize64_by_hand_and_cmsis),
        cmocka_unit_test(sixteen_bit_layers_match_direct_loops),
        cmocka_unit_test(sixteen_bit_pools_by_hand),
        cmocka_unit_test(sixteen_bit_chain_runner),
        cmocka_unit_test(cnn_runner_contract),
        cmocka_unit_test(fast_kernel_is_bit_identical),
        cmocka_unit_test(cnn_fast_kernels_are_bit_identical),
        cmocka_unit_test(graph_fast_kernels_are_bit_identical),
        cmocka_unit_test(depthwise_fast_kernel_is_bit_identical),
        cmocka_unit_test(packed_layers_match_int8),
        cmocka_unit_test(packed_models_match_int8),
        cmocka_unit_test_setup(kernel_available, set_avx2),
        cmocka_unit_test_setup(kernel_available, set_vnni),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
