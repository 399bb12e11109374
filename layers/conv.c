#include "layers/conv.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "layers/conv_direct.h"
#include "src/ops.h"
#include "src/parallel.h"
#include "src/simd.h"

/* pad and pad_w before, pad_b and pad_r after (at most one more: the integer path's rule) */
static tq_status shape_init(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int stride_w, int pad, int pad_w,
                            int pad_b, int pad_r, int OC, int depthwise) {
    memset(s, 0, sizeof *s);
    if (H < 1 || W < 1 || C < 1 || KH < 1 || KW < 1 || stride < 1 || stride_w < 1 || pad < 0 || pad_w < 0 || OC < 1)
        TQ_FAIL(TQ_E_SHAPE, "convolution: sizes must be positive (image %dx%dx%d, kernel %dx%d, stride %d, pad %dx%d, %d channels)",
                H, W, C, KH, KW, stride, pad, pad_w, OC);
    if (C > 4096) TQ_FAIL(TQ_E_SHAPE, "convolution: %d input channels (at most 4096)", C);
    if (KH > (long)H + pad + pad_b || KW > (long)W + pad_w + pad_r)
        TQ_FAIL(TQ_E_SHAPE, "convolution: a %dx%d kernel does not fit a %dx%d image with padding %dx%d", KH, KW, H, W, pad, pad_w);
    /* a window of padding alone; the integer path takes padding <= K - 1 (runtime/int8_infer.h) */
    if (pad_b >= KH || pad_r >= KW)
        TQ_FAIL(TQ_E_SHAPE, "convolution: padding %d needs a kernel larger than %d (this one has %d: at most kernel - 1)",
                pad_b >= KH ? pad_b : pad_r, pad_b >= KH ? pad_b : pad_r, pad_b >= KH ? KH : KW);
    if (depthwise && OC % C)
        TQ_FAIL(TQ_E_SHAPE, "depthwise convolution: %d output channels is not a multiple of the %d input channels", OC, C);
    /* at most 2^24 values in and out, checked factor by factor so that no product overflows */
    const long most = 1L << 24;
    if (KH > 64 || KW > 64 || OC > 4096 || H > most || W > most / H || C > most / ((long)H * W))
        TQ_FAIL(TQ_E_SHAPE, "convolution: kernel %dx%d, image %dx%dx%d or %d channels is more than tinyqat takes", KH, KW, H, W, C, OC);
    if (stride > 64 || stride_w > 64) TQ_FAIL(TQ_E_SHAPE, "convolution: stride %dx%d (at most 64)", stride, stride_w);
    const long OH = ((long)H + pad + pad_b - KH) / stride + 1, OW = ((long)W + pad_w + pad_r - KW) / stride_w + 1;
    if (OH > most || OW > most / OH || OC > most / (OH * OW))
        TQ_FAIL(TQ_E_SHAPE, "convolution: an output of %ldx%ldx%d values is more than tinyqat takes", OH, OW, OC);
    *s = (tq_conv_shape){.H = H, .W = W, .C = C, .KH = KH, .KW = KW, .stride = stride, .pad = pad, .pad_w = pad_w, .pad_b = pad_b,
                         .pad_r = pad_r, .stride_w = stride_w, .OC = OC, .OH = (int)OH, .OW = (int)OW, .depthwise = depthwise};
    return TQ_OK;
}

tq_status tq_conv_shape_init_hw(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int pad, int pad_w, int OC,
                                int depthwise) {
    return shape_init(s, H, W, C, KH, KW, stride, stride, pad, pad_w, pad, pad_w, OC, depthwise);
}

tq_status tq_conv_shape_init_strides(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int stride_w, int pad, int pad_w,
                                     int OC, int depthwise) {
    return shape_init(s, H, W, C, KH, KW, stride, stride_w, pad, pad_w, pad, pad_w, OC, depthwise);
}

/* SAME: out = ceil(in / stride); the padding that needs, (out - 1) stride + K - in, split with
 * the odd one after */
static void same_axis(int in, int k, int stride, int *before, int *after) {
    const long out = ((long)in + stride - 1) / stride, total = (out - 1) * stride + k - in;
    *before = total > 0 ? (int)(total / 2) : 0;
    *after = total > 0 ? (int)(total - total / 2) : 0;
}

tq_status tq_conv_shape_init_same(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int stride_w, int OC,
                                  int depthwise) {
    int pt = 0, pb = 0, pl = 0, pr = 0;
    if (H >= 1 && W >= 1 && KH >= 1 && KW >= 1 && stride >= 1 && stride_w >= 1 && KH <= 64 && KW <= 64 && stride <= 64 && stride_w <= 64)
        same_axis(H, KH, stride, &pt, &pb), same_axis(W, KW, stride_w, &pl, &pr);
    return shape_init(s, H, W, C, KH, KW, stride, stride_w, pt, pl, pb, pr, OC, depthwise);
}

tq_status tq_conv_shape_init(tq_conv_shape *s, int H, int W, int C, int K, int stride, int pad, int OC, int depthwise) {
    return tq_conv_shape_init_hw(s, H, W, C, K, K, stride, pad, pad, OC, depthwise);
}

tq_status tq_pool_shape_init(tq_pool_shape *s, int H, int W, int C, int K, int stride, int avg) {
    memset(s, 0, sizeof *s);
    if (H < 1 || W < 1 || C < 1 || K < 1 || stride < 1)
        TQ_FAIL(TQ_E_SHAPE, "pool: sizes must be positive (image %dx%dx%d, window %d, stride %d)", H, W, C, K, stride);
    if (K > H || K > W) TQ_FAIL(TQ_E_SHAPE, "pool: a %dx%d window does not fit a %dx%d image", K, K, H, W);
    if (C > 4096) TQ_FAIL(TQ_E_SHAPE, "pool: %d channels (at most 4096)", C);
    *s = (tq_pool_shape){.H = H, .W = W, .C = C, .K = K, .KW = K, .stride = stride, .OH = (H - K) / stride + 1,
                         .OW = (W - K) / stride + 1, .avg = avg};
    return TQ_OK;
}

tq_status tq_pool_shape_global(tq_pool_shape *s, int H, int W, int C) {
    memset(s, 0, sizeof *s);
    if (H < 1 || W < 1 || C < 1 || C > 4096) TQ_FAIL(TQ_E_SHAPE, "global pool: a %dx%dx%d image (channels 1..4096)", H, W, C);
    *s = (tq_pool_shape){.H = H, .W = W, .C = C, .K = H, .KW = W, .stride = H > W ? H : W, .OH = 1, .OW = 1, .avg = 1};
    return TQ_OK;
}

void tq_conv_init(float *W, float *b, const tq_conv_shape *s, tq_rng *rng) {
    int fan_in = s->KH * s->KW * (s->depthwise ? 1 : s->C);
    float bound = 1.0f / sqrtf((float)fan_in);
    size_t nw = (size_t)s->OC * (size_t)fan_in;
    for (size_t i = 0; i < nw; i++) W[i] = tq_rng_uniform_in(rng, -bound, bound);
    for (int o = 0; b && o < s->OC; o++) b[o] = tq_rng_uniform_in(rng, -bound, bound);
}

void tq_conv2d_ref(float *y, const float *x, const float *W, const float *b, int B, const tq_conv_shape *s) {
    const int K = s->KH * s->KW * (s->depthwise ? 1 : s->C), mult = s->depthwise ? s->OC / s->C : 1;
    for (int n = 0; n < B; n++)
        for (int oy = 0; oy < s->OH; oy++)
            for (int ox = 0; ox < s->OW; ox++)
                for (int o = 0; o < s->OC; o++) {
                    double acc = b ? b[o] : 0.0;
                    for (int ky = 0; ky < s->KH; ky++)
                        for (int kx = 0; kx < s->KW; kx++) {
                            int iy = oy * s->stride + ky - s->pad, ix = ox * s->stride_w + kx - s->pad_w;
                            if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                            const float *px = x + (((size_t)n * s->H + iy) * s->W + ix) * s->C;
                            if (s->depthwise) {
                                acc += (double)W[(size_t)o * K + ky * s->KW + kx] * px[o / mult];
                            } else {
                                for (int c = 0; c < s->C; c++) acc += (double)W[(size_t)o * K + (ky * s->KW + kx) * s->C + c] * px[c];
                            }
                        }
                    y[(((size_t)n * s->OH + oy) * s->OW + ox) * s->OC + o] = (float)acc;
                }
}

/* ---- conv2d through im2col ---- */

/* Floats of im2col for B images (depthwise: none). */
static size_t col_len(int B, const tq_conv_shape *s) {
    return s->depthwise ? (size_t)s->KH * s->KW * s->OC /* Wt, the filters transposed */ : (size_t)B * s->OH * s->OW * s->KH * s->KW * s->C;
}

/* The batch is cut into min(TQ_SLICES, B) slices of whole images, always the same for a given
 * B; each slice is one task of tq_parallel_for. Weight and bias gradients are summed per slice into
 * their own partial buffers (kept in aux after the columns) and then added up in slice order, so
 * the bytes do not depend on how many threads ran the slices. */
typedef struct {
    tq_node *n;
    int B, slices;
} conv_job;

static void slice_range(const conv_job *j, int t, int *b0, int *b1) {
    size_t a, b;
    tq_slice((size_t)j->B, t, j->slices, &a, &b);
    *b0 = (int)a, *b1 = (int)b;
}

/* ---- which path: the direct kernels (conv_direct.c) where the CPU has them, else im2col ---- */

int tq_conv_direct(const tq_conv_shape *s) { return !s->im2col && !s->depthwise && tq_direct_available(); }

/* aux, im2col path: the columns, then per slice the partial dW [OC][K] and db [OC].
 * aux, depthwise: Wt [K][OC], then per slice the partial dWt [K][OC] and db [OC].
 * aux, direct path: Wt [K][OCp], then (when the layer pads) the batch padded and its gradient
 * padded, then per slice the partial dWt [K][OCp] and db [OC]. */
static int oc_padded(const tq_conv_shape *s) { return (s->OC + 15) / 16 * 16; }
static int pads(const tq_conv_shape *s) { return s->pad || s->pad_w || s->pad_b || s->pad_r; }
static size_t padded_len(int B, const tq_conv_shape *s) {
    return pads(s) ? (size_t)B * (s->H + s->pad + s->pad_b) * (s->W + s->pad_w + s->pad_r) * s->C : 0;
}
static size_t weights_len(const tq_conv_shape *s) { return (size_t)s->KH * s->KW * (s->depthwise ? 1 : s->C) * s->OC; }
/* one slice's partial sums, and where the first slice's start in aux */
static size_t partial_len(const tq_conv_shape *s) {
    return (tq_conv_direct(s) ? (size_t)s->KH * s->KW * s->C * oc_padded(s) : weights_len(s)) + (size_t)s->OC;
}
static size_t partials_at(int B, const tq_conv_shape *s) {
    return tq_conv_direct(s) ? (size_t)s->KH * s->KW * s->C * oc_padded(s) + 2 * padded_len(B, s) : col_len(B, s);
}
tq_direct_geom tq_conv_direct_geom(const tq_conv_shape *s) {
    return (tq_direct_geom){.H = s->H + s->pad + s->pad_b, .W = s->W + s->pad_w + s->pad_r, .C = s->C, .KH = s->KH, .KW = s->KW,
                            .stride = s->stride, .stride_w = s->stride_w, .OH = s->OH, .OW = s->OW, .OC = s->OC, .OCp = oc_padded(s)};
}

static tq_status conv_shape(tq_node *n) {
    const tq_conv_shape *s = n->ctx;
    tq_node *x = n->in[0], *W = n->in[1];
    int K = s->KH * s->KW * (s->depthwise ? 1 : s->C);
    if (x->cols != s->H * s->W * s->C)
        TQ_FAIL(TQ_E_SHAPE, "conv2d: input rows have %d values, a %dx%dx%d image has %d", x->cols, s->H, s->W, s->C, s->H * s->W * s->C);
    if (W->rows != s->OC || W->cols != K)
        TQ_FAIL(TQ_E_SHAPE, "conv2d: weights are [%d][%d], want [%d][%d]", W->rows, W->cols, s->OC, K);
    if (n->n_in == 3 && (n->in[2]->rows != 1 || n->in[2]->cols != s->OC))
        TQ_FAIL(TQ_E_SHAPE, "conv2d: bias is [%d][%d], want [1][%d]", n->in[2]->rows, n->in[2]->cols, s->OC);
    n->rows = x->rows;
    n->cols = s->OH * s->OW * s->OC;
    /* im2col: the columns of the whole batch, kept for backward (depthwise needs none); with one
     * input channel they are built transposed, [K][B*OH*OW] (see im2col_t) */
    n->aux_len = partials_at(x->rows, s) + (size_t)TQ_SLICES * partial_len(s);
    return TQ_OK;
}

/* col[(n*OH + oy)*OW + ox][(ky*KW + kx)*C + c] = x[n][iy][ix][c], 0 in the padding. One window
 * row (KW pixels of C channels) is contiguous in NHWC, so an inside row is one copy. */
static void im2col(float *col, const float *x, int b0, int b1, const tq_conv_shape *s) {
    const size_t K = (size_t)s->KH * s->KW * s->C, run = (size_t)s->KW * s->C;
    for (int n = b0; n < b1; n++)
        for (int oy = 0; oy < s->OH; oy++)
            for (int ox = 0; ox < s->OW; ox++) {
                float *dst = col + (((size_t)n * s->OH + oy) * s->OW + ox) * K;
                int ix0 = ox * s->stride_w - s->pad_w;
                for (int ky = 0; ky < s->KH; ky++, dst += run) {
                    int iy = oy * s->stride + ky - s->pad;
                    if (iy < 0 || iy >= s->H) {
                        memset(dst, 0, run * sizeof(float));
                        continue;
                    }
                    /* pointers only to inside pixels: one before the row is undefined, even unread */
                    const float *row = x + ((size_t)n * s->H + iy) * s->W * s->C;
                    if (ix0 >= 0 && ix0 + s->KW <= s->W) {
                        const float *src = row + (size_t)ix0 * s->C;
                        for (size_t i = 0; i < run; i++) dst[i] = src[i];
                    } else {
                        for (int kx = 0; kx < s->KW; kx++) {
                            int ix = ix0 + kx;
                            for (int c = 0; c < s->C; c++)
                                dst[kx * s->C + c] = ix >= 0 && ix < s->W ? row[(size_t)ix * s->C + c] : 0.0f;
                        }
                    }
                }
            }
}

/* The outputs ox in [lo, hi) whose tap kx reads inside the image: 0 <= ox*stride_w + kx - pad_w < W. */
static void inside(const tq_conv_shape *s, int kx, int *lo, int *hi) {
    int a = 0, b = s->OW;
    while (a < b && a * s->stride_w + kx - s->pad_w < 0) a++;
    while (b > a && (b - 1) * s->stride_w + kx - s->pad_w >= s->W) b--;
    *lo = a;
    *hi = b;
}

/* One input channel (a grayscale first layer): col^T[ky*KW + kx][(n*OH + oy)*OW + ox] =
 * x[n][oy*stride + ky - pad][ox*stride + kx - pad]. Row k of col^T is the image shifted by (ky, kx),
 * so an output row is one contiguous run (for stride 1) instead of KH separate KW-pixel runs per
 * output pixel: the same numbers, a fraction of the copying. */
static void im2col_t(float *colT, const float *x, int b0, int b1, size_t BP, const tq_conv_shape *s) {
    for (int ky = 0; ky < s->KH; ky++)
        for (int kx = 0; kx < s->KW; kx++) {
            float *row = colT + (size_t)(ky * s->KW + kx) * BP;
            for (int n = b0; n < b1; n++)
                for (int oy = 0; oy < s->OH; oy++) {
                    int iy = oy * s->stride + ky - s->pad, lo, hi;
                    float *dst = row + ((size_t)n * s->OH + oy) * s->OW;
                    if (iy < 0 || iy >= s->H) {
                        memset(dst, 0, (size_t)s->OW * sizeof(float));
                        continue;
                    }
                    inside(s, kx, &lo, &hi);
                    /* the row's start, indexed by ox stride + kx - pad >= 0 (a pointer to kx - pad
                     * before it would be undefined for kx < pad) */
                    const float *src = x + ((size_t)n * s->H + iy) * s->W;
                    const int off = kx - s->pad_w;
                    for (int ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
                    if (hi > lo) {
                        if (s->stride_w == 1) memcpy(dst + lo, src + lo + off, (size_t)(hi - lo) * sizeof(float));
                        else
                            for (int ox = lo; ox < hi; ox++) dst[ox] = src[ox * s->stride_w + off];
                    }
                    for (int ox = hi; ox < s->OW; ox++) dst[ox] = 0.0f;
                }
        }
}

static void col2im_t_add(float *dx, const float *dcolT, int b0, int b1, size_t BP, const tq_conv_shape *s) {
    for (int ky = 0; ky < s->KH; ky++)
        for (int kx = 0; kx < s->KW; kx++) {
            const float *row = dcolT + (size_t)(ky * s->KW + kx) * BP;
            for (int n = b0; n < b1; n++)
                for (int oy = 0; oy < s->OH; oy++) {
                    int iy = oy * s->stride + ky - s->pad, lo, hi;
                    if (iy < 0 || iy >= s->H) continue;
                    inside(s, kx, &lo, &hi);
                    const float *src = row + ((size_t)n * s->OH + oy) * s->OW;
                    float *d = dx + ((size_t)n * s->H + iy) * s->W; /* as in im2col_t */
                    const int off = kx - s->pad_w;
                    for (int ox = lo; ox < hi; ox++) d[ox * s->stride_w + off] += src[ox];
                }
        }
}

/* dx[n][iy][ix][c] += dcol[...]: the adjoint of im2col */
static void col2im_add(float *dx, const float *dcol, int b0, int b1, const tq_conv_shape *s) {
    const size_t K = (size_t)s->KH * s->KW * s->C;
    for (int n = b0; n < b1; n++)
        for (int oy = 0; oy < s->OH; oy++)
            for (int ox = 0; ox < s->OW; ox++) {
                const float *src = dcol + (((size_t)n * s->OH + oy) * s->OW + ox) * K;
                for (int ky = 0; ky < s->KH; ky++) {
                    int iy = oy * s->stride + ky - s->pad;
                    for (int kx = 0; kx < s->KW; kx++, src += s->C) {
                        int ix = ox * s->stride_w + kx - s->pad_w;
                        if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                        float *d = dx + (((size_t)n * s->H + iy) * s->W + ix) * s->C;
                        for (int c = 0; c < s->C; c++) d[c] += src[c];
                    }
                }
            }
}

/* xp = the n images of x with zeros around: pad above, pad_b below, pad_w left, pad_r right */
static void pad_images(float *xp, const float *x, int n, const tq_conv_shape *s) {
    const int Hp = s->H + s->pad + s->pad_b, Wp = s->W + s->pad_w + s->pad_r, C = s->C;
    memset(xp, 0, (size_t)n * Hp * Wp * C * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int y = 0; y < s->H; y++)
            memcpy(xp + (((size_t)i * Hp + y + s->pad) * Wp + s->pad_w) * C, x + ((size_t)i * s->H + y) * s->W * C,
                   (size_t)s->W * C * sizeof(float));
}

/* dx += the inside of the padded gradient dxp (the adjoint of pad_images) */
static void unpad_add(float *dx, const float *dxp, int n, const tq_conv_shape *s) {
    const int Hp = s->H + s->pad + s->pad_b, Wp = s->W + s->pad_w + s->pad_r, C = s->C;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < s->H; y++) {
            const float *src = dxp + (((size_t)i * Hp + y + s->pad) * Wp + s->pad_w) * C;
            float *dst = dx + ((size_t)i * s->H + y) * s->W * C;
            for (int j = 0; j < s->W * C; j++) dst[j] += src[j];
        }
}

static void add_channel_bias(float *y, const float *b, size_t rows, int C) {
    for (size_t r = 0; r < rows; r++, y += C)
        for (int c = 0; c < C; c++) y[c] += b[c];
}

static void conv_forward_slice(void *ctx, int t) {
    const conv_job *j = ctx;
    tq_node *n = j->n;
    const tq_conv_shape *s = n->ctx;
    const tq_node *x = n->in[0], *W = n->in[1];
    const int P = s->OH * s->OW;
    int b0, b1;
    slice_range(j, t, &b0, &b1);
    if (b1 <= b0) return;
    float *y0 = n->val + (size_t)b0 * P * s->OC;
    if (tq_conv_direct(s)) {
        tq_direct_geom g = tq_conv_direct_geom(s);
        const float *Wt = n->aux, *xs = x->val + (size_t)b0 * s->H * s->W * s->C;
        if (pads(s)) { /* this slice's images, padded with zeros */
            float *xp = n->aux + (size_t)s->KH * s->KW * s->C * g.OCp + (size_t)b0 * g.H * g.W * s->C;
            pad_images(xp, xs, b1 - b0, s);
            xs = xp;
        }
        tq_direct_forward(&g, y0, xs, Wt, n->n_in == 3 ? n->in[2]->val : NULL, b1 - b0);
        return;
    }
    if (s->depthwise) { /* tap by tap over the channels, which are contiguous in x, y and Wt */
        const int mult = s->OC / s->C, OC = s->OC;
        memset(y0, 0, (size_t)(b1 - b0) * P * s->OC * sizeof(float));
        for (int b = b0; b < b1; b++)
            for (int oy = 0; oy < s->OH; oy++)
                for (int ox = 0; ox < s->OW; ox++) {
                    float *restrict y = n->val + (((size_t)b * s->OH + oy) * s->OW + ox) * OC;
                    for (int ky = 0; ky < s->KH; ky++) {
                        int iy = oy * s->stride + ky - s->pad;
                        if (iy < 0 || iy >= s->H) continue;
                        for (int kx = 0; kx < s->KW; kx++) {
                            int ix = ox * s->stride_w + kx - s->pad_w;
                            if (ix < 0 || ix >= s->W) continue;
                            const float *restrict px = x->val + (((size_t)b * s->H + iy) * s->W + ix) * s->C;
                            const float *restrict w = n->aux + (size_t)(ky * s->KW + kx) * OC;
                            if (mult == 1)
                                for (int o = 0; o < OC; o++) y[o] += w[o] * px[o];
                            else
                                for (int o = 0; o < OC; o++) y[o] += w[o] * px[o / mult];
                        }
                    }
                }
    } else {
        const int K = s->KH * s->KW * s->C, rows = (b1 - b0) * P;
        if (s->C == 1) { /* y[rows][OC] = (col^T)^T W^T, this slice's columns of col^T */
            size_t BP = (size_t)j->B * P;
            im2col_t(n->aux, x->val, b0, b1, BP, s);
            tq_sgemm(1, 1, rows, s->OC, K, 1.0f, n->aux + (size_t)b0 * P, (int)BP, W->val, K, 0.0f, y0, s->OC);
        } else { /* y[rows][OC] = col[rows][K] W^T */
            float *col = n->aux + (size_t)b0 * P * K;
            im2col(n->aux, x->val, b0, b1, s);
            tq_sgemm(0, 1, rows, s->OC, K, 1.0f, col, K, W->val, K, 0.0f, y0, s->OC);
        }
    }
    if (n->n_in == 3) add_channel_bias(y0, n->in[2]->val, (size_t)(b1 - b0) * P, s->OC);
}

static void conv_forward(tq_node *n, int training) {
    (void)training;
    const tq_conv_shape *s = n->ctx;
    int B = n->in[0]->rows;
    conv_job j = {n, B, B < TQ_SLICES ? B : TQ_SLICES};
    if (tq_conv_direct(s) || s->depthwise) { /* Wt[k][o] = W[o][k], o padded with zeros to OCp (depthwise: OC) */
        const int K = n->in[1]->cols, OCp = s->depthwise ? s->OC : oc_padded(s);
        const float *W = n->in[1]->val;
        for (int k = 0; k < K; k++)
            for (int o = 0; o < OCp; o++) n->aux[(size_t)k * OCp + o] = o < s->OC ? W[(size_t)o * K + k] : 0.0f;
    }
    tq_parallel_for(j.slices, conv_forward_slice, &j);
}

static void conv_backward_slice(void *ctx, int t) {
    const conv_job *j = ctx;
    tq_node *n = j->n;
    const tq_conv_shape *s = n->ctx;
    tq_node *x = n->in[0], *W = n->in[1];
    const int P = s->OH * s->OW, K = W->cols;
    int b0, b1;
    slice_range(j, t, &b0, &b1);
    const int direct = tq_conv_direct(s);
    const size_t part = partial_len(s);
    float *dWp = n->aux + partials_at(j->B, s) + (size_t)t * part, *dbp = dWp + part - (size_t)s->OC;
    memset(dWp, 0, part * sizeof(float));
    if (b1 <= b0) return;
    const int rows = (b1 - b0) * P;
    const float *dy = n->grad + (size_t)b0 * P * s->OC;
    if (n->n_in == 3 && n->in[2]->grad) /* db[o] += sum over this slice's positions of dy */
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < s->OC; o++) dbp[o] += dy[(size_t)r * s->OC + o];
    if (direct) {
        tq_direct_geom g = tq_conv_direct_geom(s);
        const size_t img = (size_t)s->H * s->W * s->C, imgp = (size_t)g.H * g.W * s->C;
        float *xp = n->aux + (size_t)K * g.OCp, *dxp = xp + padded_len(j->B, s);
        const float *xs = pads(s) ? xp + (size_t)b0 * imgp : x->val + (size_t)b0 * img;
        if (W->grad) tq_direct_weights(&g, dWp, xs, dy, b1 - b0);
        if (x->grad && pads(s)) {
            float *d = dxp + (size_t)b0 * imgp;
            memset(d, 0, (size_t)(b1 - b0) * imgp * sizeof(float));
            tq_direct_data(&g, d, dy, W->val, b1 - b0);
            unpad_add(x->grad + (size_t)b0 * img, d, b1 - b0, s);
        } else if (x->grad) {
            tq_direct_data(&g, x->grad + (size_t)b0 * img, dy, W->val, b1 - b0);
        }
        return;
    }
    if (s->depthwise) { /* dWt[k][o] += dy[o] x[o], dx[o] += dy[o] Wt[k][o]: contiguous channels again */
        const int mult = s->OC / s->C, OC = s->OC;
        float *dx = x->grad;
        for (int b = b0; b < b1; b++)
            for (int oy = 0; oy < s->OH; oy++)
                for (int ox = 0; ox < s->OW; ox++) {
                    const float *restrict g = n->grad + (((size_t)b * s->OH + oy) * s->OW + ox) * OC;
                    for (int ky = 0; ky < s->KH; ky++) {
                        int iy = oy * s->stride + ky - s->pad;
                        if (iy < 0 || iy >= s->H) continue;
                        for (int kx = 0; kx < s->KW; kx++) {
                            int ix = ox * s->stride_w + kx - s->pad_w;
                            if (ix < 0 || ix >= s->W) continue;
                            size_t at = (((size_t)b * s->H + iy) * s->W + ix) * s->C;
                            const size_t k = (size_t)(ky * s->KW + kx) * OC;
                            float *restrict dw = dWp + k;
                            const float *restrict w = n->aux + k, *restrict px = x->val + at;
                            if (mult == 1) {
                                for (int o = 0; o < OC; o++) dw[o] += g[o] * px[o];
                                if (dx)
                                    for (int o = 0; o < OC; o++) dx[at + o] += g[o] * w[o];
                            } else {
                                for (int o = 0; o < OC; o++) dw[o] += g[o] * px[o / mult];
                                if (dx)
                                    for (int o = 0; o < OC; o++) dx[at + o / mult] += g[o] * w[o];
                            }
                        }
                    }
                }
        return;
    }
    if (s->C == 1) { /* the transposed columns: dW += dy^T (col^T)^T, dcol^T = W^T dy^T */
        size_t BP = (size_t)j->B * P;
        float *colT = n->aux + (size_t)b0 * P;
        if (W->grad) tq_sgemm(1, 1, s->OC, K, rows, 1.0f, dy, s->OC, colT, (int)BP, 0.0f, dWp, K);
        if (x->grad) {
            tq_sgemm(1, 1, K, rows, s->OC, 1.0f, W->val, K, dy, s->OC, 0.0f, colT, (int)BP);
            col2im_t_add(x->grad, n->aux, b0, b1, BP, s);
        }
        return;
    }
    float *col = n->aux + (size_t)b0 * P * K;
    if (W->grad) /* dW[OC][K] += dy^T[OC][rows] col[rows][K] */
        tq_sgemm(1, 0, s->OC, K, rows, 1.0f, dy, s->OC, col, K, 0.0f, dWp, K);
    if (x->grad) { /* dcol[rows][K] = dy W (over col, no longer needed), then back to the image */
        tq_sgemm(0, 0, rows, K, s->OC, 1.0f, dy, s->OC, W->val, K, 0.0f, col, K);
        col2im_add(x->grad, n->aux, b0, b1, s);
    }
}

static void conv_backward(tq_node *n) {
    const tq_conv_shape *s = n->ctx;
    int B = n->in[0]->rows, K = n->in[1]->cols;
    conv_job j = {n, B, B < TQ_SLICES ? B : TQ_SLICES};
    tq_parallel_for(j.slices, conv_backward_slice, &j);
    /* the slices' partial sums, added in slice order (the direct path's and depthwise's are transposed, Wt) */
    const int transposed = tq_conv_direct(s) || s->depthwise, OCp = s->depthwise ? s->OC : oc_padded(s);
    const float *base = n->aux + partials_at(B, s);
    const size_t stride = partial_len(s);
    for (int t = 0; t < j.slices; t++) {
        const float *dWp = base + (size_t)t * stride, *dbp = dWp + stride - (size_t)s->OC;
        float *dW = n->in[1]->grad;
        if (dW && transposed)
            for (int o = 0; o < s->OC; o++)
                for (int k = 0; k < K; k++) dW[(size_t)o * K + k] += dWp[(size_t)k * OCp + o];
        else if (dW)
            for (size_t i = 0; i < (size_t)s->OC * K; i++) dW[i] += dWp[i];
        if (n->n_in == 3 && n->in[2]->grad)
            for (int o = 0; o < s->OC; o++) n->in[2]->grad[o] += dbp[o];
    }
}

static const tq_op op_conv2d = {"conv2d", conv_shape, conv_forward, conv_backward, 0};

tq_node *tq_conv2d(tq_graph *g, tq_node *x, tq_node *W, tq_node *b, const tq_conv_shape *s) {
    tq_node *in[3] = {x, W, b};
    return tq_graph_apply(g, &op_conv2d, (void *)s, b ? 3 : 2, in);
}

/* ---- pooling ---- */

static tq_status pool_shape(tq_node *n) {
    const tq_pool_shape *s = n->ctx;
    if (n->in[0]->cols != s->H * s->W * s->C)
        TQ_FAIL(TQ_E_SHAPE, "pool: input rows have %d values, a %dx%dx%d image has %d", n->in[0]->cols, s->H, s->W, s->C,
                s->H * s->W * s->C);
    n->rows = n->in[0]->rows;
    n->cols = s->OH * s->OW * s->C;
    n->aux_len = s->avg ? 0 : tq_node_numel(n); /* max pool: where each maximum was, an int32 per output */
    return TQ_OK;
}

/* Window by window, the channels innermost (contiguous in NHWC), no branches: it vectorizes.
 * Max pool keeps the first maximum of each window (a later tap must be greater to replace it) and
 * writes where it is, (ky*W + kx)*C from the window's corner, to arg, so that backward need not
 * read the input again. */
TQ_SIMD_CLONES static void pool_rows(const float *restrict x, float *restrict y, int32_t *restrict arg, int rows,
                                     const tq_pool_shape *s) {
    const int C = s->C;
    const float inv = 1.0f / (float)(s->K * s->KW);
    if (!s->avg && s->K == 2 && s->KW == 2) { /* the common 2x2 max pool, straight-line: a few instructions a channel */
        const int32_t right = C, down = s->W * C, diag = (s->W + 1) * C;
        for (int b = 0; b < rows; b++)
            for (int oy = 0; oy < s->OH; oy++)
                for (int ox = 0; ox < s->OW; ox++) {
                    size_t o = (((size_t)b * s->OH + oy) * s->OW + ox) * C;
                    const float *restrict p = x + (((size_t)b * s->H + oy * s->stride) * s->W + ox * s->stride) * C;
                    for (int c = 0; c < C; c++) {
                        float m = p[c], v1 = p[right + c], v2 = p[down + c], v3 = p[diag + c];
                        int32_t k = 0, g;
                        g = v1 > m, m = v1 > m ? v1 : m, k += g * (right - k);
                        g = v2 > m, m = v2 > m ? v2 : m, k += g * (down - k);
                        g = v3 > m, m = v3 > m ? v3 : m, k += g * (diag - k);
                        y[o + c] = m;
                        arg[o + c] = k;
                    }
                }
        return;
    }
    for (int b = 0; b < rows; b++)
        for (int oy = 0; oy < s->OH; oy++)
            for (int ox = 0; ox < s->OW; ox++) {
                size_t o = (((size_t)b * s->OH + oy) * s->OW + ox) * C;
                float *restrict out = y + o;
                int32_t *restrict a = s->avg ? NULL : arg + o;
                for (int ky = 0; ky < s->K; ky++)
                    for (int kx = 0; kx < s->KW; kx++) {
                        const float *restrict px = x + (((size_t)b * s->H + oy * s->stride + ky) * s->W + ox * s->stride + kx) * C;
                        const int32_t tap = (ky * s->W + kx) * C; /* where the tap sits from the window's corner */
                        if (ky == 0 && kx == 0) {
                            for (int c = 0; c < C; c++) out[c] = px[c];
                            if (!s->avg)
                                for (int c = 0; c < C; c++) a[c] = 0;
                        } else if (s->avg) {
                            for (int c = 0; c < C; c++) out[c] += px[c];
                        } else {
                            for (int c = 0; c < C; c++) { /* arithmetic, not a select: GCC would make a
                                                               * select into a masked store, slow on AMD */
                                float v = px[c], m = out[c];
                                int32_t k = a[c], more = v > m;
                                out[c] = v > m ? v : m;
                                a[c] = k + more * (tap - k);
                            }
                        }
                    }
                if (s->avg)
                    for (int c = 0; c < C; c++) out[c] *= inv;
            }
}

/* Pooling and its gradient touch only their own slice's images: one task per slice. */
typedef struct {
    tq_node *n;
    int slices;
} pool_job;

static void pool_forward_slice(void *ctx, int t) {
    const pool_job *j = ctx;
    const tq_pool_shape *s = j->n->ctx;
    size_t b0, b1, in = (size_t)s->H * s->W * s->C, out = (size_t)s->OH * s->OW * s->C;
    tq_slice((size_t)j->n->rows, t, j->slices, &b0, &b1);
    int32_t *arg = s->avg ? NULL : (int32_t *)(void *)j->n->aux + b0 * out;
    if (b1 > b0) pool_rows(j->n->in[0]->val + b0 * in, j->n->val + b0 * out, arg, (int)(b1 - b0), s);
}

static void pool_forward(tq_node *n, int training) {
    (void)training;
    pool_job j = {n, n->rows < TQ_SLICES ? n->rows : TQ_SLICES};
    tq_parallel_for(j.slices, pool_forward_slice, &j);
}

/* Max pool: the gradient goes to the window's first maximum, where forward recorded it in arg.
 * Average pool: spread evenly. */
TQ_SIMD_CLONES static void pool_grad(float *restrict dx, const int32_t *restrict arg, const float *restrict dy, int rows,
                                     const tq_pool_shape *s) {
    const int C = s->C;
    const float inv = 1.0f / (float)(s->K * s->KW);
    for (int b = 0; b < rows; b++)
        for (int oy = 0; oy < s->OH; oy++)
            for (int ox = 0; ox < s->OW; ox++) {
                size_t out = (((size_t)b * s->OH + oy) * s->OW + ox) * C;
                float *d = dx + (((size_t)b * s->H + oy * s->stride) * s->W + ox * s->stride) * C; /* the window's corner */
                const float *g = dy + out;
                if (s->avg) {
                    for (int ky = 0; ky < s->K; ky++)
                        for (int kx = 0; kx < s->KW; kx++)
                            for (int c = 0; c < C; c++) d[((size_t)ky * s->W + kx) * C + c] += g[c] * inv;
                } else {
                    for (int c = 0; c < C; c++) d[arg[out + c] + c] += g[c];
                }
            }
}

/* A 2x2 max pool whose windows tile the image exactly, its gradient assigned: every input gets
 * its value written, the window's maximum g and the other three 0, so nothing need be zeroed. */
TQ_SIMD_CLONES static void pool_grad_tiled2(float *restrict dx, const int32_t *restrict arg, const float *restrict dy, int rows,
                                            const tq_pool_shape *s) {
    const int C = s->C;
    const int32_t right = C, down = s->W * C, diag = (s->W + 1) * C;
    for (int b = 0; b < rows; b++)
        for (int oy = 0; oy < s->OH; oy++)
            for (int ox = 0; ox < s->OW; ox++) {
                size_t out = (((size_t)b * s->OH + oy) * s->OW + ox) * C;
                float *restrict d = dx + (((size_t)b * s->H + 2 * oy) * s->W + 2 * ox) * C;
                for (int c = 0; c < C; c++) {
                    float g = dy[out + c];
                    int32_t k = arg[out + c];
                    d[c] = k == 0 ? g : 0.0f;
                    d[right + c] = k == right ? g : 0.0f;
                    d[down + c] = k == down ? g : 0.0f;
                    d[diag + c] = k == diag ? g : 0.0f;
                }
            }
}

static void pool_backward_slice(void *ctx, int t) {
    const pool_job *j = ctx;
    const tq_node *n = j->n;
    const tq_pool_shape *s = n->ctx;
    size_t b0, b1, in = (size_t)s->H * s->W * s->C, out = (size_t)s->OH * s->OW * s->C;
    tq_slice((size_t)n->rows, t, j->slices, &b0, &b1);
    if (b1 <= b0) return;
    if (TQ_GRAD_ASSIGNED(n->in[0])) { /* written, not added to: the 2x2 tiling writes every value, else zeros first */
        if (!s->avg && s->K == 2 && s->KW == 2 && s->stride == 2 && s->H == 2 * s->OH && s->W == 2 * s->OW) {
            pool_grad_tiled2(n->in[0]->grad + b0 * in, (const int32_t *)(const void *)n->aux + b0 * out, n->grad + b0 * out,
                             (int)(b1 - b0), s);
            return;
        }
        memset(n->in[0]->grad + b0 * in, 0, (b1 - b0) * in * sizeof(float));
    }
    pool_grad(n->in[0]->grad + b0 * in, s->avg ? NULL : (const int32_t *)(const void *)n->aux + b0 * out, n->grad + b0 * out,
              (int)(b1 - b0), s);
}

static void pool_backward(tq_node *n) {
    if (!n->in[0]->grad) return;
    pool_job j = {n, n->rows < TQ_SLICES ? n->rows : TQ_SLICES};
    tq_parallel_for(j.slices, pool_backward_slice, &j);
}

static const tq_op op_pool = {"pool2d", pool_shape, pool_forward, pool_backward, 1};

tq_node *tq_pool2d(tq_graph *g, tq_node *x, const tq_pool_shape *s) { return tq_graph_apply(g, &op_pool, (void *)s, 1, &x); }
