/* The integer runtime's insides, shared by its three parts: kernels_ref.c (the reference kernels,
 * plain loops), kernels_dsp.c (the Cortex-M DSP kernels) and net.c (a layer's dispatch to the best
 * kernel the build has, the checks, the arena planner and the runners). Not part of the API. The
 * host builds the parts as files; an export writes them as one int8_infer.c (TQ_RUNTIME_ONE_FILE
 * then makes what they share static, as in any single file), which is what a microcontroller
 * compiles. Freestanding, as int8_infer.h says. */
#ifndef TQ_RUNTIME_INTERNAL_H
#define TQ_RUNTIME_INTERNAL_H

#include "runtime/int8_infer.h"

#define TQ_INT8_C_EXPORT_ID 0x0u
#if TQ_INT8_C_EXPORT_ID != TQ_INT8_EXPORT_ID
#error "int8_infer.c and int8_infer.h come from different exports (an interrupted export?): export the model again"
#endif

/* what one part defines for another: external between the host's files, static in one file */
#ifdef TQ_RUNTIME_ONE_FILE
#define TQ_INTERNAL static
#else
#define TQ_INTERNAL
#endif

/* On a Cortex-M with the DSP extension (M4, M7, M33...), the layers run on the SMLAD kernels of
 * kernels_dsp.c unless TQ_PORTABLE is defined; everywhere else, and on the host, on the plain
 * loops. Both give the same integers (the sums are exact in int32 either way). */
#if defined(__ARM_FEATURE_DSP) && !defined(TQ_PORTABLE)
#define TQ_DSP 1
#include <arm_acle.h>
#endif

/* gemmlowp's two fixed-point primitives (docs/QUANTIZATION.md §5), which the requantization
 * and the softmax (kernels_ref.c) are built from:
 *   high_mul(a, b) = (int32)(((int64)a b + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31)   C division truncates
 *                  = (int32)(((int64)a b + 2^30) >> 31)                            the same, floored
 *     (for ab < 0 write -ab = q 2^31 + r: both are -q - [r > 2^30]), which is one SMLAL and a shift:
 *     round(a b / 2^31), a half rounded up. It is SaturatingRoundingDoublingHighMul except in its
 *     one saturating case, a = b = INT32_MIN, which callers that can meet it test first.
 *   rounding_shift(a, e) = (a >> e) + ((a & mask) > (mask >> 1) + (a < 0)), mask = 2^e - 1:
 *     round(a / 2^e), ties away from zero: RoundingDivideByPOT.
 * >> of a negative int is arithmetic on every compiler tinyqat targets (GCC, Clang). */
static inline __attribute__((always_inline)) int32_t high_mul(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

static inline __attribute__((always_inline)) int32_t rounding_shift(int32_t a, int32_t e) {
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = a & mask, threshold = (mask >> 1) + (a < 0 ? 1 : 0);
    return (a >> e) + (remainder > threshold ? 1 : 0);
}

/* The requantization of §5: a = acc 2^max(shift, 0), saturated (TFLite leaves the overflow
 * undefined); out = rounding_shift(high_mul(a, M0), max(-shift, 0)). For M0 >= 0, which every
 * layer has (M0 in [2^30, 2^31 - 1], or 0; a mean's down to 1), high_mul cannot meet its
 * saturating case, so the kernels skip the test; tq_requantize_ref keeps it.
 * A right shift, e = -shift >= 1 (the usual case), takes one multiply-accumulate and a shift.
 * With P = acc M0 + 2^30 and h = floor(P / 2^31) (high_mul), rounding_shift gives
 * floor((h + 2^(e-1) - [h < 0]) / 2^e), which is floor((P + (2^(e-1) - [h < 0]) 2^31) / 2^(31+e))
 * (an integer added inside a floor passes through it): the high word of acc M0 + C shifted right
 * by e - 1, with C = 2^30 + (2^(e-1) - [acc < 0]) 2^31. [acc < 0] stands in for [h < 0]: for
 * M0 >= 0 they differ only when acc < 0 and P >= 0, where h = 0, which the correction cannot move
 * (it matters only at h = 2^(e-1) mod 2^e). Without a right shift there is nothing to round. */
static inline __attribute__((always_inline)) int32_t requantize_body(int32_t acc, int32_t M0, int32_t shift) {
    if (shift < 0) {
        const uint32_t t = ((uint32_t)1 << (-shift - 1)) - ((uint32_t)acc >> 31);
        const int64_t c = (int64_t)(((uint64_t)t << 31) | 0x40000000u);
        return (int32_t)(((int64_t)acc * (int64_t)M0 + c) >> 32) >> (-shift - 1);
    }
    int32_t a = acc;
    if (shift > 0) { /* rare (M > 1): the left shift, saturated */
        int64_t a64 = (int64_t)acc * ((int64_t)1 << shift);
        a = a64 > INT32_MAX ? INT32_MAX : a64 < INT32_MIN ? INT32_MIN : (int32_t)a64;
    }
    return high_mul(a, M0);
}

/* One call per output: inlined into every kernel it would crowd their loops' registers. */
__attribute__((noinline, unused)) static int32_t requantize(int32_t acc, int32_t M0, int32_t shift) {
    return requantize_body(acc, M0, shift);
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

#ifdef TQ_DSP
/* y[0..3] of channels o..o+3 from their accumulators, as output() gives them: one call for four,
 * the zero point and clamp loaded once (the DSP kernels' groups of four channels). */
__attribute__((noinline, unused)) static void output4(const tq_s8_layer *L, int32_t o, const int32_t *acc, int8_t *y) {
    const int32_t zp = L->out_zp, lo = L->act_min, hi = L->act_max, *M = L->mult + o, *S = L->shift + o;
    for (int k = 0; k < 4; k++) {
        int32_t v = __qadd(requantize_body(acc[k], M[k], S[k]), zp);
        y[k] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
    }
}
#endif

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
/* A layer's 16-bit sides (0 in a build without them) and the bytes of its output. */
#if TQ_INT8_ACT16
#define ACT16(L) ((L)->act16)
#else
#define ACT16(L) ((void)(L), 0)
#endif
#define IN16(L) (ACT16(L) & 1)
#define OUT16(L) ((ACT16(L) >> 1) & 1)
#define OUT_BYTES(L) ((size_t)(L)->out << OUT16(L))

/* Layers that read two inputs (TQ_S8_BINARY, written as two comparisons: fewer instructions on a Cortex-M) */
#define TWO_INPUTS(L) ((L)->kind == TQ_S8_ADD || (L)->kind == TQ_S8_CONCAT)

/* A 1 x 1 convolution without padding: each output pixel is a linear layer of one input pixel,
 * which is in_c contiguous bytes already, so it needs no window gathered. */
#define POINTWISE(L) ((L)->kind == TQ_S8_CONV && (L)->k == 1 && KW(L) == 1 && (L)->pad == 0 && PW(L) == 0)
/* The DSP's 1 x 1 convolution puts its two positions' int16 pairs (4 (in_c - in_c % 4) bytes,
 * from a word) in the last words of its own output, which the positions before them do not reach,
 * and needs no scratch, when those pairs cover at most an eighth of its positions (the last ones,
 * which then run one at a time, a little slower); otherwise they go in the scratch. */
#define PW_TAIL_POSITIONS(L) ((4 * ((L)->in_c - (L)->in_c % 4) + 3 + (L)->out_c - 1) / (L)->out_c)
#define PW_PAIRS_IN_OUTPUT(L) (8 * PW_TAIL_POSITIONS(L) <= (L)->out_h * (L)->out_w)

#define HAS(kind) ((TQ_INT8_KINDS >> (kind)) & 1)
#define ONLY_LINEAR (TQ_INT8_KINDS == (1 << TQ_S8_LINEAR)) /* an exported MLP: less code in flash */

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

/* ---- shared between the parts ---- */

/* Row o's accumulator with packed weights unpacked one at a time (kernels_ref.c). */
TQ_INTERNAL int32_t tq_packed_row_(const tq_s8_layer *L, int32_t o, const uint8_t *x, int is_u8, int32_t off, int32_t first);
/* n bytes, a word at a time (kernels_ref.c). */
TQ_INTERNAL void tq_copy_bytes_(int8_t *dst, const int8_t *src, int32_t n);
/* The window of output (oy, ox), k x kw x in_c, as the weights' rows order it (kernels_ref.c). */
TQ_INTERNAL void tq_gather_patch_(const tq_s8_layer *L, const int8_t *x, int32_t oy, int32_t ox, int8_t *patch);
/* Max (avg = 0) or average (avg = 1) pool (kernels_ref.c). */
TQ_INTERNAL void tq_pool_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int avg);

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

static inline void st32(void *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }

/* the DSP kernels (kernels_dsp.c): linear on int8 (is_u8 = 0, off = -z_x) or pixels (is_u8 = 1,
 * off = -128 - z_x); the others as their reference twins */
TQ_INTERNAL void tq_linear_dsp_(const tq_s8_layer *L, const uint8_t *x, int is_u8, int32_t off, int8_t *y);
TQ_INTERNAL void tq_linear_packed_dsp_(const tq_s8_layer *L, const uint8_t *x, int is_u8, int32_t off, int8_t *y, uint8_t *x16);
TQ_INTERNAL void tq_conv_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch);
TQ_INTERNAL void tq_pointwise_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch);
TQ_INTERNAL void tq_conv_packed_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch);
TQ_INTERNAL void tq_conv_midbyte_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch);
TQ_INTERNAL void tq_depthwise_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y);
TQ_INTERNAL void tq_maxpool_dsp_(const tq_s8_layer *L, const int8_t *x, int8_t *y);
#endif

#if TQ_INT8_ACT16
/* sum_i w[i] (x[i] - zp) over n weights one to a byte and int16 (zp 0) or int8 inputs, for the
 * layers with 16-bit activations: int32 runs of at most 512 products (each below 2^15 2^7 = 2^22,
 * so a run stays below 2^31), summed in int64. With the DSP extension, SMLAD takes two products
 * at a time: an int16 pair as loaded, the weights sign-extended to the matching pairs (SXTB16
 * gives w0, w2 and w1, w3; PKHBT / PKHTB pair them as w0, w1 and w2, w3). */
static inline int64_t dot_s16(const int8_t *w, const void *x, int in16, int32_t zp, int32_t n) {
    int64_t acc = 0;
    for (int32_t i0 = 0; i0 < n; i0 += 512) {
        int32_t i1 = n - i0 < 512 ? n : i0 + 512, run = 0, i = i0;
        if (in16) {
            const int16_t *x16 = (const int16_t *)x;
#ifdef TQ_DSP
            for (; i + 4 <= i1; i += 4) {
                uint32_t wq = ld32(w + i), w02 = (uint32_t)__sxtb16((int8x4_t)wq), w13 = sxtb16_r8(wq);
                run = smlad((w02 & 0xffffu) | (w13 << 16), ld32(x16 + i), run);
                run = smlad((w13 & 0xffff0000u) | (w02 >> 16), ld32(x16 + i + 2), run);
            }
#endif
            for (; i < i1; i++) run += (int32_t)w[i] * x16[i];
        } else {
            const int8_t *x8 = (const int8_t *)x;
#ifdef TQ_DSP
            const uint32_t off2 = ((uint32_t)-zp & 0xffffu) * 0x10001u; /* -zp in both halves */
            for (; i + 4 <= i1; i += 4) {
                uint32_t wq = ld32(w + i), v = ld32(x8 + i);
                run = smlad((uint32_t)__sxtb16((int8x4_t)wq), (uint32_t)__sxtab16((int16x2_t)off2, (int8x4_t)v), run);
                run = smlad(sxtb16_r8(wq), sxtab16_r8(off2, v), run);
            }
#endif
            for (; i < i1; i++) run += (int32_t)w[i] * ((int32_t)x8[i] - zp);
        }
        acc += run;
    }
    return acc;
}
#endif

#endif
