#include "src/int8_infer.h"

#define TQ_INT8_C_EXPORT_ID 0x0u
#if TQ_INT8_C_EXPORT_ID != TQ_INT8_EXPORT_ID
#error "int8_infer.c and int8_infer.h come from different exports (an interrupted export?): export the model again"
#endif

/* On a Cortex-M with the DSP extension (M4, M7, M33...), the layers run on the SMLAD kernel below
 * unless TQ_PORTABLE is defined; everywhere else, and on the host, on the plain loops. Both give
 * the same integers (the sums are exact in int32 either way). */
#if defined(__ARM_FEATURE_DSP) && !defined(TQ_PORTABLE)
#define TQ_DSP 1
#include <arm_acle.h>
#endif

/* docs/QUANTIZATION.md §5 (tinyqat's numeric specification), line by line:
 *   a = acc * 2^max(shift, 0)
 *   h = (int32)(((int64)a*M0 + (a*M0 >= 0 ? 2^30 : 1 - 2^30)) / 2^31)     C division truncates
 *     = (int32)(((int64)a*M0 + 2^30) >> 31)                                 the same, floored
 *   e = max(-shift, 0),  mask = 2^e - 1
 *   out = (h >> e) + ((h & mask) > (mask >> 1) + (h < 0))                ties away from zero
 * h is SaturatingRoundingDoublingHighMul(a, M0); the last line is RoundingDivideByPOT(h, e).
 * The left shift saturates instead of overflowing (TFLite leaves that case undefined). */
/* For M0 >= 0, which every layer has (M0 in [2^30, 2^31 - 1], or 0): the product cannot reach the
 * one case SaturatingRoundingDoublingHighMul saturates (a = M0 = INT32_MIN), so the kernels skip
 * the test; tq_requantize_ref keeps it. */
__attribute__((noinline)) static int32_t requantize(int32_t acc, int32_t M0, int32_t shift) {
    int32_t a = acc, e = 0;
    if (shift > 0) { /* rare (M > 1): the left shift, saturated */
        int64_t a64 = (int64_t)acc * ((int64_t)1 << shift);
        a = a64 > INT32_MAX ? INT32_MAX : a64 < INT32_MIN ? INT32_MIN : (int32_t)a64;
    } else {
        e = -shift;
    }
    /* (ab + nudge) / 2^31 truncated equals (ab + 2^30) >> 31 floored for every ab (for ab < 0
     * write -ab = q 2^31 + r: both are -q - [r > 2^30]), which is one SMLAL and a shift. */
    int32_t h = (int32_t)(((int64_t)a * (int64_t)M0 + ((int64_t)1 << 30)) >> 31);
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = h & mask, threshold = (mask >> 1) + (h < 0 ? 1 : 0);
    /* >> of a negative int is arithmetic on every compiler tinyqat targets (GCC, Clang) */
    return (h >> e) + (remainder > threshold ? 1 : 0);
}

int32_t tq_requantize_ref(int32_t acc, int32_t M0, int32_t shift) {
    if (M0 == INT32_MIN && (shift > 0 ? (int64_t)acc * ((int64_t)1 << shift) : acc) <= INT32_MIN) return INT32_MAX;
    return requantize(acc, M0, shift);
}

/* y[o] from its accumulator: requantize, add the output zero point, clamp (a fused ReLU).
 * Within the header's ranges |requantize| <= |acc| + 1 when shift <= 0, but a left shift
 * saturates to +-2^31 - 1, so the zero point is added saturating: QADD on the DSP (one
 * instruction, like ADD), elsewhere an add and a branch on its overflow flag. */
static inline int8_t output(const tq_s8_layer *L, int32_t o, int32_t acc) {
#ifdef TQ_DSP
    int32_t v = __qadd(requantize(acc, L->mult[o], L->shift[o]), L->out_zp);
#else
    int32_t r = requantize(acc, L->mult[o], L->shift[o]), v;
    if (__builtin_add_overflow(r, L->out_zp, &v)) v = r > 0 ? INT32_MAX : INT32_MIN;
#endif
    v = v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v;
    return (int8_t)v;
}

/* A window's columns, horizontal stride and left padding (kw = 0: square). */
#if TQ_INT8_GRAPHS
#define KW(L) ((L)->kw ? (L)->kw : (L)->k)
#define SW(L) ((L)->kw ? (L)->stride_w : (L)->stride)
#define PW(L) ((L)->kw ? (L)->pad_w : (L)->pad)
#define SRC(L, j) ((L)->src[j])
#define IN2_ZP(L) ((L)->in2_zp)
#define IN2_C(L) ((L)->in2_c)
#else
#define KW(L) ((L)->k)
#define SW(L) ((L)->stride)
#define PW(L) ((L)->pad)
#define SRC(L, j) ((void)(L), (void)(j), 0)
#define IN2_ZP(L) ((void)(L), 0)
#define IN2_C(L) ((void)(L), 0)
#endif
/* Layers that read two inputs. */
#define TWO_INPUTS(L) ((L)->kind == TQ_S8_ADD || (L)->kind == TQ_S8_CONCAT)

/* A 1 x 1 convolution without padding: each output pixel is a linear layer of one input pixel,
 * which is in_c contiguous bytes already, so it needs no window gathered. */
#define POINTWISE(L) ((L)->kind == TQ_S8_CONV && (L)->k == 1 && KW(L) == 1 && (L)->pad == 0 && PW(L) == 0)

/* ---- packed weights ---- */

/* A layer whose weights this build reads packed (TQ_INT8_PACKED names the widths it has). */
#define PACKED(L) (TQ_INT8_PACKED && ((L)->w_bits == 4 || (L)->w_bits == 2) && ((TQ_INT8_PACKED >> (L)->w_bits) & 1))

/* weight i of a tensor packed at 4 or 2 bits: the field moved to the top of a word, then shifted
 * back down arithmetically, which sign-extends it */
static inline int32_t unpack(const int8_t *w, int32_t bits, size_t i) {
    size_t per = bits == 4 ? 2 : 4; /* weights per byte */
    uint32_t top = (uint32_t)(uint8_t)w[i / per] << (32 - (size_t)bits * (i % per + 1));
    return (int32_t)top >> (32 - bits);
}

int32_t tq_s8_unpack(const int8_t *w, int32_t w_bits, size_t i) {
    return w_bits == 4 || w_bits == 2 ? unpack(w, w_bits, i) : w[i];
}

/* Row o's accumulator with the weights unpacked one at a time: x is int8 (is_u8 = 0) or raw
 * pixels (is_u8 = 1), plus off; inputs first.. of the row. */
static int32_t packed_row(const tq_s8_layer *L, int32_t o, const uint8_t *x, int is_u8, int32_t off, int32_t first) {
    int32_t acc = 0;
    size_t base = (size_t)o * (size_t)L->in;
    for (int32_t i = first; i < L->in; i++)
        acc += unpack(L->w, L->w_bits, base + (size_t)i) * ((is_u8 ? (int32_t)x[i] : (int32_t)(int8_t)x[i]) + off);
    return acc;
}

void tq_linear_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    if (PACKED(L)) {
        for (int32_t o = 0; o < L->out; o++) y[o] = output(L, o, L->bias[o] + packed_row(L, o, (const uint8_t *)x, 0, -L->in_zp, 0));
        return;
    }
    for (int32_t o = 0; o < L->out; o++) {
        const int8_t *w = L->w + (size_t)o * (size_t)L->in;
        int32_t acc = L->bias[o];
        for (int32_t i = 0; i < L->in; i++) acc += (int32_t)w[i] * ((int32_t)x[i] - L->in_zp);
        y[o] = output(L, o, acc);
    }
}

#ifdef TQ_DSP
/* Four int8 (or uint8) values in one word, unpacked into two pairs of int16 with an offset added:
 * SXTAB16(off, v) = [v0 + off, v2 + off], SXTAB16(off, v ror 8) = [v1 + off, v3 + off]. SMLAD
 * then adds both products of a pair to the accumulator: 4 MACs in 2 multiply instructions. Two
 * output rows share each input word, so each input is loaded and unpacked once per two rows. */
static inline uint32_t ld32(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4); /* one LDR: the M4 loads unaligned words */
    return v;
}

/* The extend instructions can rotate their source by 8 for free; GCC does not fold a separate
 * rotate into them, so these say it directly. */
static inline uint32_t sxtb16_r8(uint32_t v) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
static inline uint32_t sxtab16_r8(uint32_t a, uint32_t v) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
static inline uint32_t uxtb16_r8(uint32_t v) {
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
/* two-operand forms for the zero-offset case, shaped like the unpackers above */
/* pixels into tinyqat's input zero point (-128): x - z_x = p itself, unpacked with no offset */
#define TQ_UXTB16(off2, v) __uxtb16((uint8x4_t)(v))
#define TQ_UXTB16_R8(off2, v) uxtb16_r8(v)
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int16x2_t)a, (int16x2_t)b, acc); }

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
static void linear_dsp(const tq_s8_layer *L, const uint8_t *x, int is_u8, int32_t off, int8_t *y) {
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
 * loop), two rows at a time; the last in % G inputs one at a time. x as in linear_dsp. */
static void linear_packed_dsp(const tq_s8_layer *L, const uint8_t *x, int is_u8, int32_t off, int8_t *y, uint8_t *x16) {
    const int32_t bits = L->w_bits, n = L->in, groups = n / (32 / bits), done = groups * (32 / bits);
    const size_t row = (size_t)n * (size_t)bits / 8;
    const uint8_t *w = (const uint8_t *)L->w;
    if ((n * bits) % 8) {
        for (int32_t o = 0; o < L->out; o++) y[o] = output(L, o, L->bias[o] + packed_row(L, o, x, is_u8, off, 0));
        return;
    }
    unpack_x(x, is_u8, off, n, bits, x16);
    for (int32_t o = 0; o < L->out; o += 2) {
        int32_t o1 = o + 1 < L->out ? o + 1 : o, s[2];
        dot2_packed(w + (size_t)o * row, w + (size_t)o1 * row, x16, groups, bits, s);
        for (int32_t k = 0; k < 2 && o + k < L->out; k++)
            y[o + k] = output(L, o + k, L->bias[o + k] + (s[k] >> (8 - bits)) + packed_row(L, o + k, x, is_u8, off, done));
    }
}

#endif

/* The linear kernel the build has: SMLAD on a Cortex-M with DSP, the plain loop elsewhere. */
static void linear_best(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *scratch) {
#ifdef TQ_DSP
    if (PACKED(L)) linear_packed_dsp(L, (const uint8_t *)x, 0, -L->in_zp, y, (uint8_t *)scratch);
    else linear_dsp(L, (const uint8_t *)x, 0, -L->in_zp, y);
#else
    (void)scratch;
    tq_linear_s8_ref(L, x, y);
#endif
}

/* n bytes, a word at a time where it can (the M4 and x86 load unaligned words; a call to memcpy
 * would need the C library). */
static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t v;
        __builtin_memcpy(&v, src + i, 4);
        __builtin_memcpy(dst + i, &v, 4);
    }
    for (; i < n; i++) dst[i] = src[i];
}

/* The window of output (oy, ox) as one vector [ky][kx][c], the weights' row order; positions
 * outside the image hold z_x. Within a kernel row the in-image part is contiguous in NHWC. */
static void gather_patch(const tq_s8_layer *L, const int8_t *x, int32_t oy, int32_t ox, int8_t *patch) {
    const int32_t C = L->in_c, k = L->k, kw = KW(L);
    const int32_t ix0 = ox * SW(L) - PW(L);
    int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = L->in_w - ix0 < kw ? L->in_w - ix0 : kw; /* kx in [kx0, kx1) is inside */
    for (int32_t ky = 0; ky < k; ky++) {
        int32_t iy = oy * L->stride - L->pad + ky;
        int8_t *row = patch + ky * kw * C;
        if (iy < 0 || iy >= L->in_h || kx0 >= kx1) {
            for (int32_t i = 0; i < kw * C; i++) row[i] = (int8_t)L->in_zp;
            continue;
        }
        for (int32_t i = 0; i < kx0 * C; i++) row[i] = (int8_t)L->in_zp;
        copy_bytes(row + kx0 * C, x + ((size_t)iy * (size_t)L->in_w + (size_t)(ix0 + kx0)) * (size_t)C, (kx1 - kx0) * C);
        for (int32_t i = kx1 * C; i < kw * C; i++) row[i] = (int8_t)L->in_zp;
    }
}

#ifdef TQ_DSP
static inline void st32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

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
static void conv_packed_dsp(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    tq_s8_layer P = *L;
    P.in = L->k * KW(L) * L->in_c;
    P.out = L->out_c;
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            gather_patch(L, x, oy, ox, patch);
            linear_packed_dsp(&P, (const uint8_t *)patch, 0, -L->in_zp,
                              y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)L->out_c, (uint8_t *)patch + P.in);
        }
}

/* The convolution on the DSP: gather the window (int8), unpack it once to int16 pairs, then four
 * output channels at a time as in linear_dsp. Scratch: K bytes, then 2 (K - K % 4) bytes. */
static inline __attribute__((always_inline)) void conv_dsp_body(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch,
                                                                const int pw) {
    const int32_t K = L->k * KW(L) * L->in_c, OC = L->out_c;
    const size_t Ks = (size_t)K;
    /* pw: the window is the pixel itself: no copy, the int16 pairs at the scratch's start */
    uint8_t *p16 = (uint8_t *)patch + (pw ? 0 : K);
    const uint32_t off2 = ((uint32_t)(-L->in_zp) & 0xffffu) * 0x10001u;
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            const int8_t *win = patch;
            if (pw) win = x + ((size_t)(oy * L->stride) * (size_t)L->in_w + (size_t)(ox * SW(L))) * (size_t)L->in_c;
            else gather_patch(L, x, oy, ox, patch);
            for (int32_t i = 0; i + 4 <= K; i += 4) {
                uint32_t v = ld32(win + i);
                st32(p16 + 2 * i, (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v));
                st32(p16 + 2 * i + 4, sxtab16_r8(off2, v));
            }
            int8_t *out = y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)OC;
            for (int32_t o = 0; o < OC; o += 4) {
                int32_t rows = OC - o < 4 ? OC - o : 4, acc[4];
                if (rows == 4) {
                    for (int k = 0; k < 4; k++) acc[k] = L->bias[o + k];
                    dot4_q15(L->w + (size_t)o * Ks, Ks, p16, win, K, L->in_zp, acc);
                } else { /* stride 0: the four lanes are one row, as in linear_dsp */
                    for (int32_t k = 0; k < rows; k++) {
                        int32_t a[4] = {L->bias[o + k], 0, 0, 0};
                        dot4_q15(L->w + (size_t)(o + k) * Ks, 0, p16, win, K, L->in_zp, a);
                        acc[k] = a[0];
                    }
                }
                for (int32_t k = 0; k < rows; k++) out[o + k] = output(L, o + k, acc[k]);
            }
        }
}

static void conv_dsp(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) { conv_dsp_body(L, x, y, patch, 0); }
/* A 1 x 1 convolution: its own copy of the loop, so the others pay nothing for the choice */
static void pointwise_dsp(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) { conv_dsp_body(L, x, y, patch, 1); }

/* A packed convolution whose rows do not start on a byte (K bits % 8 != 0, as DigitsCNN's first
 * at 4 bits: 25 weights a row) would unpack weight by weight in every window. Its weights are few
 * and serve every window, so they are unpacked once per call, into the scratch after the window's
 * (K out_c bytes more, tq_s8_layer_scratch_bytes), and the 8-bit kernel runs on them. */
static void conv_midbyte_dsp(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    const int32_t K = L->k * KW(L) * L->in_c, n = K * L->out_c;
    int8_t *w8 = patch + K + 2 * (K - K % 4);
    for (int32_t i = 0; i < n; i++) w8[i] = (int8_t)unpack(L->w, L->w_bits, (size_t)i);
    tq_s8_layer P = *L;
    P.w = w8;
    P.w_bits = 8;
    conv_dsp(&P, x, y, patch);
}

/* Depthwise with one output channel per input channel (int8 weights, 1HWO: a tap's weights are
 * as contiguous as a pixel's channels), four channels at a time with their sums in registers:
 * per tap one word of inputs and one of weights, each split into its even and odd int16 lanes
 * (SXTAB16 takes z_x off the inputs on the way), then one 16 x 16 multiply-accumulate per lane
 * (SMLABB, SMLATT). Taps outside the image hold z_x and add nothing, so they are skipped. */
static void depthwise_dsp(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    const int32_t C = L->in_c, k = L->k, kw = KW(L), C4 = C - C % 4;
    const uint32_t off2 = ((uint32_t)(-L->in_zp) & 0xffffu) * 0x10001u;
    for (int32_t oy = 0; oy < L->out_h; oy++) {
        const int32_t iy0 = oy * L->stride - L->pad;
        const int32_t ky0 = iy0 < 0 ? -iy0 : 0, ky1 = L->in_h - iy0 < k ? L->in_h - iy0 : k;
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            const int32_t ix0 = ox * SW(L) - PW(L);
            const int32_t kx0 = ix0 < 0 ? -ix0 : 0, kx1 = L->in_w - ix0 < kw ? L->in_w - ix0 : kw;
            int8_t *out = y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)C;
            for (int32_t c = 0; c < C4; c += 4) {
                int32_t a0 = L->bias[c], a1 = L->bias[c + 1], a2 = L->bias[c + 2], a3 = L->bias[c + 3];
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    const int8_t *xr = x + ((size_t)(iy0 + ky) * (size_t)L->in_w + (size_t)(ix0 + kx0)) * (size_t)C + (size_t)c;
                    const int8_t *wr = L->w + (size_t)(ky * kw + kx0) * (size_t)C + (size_t)c;
                    for (int32_t kx = kx0; kx < kx1; kx++, xr += C, wr += C) {
                        uint32_t xv = ld32(xr), wv = ld32(wr);
                        uint32_t xe = (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)xv), xo = sxtab16_r8(off2, xv);
                        uint32_t we = (uint32_t)__sxtb16((int8x4_t)wv), wo = sxtb16_r8(wv);
                        a0 = __smlabb((int32_t)we, (int32_t)xe, a0);
                        a2 = __smlatt((int32_t)we, (int32_t)xe, a2);
                        a1 = __smlabb((int32_t)wo, (int32_t)xo, a1);
                        a3 = __smlatt((int32_t)wo, (int32_t)xo, a3);
                    }
                }
                out[c] = output(L, c, a0), out[c + 1] = output(L, c + 1, a1);
                out[c + 2] = output(L, c + 2, a2), out[c + 3] = output(L, c + 3, a3);
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
static void maxpool_dsp(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
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

/* A convolution is, at each output position, a linear layer (out_c rows of k*k*in_c weights)
 * applied to the window: gather it, then run the linear kernel on it. */
void tq_conv_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch) {
    tq_s8_layer P = *L;
    P.in = L->k * KW(L) * L->in_c;
    P.out = L->out_c;
    const int pointwise = POINTWISE(L) && !PACKED(L); /* the pixel is the window (no scratch is given for it) */
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++) {
            const int8_t *win = patch;
            if (pointwise) win = x + ((size_t)(oy * L->stride) * (size_t)L->in_w + (size_t)(ox * SW(L))) * (size_t)L->in_c;
            else gather_patch(L, x, oy, ox, patch);
            tq_linear_s8_ref(&P, win, y + ((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)L->out_c);
        }
}

void tq_depthwise_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    const int32_t C = L->in_c, OC = L->out_c, mult = L->out_c / L->in_c, k = L->k, kw = KW(L);
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++)
            for (int32_t o = 0; o < OC; o++) {
                int32_t acc = L->bias[o];
                for (int32_t ky = 0; ky < k; ky++) {
                    int32_t iy = oy * L->stride - L->pad + ky;
                    if (iy < 0 || iy >= L->in_h) continue; /* z_x: adds nothing */
                    for (int32_t kx = 0; kx < kw; kx++) {
                        int32_t ix = ox * SW(L) - PW(L) + kx;
                        if (ix < 0 || ix >= L->in_w) continue;
                        int32_t xv = x[((size_t)iy * (size_t)L->in_w + (size_t)ix) * (size_t)C + (size_t)(o / mult)];
                        size_t at = (size_t)(ky * kw + kx) * (size_t)OC + (size_t)o;
                        acc += (PACKED(L) ? tq_s8_unpack(L->w, L->w_bits, at) : (int32_t)L->w[at]) * (xv - L->in_zp);
                    }
                }
                y[((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)OC + (size_t)o] = output(L, o, acc);
            }
}

static int8_t clamp_act(const tq_s8_layer *L, int32_t v) {
    return (int8_t)(v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v);
}

/* Max (avg = 0) or average (avg = 1) over each k x kw window, channel by channel. */
static void pool(const tq_s8_layer *L, const int8_t *x, int8_t *y, int avg) {
    const int32_t C = L->in_c, k = L->k, kw = KW(L), count = k * kw;
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++)
            for (int32_t c = 0; c < C; c++) {
                int32_t best = -128, sum = 0;
                for (int32_t ky = 0; ky < k; ky++) {
                    const int8_t *row = x + ((size_t)(oy * L->stride + ky) * (size_t)L->in_w + (size_t)(ox * SW(L))) * (size_t)C + c;
                    for (int32_t kx = 0; kx < kw; kx++) {
                        int32_t v = row[(size_t)kx * (size_t)C];
                        best = v > best ? v : best;
                        sum += v;
                    }
                }
                /* C's division truncates, so adding half the count first rounds half away from zero */
                int32_t v = !avg ? best : sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                y[((size_t)oy * (size_t)L->out_w + (size_t)ox) * (size_t)C + (size_t)c] = clamp_act(L, v);
            }
}

void tq_maxpool_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) { pool(L, x, y, 0); }
void tq_avgpool_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) { pool(L, x, y, 1); }

/* Both inputs to a common scale with 20 bits of headroom below it (the inputs' multipliers are at
 * most 1/2, so the smaller input loses no precision the larger has), then the sum to the output's. */
void tq_add_s8_ref(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y) {
    for (int32_t i = 0; i < L->out; i++) {
        int32_t a = requantize(((int32_t)x[i] - L->in_zp) * (1 << 20), L->mult[0], L->shift[0]);
        int32_t b = requantize(((int32_t)x2[i] - IN2_ZP(L)) * (1 << 20), L->mult[1], L->shift[1]), sum;
        /* |a|, |b| < 2^28 within the header's ranges; a caller's left shift saturates, not wraps */
        if (__builtin_add_overflow(a, b, &sum)) sum = a > 0 ? INT32_MAX : INT32_MIN;
        y[i] = output(L, 2, sum);
    }
}

void tq_concat_s8_ref(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y) {
    const int32_t c1 = L->in_c, c2 = IN2_C(L);
    for (int32_t p = 0; p < L->out_h * L->out_w; p++, y += c1 + c2) {
        copy_bytes(y, x + (size_t)p * (size_t)c1, c1);
        copy_bytes(y + c1, x2 + (size_t)p * (size_t)c2, c2);
    }
}

size_t tq_s8_layer_scratch_bytes(const tq_s8_layer *L) {
    size_t K = (size_t)L->k * (size_t)KW(L) * (size_t)L->in_c;
    if (TQ_INT8_PACKED && L->kind == TQ_S8_LINEAR && (L->w_bits == 4 || L->w_bits == 2)) /* the input as int16 (DSP) */
        return 2 * ((size_t)L->in - (size_t)L->in % (size_t)(32 / L->w_bits));
    if (L->kind != TQ_S8_CONV) return 0;
    if (POINTWISE(L) && !PACKED(L)) return 2 * (K - K % 4); /* no window: its int16 pairs alone (DSP) */
    /* the int8 window, its int16 pairs (DSP); rows of packed weights that start mid-byte: the
     * weights unpacked (conv_midbyte_dsp) */
    size_t midbyte = TQ_INT8_PACKED && (L->w_bits == 4 || L->w_bits == 2) && K * (size_t)L->w_bits % 8 ? K * (size_t)L->out_c : 0;
    return K + 2 * (K - K % 4) + midbyte;
}

#define HAS(kind) ((TQ_INT8_KINDS >> (kind)) & 1)
#define ONLY_LINEAR (TQ_INT8_KINDS == (1 << TQ_S8_LINEAR)) /* an exported MLP: less code in flash */

void tq_s8_layer_run(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y, int8_t *patch) {
    if (L->kind == TQ_S8_LINEAR && HAS(TQ_S8_LINEAR)) linear_best(L, x, y, patch);
#ifdef TQ_DSP
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV) && !PACKED(L) && POINTWISE(L)) pointwise_dsp(L, x, y, patch);
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV) && !PACKED(L)) conv_dsp(L, x, y, patch);
    else if (L->kind == TQ_S8_DEPTHWISE && HAS(TQ_S8_DEPTHWISE) && !PACKED(L) && L->out_c == L->in_c) depthwise_dsp(L, x, y);
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV) && (L->k * KW(L) * L->in_c * L->w_bits) % 8) conv_midbyte_dsp(L, x, y, patch);
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV)) conv_packed_dsp(L, x, y, patch);
    else if (L->kind == TQ_S8_MAXPOOL && HAS(TQ_S8_MAXPOOL) && L->in_c % 4 == 0) maxpool_dsp(L, x, y);
#else
    else if (L->kind == TQ_S8_CONV && HAS(TQ_S8_CONV)) tq_conv_s8_ref(L, x, y, patch);
#endif
    else if (L->kind == TQ_S8_DEPTHWISE && HAS(TQ_S8_DEPTHWISE)) tq_depthwise_s8_ref(L, x, y);
    else if ((L->kind == TQ_S8_MAXPOOL || L->kind == TQ_S8_AVGPOOL) && (HAS(TQ_S8_MAXPOOL) || HAS(TQ_S8_AVGPOOL)))
        pool(L, x, y, L->kind == TQ_S8_AVGPOOL);
    else if (L->kind == TQ_S8_FLATTEN && HAS(TQ_S8_FLATTEN)) copy_bytes(y, x, L->out);
    else if (L->kind == TQ_S8_ADD && HAS(TQ_S8_ADD)) tq_add_s8_ref(L, x, x2, y);
    else if (L->kind == TQ_S8_CONCAT && HAS(TQ_S8_CONCAT)) tq_concat_s8_ref(L, x, x2, y);
}

/* ---- the network runner ---- */

/* A flatten moves nothing: the runners pass its input on. */
static int is_flatten(const tq_s8_layer *L) { return HAS(TQ_S8_FLATTEN) && L->kind == TQ_S8_FLATTEN; }

/* One layer's sizes against its kind (the loader's checks, in the runtime's own terms). */
static int layer_ok(const tq_s8_layer *L) {
#define DIM(v) ((v) >= 1 && (v) <= 65536)
    if (!DIM(L->in_h) || !DIM(L->in_w) || !DIM(L->in_c) || !DIM(L->out_h) || !DIM(L->out_w) || !DIM(L->out_c)) return 0;
#undef DIM
    if ((int64_t)L->in_h * L->in_w * L->in_c != L->in || (int64_t)L->out_h * L->out_w * L->out_c != L->out) return 0;
    if (L->in_zp < -128 || L->in_zp > 127 || L->out_zp < -128 || L->out_zp > 127 || L->act_min < -128 ||
        L->act_max > 127 || L->act_min > L->act_max)
        return 0;
    if (L->w_bits != 0 && L->w_bits != 8 && L->w_bits != 4 && L->w_bits != 2) return 0;
    if (!TWO_INPUTS(L) && SRC(L, 1) != 0) return 0;
    int weights = L->kind == TQ_S8_LINEAR || L->kind == TQ_S8_CONV || L->kind == TQ_S8_DEPTHWISE;
    if (weights && (!L->w || !L->bias || !L->mult || !L->shift)) return 0;
    int image = weights || L->kind == TQ_S8_MAXPOOL || L->kind == TQ_S8_AVGPOOL;
    if ((!image || L->kind == TQ_S8_LINEAR) && (L->k != 1 || L->stride != 1 || L->pad != 0 || KW(L) != 1)) return 0;
    /* (a kind this build leaves out is refused; an MLP's module keeps only the first case) */
    if (L->kind == TQ_S8_LINEAR && HAS(TQ_S8_LINEAR)) return L->in_h == 1 && L->in_w == 1 && L->out_h == 1 && L->out_w == 1;
    if (ONLY_LINEAR) return 0;
    switch (L->kind) {
    case TQ_S8_FLATTEN: return L->out_h == 1 && L->out_w == 1 && L->out == L->in && L->in_zp == L->out_zp;
    case TQ_S8_ADD:
        return L->mult && L->shift && IN2_ZP(L) >= -128 && IN2_ZP(L) <= 127 && L->out == L->in && L->out_h == L->in_h &&
               L->out_w == L->in_w;
    case TQ_S8_CONCAT: /* copies: one zero point */
        return IN2_C(L) >= 1 && IN2_C(L) <= 65536 && L->out_c == L->in_c + IN2_C(L) && L->out_h == L->in_h && L->out_w == L->in_w &&
               L->in_zp == L->out_zp && IN2_ZP(L) == L->out_zp;
    case TQ_S8_CONV:
    case TQ_S8_DEPTHWISE:
    case TQ_S8_MAXPOOL:
    case TQ_S8_AVGPOOL: {
        /* per axis: kernel, stride, padding before, and the padding after that the output implies,
         * at most one more than before and less than a window (none for pools) */
        const int32_t geo[2][4] = {{L->k, L->stride, L->pad, L->in_h}, {KW(L), SW(L), PW(L), L->in_w}};
        const int32_t outs[2] = {L->out_h, L->out_w};
        for (int a = 0; a < 2; a++) {
            int32_t k = geo[a][0], st = geo[a][1], p = geo[a][2], n = geo[a][3];
            if (k < 1 || k > 64 || st < 1 || st > 64 || p < 0 || p > (weights ? k - 1 : 0)) return 0;
            int64_t after = (int64_t)(outs[a] - 1) * st + k - n - p;
            if (after > p + 1 || after > (weights ? k - 1 : 0) || after <= p - st) return 0;
        }
        if (L->kind == TQ_S8_CONV) return (int64_t)L->k * KW(L) * L->in_c <= (1 << 20);
        if (L->kind == TQ_S8_DEPTHWISE) return L->out_c % L->in_c == 0;
        return L->out_c == L->in_c && L->in_zp == L->out_zp;
    }
    default: return 0;
    }
}

/* The layer whose output is layer l's input j: src[j] - 1, or l - 1; -1 is the network's input. */
static int32_t producer(const tq_int8_net *m, int32_t l, int j) {
    int32_t s = SRC(&m->layer[l], j);
    return s ? s - 1 : l - 1;
}

/* The layer whose buffer holds that output: a flatten's is its input's (it moves nothing). */
static int32_t holder(const tq_int8_net *m, int32_t p) {
    while (p >= 0 && is_flatten(&m->layer[p])) p = producer(m, p, 0);
    return p;
}

int tq_int8_net_check(const tq_int8_net *m) {
    if (!m || !m->layer || m->n_layers < 1 || m->n_layers > TQ_INT8_MAX_LAYERS || is_flatten(&m->layer[m->n_layers - 1]))
        return TQ_INT8_E_ARG;
    uint8_t read[TQ_INT8_MAX_LAYERS] = {0};
    for (int32_t l = 0; l < m->n_layers; l++) {
        const tq_s8_layer *L = &m->layer[l];
        if (!layer_ok(L)) return TQ_INT8_E_ARG;
        for (int j = 0; j < (TWO_INPUTS(L) ? 2 : 1); j++) {
            if (SRC(L, j) < 0 || SRC(L, j) > l) return TQ_INT8_E_ARG; /* earlier layers only: no cycle */
            int32_t p = producer(m, l, j);
            if (p < 0) continue; /* the network's input: its shape is the caller's */
            const tq_s8_layer *P = &m->layer[p];
            read[p] = 1;
            int32_t want_c = j && L->kind == TQ_S8_CONCAT ? IN2_C(L) : L->in_c;
            if (L->in_h != P->out_h || L->in_w != P->out_w || want_c != P->out_c || (j ? IN2_ZP(L) : L->in_zp) != P->out_zp)
                return TQ_INT8_E_ARG;
        }
    }
    for (int32_t l = 0; l + 1 < m->n_layers; l++)
        if (!read[l]) return TQ_INT8_E_ARG; /* an output nobody reads */
    return TQ_INT8_OK;
}

static int net_ok(const tq_int8_net *m) {
    if (TQ_INT8_PRECHECKED) return m && m->n_layers >= 1 && m->n_layers <= TQ_INT8_MAX_LAYERS;
    return tq_int8_net_check(m) == TQ_INT8_OK;
}

/* A chain: each layer reads the one before it. */
static int is_chain(const tq_int8_net *m) {
    if (!TQ_INT8_GRAPHS) return 1;
    for (int32_t l = 0; l < m->n_layers; l++)
        if (SRC(&m->layer[l], 0) > 0 && SRC(&m->layer[l], 0) != l) return 0;
        else if (TWO_INPUTS(&m->layer[l])) return 0;
    return 1;
}

/* The largest patch, rounded up to a word so the arena after it starts aligned. */
static size_t patch_bytes(const tq_int8_net *m) {
    size_t p = 0;
    if (!HAS(TQ_S8_CONV) && !TQ_INT8_PACKED) return 0;
    for (int32_t l = 0; l < m->n_layers; l++) {
        size_t b = tq_s8_layer_scratch_bytes(&m->layer[l]);
        p = b > p ? b : p;
    }
    return (p + 3) / 4 * 4;
}

/* A chain's arena for layers first.. when the input of layer `first` is in it (in_bytes) or not
 * (0): each layer needs its input and its output at once; flatten moves nothing; the last layer
 * writes into the caller's buffer. */
static size_t chain_arena_bytes(const tq_int8_net *m, int32_t first, size_t in_bytes) {
    size_t need = in_bytes, cur = in_bytes;
    for (int32_t l = first; l < m->n_layers; l++) {
        if (is_flatten(&m->layer[l])) continue;
        size_t out = l == m->n_layers - 1 ? 0 : (size_t)m->layer[l].out;
        need = cur + out > need ? cur + out : need;
        cur = out;
    }
    return need;
}

/* A graph's plan, over 2n + 1 buffers: off[l] is layer l's output's place in the arena, off[n]
 * the network's input's (when in_bytes > 0 puts it there), off[n + 1 + l] layer l's scratch (its
 * patch), each rounded up to a word; returns the arena's size. A buffer lives from the layer
 * writing it to the last layer reading it (a scratch: its layer); two that live at once do not
 * share bytes. Largest first, each at the lowest offset that fits (O(n^3) for n <= 64 layers, a
 * vanishing part of an inference). */
#define PLAN_SLOTS (2 * TQ_INT8_MAX_LAYERS + 1)
static size_t plan_graph(const tq_int8_net *m, size_t in_bytes, int32_t *off) {
    const int32_t n = m->n_layers, slots = 2 * n + 1;
    int32_t first[PLAN_SLOTS], last[PLAN_SLOTS];
    size_t size[PLAN_SLOTS];
    uint8_t placed[PLAN_SLOTS];
    for (int32_t t = 0; t < slots; t++) {
        size_t bytes = 0;
        if (t == n) bytes = in_bytes;
        else if (t > n) bytes = tq_s8_layer_scratch_bytes(&m->layer[t - n - 1]);
        else if (t < n - 1 && !is_flatten(&m->layer[t])) bytes = (size_t)m->layer[t].out; /* the last's is the caller's */
        size[t] = (bytes + 3) / 4 * 4;
        first[t] = t == n ? 0 : t > n ? t - n - 1 : t;
        last[t] = first[t];
        placed[t] = 0;
        off[t] = 0;
    }
    for (int32_t l = 0; l < n; l++)
        for (int j = 0; j < (TWO_INPUTS(&m->layer[l]) ? 2 : 1); j++) {
            int32_t h = holder(m, producer(m, l, j));
            int32_t t = h < 0 ? n : h;
            last[t] = l > last[t] ? l : last[t];
        }
    size_t arena = 0;
    for (;;) {
        int32_t t = -1; /* the largest not yet placed */
        for (int32_t u = 0; u < slots; u++)
            if (!placed[u] && size[u] && (t < 0 || size[u] > size[t])) t = u;
        if (t < 0) break;
        size_t at = 0;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int32_t u = 0; u < slots; u++)
                if (placed[u] && first[u] <= last[t] && first[t] <= last[u] && at < (size_t)off[u] + size[u] &&
                    (size_t)off[u] < at + size[t]) {
                    at = (size_t)off[u] + size[u];
                    moved = 1;
                }
        }
        off[t] = (int32_t)at;
        placed[t] = 1;
        arena = at + size[t] > arena ? at + size[t] : arena;
    }
    return arena;
}

/* Chain layers first.. on x, which is the caller's (at = 0) or at the arena's start (1) or end (2);
 * each output goes to the end its input leaves free. */
static void run_chain(const tq_int8_net *m, int32_t first, const int8_t *x, int at, int8_t *out, int8_t *patch, int8_t *arena,
                      size_t arena_size) {
    for (int32_t l = first; l < m->n_layers; l++) {
        const tq_s8_layer *L = &m->layer[l];
        if (is_flatten(L)) continue;
        int8_t *y = l == m->n_layers - 1 ? out : at == 1 ? arena + arena_size - (size_t)L->out : arena;
        tq_s8_layer_run(L, x, 0, y, patch);
        x = y;
        at = at == 1 ? 2 : 1;
    }
}

/* Graph layers first.. as planned; the network's input is at `in`. */
static void run_graph(const tq_int8_net *m, int32_t first, const int8_t *in, int8_t *out, int8_t *arena, const int32_t *off) {
    for (int32_t l = first; l < m->n_layers; l++) {
        const tq_s8_layer *L = &m->layer[l];
        if (is_flatten(L)) continue;
        int32_t h0 = holder(m, producer(m, l, 0)), h1 = TWO_INPUTS(L) ? holder(m, producer(m, l, 1)) : h0;
        const int8_t *x = h0 < 0 ? in : arena + off[h0], *x2 = h1 < 0 ? in : arena + off[h1];
        tq_s8_layer_run(L, x, x2, l == m->n_layers - 1 ? out : arena + off[l], arena + off[m->n_layers + 1 + l]);
    }
}

/* The scratch of a run (in_bytes: the network's input's bytes when it goes into the arena): a
 * chain's largest patch, then its arena; a graph's plan, patches included (pb = 0). */
static size_t scratch_for(const tq_int8_net *m, int chain, size_t in_bytes, int32_t *off, size_t *pb) {
    *pb = chain ? patch_bytes(m) : 0;
    return *pb + (chain ? chain_arena_bytes(m, 0, in_bytes) : plan_graph(m, in_bytes, off));
}

size_t tq_int8_net_scratch_bytes(const tq_int8_net *m) {
    int32_t off[PLAN_SLOTS];
    size_t pb;
    return net_ok(m) ? scratch_for(m, is_chain(m), 0, off, &pb) : 0;
}

int tq_int8_net_run(const tq_int8_net *m, const int8_t *in, int8_t *out, void *scratch, size_t scratch_bytes) {
    if (!net_ok(m) || !scratch) return TQ_INT8_E_ARG;
    int32_t off[PLAN_SLOTS];
    int chain = is_chain(m);
    size_t pb, need = scratch_for(m, chain, 0, off, &pb);
    if (scratch_bytes < need) return TQ_INT8_E_ARG;
    if (chain) run_chain(m, 0, in, 0, out, (int8_t *)scratch, (int8_t *)scratch + pb, need - pb);
    else run_graph(m, 0, in, out, (int8_t *)scratch, off);
    return TQ_INT8_OK;
}

/* A first linear layer reads the pixels where they are; any other gets them in the arena. */
static int reads_pixels_in_place(const tq_int8_net *m) { return ONLY_LINEAR || m->layer[0].kind == TQ_S8_LINEAR; }

size_t tq_int8_net_predict_scratch_bytes(const tq_int8_net *m) {
    if (!net_ok(m)) return 0;
    int32_t off[PLAN_SLOTS];
    size_t pb;
    return scratch_for(m, is_chain(m), reads_pixels_in_place(m) ? 0 : (size_t)m->layer[0].in, off, &pb);
}

/* Layer 0 on raw pixels: x[i] - z_x = (p[i] - 128) - z_x, read in place. */
static void linear_u8_input(const tq_s8_layer *L, const uint8_t *p, int8_t *y, int8_t *scratch) {
    if (PACKED(L)) {
#ifdef TQ_DSP
        linear_packed_dsp(L, p, 1, -128 - L->in_zp, y, (uint8_t *)scratch);
#else
        for (int32_t o = 0; o < L->out; o++) y[o] = output(L, o, L->bias[o] + packed_row(L, o, p, 1, -128 - L->in_zp, 0));
#endif
        return;
    }
    (void)scratch;
#ifdef TQ_DSP
    /* tinyqat's input zero point is -128, so the pixels need no offset; anything else (a hand-made
     * model) takes the plain loop rather than a third copy of the DSP loop in flash */
    if (L->in_zp == -128) {
        linear_dsp(L, p, 1, 0, y);
        return;
    }
#endif
    int32_t off = 128 + L->in_zp;
    for (int32_t o = 0; o < L->out; o++) {
        const int8_t *w = L->w + (size_t)o * (size_t)L->in;
        int32_t acc = L->bias[o];
        for (int32_t i = 0; i < L->in; i++) acc += (int32_t)w[i] * ((int32_t)p[i] - off);
        y[o] = output(L, o, acc);
    }
}

int tq_int8_net_predict_u8(const tq_int8_net *m, const uint8_t *pixels, int8_t *logits, void *scratch,
                           size_t scratch_bytes) {
    if (!net_ok(m) || !scratch) return TQ_INT8_E_ARG;
    const tq_s8_layer *L0 = &m->layer[0];
    int in_place = reads_pixels_in_place(m), chain = is_chain(m);
    int32_t off[PLAN_SLOTS];
    size_t pb, need = scratch_for(m, chain, in_place ? 0 : (size_t)L0->in, off, &pb), size = need - pb;
    if (scratch_bytes < need) return TQ_INT8_E_ARG;
    int8_t *patch = (int8_t *)scratch, *arena = patch + pb;
    if (in_place) {
        int8_t *y = m->n_layers == 1 ? logits : chain ? arena : arena + off[0];
        linear_u8_input(L0, pixels, y, chain ? patch : arena + off[m->n_layers + 1]);
        if (chain) run_chain(m, 1, y, 1, logits, patch, arena, size);
        else run_graph(m, 1, 0, logits, arena, off);
    } else {
        int8_t *x = chain ? arena : arena + off[m->n_layers];
        for (int32_t i = 0; i < L0->in; i++) x[i] = (int8_t)(pixels[i] ^ 0x80u); /* p - 128 */
        if (chain) run_chain(m, 0, x, 1, logits, patch, arena, size);
        else run_graph(m, 0, x, logits, arena, off);
    }
    const tq_s8_layer *last = &m->layer[m->n_layers - 1];
    int32_t best = 0;
    for (int32_t c = 1; c < last->out; c++)
        if (logits[c] > logits[best]) best = c;
    return (int)best;
}
