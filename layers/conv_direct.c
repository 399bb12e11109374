/* Direct convolution with AVX-512: the three products of a convolution's training step computed
 * from the image itself, with no im2col copy and no general GEMM. The small CNNs tinyqat trains
 * have thin products (DigitsCNN: 8 or 16 output channels against 25 or 200 taps) whose shapes a
 * GEMM library tiles badly; here the output channels are the vector lanes, 16 to a register (the
 * last block masked), and each kernel keeps a block of independent accumulators in registers.
 *
 * win(p) is where output pixel p's window starts in the image, off(k) where tap k = (ky*KW + kx)*C
 * + c sits in the window: off(k) = ky*W*C + kx*C + c. A kernel row (kx, c) is KW*C contiguous
 * floats, since NHWC keeps a pixel's channels together.
 *
 *   forward   y[p][o] = b[o] + sum_k x[win(p) + off(k)] Wt[k][o]
 *             8 output pixels at once: one load of a tap's 16 weights feeds 8 FMAs, each with an
 *             x value broadcast from memory.
 *   weights   dWt[k][o] += sum_p x[win(p) + off(k)] dy[p][o]
 *             up to 12 taps at once: one load of a pixel's 16 output gradients feeds 12 FMAs.
 *   data      dx[win(p) + off(k)] += sum_o dy[p][o] W[o][k]
 *             here the lanes run along a kernel row (kx, c): 4 output pixels x up to 4 vectors
 *             of a row, summed over o in registers, then added into dx pixel by pixel.
 *
 * Every sum runs in a fixed order (taps, then pixels in image order), so the results depend on
 * the inputs only: the same bytes on every run and for every thread count. They are not the
 * bytes of the im2col path (another summation order, and fused multiply-adds).
 */
#include "layers/conv_direct.h"

#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline)) AVX512

int tq_direct_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* the lanes of a block of 16 channels starting at o that exist (n = channels left) */
static __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* R output pixels of one row, 16 channels from Wt + ob: x is pixel 0's window, y its output. */
INLINE void fwd_pixels(const tq_direct_geom *g, int R, float *y, const float *x, const float *Wt, __m512 b, __mmask16 m) {
    __m512 acc[8];
    for (int r = 0; r < R; r++) acc[r] = b;
    const int run = g->KW * g->C, step = g->stride_w * g->C;
    const size_t row = (size_t)g->W * g->C;
    const float *w = Wt;
    for (int ky = 0; ky < g->KH; ky++) {
        const float *xr = x + (size_t)ky * row;
        for (int j = 0; j < run; j++, w += g->OCp) {
            __m512 wv = _mm512_loadu_ps(w);
            for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xr[r * step + j]), wv, acc[r]);
        }
    }
    for (int r = 0; r < R; r++) _mm512_mask_storeu_ps(y + (size_t)r * g->OC, m, acc[r]);
}

AVX512 void tq_direct_forward(const tq_direct_geom *g, float *y, const float *x, const float *Wt, const float *b, int n) {
    const int step = g->stride_w * g->C;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < g->OH; oy++) {
            const float *xr = x + ((size_t)i * g->H + (size_t)oy * g->stride) * g->W * g->C;
            float *yr = y + ((size_t)i * g->OH + oy) * g->OW * g->OC;
            for (int ob = 0; ob < g->OC; ob += 16) {
                __mmask16 m = lanes(g->OC - ob);
                __m512 bias = b ? _mm512_maskz_loadu_ps(m, b + ob) : _mm512_setzero_ps();
                int ox = 0;
                for (; ox + 8 <= g->OW; ox += 8) fwd_pixels(g, 8, yr + (size_t)ox * g->OC + ob, xr + (size_t)ox * step, Wt + ob, bias, m);
                for (; ox + 4 <= g->OW; ox += 4) fwd_pixels(g, 4, yr + (size_t)ox * g->OC + ob, xr + (size_t)ox * step, Wt + ob, bias, m);
                for (; ox < g->OW; ox++) fwd_pixels(g, 1, yr + (size_t)ox * g->OC + ob, xr + (size_t)ox * step, Wt + ob, bias, m);
            }
        }
}

/* R taps at offsets off[] for 16 channels: dWt rows k0..k0+R-1 (row length OCp) over all pixels;
 * dWt and dy point at the block's first channel. */
INLINE void wgrad_taps(const tq_direct_geom *g, int R, float *dWt, const size_t *off, const float *x, const float *dy, int n,
                       __mmask16 m) {
    __m512 acc[12];
    for (int r = 0; r < R; r++) acc[r] = _mm512_loadu_ps(dWt + (size_t)r * g->OCp);
    const int step = g->stride_w * g->C;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < g->OH; oy++) {
            const float *xw = x + ((size_t)i * g->H + (size_t)oy * g->stride) * g->W * g->C;
            const float *d = dy + ((size_t)i * g->OH + oy) * g->OW * g->OC;
            for (int ox = 0; ox < g->OW; ox++, xw += step, d += g->OC) {
                __m512 dv = _mm512_maskz_loadu_ps(m, d);
                for (int r = 0; r < R; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(xw[off[r]]), dv, acc[r]);
            }
        }
    for (int r = 0; r < R; r++) _mm512_storeu_ps(dWt + (size_t)r * g->OCp, acc[r]);
}

/* R (1..12) as a constant, so that the accumulators stay in registers */
#define WGRAD_CASE(r) \
    case r: wgrad_taps(g, r, d, off, x, dy, n, m); break;
INLINE void wgrad_block(const tq_direct_geom *g, int R, float *d, const size_t *off, const float *x, const float *dy, int n, __mmask16 m) {
    switch (R) {
        WGRAD_CASE(12) WGRAD_CASE(11) WGRAD_CASE(10) WGRAD_CASE(9) WGRAD_CASE(8) WGRAD_CASE(7)
        WGRAD_CASE(6) WGRAD_CASE(5) WGRAD_CASE(4) WGRAD_CASE(3) WGRAD_CASE(2) default: wgrad_taps(g, 1, d, off, x, dy, n, m);
    }
}

AVX512 void tq_direct_weights(const tq_direct_geom *g, float *dWt, const float *x, const float *dy, int n) {
    const int run = g->KW * g->C, K = g->KH * run;
    /* the taps in blocks of at most 12, as even as they come (25: 9, 8, 8), not 8 + 8 + 8 + a lone
     * tap whose pass would wait on one accumulator's latency */
    const int blocks = (K + 11) / 12;
    for (int ob = 0; ob < g->OC; ob += 16) {
        __mmask16 m = lanes(g->OC - ob);
        for (int blk = 0, k0 = 0; blk < blocks; blk++) {
            const int k1 = (int)((long)K * (blk + 1) / blocks), R = k1 - k0;
            size_t off[12];
            for (int r = 0; r < R; r++) off[r] = (size_t)((k0 + r) / run) * g->W * g->C + (size_t)((k0 + r) % run);
            wgrad_block(g, R, dWt + (size_t)k0 * g->OCp + ob, off, x, dy + ob, n, m);
            k0 = k1;
        }
    }
}

/* R output pixels x NV vectors of one kernel row: dx (pixel 0's window, at the row's vector v0)
 * += sum_o dy[r][o] W[o][ky*run + v0 ...]; the last vector holds the lanes in `last`. */
INLINE void dgrad_pixels(const tq_direct_geom *g, int R, int NV, float *dx, const float *dy, const float *W, int K,
                         __mmask16 last) {
    __m512 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int o = 0; o < g->OC; o++) {
        __m512 wv[4];
        const float *w = W + (size_t)o * K;
        for (int v = 0; v < NV; v++) wv[v] = v < NV - 1 ? _mm512_loadu_ps(w + 16 * v) : _mm512_maskz_loadu_ps(last, w + 16 * v);
        for (int r = 0; r < R; r++) {
            __m512 d = _mm512_set1_ps(dy[(size_t)r * g->OC + o]);
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(d, wv[v], acc[r][v]);
        }
    }
    const int step = g->stride_w * g->C;
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            float *p = dx + (size_t)r * step + 16 * v;
            __mmask16 m = v < NV - 1 ? (__mmask16)0xFFFF : last;
            _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), acc[r][v]));
        }
}

/* NV (1..4) as a constant, so that the accumulators stay in registers */
INLINE void dgrad_block(const tq_direct_geom *g, int R, int NV, float *dx, const float *dy, const float *W, int K, __mmask16 last) {
    switch (NV) {
    case 4: dgrad_pixels(g, R, 4, dx, dy, W, K, last); break;
    case 3: dgrad_pixels(g, R, 3, dx, dy, W, K, last); break;
    case 2: dgrad_pixels(g, R, 2, dx, dy, W, K, last); break;
    default: dgrad_pixels(g, R, 1, dx, dy, W, K, last); break;
    }
}

AVX512 void tq_direct_data(const tq_direct_geom *g, float *dx, const float *dy, const float *W, int n) {
    const int run = g->KW * g->C, K = g->KH * run, step = g->stride_w * g->C;
    const size_t row = (size_t)g->W * g->C;
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < g->OH; oy++) {
            float *xr = dx + ((size_t)i * g->H + (size_t)oy * g->stride) * row;
            const float *d = dy + ((size_t)i * g->OH + oy) * g->OW * g->OC;
            for (int ky = 0; ky < g->KH; ky++)
                for (int v0 = 0; v0 < run; v0 += 64) { /* up to 4 vectors of the kernel row at a time */
                    int left = run - v0, NV = left >= 64 ? 4 : (left + 15) / 16;
                    __mmask16 last = lanes(left - 16 * (NV - 1));
                    const float *w = W + (size_t)ky * run + v0;
                    float *x0 = xr + (size_t)ky * row + v0;
                    int ox = 0;
                    for (; ox + 4 <= g->OW; ox += 4)
                        dgrad_block(g, 4, NV, x0 + (size_t)ox * step, d + (size_t)ox * g->OC, w, K, last);
                    for (; ox < g->OW; ox++) dgrad_block(g, 1, NV, x0 + (size_t)ox * step, d + (size_t)ox * g->OC, w, K, last);
                }
        }
}

#else /* not x86-64: the im2col path runs */

int tq_direct_available(void) { return 0; }
void tq_direct_forward(const tq_direct_geom *g, float *y, const float *x, const float *Wt, const float *b, int n) {
    (void)g, (void)y, (void)x, (void)Wt, (void)b, (void)n;
    abort();
}
void tq_direct_weights(const tq_direct_geom *g, float *dWt, const float *x, const float *dy, int n) {
    (void)g, (void)dWt, (void)x, (void)dy, (void)n;
    abort();
}
void tq_direct_data(const tq_direct_geom *g, float *dx, const float *dy, const float *W, int n) {
    (void)g, (void)dx, (void)dy, (void)W, (void)n;
    abort();
}

#endif
