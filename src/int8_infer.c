#include "src/int8_infer.h"

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
 *   e = max(-shift, 0),  mask = 2^e - 1
 *   out = (h >> e) + ((h & mask) > (mask >> 1) + (h < 0))                ties away from zero
 * h is SaturatingRoundingDoublingHighMul(a, M0); the last line is RoundingDivideByPOT(h, e).
 * The left shift saturates instead of overflowing (TFLite leaves that case undefined). */
int32_t tq_requantize_ref(int32_t acc, int32_t M0, int32_t shift) {
    int32_t left = shift > 0 ? shift : 0, e = shift < 0 ? -shift : 0;
    int64_t a64 = (int64_t)acc * ((int64_t)1 << left);
    int32_t a = a64 > INT32_MAX ? INT32_MAX : a64 < INT32_MIN ? INT32_MIN : (int32_t)a64;
    if (a == INT32_MIN && M0 == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)M0;
    int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    int32_t h = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t remainder = h & mask, threshold = (mask >> 1) + (h < 0 ? 1 : 0);
    /* >> of a negative int is arithmetic on every compiler tinyqat targets (GCC, Clang) */
    return (h >> e) + (remainder > threshold ? 1 : 0);
}

/* y[o] from its accumulator: requantize, add the output zero point, clamp (a fused ReLU). */
static inline int8_t output(const tq_s8_layer *L, int32_t o, int32_t acc) {
    int32_t v = tq_requantize_ref(acc, L->mult[o], L->shift[o]) + L->out_zp;
    v = v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v;
    return (int8_t)v;
}

void tq_linear_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
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
#define TQ_UXTB16_2(off2, v) __uxtb16((uint8x4_t)(v))
#define TQ_UXTB16_R8_2(off2, v) uxtb16_r8(v)
static inline int32_t smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int16x2_t)a, (int16x2_t)b, acc); }

/* Four rows' dot products with x unpacked by UNPACK / UNPACK_R8 (SXTAB16 for int8, UXTAB16 for
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
    if (is_u8) { /* pixels into a layer with z_x = -128 (off = 0): p itself; see linear_dsp */
        TQ_DOT4(TQ_UXTB16_2, TQ_UXTB16_R8_2)
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
#endif

size_t tq_int8_mlp_scratch_bytes(const tq_int8_mlp *m) {
    size_t widest = 0;
    for (int32_t l = 0; l < m->n_layers; l++) {
        if ((size_t)m->layer[l].in > widest) widest = (size_t)m->layer[l].in;
        if ((size_t)m->layer[l].out > widest) widest = (size_t)m->layer[l].out;
    }
    return 2 * widest;
}

int tq_int8_mlp_run(const tq_int8_mlp *m, const int8_t *in, int8_t *out, void *scratch, size_t scratch_bytes) {
    if (!m || m->n_layers < 1 || m->n_layers > TQ_INT8_MAX_LAYERS || !scratch ||
        scratch_bytes < tq_int8_mlp_scratch_bytes(m))
        return TQ_INT8_E_ARG;
    size_t half = tq_int8_mlp_scratch_bytes(m) / 2;
    int8_t *buf[2] = {(int8_t *)scratch, (int8_t *)scratch + half};
    const int8_t *x = in;
    for (int32_t l = 0; l < m->n_layers; l++) {
        int8_t *y = l == m->n_layers - 1 ? out : buf[l & 1];
#ifdef TQ_DSP
        linear_dsp(&m->layer[l], (const uint8_t *)x, 0, -m->layer[l].in_zp, y);
#else
        tq_linear_s8_ref(&m->layer[l], x, y);
#endif
        x = y;
    }
    return TQ_INT8_OK;
}

size_t tq_int8_mlp_predict_scratch_bytes(const tq_int8_mlp *m) {
    size_t widest = 0;
    for (int32_t l = 0; l < m->n_layers; l++)
        if ((size_t)m->layer[l].out > widest) widest = (size_t)m->layer[l].out;
    return 2 * widest;
}

/* Layer 0 on raw pixels: x[i] - z_x = (p[i] - 128) - z_x, read in place. */
static void linear_u8_input(const tq_s8_layer *L, const uint8_t *p, int8_t *y) {
    int32_t off = 128 + L->in_zp;
    for (int32_t o = 0; o < L->out; o++) {
        const int8_t *w = L->w + (size_t)o * (size_t)L->in;
        int32_t acc = L->bias[o];
        for (int32_t i = 0; i < L->in; i++) acc += (int32_t)w[i] * ((int32_t)p[i] - off);
        y[o] = output(L, o, acc);
    }
}

int tq_int8_mlp_predict_u8(const tq_int8_mlp *m, const uint8_t *pixels, int8_t *logits, void *scratch,
                           size_t scratch_bytes) {
    if (!m || m->n_layers < 1 || m->n_layers > TQ_INT8_MAX_LAYERS || !scratch ||
        scratch_bytes < tq_int8_mlp_predict_scratch_bytes(m))
        return TQ_INT8_E_ARG;
    size_t half = tq_int8_mlp_predict_scratch_bytes(m) / 2;
    int8_t *buf[2] = {(int8_t *)scratch, (int8_t *)scratch + half};
    int8_t *y = m->n_layers == 1 ? logits : buf[0];
#ifdef TQ_DSP
    /* tinyqat's input zero point is -128, so the pixels need no offset; anything else (a hand-made
     * model) takes the plain loop rather than a third copy of the DSP loop in flash */
    if (m->layer[0].in_zp == -128) linear_dsp(&m->layer[0], pixels, 1, 0, y);
    else linear_u8_input(&m->layer[0], pixels, y);
#else
    linear_u8_input(&m->layer[0], pixels, y);
#endif
    const int8_t *cur = y;
    for (int32_t l = 1; l < m->n_layers; l++) {
        y = l == m->n_layers - 1 ? logits : buf[l & 1];
#ifdef TQ_DSP
        linear_dsp(&m->layer[l], (const uint8_t *)cur, 0, -m->layer[l].in_zp, y);
#else
        tq_linear_s8_ref(&m->layer[l], cur, y);
#endif
        cur = y;
    }
    int32_t n_out = m->layer[m->n_layers - 1].out, best = 0;
    for (int32_t c = 1; c < n_out; c++)
        if (logits[c] > logits[best]) best = c;
    return (int)best;
}
