/* The Cortex-M kernels on the DSP extension's SIMD instructions (SMLAD, SXTB16, SMLABB/SMLATT,
 * SSUB8/SEL): linear, convolution (gathered windows; 1 x 1 in place; packed weights), depthwise
 * with one channel per input channel, max pool. Each gives its reference twin's integers. */
#include "runtime/internal.h"

#ifdef TQ_DSP
/* Four rows' dot products with x unpacked by UNPACK / UNPACK_R8 (SXTAB16 for int8, UXTB16 for
 * pixels): per 4 inputs, 1 load and 2 unpacks of x, then per row 1 load, 2 extends, 2 SMLADs. */
#define TQ_DOT4(UNPACK, UNPACK_R8)                                                                        \
    for (; i + 4 <= n; i += 4) {                                                                          \
        uint32_t xv = ld32(x + i);                                                                        \
        uint32_t x02 = (uint32_t)UNPACK(off2, xv), x13 = UNPACK_R8(off2, xv);                             \
        uint32_t v0 = ld32(w + i), v1 = ld32(w + stride + i), v2 = ld32(w + 2 * stride + i),              \
                 v3 = ld32(w + 3 * stride + i);                                                           \
        s0 = smlad(sxtb16_r8(v0), x13, smlad((uint32_t)__sxtb16((int8x4_t)v0), x02, s0));                 \
        s1 = smlad(sxtb16_r8(v1), x13, smlad((uint32_t)__sxtb16((int8x4_t)v1), x02, s1));                 \
        s2 = smlad(sxtb16_r8(v2), x13, smlad((uint32_t)__sxtb16((int8x4_t)v2), x02, s2));                 \
        s3 = smlad(sxtb16_r8(v3), x13, smlad((uint32_t)__sxtb16((int8x4_t)v3), x02, s3));                 \
    }

/* acc[0..3] += rows w, w + stride, w + 2 stride, w + 3 stride (each n long) times (x + off). */
static void dot4(const int8_t *w, size_t stride, const uint8_t *x, int32_t n, int32_t off, int is_u8, int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], i = 0;
    uint32_t off2 = ((uint32_t)off & 0xffffu) * 0x10001u;
    if (is_u8) { /* pixels into a layer with z_x = -128 (off = 0): p itself; see linear_u8_input */
        TQ_DOT4(TQ_UXTB16, TQ_UXTB16_R8)
    } else {
        TQ_DOT4(__sxtab16, sxtab16_r8)
    }
    for (; i < n; i++) {
        int32_t xi = (is_u8 ? (int32_t)x[i] : (int32_t)(int8_t)x[i]) + off;
        s0 += (int32_t)w[i] * xi;
        s1 += (int32_t)w[stride + (size_t)i] * xi;
        s2 += (int32_t)w[2 * stride + (size_t)i] * xi;
        s3 += (int32_t)w[3 * stride + (size_t)i] * xi;
    }
    acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
}

/* One layer; x is int8 (is_u8 = 0, off = -z_x) or raw pixels (is_u8 = 1, off = -128 - z_x).
 * Rows go four at a time; a last group of fewer rows reuses its last row (computed, not stored). */
TQ_INTERNAL void tq_linear_dsp_(const tq_s8_layer *L, const uint8_t *x, int is_u8, int32_t off, int8_t *y) {
    const size_t in = (size_t)L->in;
    for (int32_t o = 0; o < L->out; o += 4) {
        int32_t rows = L->out - o < 4 ? L->out - o : 4;
        int32_t acc[4];
        if (rows == 4) {
            for (int k = 0; k < 4; k++) acc[k] = L->bias[o + k];
            dot4(L->w + (size_t)o * in, in, x, L->in, off, is_u8, acc);
        } else {
            /* fewer than 4 rows left: stride 0 makes all four lanes the row o + k, one at a time */
            for (int32_t k = 0; k < rows; k++) {
                int32_t a[4] = {L->bias[o + k], 0, 0, 0};
                dot4(L->w + (size_t)(o + k) * in, 0, x, L->in, off, is_u8, a);
                acc[k] = a[0];
            }
        }
        /* (one at a time: a dense layer has few outputs, and output4 would cost an MLP's module flash) */
        for (int32_t k = 0; k < rows; k++) y[o + k] = output(L, o + k, acc[k]);
    }
}

/* Packed weights on the DSP. A word holds G = 32 / bits weights; masking field f of every byte
 * to the byte's top bits ((v << (8 - bits (f + 1))) & top) and extending bytes 0, 2 and 1, 3
 * (SXTB16, SXTB16 ror 8) gives int16 pairs of weights times 2^(8 - bits), with no shift per
 * value: the sums are scaled by 2^(8 - bits) and shifted back, exactly, once per row. The input
 * is unpacked once per layer to int16 in the matching order: the pair of field f, bytes b and
 * b + 2, is [x_{b per + f}, x_{(b + 2) per + f}] at int16 offset 2 (2 f + (b & 1)) + (b >> 1).
 * Per 8 weights of 4 bits: 1 load, 2 masks, 4 extends, 4 SMLADs (2 bits: 16 weights, 4 masks,
 * 8 extends, 8 SMLADs). Scaled sums fit int32: |16 * 7 * 255| * 65536 < 2^31 (2 bits: 64 * 255). */
static inline __attribute__((always_inline)) void unpack_x_bits(const uint8_t *x, int is_u8, int32_t off, int32_t n,
                                                                  const int32_t bits, uint8_t *x16) {
    const int32_t G = 32 / bits, per = 8 / bits;
    for (int32_t g = 0; g + G <= n; g += G)
        for (int32_t j = 0; j < G; j++) {
            int32_t b = j / per, f = j % per;
            int16_t v = (int16_t)((is_u8 ? (int32_t)x[g + j] : (int32_t)(int8_t)x[g + j]) + off);
            __builtin_memcpy(x16 + 2 * (g + 2 * (2 * f + (b & 1)) + (b >> 1)), &v, 2);
        }
}

/* (bits a constant in each call, so the divisions above are shifts) */
static void unpack_x(const uint8_t *x, int is_u8, int32_t off, int32_t n, int32_t bits, uint8_t *x16) {
    if (bits == 4) unpack_x_bits(x, is_u8, off, n, 4, x16);
    else unpack_x_bits(x, is_u8, off, n, 2, x16);
}

/* top & (v << sh) in one AND with a shifted operand (GCC would shift, then AND an immediate) */
#define TQ_FIELD(v, f, bits, top) and_lsl(top, v, 8 - (bits) * ((f) + 1))
static inline __attribute__((always_inline)) uint32_t and_lsl(uint32_t top, uint32_t v, const int sh) {
    uint32_t r;
    if (sh == 0) return top & v;
    __asm__("and %0, %1, %2, lsl %3" : "=r"(r) : "r"(top), "r"(v), "i"(sh));
    return r;
}
#define TQ_PACKED_PAIR(s, m, xp, f) s = smlad(sxtb16_r8(m), ld32((xp) + 8 * (f) + 4), smlad((uint32_t)__sxtb16((int8x4_t)(m)), ld32((xp) + 8 * (f)), s))

/* Scaled dot products of rows w0 and w1 (groups words each) with x16. (Not inlined: in a function
 * of its own the loop keeps everything in registers.) */
__attribute__((noinline)) static void dot2_packed(const uint8_t *w0, const uint8_t *w1, const uint8_t *x16, int32_t groups, int32_t bits, int32_t *s) {
    int32_t s0 = 0, s1 = 0;
    uint32_t top = bits == 4 ? 0xf0f0f0f0u : 0xc0c0c0c0u; /* a register: the ANDs take it with the shift */
    if (bits == 4) {
        for (const uint8_t *end = w0 + 4 * (size_t)groups; w0 != end; w0 += 4, w1 += 4, x16 += 16) {
            uint32_t v0 = ld32(w0), v1 = ld32(w1), m;
            m = TQ_FIELD(v0, 0, 4, top), TQ_PACKED_PAIR(s0, m, x16, 0);
            m = TQ_FIELD(v0, 1, 4, top), TQ_PACKED_PAIR(s0, m, x16, 1);
            m = TQ_FIELD(v1, 0, 4, top), TQ_PACKED_PAIR(s1, m, x16, 0);
            m = TQ_FIELD(v1, 1, 4, top), TQ_PACKED_PAIR(s1, m, x16, 1);
        }
    } else {
        for (const uint8_t *end = w0 + 4 * (size_t)groups; w0 != end; w0 += 4, w1 += 4, x16 += 32) {
            uint32_t v0 = ld32(w0), v1 = ld32(w1), m;
            m = TQ_FIELD(v0, 0, 2, top), TQ_PACKED_PAIR(s0, m, x16, 0);
            m = TQ_FIELD(v1, 0, 2, top), TQ_PACKED_PAIR(s1, m, x16, 0);
            m = TQ_FIELD(v0, 1, 2, top), TQ_PACKED_PAIR(s0, m, x16, 1);
            m = TQ_FIELD(v1, 1, 2, top), TQ_PACKED_PAIR(s1, m, x16, 1);
            m = TQ_FIELD(v0, 2, 2, top), TQ_PACKED_PAIR(s0, m, x16, 2);
            m = TQ_FIELD(v1, 2, 2, top), TQ_PACKED_PAIR(s1, m, x16, 2);
            m = TQ_FIELD(v0, 3, 2, top), TQ_PACKED_PAIR(s0, m, x16, 3);
            m = TQ_FIELD(v1, 3, 2, top), TQ_PACKED_PAIR(s1, m, x16, 3);
        }
    }
    s[0] = s0, s[1] = s1;
}

/* A layer of packed weights whose rows start on a byte (in bits % 8 == 0; others take the plain
 * loop), two rows at a time; the last in % G inputs one at a time. x as in tq_linear_dsp_. */
TQ_INTERNAL void tq_linear_packed_dsp_(const tq_s8_layer *L, const uint8_t *x, int is_u8, int32_t off, int8_t *y, uint8_t *x16) {
    const int32_t bits = L->w_bits, n = L->in, groups = n / (32 / bits), done = groups * (32 / bits);
    const size_t row = (size_t)n * (size_t)bits / 8;
    const uint8_t *w = (const uint8_t *)L->w;
    if ((n * bits) % 8) {
        for (int32_t o = 0; o < L->out; o++) y[o] = output(L, o, L->bias[o] + tq_packed_row_(L, o, x, is_u8, off, 0));
        return;
    }
    unpack_x(x, is_u8, off, n, bits, x16);
    for (int32_t o = 0; o < L->out; o += 2) {
        int32_t o1 = o + 1 < L->out ? o + 1 : o, s[2];
        dot2_packed(w + (size_t)o * row, w + (size_t)o1 * row, x16, groups, bits, s);
        for (int32_t k = 0; k < 2 && o + k < L->out; k++)
            y[o + k] = output(L, o + k, L->bias[o + k] + (s[k] >> (8 - bits)) + tq_packed_row_(L, o + k, x, is_u8, off, done));
    }
}


/* Four channels' dot products with a window already unpacked to int16 pairs (x - z_x, in the
 * order SXTB16 unpacks weights: [x0 x2] [x1 x3] per 4 values): per 4 weights of a channel 1 load,
 * 2 extends, 2 SMLADs, and nothing spent on the window. The last K % 4 values come from the int8
 * window. Rows w, w + stride, w + 2 stride, w + 3 stride. */
static void dot4_q15(const int8_t *w, size_t stride, const uint8_t *p16, const int8_t *patch, int32_t K, int32_t zp,
                     int32_t *acc) {
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3], i = 0;
    for (; i + 4 <= K; i += 4, p16 += 8) {
        uint32_t a = ld32(p16), b = ld32(p16 + 4);
        uint32_t v0 = ld32(w + i);
        s0 = smlad(sxtb16_r8(v0), b, smlad((uint32_t)__sxtb16((int8x4_t)v0), a, s0));
        uint32_t v1 = ld32(w + stride + i);
        s1 = smlad(sxtb16_r8(v1), b, smlad((uint32_t)__sxtb16((int8x4_t)v1), a, s1));
        uint32_t v2 = ld32(w + 2 * stride + i);
        s2 = smlad(sxtb16_r8(v2), b, smlad((uint32_t)__sxtb16((int8x4_t)v2), a, s2));
        uint32_t v3 = ld32(w + 3 * stride + i);
        s3 = smlad(sxtb16_r8(v3), b, smlad((uint32_t)__sxtb16((int8x4_t)v3), a, s3));
    }
    for (; i < K; i++) {
        int32_t xi = (int32_t)patch[i] - zp;
        s0 += (int32_t)w[i] * xi;
        s1 += (int32_t)w[stride + (size_t)i] * xi;
        s2 += (int32_t)w[2 * stride + (size_t)i] * xi;
        s3 += (int32_t)w[3 * stride + (size_t)i] * xi;
    }
    acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
}

/* A convolution of packed weights on the DSP: the packed linear kernel over each gathered window
 * (its int16 input after the window: 2 (K - K % G) <= 2 (K - K % 4) bytes, G = 32 / bits). */
TQ_INTERNAL void tq_conv_packed_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    tq_s8_layer P = *L;
    P.in = L->k * KW(L) * L->in_c;
    P.out = L->out_c;
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            tq_gather_patch_(L, x, oy, ox, patch);
            tq_linear_packed_dsp_(&P, (const uint8_t *)patch, 0, -L->in_zp,
                              y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)L->out_c, (uint8_t *)patch + P.in);
        }
}

/* The convolution on the DSP, one output position at a time from position p0 (of out_h out_w,
 * in raster order) on: gather the window (int8), unpack it once to int16 pairs, then four output
 * channels at a time as in tq_linear_dsp_. Scratch: K bytes, then 2 (K - K % 4) bytes. */
static void conv_dsp_one(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch, int32_t p0) {
    const int32_t K = L->k * KW(L) * L->in_c, OC = L->out_c;
    const size_t Ks = (size_t)K;
    uint8_t *p16 = (uint8_t *)patch + K;
    const uint32_t off2 = ((uint32_t)(-L->in_zp) & 0xffffu) * 0x10001u;
    for (int32_t p = p0; p < L->out_h * L->out_w; p++) {
        const int32_t oy = p / L->out_w, ox = p % L->out_w;
        tq_gather_patch_(L, x, oy, ox, patch);
        for (int32_t i = 0; i + 4 <= K; i += 4) {
            uint32_t v = ld32(patch + i);
            st32(p16 + 2 * i, (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v));
            st32(p16 + 2 * i + 4, sxtab16_r8(off2, v));
        }
        int8_t *out = y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)OC;
        for (int32_t o = 0; o < OC; o += 4) {
            int32_t rows = OC - o < 4 ? OC - o : 4, acc[4];
            if (rows == 4) {
                for (int k = 0; k < 4; k++) acc[k] = L->bias[o + k];
                dot4_q15(L->w + (size_t)o * Ks, Ks, p16, patch, K, L->in_zp, acc);
            } else { /* stride 0: the four lanes are one row, as in tq_linear_dsp_ */
                for (int32_t k = 0; k < rows; k++) {
                    int32_t a[4] = {L->bias[o + k], 0, 0, 0};
                    dot4_q15(L->w + (size_t)(o + k) * Ks, 0, p16, patch, K, L->in_zp, a);
                    acc[k] = a[0];
                }
            }
            if (rows == 4) output4(L, o, acc, out + o);
            else
                for (int32_t k = 0; k < rows; k++) out[o + k] = output(L, o + k, acc[k]);
        }
    }
}


/* Two positions (a, b) by two channels (rows w and w + stride) over the first K4 values of the
 * windows unpacked to int16 pairs and interleaved (p16: per 4 values a's even pair, b's even
 * pair, a's odd pair, b's odd pair): per 4 values 4 loads of the windows from one pointer, 2 of
 * weights, 4 extends and 8 SMLADs for 16 products; each weight word serves both positions, each
 * window word both channels. acc: a's two channels, then b's. */
static void dot2x2_q15(const int8_t *w, size_t stride, const uint8_t *p16, int32_t K4, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];
    const int8_t *w1 = w + stride;
    const uint8_t *end = p16 + 4 * K4;
    while (p16 != end) {
        uint32_t v0 = ld32(w), v1 = ld32(w1);
        uint32_t e0 = (uint32_t)__sxtb16((int8x4_t)v0), o0 = sxtb16_r8(v0);
        uint32_t e1 = (uint32_t)__sxtb16((int8x4_t)v1), o1 = sxtb16_r8(v1);
        uint32_t t = ld32(p16);
        a0 = smlad(e0, t, a0), a1 = smlad(e1, t, a1);
        t = ld32(p16 + 4);
        b0 = smlad(e0, t, b0), b1 = smlad(e1, t, b1);
        t = ld32(p16 + 8);
        a0 = smlad(o0, t, a0), a1 = smlad(o1, t, a1);
        t = ld32(p16 + 12);
        b0 = smlad(o0, t, b0), b1 = smlad(o1, t, b1);
        w += 4, w1 += 4, p16 += 16;
    }
    acc[0] = a0, acc[1] = a1, acc[2] = b0, acc[3] = b1;
}

/* One output position of a 1 x 1 convolution (px: its pixel) with no scratch: each word of the
 * pixel extended in registers (SXTAB16 takes z_x off) serves four channels' weight words. */
#define TQ_PW_ROW(s, wp)                                                                                  \
    do {                                                                                                   \
        const uint32_t wv = ld32(wp);                                                                      \
        s = smlad(sxtb16_r8(wv), xo, smlad((uint32_t)__sxtb16((int8x4_t)wv), xe, s));                      \
    } while (0)
static void pointwise_one(const tq_s8_layer *L, const int8_t *px, int8_t *out, uint32_t off2) {
    const int32_t K = L->in_c, OC = L->out_c, K4 = K - K % 4;
    const size_t Ks = (size_t)K;
    for (int32_t o = 0; o < OC; o += 4) {
        const int32_t rows = OC - o < 4 ? OC - o : 4;
        const int8_t *w = L->w + (size_t)o * Ks;
        int32_t acc[4] = {0, 0, 0, 0};
        for (int32_t r = 0; r < rows; r++) acc[r] = L->bias[o + r];
        if (rows == 4) {
            int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
            for (int32_t i = 0; i < K4; i += 4) {
                const uint32_t v = ld32(px + i), xe = (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v), xo = sxtab16_r8(off2, v);
                TQ_PW_ROW(s0, w + i);
                TQ_PW_ROW(s1, w + Ks + i);
                TQ_PW_ROW(s2, w + 2 * Ks + i);
                TQ_PW_ROW(s3, w + 3 * Ks + i);
            }
            acc[0] = s0, acc[1] = s1, acc[2] = s2, acc[3] = s3;
        } else {
            for (int32_t i = 0; i < K4; i += 4) {
                const uint32_t v = ld32(px + i), xe = (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v), xo = sxtab16_r8(off2, v);
                for (int32_t r = 0; r < rows; r++) TQ_PW_ROW(acc[r], w + (size_t)r * Ks + (size_t)i);
            }
        }
        for (int32_t i = K4; i < K; i++)
            for (int32_t r = 0; r < rows; r++) acc[r] += (int32_t)w[(size_t)r * Ks + (size_t)i] * ((int32_t)px[i] - L->in_zp);
        if (rows == 4) output4(L, o, acc, out + o);
        else
            for (int32_t r = 0; r < rows; r++) out[o + r] = output(L, o + r, acc[r]);
    }
}

/* The convolution on the DSP, two output positions at a time: each window (read in place for
 * a 1 x 1 convolution, pw; gathered into the scratch otherwise) unpacked once to int16 pairs
 * (x - z_x), interleaved for dot2x2_q15, then four channels at a time as two pairs of it; the
 * last K % 4 values from the int8 windows. A last odd position takes the one-position kernel.
 * Scratch: an int8 window (K bytes: the two are gathered there in turn, their last K % 4 values
 * kept aside), then 4 (K - K % 4) bytes of pairs; a 1 x 1 convolution needs only the pairs, or
 * none where they fit in its output (PW_PAIRS_IN_OUTPUT: there from a word, the positions they
 * cover run one at a time without pairs, as does a last odd one). */
static inline __attribute__((always_inline)) void conv_dsp_body(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch,
                                                                const int pw) {
    const int32_t K = L->k * KW(L) * L->in_c, OC = L->out_c, K4 = K - K % 4, P = L->out_h * L->out_w, OC4 = OC - OC % 4;
    const size_t Ks = (size_t)K;
    const uint32_t off2 = ((uint32_t)(-L->in_zp) & 0xffffu) * 0x10001u;
    const int in_out = pw && PW_PAIRS_IN_OUTPUT(L); /* the pairs in the output's last 4 K4 bytes, from a word */
    uint8_t *p16 = in_out ? (uint8_t *)(((uintptr_t)(y + (size_t)P * (size_t)OC) - 4 * (uintptr_t)K4) & ~(uintptr_t)3)
                          : (uint8_t *)patch + (pw ? 0 : Ks);
    const int32_t P2 = in_out ? P - PW_TAIL_POSITIONS(L) : P;
    int32_t p = 0;
    for (; p + 1 < P2; p += 2) {
        int32_t tail[2][3]; /* x - z_x of each window's last K % 4 values */
        for (int j = 0; j < 2; j++) {
            const int32_t oy = (p + j) / L->out_w, ox = (p + j) % L->out_w;
            const int8_t *win = patch;
            if (pw) win = x + ((size_t)(oy * L->stride) * (size_t)L->in_w + (size_t)(ox * SW(L))) * Ks;
            else tq_gather_patch_(L, x, oy, ox, patch);
            for (int32_t i = 0; i < K4; i += 4) { /* dot2x2_q15's interleaving */
                uint32_t v = ld32(win + i);
                st32(p16 + 4 * i + 4 * j, (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v));
                st32(p16 + 4 * i + 4 * j + 8, sxtab16_r8(off2, v));
            }
            for (int32_t i = K4; i < K; i++) tail[j][i - K4] = (int32_t)win[i] - L->in_zp;
        }
        int8_t *out = y + (size_t)p * (size_t)OC;
        for (int32_t o = 0; o < OC4; o += 4) {
            const int8_t *w = L->w + (size_t)o * Ks;
            int32_t lo[4] = {L->bias[o], L->bias[o + 1], L->bias[o], L->bias[o + 1]};
            int32_t hi[4] = {L->bias[o + 2], L->bias[o + 3], L->bias[o + 2], L->bias[o + 3]};
            dot2x2_q15(w, Ks, p16, K4, lo);
            dot2x2_q15(w + 2 * Ks, Ks, p16, K4, hi);
            int32_t a[4] = {lo[0], lo[1], hi[0], hi[1]}, b[4] = {lo[2], lo[3], hi[2], hi[3]};
            for (int32_t i = K4; i < K; i++)
                for (int r = 0; r < 4; r++) {
                    int32_t wv = w[(size_t)r * Ks + (size_t)i];
                    a[r] += wv * tail[0][i - K4];
                    b[r] += wv * tail[1][i - K4];
                }
            output4(L, o, a, out + o);
            output4(L, o, b, out + OC + o);
        }
        for (int32_t o = OC4; o < OC; o++) { /* the last OC % 4 channels: stride 0, both rows the one */
            const int8_t *w = L->w + (size_t)o * Ks;
            int32_t acc[4] = {L->bias[o], 0, L->bias[o], 0};
            dot2x2_q15(w, 0, p16, K4, acc);
            for (int32_t i = K4; i < K; i++) acc[0] += w[i] * tail[0][i - K4], acc[2] += w[i] * tail[1][i - K4];
            out[o] = output(L, o, acc[0]);
            out[(size_t)OC + (size_t)o] = output(L, o, acc[2]);
        }
    }
    if (pw)
        for (; p < P; p++)
            pointwise_one(L, x + ((size_t)(p / L->out_w * L->stride) * (size_t)L->in_w + (size_t)(p % L->out_w * SW(L))) * Ks,
                          y + (size_t)p * (size_t)OC, off2);
    else if (p < P) conv_dsp_one(L, x, y, patch, p);
}

/* Window (oy, ox) of a layer whose channels come in fours (in_c % 4 == 0: every four window
 * values are four channels of one tap, and K % 4 == 0), gathered straight into its int16 pairs
 * x - z_x (a tap outside the image: 0) with no int8 copy, in dot2x2_q15's interleaving: values
 * i..i+3 to p16 + 4 i (lanes 0 and 2) and 8 bytes after it (lanes 1 and 3). */
static void gather_q15(const tq_s8_layer *L, const int8_t *x, int32_t oy, int32_t ox, uint8_t *p16, uint32_t off2) {
    const int32_t C = L->in_c, k = L->k, kw = KW(L), ix0 = ox * SW(L) - PW(L);
    const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = L->in_w - ix0 < kw ? L->in_w - ix0 : kw; /* kx in [kx0, kx1) is inside */
    uint8_t *d = p16;
    for (int32_t ky = 0; ky < k; ky++) {
        const int32_t iy = oy * L->stride - L->pad + ky;
        const int inside = iy >= 0 && iy < L->in_h && kx0 < kx1;
        const int32_t a = inside ? kx0 * C : kw * C, b = inside ? kx1 * C : kw * C; /* [a, b): the image's */
        int32_t i = 0;
        for (; i < a; i += 4, d += 16) st32(d, 0), st32(d + 8, 0);
        if (inside)
            for (const int8_t *s = x + ((size_t)iy * (size_t)L->in_w + (size_t)(ix0 + kx0)) * (size_t)C; i < b; i += 4, s += 4, d += 16) {
                uint32_t v = ld32(s);
                st32(d, (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v));
                st32(d + 8, sxtab16_r8(off2, v));
            }
        for (; i < kw * C; i += 4, d += 16) st32(d, 0), st32(d + 8, 0);
    }
}

/* The convolution of conv_dsp_body when in_c % 4 == 0: the two windows gathered straight into
 * their interleaved pairs (gather_q15), so the scratch is those 4 K bytes alone, no int8 window
 * and no tail (K % 4 == 0). A last odd position is gathered into both halves, written once. */
__attribute__((noinline)) static void conv_dsp_direct(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    const int32_t K = L->k * KW(L) * L->in_c, OC = L->out_c, P = L->out_h * L->out_w, OC4 = OC - OC % 4;
    const size_t Ks = (size_t)K;
    uint8_t *p16 = (uint8_t *)patch;
    const uint32_t off2 = ((uint32_t)(-L->in_zp) & 0xffffu) * 0x10001u;
    for (int32_t p = 0; p < P; p += 2) {
        const int two = p + 1 < P;
        for (int j = 0; j < 2; j++) {
            const int32_t q = two ? p + j : p;
            gather_q15(L, x, q / L->out_w, q % L->out_w, p16 + 4 * j, off2);
        }
        int8_t *out = y + (size_t)p * (size_t)OC;
        for (int32_t o = 0; o < OC4; o += 4) {
            const int8_t *w = L->w + (size_t)o * Ks;
            int32_t lo[4] = {L->bias[o], L->bias[o + 1], L->bias[o], L->bias[o + 1]};
            int32_t hi[4] = {L->bias[o + 2], L->bias[o + 3], L->bias[o + 2], L->bias[o + 3]};
            dot2x2_q15(w, Ks, p16, K, lo);
            dot2x2_q15(w + 2 * Ks, Ks, p16, K, hi);
            int32_t a[4] = {lo[0], lo[1], hi[0], hi[1]}, b[4] = {lo[2], lo[3], hi[2], hi[3]};
            output4(L, o, a, out + o);
            if (two) output4(L, o, b, out + OC + o);
        }
        for (int32_t o = OC4; o < OC; o++) { /* the last OC % 4 channels: stride 0, both rows the one */
            int32_t acc[4] = {L->bias[o], 0, L->bias[o], 0};
            dot2x2_q15(L->w + (size_t)o * Ks, 0, p16, K, acc);
            out[o] = output(L, o, acc[0]);
            if (two) out[(size_t)OC + (size_t)o] = output(L, o, acc[2]);
        }
    }
}

/* (each form a function of its own, so that neither's code depends on the other's) */
__attribute__((noinline)) static void conv_dsp_window(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    conv_dsp_body(L, x, y, patch, 0);
}

TQ_INTERNAL void tq_conv_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    if (L->in_c % 4 == 0) conv_dsp_direct(L, x, y, patch);
    else conv_dsp_window(L, x, y, patch);
}
/* A 1 x 1 convolution: its own copy of the loop, so the others pay nothing for the choice */
TQ_INTERNAL void tq_pointwise_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) { conv_dsp_body(L, x, y, patch, 1); }

/* A packed convolution whose rows do not start on a byte (K bits % 8 != 0, as DigitsCNN's first
 * at 4 bits: 25 weights a row) would unpack weight by weight in every window. Its weights are few
 * and serve every window, so they are unpacked once per call, into the scratch after the window's
 * (K out_c bytes more, tq_s8_layer_scratch_bytes), and the 8-bit kernel runs on them. */
TQ_INTERNAL void tq_conv_midbyte_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    const int32_t K = L->k * KW(L) * L->in_c, n = K * L->out_c;
    int8_t *w8 = patch + K + 4 * (K - K % 4);
    for (int32_t i = 0; i < n; i++) w8[i] = (int8_t)unpack(L->w, L->w_bits, (size_t)i);
    tq_s8_layer P = *L;
    P.w = w8;
    P.w_bits = 8;
    tq_conv_dsp_(&P, x, y, patch);
}

/* A tap: four channels' inputs and weights split into even and odd int16 lanes (z_x taken off
 * the inputs), one multiply-accumulate per lane. */
#define TQ_DW_TAP(xp, wp)                                                                               \
    do {                                                                                                \
        uint32_t xv = ld32(xp), wv = ld32(wp);                                                          \
        uint32_t xe = (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)xv), xo = sxtab16_r8(off2, xv);    \
        uint32_t we = (uint32_t)__sxtb16((int8x4_t)wv), wo = sxtb16_r8(wv);                             \
        a0 = __smlabb((int32_t)we, (int32_t)xe, a0);                                                    \
        a2 = __smlatt((int32_t)we, (int32_t)xe, a2);                                                    \
        a1 = __smlabb((int32_t)wo, (int32_t)xo, a1);                                                    \
        a3 = __smlatt((int32_t)wo, (int32_t)xo, a3);                                                    \
    } while (0)

/* One output position whose 3 x 3 window lies inside the image (most of them): the nine taps
 * unrolled, so a group of four channels costs its taps and nothing for loops or edges. x: the
 * window's top left pixel. */
static void depthwise3x3_inside(const tq_s8_layer *L, const int8_t *x, int8_t *out, uint32_t off2) {
    const size_t C = (size_t)L->in_c, row = (size_t)L->in_w * C, C4 = C - C % 4;
    for (size_t c = 0; c < C4; c += 4) {
        int32_t a0 = L->bias[c], a1 = L->bias[c + 1], a2 = L->bias[c + 2], a3 = L->bias[c + 3];
        const int8_t *xr = x + c, *wr = L->w + c;
        TQ_DW_TAP(xr, wr);
        TQ_DW_TAP(xr + C, wr + C);
        TQ_DW_TAP(xr + 2 * C, wr + 2 * C);
        xr += row, wr += 3 * C;
        TQ_DW_TAP(xr, wr);
        TQ_DW_TAP(xr + C, wr + C);
        TQ_DW_TAP(xr + 2 * C, wr + 2 * C);
        xr += row, wr += 3 * C;
        TQ_DW_TAP(xr, wr);
        TQ_DW_TAP(xr + C, wr + C);
        TQ_DW_TAP(xr + 2 * C, wr + 2 * C);
        const int32_t acc[4] = {a0, a1, a2, a3};
        output4(L, (int32_t)c, acc, out + c);
    }
    for (size_t c = C4; c < C; c++) {
        int32_t a = L->bias[c];
        for (size_t t = 0; t < 9; t++) a += (int32_t)L->w[t * C + c] * ((int32_t)x[(t / 3) * row + (t % 3) * C + c] - L->in_zp);
        out[c] = output(L, (int32_t)c, a);
    }
}

/* Depthwise with one output channel per input channel (int8 weights, 1HWO: a tap's weights are
 * as contiguous as a pixel's channels), four channels at a time with their sums in registers:
 * per tap one word of inputs and one of weights, each split into its even and odd int16 lanes
 * (SXTAB16 takes z_x off the inputs on the way), then one 16 x 16 multiply-accumulate per lane
 * (SMLABB, SMLATT). Taps outside the image hold z_x and add nothing, so they are skipped. */
TQ_INTERNAL void tq_depthwise_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    const int32_t C = L->in_c, k = L->k, kw = KW(L), C4 = C - C % 4;
    const uint32_t off2 = ((uint32_t)(-L->in_zp) & 0xffffu) * 0x10001u;
    for (int32_t oy = 0; oy < L->out_h; oy++) {
        const int32_t iy0 = oy * L->stride - L->pad;
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = L->in_h - iy0 < k ? L->in_h - iy0 : k;
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            const int32_t ix0 = ox * SW(L) - PW(L);
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = L->in_w - ix0 < kw ? L->in_w - ix0 : kw;
            int8_t *out = y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)C;
            if (k == 3 && kw == 3 && ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3) { /* inside: the usual 3 x 3 */
                depthwise3x3_inside(L, x + ((size_t)iy0 * (size_t)L->in_w + (size_t)ix0) * (size_t)C, out, off2);
                continue;
            }
            /* an edge (or another kernel size): the taps inside the image listed once for the
             * position (input and weight offsets), then every group of four channels runs the
             * list with no bounds to test; a window of more than 16 taps goes row by row */
            int32_t xoff[16], woff[16], n = 0;
            if (k * kw <= 16)
                for (int32_t ky = ky0; ky < ky1; ky++)
                    for (int32_t kx = kx0; kx < kx1; kx++, n++) {
                        xoff[n] = ((iy0 + ky) * L->in_w + ix0 + kx) * C;
                        woff[n] = (ky * kw + kx) * C;
                    }
            for (int32_t c = 0; c < C4; c += 4) {
                int32_t a0 = L->bias[c], a1 = L->bias[c + 1], a2 = L->bias[c + 2], a3 = L->bias[c + 3];
                if (k * kw <= 16) {
                    const int8_t *xc = x + c, *wc = L->w + c;
                    for (int32_t t = 0; t < n; t++) TQ_DW_TAP(xc + xoff[t], wc + woff[t]);
                } else {
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *xr = x + ((size_t)(iy0 + ky) * (size_t)L->in_w + (size_t)(ix0 + kx0)) * (size_t)C + (size_t)c;
                        const int8_t *wr = L->w + (size_t)(ky * kw + kx0) * (size_t)C + (size_t)c;
                        for (int32_t kx = kx0; kx < kx1; kx++, xr += C, wr += C) TQ_DW_TAP(xr, wr);
                    }
                }
                const int32_t acc[4] = {a0, a1, a2, a3};
                output4(L, c, acc, out + c);
            }
            for (int32_t c = C4; c < C; c++) {
                int32_t a = L->bias[c];
                for (int32_t ky = ky0; ky < ky1; ky++)
                    for (int32_t kx = kx0; kx < kx1; kx++)
                        a += (int32_t)L->w[(size_t)(ky * kw + kx) * (size_t)C + (size_t)c] *
                             ((int32_t)x[((size_t)(iy0 + ky) * (size_t)L->in_w + (size_t)(ix0 + kx)) * (size_t)C + (size_t)c] - L->in_zp);
                out[c] = output(L, c, a);
            }
        }
    }
}

/* Byte-wise max and min of four int8 lanes: SSUB8 sets a GE flag per lane where a >= b, SEL
 * picks by them (one asm block, so nothing can come between the two). */
static inline uint32_t max4(uint32_t a, uint32_t b) {
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %2, %3" : "=r"(r), "=&r"(t) : "r"(a), "r"(b) : "cc");
    return r;
}
static inline uint32_t min4(uint32_t a, uint32_t b) {
    uint32_t r, t;
    __asm__("ssub8 %1, %2, %3\n\tsel %0, %3, %2" : "=r"(r), "=&r"(t) : "r"(a), "r"(b) : "cc");
    return r;
}

/* Max pool four channels at a time (in_c a multiple of 4): the window's rows folded into the
 * output with max4, then the clamp. */
TQ_INTERNAL void tq_maxpool_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    const int32_t C = L->in_c, k = L->k, kw = KW(L);
    const uint32_t lo = ((uint32_t)L->act_min & 0xffu) * 0x01010101u, hi = ((uint32_t)L->act_max & 0xffu) * 0x01010101u;
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            const int8_t *win = x + ((size_t)(oy * L->stride) * (size_t)L->in_w + (size_t)(ox * SW(L))) * (size_t)C;
            int8_t *out = y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)C;
            for (int32_t c = 0; c < C; c += 4) {
                uint32_t m = lo;
                for (int32_t ky = 0; ky < k; ky++)
                    for (int32_t kx = 0; kx < kw; kx++)
                        m = max4(m, ld32(win + ((size_t)ky * (size_t)L->in_w + (size_t)kx) * (size_t)C + (size_t)c));
                st32(out + c, min4(m, hi));
            }
        }
}
#endif
