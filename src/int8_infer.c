#include "src/int8_infer.h"

/* QUANT-SPEC section 4, line by line:
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

void tq_linear_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    for (int32_t o = 0; o < L->out; o++) {
        const int8_t *w = L->w + (size_t)o * (size_t)L->in;
        int32_t acc = L->bias[o];
        for (int32_t i = 0; i < L->in; i++) acc += (int32_t)w[i] * ((int32_t)x[i] - L->in_zp);
        int32_t v = tq_requantize_ref(acc, L->mult[o], L->shift[o]) + L->out_zp;
        v = v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v;
        y[o] = (int8_t)v;
    }
}

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
        tq_linear_s8_ref(&m->layer[l], x, y);
        x = y;
    }
    return TQ_INT8_OK;
}

int tq_int8_mlp_predict_u8(const tq_int8_mlp *m, const uint8_t *pixels, int8_t *logits, void *scratch,
                           size_t scratch_bytes) {
    if (!m || m->n_layers < 1 || scratch_bytes < tq_int8_mlp_scratch_bytes(m)) return TQ_INT8_E_ARG;
    /* The input goes in the second half of the scratch: layer 0 writes the first half. */
    size_t half = tq_int8_mlp_scratch_bytes(m) / 2;
    int8_t *x = (int8_t *)scratch + half;
    int32_t n_in = m->layer[0].in;
    for (int32_t i = 0; i < n_in; i++) x[i] = (int8_t)((int32_t)pixels[i] - 128);
    /* layer 0 reads x (second half) and writes the first half; later layers alternate, and the
     * second half is free again by then */
    const int8_t *cur = x;
    int8_t *buf[2] = {(int8_t *)scratch, (int8_t *)scratch + half};
    for (int32_t l = 0; l < m->n_layers; l++) {
        int8_t *y = l == m->n_layers - 1 ? logits : buf[l & 1];
        tq_linear_s8_ref(&m->layer[l], cur, y);
        cur = y;
    }
    int32_t n_out = m->layer[m->n_layers - 1].out, best = 0;
    for (int32_t c = 1; c < n_out; c++)
        if (logits[c] > logits[best]) best = c;
    return (int)best;
}
