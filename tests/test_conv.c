/* Convolution, depthwise convolution, pooling and batch norm: forward against direct loops in
 * double (odd and even kernels, stride 2, padding, channel multipliers) and hand-worked values,
 * every gradient against central finite differences. A wrong index, stride or padding changes
 * the forward against the reference; a wrong backward fails the finite differences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/relu.h"
#include "src/alloc.h"
#include "src/fake_quant.h"

#include "tests/tq_gradcheck.h"

static float *rnd(tq_rng *r, size_t n, float lo, float hi) {
    float *a = tq_malloc(n * sizeof(float));
    fill(r, a, n, lo, hi);
    return a;
}

static int use_im2col; /* check_conv's path: im2col (1) or the direct kernels where they run (0) */

/* The op against tq_conv2d_ref and finite differences on shape s */
static void check_conv_shape(int B, tq_conv_shape s, int bias) {
    const int H = s.H, W = s.W, C = s.C, KH = s.KH, KW = s.KW, stride = s.stride, pad = s.pad, OC = s.OC, depthwise = s.depthwise;
    s.im2col = use_im2col;
    tq_rng r;
    tq_rng_seed(&r, (uint64_t)(H * 1000 + KH * 10 + stride));
    const int K = KH;
    int KK = KH * KW * (depthwise ? 1 : C);
    size_t nx = (size_t)B * H * W * C, nw = (size_t)OC * KK, ny = (size_t)B * s.OH * s.OW * OC;
    float *x = rnd(&r, nx, -1, 1), *w = rnd(&r, nw, -1, 1), *b = rnd(&r, (size_t)OC, -1, 1), *R = rnd(&r, ny, -1, 1);
    float *dx = tq_calloc(nx, sizeof(float)), *dw = tq_calloc(nw, sizeof(float)), *db = tq_calloc((size_t)OC, sizeof(float));
    float *yref = tq_malloc(ny * sizeof(float));
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", B, H * W * C, x, dx), *wn = tq_leaf(g, "W", OC, KK, w, dw);
    tq_node *bn = bias ? tq_leaf(g, "b", 1, OC, b, db) : NULL;
    tq_node *y = tq_conv2d(g, xn, wn, bn, &s);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    assert_int_equal(tq_graph_status(g), TQ_OK);
    assert_int_equal(y->cols, s.OH * s.OW * OC);
    assert_int_equal(tq_graph_forward(g, 1), TQ_OK);
    tq_conv2d_ref(yref, x, w, bias ? b : NULL, B, &s);
    for (size_t i = 0; i < ny; i++)
        if (fabsf(y->val[i] - yref[i]) > 1e-5f) fail_msg("conv %dx%dx%d k%d s%d p%d: y[%zu] = %g, reference %g", H, W, C, K, stride, pad, i,
                                                       (double)y->val[i], (double)yref[i]);
    assert_true(gradcheck(g, L, x, dx, nx) <= 0);
    assert_true(gradcheck(g, L, w, dw, nw) <= 0);
    if (bias) assert_true(gradcheck(g, L, b, db, (size_t)OC) <= 0);
    tq_graph_free(g);
    void *all[] = {x, w, b, R, dx, dw, db, yref};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tq_free(all[i]);
}

/* A KH x KW kernel, padding pad (rows) and pad_w (columns) */
static void check_conv_hw(int B, int H, int W, int C, int KH, int KW, int stride, int pad, int pad_w, int OC, int depthwise, int bias) {
    tq_conv_shape s;
    assert_int_equal(tq_conv_shape_init_hw(&s, H, W, C, KH, KW, stride, pad, pad_w, OC, depthwise), TQ_OK);
    check_conv_shape(B, s, bias);
}

/* TFLite's SAME padding: the odd row and column after */
static void check_conv_same(int B, int H, int W, int C, int KH, int KW, int stride, int OC, int depthwise, int bias) {
    tq_conv_shape s;
    assert_int_equal(tq_conv_shape_init_same(&s, H, W, C, KH, KW, stride, stride, OC, depthwise), TQ_OK);
    assert_true(s.OH == (H + stride - 1) / stride && s.OW == (W + stride - 1) / stride);
    check_conv_shape(B, s, bias);
}

/* strides of their own down (sh) and across (sw); SAME with them when pad < 0 */
static void check_conv_strides(int B, int H, int W, int C, int KH, int KW, int sh, int sw, int pad, int pad_w, int OC, int depthwise) {
    tq_conv_shape s;
    if (pad < 0) assert_int_equal(tq_conv_shape_init_same(&s, H, W, C, KH, KW, sh, sw, OC, depthwise), TQ_OK);
    else assert_int_equal(tq_conv_shape_init_strides(&s, H, W, C, KH, KW, sh, sw, pad, pad_w, OC, depthwise), TQ_OK);
    assert_true(s.stride == sh && s.stride_w == sw);
    if (pad < 0) assert_true(s.OH == (H + sh - 1) / sh && s.OW == (W + sw - 1) / sw);
    else assert_true(s.OH == (H + 2 * pad - KH) / sh + 1 && s.OW == (W + 2 * pad_w - KW) / sw + 1);
    check_conv_shape(B, s, 1);
}

static void check_conv(int B, int H, int W, int C, int K, int stride, int pad, int OC, int depthwise, int bias) {
    check_conv_hw(B, H, W, C, K, K, stride, pad, pad, OC, depthwise, bias);
}

/* Both paths: im2col + SGEMM, and the direct kernels where this CPU has AVX-512. */
static void conv_matches_reference_and_gradients(void **state) {
    (void)state;
    for (int direct = 0; direct <= 1; direct++) {
        use_im2col = !direct;
        check_conv(2, 7, 6, 3, 3, 1, 1, 4, 0, 1);   /* odd kernel, padding */
        check_conv(2, 8, 9, 2, 4, 2, 0, 5, 0, 0);   /* even kernel, stride 2, no bias */
        check_conv(1, 9, 9, 1, 5, 2, 2, 3, 0, 1);   /* one input channel, stride and padding */
        check_conv(2, 5, 4, 3, 1, 1, 0, 2, 0, 1);   /* 1x1 */
        check_conv(3, 6, 13, 2, 3, 1, 0, 17, 0, 1); /* 11 outputs a row (8 + 1 + 1 + 1), 17 channels (16 + 1) */
        check_conv(2, 5, 7, 2, 3, 1, 0, 8, 0, 1);   /* 8 channels (pixel pairs), 5 outputs a row (2 pairs + 1) */
        check_conv(2, 6, 7, 3, 3, 2, 1, 6, 1, 1);   /* depthwise, multiplier 2, stride 2, padding */
        check_conv(1, 5, 5, 4, 2, 1, 0, 4, 1, 0);   /* depthwise, even kernel */
        /* k x kw kernels, padding per axis: DS-CNN's 10x4 first layer (stride 2) on a small image,
         * a 5x3 on two channels, a 3x1 depthwise, a 1x3 with column padding only */
        check_conv_hw(2, 12, 6, 1, 10, 4, 2, 4, 1, 3, 0, 1);
        check_conv_hw(2, 9, 7, 2, 5, 3, 2, 2, 1, 4, 0, 1);
        check_conv_hw(2, 6, 5, 3, 3, 1, 1, 1, 0, 3, 1, 1);
        check_conv_hw(1, 4, 6, 2, 1, 3, 1, 0, 1, 5, 0, 0);
        /* SAME: 3x3 stride 2 on an even image (none above, one below), a 4x4 stride 2 on an odd one
         * (1 and 2), a 10x4 stride 2 (4 and 5 rows, 1 and 1 columns: MLPerf's DS-CNN on 49x10
         * scaled down), a depthwise 3x3 stride 2, a 2x2 stride 1 (none before, one after) */
        check_conv_same(2, 8, 6, 2, 3, 3, 2, 4, 0, 1);
        check_conv_same(2, 7, 9, 3, 4, 4, 2, 5, 0, 1);
        check_conv_same(1, 13, 6, 1, 10, 4, 2, 3, 0, 1);
        check_conv_same(2, 6, 8, 3, 3, 3, 2, 3, 1, 1);
        check_conv_same(2, 5, 5, 2, 2, 2, 1, 3, 0, 0);
        /* strides of their own: 2 down and 1 across (a spectrogram's time and frequency), 1 and 3,
         * depthwise 2x1, SAME with 1 and 2, one input channel (the transposed im2col) 3 and 2 */
        check_conv_strides(2, 9, 8, 2, 3, 3, 2, 1, 1, 1, 4, 0);
        check_conv_strides(2, 6, 11, 3, 3, 3, 1, 3, 0, 1, 5, 0);
        check_conv_strides(2, 8, 7, 3, 3, 3, 2, 1, 1, 1, 3, 1);
        check_conv_strides(2, 9, 10, 2, 4, 3, 1, 2, -1, 0, 4, 0);
        check_conv_strides(1, 11, 9, 1, 5, 3, 3, 2, 2, 1, 3, 0);
    }
    use_im2col = 0;
}

/* y, dx, dW and db of one convolution on random data, by the current path */
static void conv_run(const tq_conv_shape *s, int B, const float *x, const float *w, const float *b, const float *R, float *y, float *dx,
                     float *dw, float *db) {
    const int KK = s->KH * s->KW * s->C;
    memset(dx, 0, (size_t)B * s->H * s->W * s->C * sizeof(float));
    memset(dw, 0, (size_t)s->OC * KK * sizeof(float));
    memset(db, 0, (size_t)s->OC * sizeof(float));
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", B, s->H * s->W * s->C, (float *)x, dx), *wn = tq_leaf(g, "W", s->OC, KK, (float *)w, dw);
    tq_node *yn = tq_conv2d(g, xn, wn, tq_leaf(g, "b", 1, s->OC, (float *)b, db), s);
    tq_node *L = tq_graph_apply(g, &op_wsum, (void *)R, 1, &yn);
    assert_int_equal(tq_graph_status(g), TQ_OK);
    assert_int_equal(tq_graph_forward(g, 1), TQ_OK);
    assert_int_equal(tq_graph_backward(g, L), TQ_OK);
    memcpy(y, yn->val, tq_node_numel(yn) * sizeof(float));
    tq_graph_free(g);
}

static void close_to(const char *what, const float *a, const float *b, size_t n, const tq_conv_shape *s) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i])))
            fail_msg("%s[%zu]: direct %g, im2col %g (image %dx%dx%d, k%d s%d p%d, %d channels)", what, i, (double)a[i], (double)b[i], s->H,
                     s->W, s->C, s->KH, s->stride, s->pad, s->OC);
}

/* The direct kernels against im2col + SGEMM on shapes too wide for finite differences: kernel rows
 * longer than the 64 floats the data kernel takes at once, channel blocks with masked tails, 8-,
 * 4- and 1-pixel blocks, 8-channel layers (pixel pairs) with odd rows, DigitsCNN's two layers. Both paths give every output and gradient. */
static void direct_matches_im2col(void **state) {
    (void)state;
    tq_conv_shape probe;
    assert_int_equal(tq_conv_shape_init(&probe, 4, 4, 1, 3, 1, 0, 1, 0), TQ_OK);
    if (!tq_conv_direct(&probe)) skip(); /* no AVX-512 here: only im2col runs */
    const int shapes[][10] = {
        /* B  H   W   C  KH KW s p pw OC */
        {5, 28, 28, 1, 5, 5, 1, 0, 0, 8},   {5, 12, 12, 8, 5, 5, 1, 0, 0, 16}, {3, 7, 13, 22, 3, 3, 1, 1, 1, 20},
        {3, 9, 9, 3, 3, 3, 2, 1, 1, 8},     {2, 5, 38, 2, 3, 3, 1, 0, 0, 8}, /* 8 channels, paired: odd rows of 5 and 36 */
        {2, 9, 10, 5, 4, 4, 2, 2, 2, 33},   {4, 6, 6, 70, 1, 1, 1, 0, 0, 3},   {3, 11, 7, 3, 3, 3, 3, 1, 1, 16},
        {3, 28, 28, 1, 10, 4, 2, 4, 1, 64}, /* DS-CNN's first layer on MNIST */
        {2, 9, 12, 6, 3, 5, 1, 0, 2, 24},
        /* SAME (pw = -1, p the stride across): the padded image one row and column longer below and
         * right; then strides of their own, 2 down and 1 across, 1 and 2 */
        {3, 28, 28, 1, 3, 3, 2, 2, -1, 16}, {2, 49, 10, 1, 10, 4, 2, 2, -1, 64}, {2, 13, 11, 8, 3, 3, 2, 2, -1, 24},
        {2, 20, 19, 6, 3, 3, 2, 1, -1, 20}, {2, 12, 30, 3, 5, 3, 1, 2, -1, 17},
    };
    tq_rng r;
    tq_rng_seed(&r, 77);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        const int *v = shapes[t], B = v[0];
        tq_conv_shape s;
        if (v[8] < 0) assert_int_equal(tq_conv_shape_init_same(&s, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[9], 0), TQ_OK);
        else assert_int_equal(tq_conv_shape_init_hw(&s, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], 0), TQ_OK);
        size_t nx = (size_t)B * s.H * s.W * s.C, nw = (size_t)s.OC * s.KH * s.KW * s.C, ny = (size_t)B * s.OH * s.OW * s.OC;
        float *x = rnd(&r, nx, -1, 1), *w = rnd(&r, nw, -1, 1), *b = rnd(&r, (size_t)s.OC, -1, 1), *R = rnd(&r, ny, -1, 1);
        float *out[2][4];
        for (int d = 0; d < 2; d++) {
            out[d][0] = tq_malloc(ny * sizeof(float)), out[d][1] = tq_malloc(nx * sizeof(float));
            out[d][2] = tq_malloc(nw * sizeof(float)), out[d][3] = tq_malloc((size_t)s.OC * sizeof(float));
            s.im2col = !d;
            assert_int_equal(tq_conv_direct(&s), d);
            conv_run(&s, B, x, w, b, R, out[d][0], out[d][1], out[d][2], out[d][3]);
        }
        close_to("y", out[1][0], out[0][0], ny, &s);
        close_to("dx", out[1][1], out[0][1], nx, &s);
        close_to("dW", out[1][2], out[0][2], nw, &s);
        close_to("db", out[1][3], out[0][3], (size_t)s.OC, &s);
        for (int d = 0; d < 2; d++)
            for (int i = 0; i < 4; i++) tq_free(out[d][i]);
        tq_free(x), tq_free(w), tq_free(b), tq_free(R);
    }
}

/* A 1-channel 3x3 image, 2x2 kernel, stride 1, padding 1, by hand:
 *   x = 1 2 3     W = 1 0     y[oy][ox] = sum W[ky][kx] x[oy + ky - 1][ox + kx - 1], output 4x4
 *       4 5 6         0 -1    y[0][0] = x[0][0] W[1][1] (only that tap is inside) = -1
 *       7 8 9                 y[1][1] = x[0][0] - x[1][1] = 1 - 5 = -4, y[3][3] = x[2][2] = 9 */
static void conv_by_hand(void **state) {
    (void)state;
    tq_conv_shape s;
    /* SAME by hand: 28 rows, k3 s2 -> 14 outputs, (14 - 1) 2 + 3 - 28 = 1 row of padding, after;
     * MLPerf's DS-CNN, 49x10, k10x4 s2 -> 25x5: 9 rows (4 above, 5 below), 2 columns (1 and 1) */
    assert_int_equal(tq_conv_shape_init_same(&s, 28, 28, 1, 3, 3, 2, 2, 8, 0), TQ_OK);
    assert_true(s.OH == 14 && s.OW == 14 && s.pad == 0 && s.pad_b == 1 && s.pad_w == 0 && s.pad_r == 1);
    assert_int_equal(tq_conv_shape_init_same(&s, 49, 10, 1, 10, 4, 2, 2, 64, 0), TQ_OK);
    assert_true(s.OH == 25 && s.OW == 5 && s.pad == 4 && s.pad_b == 5 && s.pad_w == 1 && s.pad_r == 1);
    /* 2x2 stride 1 on 3x3, SAME: y[2][2] reads x[2][2] and the padding after: W[0][0] x[2][2] = 9 */
    assert_int_equal(tq_conv_shape_init_same(&s, 3, 3, 1, 2, 2, 1, 1, 1, 0), TQ_OK);
    assert_true(s.OH == 3 && s.pad == 0 && s.pad_b == 1);
    {
        float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 0, 0, -1}, y[9];
        tq_conv2d_ref(y, x, w, NULL, 1, &s);
        assert_float_equal(y[0], 1.0f - 5.0f, 0);
        assert_float_equal(y[8], 9.0f, 0);
    }
    assert_int_equal(tq_conv_shape_init(&s, 3, 3, 1, 2, 1, 1, 1, 0), TQ_OK);
    assert_int_equal(s.OH, 4);
    float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 0, 0, -1}, y[16];
    tq_conv2d_ref(y, x, w, NULL, 1, &s);
    assert_float_equal(y[0], -1.0f, 0);
    assert_float_equal(y[1 * 4 + 1], -4.0f, 0);
    assert_float_equal(y[3 * 4 + 3], 9.0f, 0);
    assert_float_equal(y[0 * 4 + 3], 0.0f, 0); /* top right: only W[1][0] = 0 lands inside, on x[0][2] */
    assert_float_equal(y[2 * 4 + 1], 4.0f - 8.0f, 0); /* x[1][0] W[0][0] + x[2][1] W[1][1] */
}

static void shapes_are_checked(void **state) {
    (void)state;
    tq_conv_shape s;
    assert_int_equal(tq_conv_shape_init(&s, 4, 4, 1, 5, 1, 0, 8, 0), TQ_E_SHAPE); /* kernel larger than the image */
    assert_non_null(strstr(tq_last_error(), "does not fit"));
    assert_int_equal(tq_conv_shape_init(&s, 4, 4, 1, 5, 1, 1, 8, 0), TQ_OK);    /* padding makes it fit */
    assert_int_equal(tq_conv_shape_init(&s, 4, 4, 3, 3, 1, 0, 4, 1), TQ_E_SHAPE); /* depthwise 4 of 3 channels */
    tq_pool_shape p;
    assert_int_equal(tq_pool_shape_init(&p, 1, 1, 8, 2, 2, 0), TQ_E_SHAPE);      /* a pool that leaves nothing */
    /* an op refuses inputs that are not the image its shape says */
    assert_int_equal(tq_conv_shape_init(&s, 4, 4, 2, 3, 1, 0, 2, 0), TQ_OK);
    tq_graph *g = tq_graph_new();
    float x[2 * 30], w[2 * 18];
    tq_node *y = tq_conv2d(g, tq_leaf(g, "x", 2, 30, x, NULL), tq_leaf(g, "W", 2, 18, w, NULL), NULL, &s);
    assert_null(y);
    assert_int_equal(tq_graph_status(g), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "input rows have 30 values"));
    tq_graph_free(g);
}

/* 4x4, 1 channel, 2x2 windows, stride 2:
 *   1  2  5  6      max: 4 8      avg: 2.5  6.5
 *   3  4  7  8           12 16         10.5 14.5
 *   9 10 13 14
 *  11 12 15 16 */
static void pools_by_hand_and_gradients(void **state) {
    (void)state;
    float x[16] = {1, 2, 5, 6, 3, 4, 7, 8, 9, 10, 13, 14, 11, 12, 15, 16};
    const float want[2][4] = {{4, 8, 12, 16}, {2.5f, 6.5f, 10.5f, 14.5f}};
    for (int avg = 0; avg < 2; avg++) {
        tq_pool_shape p;
        assert_int_equal(tq_pool_shape_init(&p, 4, 4, 1, 2, 2, avg), TQ_OK);
        tq_graph *g = tq_graph_new();
        tq_node *y = tq_pool2d(g, tq_leaf(g, "x", 1, 16, x, NULL), &p);
        assert_int_equal(tq_graph_forward(g, 0), TQ_OK);
        for (int i = 0; i < 4; i++) assert_float_equal(y->val[i], want[avg][i], 0);
        tq_graph_free(g);
    }
    /* gradients: 2 images, 3 channels, 5x5, 3x3 windows, stride 2 (overlapping); distinct values
     * at least 0.05 apart so a +-0.01 step never changes which one is the maximum */
    tq_rng r;
    tq_rng_seed(&r, 5);
    enum { N = 2 * 5 * 5 * 3 };
    float xs[N], dx[N], R[2 * 2 * 2 * 3];
    for (int i = 0; i < N; i++) xs[i] = 0.05f * (float)i - 3.0f;
    tq_rng_shuffle_u32(&r, (uint32_t *)(void *)xs, N); /* permute the values (as bit patterns) */
    fill(&r, R, sizeof R / sizeof R[0], -1, 1);
    for (int avg = 0; avg < 2; avg++) {
        tq_pool_shape p;
        assert_int_equal(tq_pool_shape_init(&p, 5, 5, 3, 3, 2, avg), TQ_OK);
        tq_graph *g = tq_graph_new();
        tq_node *y = tq_pool2d(g, tq_leaf(g, "x", 2, 75, xs, dx), &p);
        tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
        assert_int_equal(y->cols, 2 * 2 * 3);
        assert_true(gradcheck(g, L, xs, dx, N) <= 0);
        tq_graph_free(g);
    }
    /* a global average pool of a non-square image (3x5, 3 channels): the mean by hand, and its
     * gradient, every input's dy / 15 */
    {
        tq_pool_shape p;
        assert_int_equal(tq_pool_shape_global(&p, 3, 5, 3), TQ_OK);
        assert_true(p.OH == 1 && p.OW == 1 && p.K == 3 && p.KW == 5);
        float xg[2 * 45], dxg[2 * 45], Rg[6];
        fill(&r, xg, 90, -1, 1);
        fill(&r, Rg, 6, -1, 1);
        tq_graph *g = tq_graph_new();
        tq_node *y = tq_pool2d(g, tq_leaf(g, "x", 2, 45, xg, dxg), &p);
        tq_node *L = tq_graph_apply(g, &op_wsum, Rg, 1, &y);
        assert_int_equal(tq_graph_forward(g, 0), TQ_OK);
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++) {
                double mean = 0;
                for (int i = 0; i < 15; i++) mean += xg[b * 45 + i * 3 + c] / 15.0;
                assert_float_equal(y->val[b * 3 + c], (float)mean, 1e-6f);
            }
        assert_true(gradcheck(g, L, xg, dxg, 90) <= 0);
        tq_graph_free(g);
    }
    /* ties: the gradient goes to the window's first maximum only (row by row), as PyTorch does */
    float xt[8] = {3, 7, 7, 7, /* channel-interleaved: 2x2 image of 2 channels */ 1, 7, 2, 7}, dxt[8] = {0};
    float Rt[2] = {1.5f, -2.0f};
    tq_pool_shape pt;
    assert_int_equal(tq_pool_shape_init(&pt, 2, 2, 2, 2, 2, 0), TQ_OK);
    tq_graph *gt = tq_graph_new();
    tq_node *yt = tq_pool2d(gt, tq_leaf(gt, "x", 1, 8, xt, dxt), &pt);
    tq_node *Lt = tq_graph_apply(gt, &op_wsum, Rt, 1, &yt);
    assert_int_equal(tq_graph_forward(gt, 1), TQ_OK);
    assert_int_equal(tq_graph_backward(gt, Lt), TQ_OK);
    const float want_dx[8] = {0, -2.0f, 1.5f, 0, 0, 0, 0, 0}; /* channel 0: 3 7 1 2 -> tap 1; channel 1: 7 7 7 7 -> tap 0 */
    for (int i = 0; i < 8; i++) assert_float_equal(dxt[i], want_dx[i], 0);
    tq_graph_free(gt);
    /* behind another op (a ReLU of positive values: the identity) the pool assigns its input's
     * gradient instead of adding to it: a 2x2 pool tiling a 6x4 image writes every value, one of
     * a 5x5 image (the last row and column in no window) zeros first; both by finite differences */
    const int sizes[2][2] = {{6, 4}, {5, 5}};
    for (int k = 0; k < 2; k++) {
        const int H = sizes[k][0], W = sizes[k][1], n = 2 * H * W * 2;
        float xa[2 * 6 * 5 * 2], dxa[2 * 6 * 5 * 2], Ra[2 * 3 * 2 * 2];
        for (int i = 0; i < n; i++) xa[i] = 0.5f + 0.05f * (float)i;
        tq_rng_shuffle_u32(&r, (uint32_t *)(void *)xa, (uint32_t)n);
        fill(&r, Ra, sizeof Ra / sizeof Ra[0], -1, 1);
        tq_pool_shape p;
        assert_int_equal(tq_pool_shape_init(&p, H, W, 2, 2, 2, 0), TQ_OK);
        tq_graph *g = tq_graph_new();
        tq_node *h = tq_relu(g, tq_leaf(g, "x", 2, H * W * 2, xa, dxa));
        tq_node *y = tq_pool2d(g, h, &p);
        assert_true(TQ_GRAD_ASSIGNED(h));
        tq_node *L = tq_graph_apply(g, &op_wsum, Ra, 1, &y);
        assert_true(gradcheck(g, L, xa, dxa, (size_t)n) <= 0);
        tq_graph_free(g);
    }
}

/* Training mode: per channel, mean 0 and variance 1 after the norm (gamma 1, beta 0), and the
 * running statistics move by momentum 0.1 towards the batch's (variance unbiased). By hand for
 * channel 0 of x = {1, 3} (B = 2, S = 1): mean 2, biased var 1, unbiased 2:
 * running mean 0 + 0.1 (2 - 0) = 0.2, running var 1 + 0.1 (2 - 1) = 1.1. */
static void batchnorm_statistics(void **state) {
    (void)state;
    float x[4] = {1, -1, 3, 5}, gamma[2] = {1, 1}, beta[2] = {0, 0}, rm[2], rv[2];
    tq_bn bn;
    tq_bn_init(&bn, 2, rm, rv);
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_batchnorm(g, tq_leaf(g, "x", 2, 2, x, NULL), tq_leaf(g, "g", 1, 2, gamma, NULL),
                              tq_leaf(g, "b", 1, 2, beta, NULL), &bn);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    float e = 1.0f / sqrtf(1.0f + 1e-5f); /* (x - mean) / sqrt(var + eps) for |x - mean| = 1, var 1 */
    assert_float_equal(y->val[0], -e, 1e-6f);
    assert_float_equal(y->val[2], e, 1e-6f);
    assert_float_equal(rm[0], 0.2f, 1e-6f);
    assert_float_equal(rv[0], 1.1f, 1e-6f);
    assert_float_equal(rm[1], 0.2f, 1e-6f);  /* channel 1: {-1, 5}: mean 2, var 9, unbiased 18 */
    assert_float_equal(rv[1], 2.7f, 1e-6f);  /* 1 + 0.1 (18 - 1) */
    /* evaluation: the running statistics, and nothing moves */
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    assert_float_equal(y->val[0], (1.0f - 0.2f) / sqrtf(1.1f + 1e-5f), 1e-6f);
    assert_float_equal(rm[0], 0.2f, 1e-6f);
    /* frozen: training runs use the running statistics too, and leave them */
    bn.frozen = 1;
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    assert_float_equal(y->val[0], (1.0f - 0.2f) / sqrtf(1.1f + 1e-5f), 1e-6f);
    assert_float_equal(rv[0], 1.1f, 1e-6f);
    tq_graph_free(g);
}

/* B rows of S positions of C channels; rows of 16 values (C = 4, S = 4) take the 16-lane passes */
static void check_bn_gradients(int B, int S, int C) {
    enum { MAXN = 64, MAXC = 4 };
    const int N = B * S * C;
    assert_true(N <= MAXN && C <= MAXC);
    tq_rng r;
    tq_rng_seed(&r, 9);
    float x[MAXN], dx[MAXN], gamma[MAXC], dg[MAXC], beta[MAXC], db[MAXC], R[MAXN], rm[MAXC], rv[MAXC];
    fill(&r, x, N, -2, 2);
    fill(&r, gamma, C, 0.5f, 1.5f);
    fill(&r, beta, C, -1, 1);
    fill(&r, R, N, -1, 1);
    tq_bn bn;
    tq_bn_init(&bn, C, rm, rv);
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_batchnorm(g, tq_leaf(g, "x", B, S * C, x, dx), tq_leaf(g, "g", 1, C, gamma, dg), tq_leaf(g, "b", 1, C, beta, db), &bn);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    for (int mode = TQ_RUN_EVAL; mode <= TQ_RUN_TRAIN; mode++) { /* batch statistics, then running ones */
        assert_true(gradcheck_mode(g, L, x, dx, N, mode) <= 0);
        assert_true(gradcheck_mode(g, L, gamma, dg, C, mode) <= 0);
        assert_true(gradcheck_mode(g, L, beta, db, C, mode) <= 0);
        for (int c = 0; c < C; c++) rv[c] = 0.5f + (float)c, rm[c] = 0.1f * (float)c; /* away from the init */
    }
    tq_graph_free(g);
}

static void batchnorm_gradients(void **state) {
    (void)state;
    check_bn_gradients(3, 4, 3);
    check_bn_gradients(3, 4, 4);
}

/* batchnorm_relu is relu(batchnorm(x)) in one op: the same outputs and gradients as the two ops
 * (each checked by finite differences above), in training and evaluation, with uneven slices. */
static void check_bn_relu(int B, int S, int C) {
    enum { MAXN = 80, MAXC = 4 };
    const int N = B * S * C;
    assert_true(N <= MAXN && C <= MAXC);
    tq_rng r;
    tq_rng_seed(&r, 21);
    float x[MAXN], gamma[MAXC], beta[MAXC], R[MAXN], rm[2][MAXC], rv[2][MAXC], dx[2][MAXN], dg[2][MAXC], db[2][MAXC], y[2][MAXN];
    fill(&r, x, N, -2, 2);
    fill(&r, gamma, C, 0.5f, 1.5f);
    fill(&r, beta, C, -0.3f, 0.3f);
    fill(&r, R, N, -1, 1);
    for (int mode = TQ_RUN_EVAL; mode <= TQ_RUN_TRAIN; mode++) {
        for (int fused = 0; fused < 2; fused++) {
            tq_bn bn;
            tq_bn_init(&bn, C, rm[fused], rv[fused]);
            for (int c = 0; c < C; c++) rv[fused][c] = 0.5f + (float)c, rm[fused][c] = 0.3f * (float)c;
            memset(dx[fused], 0, sizeof dx[fused]), memset(dg[fused], 0, sizeof dg[fused]), memset(db[fused], 0, sizeof db[fused]);
            tq_graph *g = tq_graph_new();
            tq_node *in[3] = {tq_leaf(g, "x", B, S * C, x, dx[fused]), tq_leaf(g, "g", 1, C, gamma, dg[fused]),
                              tq_leaf(g, "b", 1, C, beta, db[fused])};
            tq_node *yn = fused ? tq_batchnorm_relu(g, in[0], in[1], in[2], &bn) : tq_relu(g, tq_batchnorm(g, in[0], in[1], in[2], &bn));
            tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &yn);
            assert_int_equal(tq_graph_forward(g, mode), TQ_OK);
            assert_int_equal(tq_graph_backward(g, L), TQ_OK);
            memcpy(y[fused], yn->val, (size_t)N * sizeof(float));
            tq_graph_free(g);
        }
        int zeros = 0;
        for (int i = 0; i < N; i++) {
            zeros += y[1][i] == 0.0f;
            assert_float_equal(y[1][i], y[0][i], 1e-6f);
            assert_float_equal(dx[1][i], dx[0][i], 1e-6f);
        }
        if (!(zeros > N / 5 && zeros < N - N / 5)) fail_msg("mode %d: %d of %d zero", mode, zeros, N); /* the ReLU cuts some, not all */
        for (int c = 0; c < C; c++) {
            assert_float_equal(dg[1][c], dg[0][c], 1e-5f);
            assert_float_equal(db[1][c], db[0][c], 1e-5f);
            assert_float_equal(rm[1][c], rm[0][c], 1e-7f);
            assert_float_equal(rv[1][c], rv[0][c], 1e-7f);
        }
    }
}

static void batchnorm_relu_is_the_composition(void **state) {
    (void)state;
    check_bn_relu(5, 4, 3);
    check_bn_relu(5, 4, 4); /* rows of 16 values: the 16-lane passes */
}

/* The fold: W' = W * s per row, y' = y / s per channel column, s = gamma / sqrt(var + eps). */
static void bn_fold_gradients(void **state) {
    (void)state;
    enum { OC = 3, K = 4, B = 2 };
    tq_rng r;
    tq_rng_seed(&r, 12);
    float W[OC * K], dW[OC * K], y[B * 2 * OC], dy[B * 2 * OC], gamma[OC], dg[OC], R1[OC * K], R2[B * 2 * OC], rm[OC], rv[OC];
    fill(&r, W, OC * K, -1, 1);
    fill(&r, y, B * 2 * OC, -1, 1);
    fill(&r, gamma, OC, 0.5f, 1.5f);
    fill(&r, R1, OC * K, -1, 1);
    fill(&r, R2, B * 2 * OC, -1, 1);
    tq_bn bn;
    tq_bn_init(&bn, OC, rm, rv);
    for (int c = 0; c < OC; c++) rv[c] = 0.3f + 0.4f * (float)c;
    tq_graph *g = tq_graph_new();
    tq_node *gn = tq_leaf(g, "g", 1, OC, gamma, dg);
    tq_node *Wf = tq_bn_fold_weights(g, tq_leaf(g, "W", OC, K, W, dW), gn, &bn);
    tq_node *yu = tq_bn_unfold_output(g, tq_leaf(g, "y", B, 2 * OC, y, dy), gn, &bn);
    tq_node *L1 = tq_graph_apply(g, &op_wsum, R1, 1, &Wf), *L2 = tq_graph_apply(g, &op_wsum, R2, 1, &yu);
    assert_int_equal(tq_graph_forward(g, 0), TQ_OK);
    assert_float_equal(Wf->val[1 * K + 2], W[1 * K + 2] * gamma[1] / sqrtf(rv[1] + 1e-5f), 1e-6f);
    assert_float_equal(yu->val[OC + 2], y[OC + 2] * sqrtf(rv[2] + 1e-5f) / gamma[2], 1e-5f);
    assert_true(gradcheck(g, L1, W, dW, OC * K) <= 0);
    assert_true(gradcheck(g, L1, gamma, dg, OC) <= 0);
    assert_true(gradcheck(g, L2, y, dy, B * 2 * OC) <= 0);
    assert_true(gradcheck(g, L2, gamma, dg, OC) <= 0);
    tq_graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_matches_reference_and_gradients), cmocka_unit_test(direct_matches_im2col),
        cmocka_unit_test(conv_by_hand),
        cmocka_unit_test(shapes_are_checked),                   cmocka_unit_test(pools_by_hand_and_gradients),
        cmocka_unit_test(batchnorm_statistics),                 cmocka_unit_test(batchnorm_gradients),
        cmocka_unit_test(batchnorm_relu_is_the_composition),
        cmocka_unit_test(bn_fold_gradients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
