/* The reference kernels: each layer kind as plain loops over int32 sums (runtime/int8_infer.h gives
 * the arithmetic; docs/QUANTIZATION.md §5, §11 and §18 the why). Every other kernel must give
 * these integers. */
#include "runtime/internal.h"

int32_t tq_requantize_ref(int32_t acc, int32_t M0, int32_t shift) {
    if (M0 == INT32_MIN && (shift > 0 ? (int64_t)acc * ((int64_t)1 << shift) : acc) <= INT32_MIN) return INT32_MAX;
    if (M0 < 0 && shift < 0) /* outside the kernels' range (M0 >= 0, their one-step form): §5's two steps */
        return rounding_shift(high_mul(acc, M0), -shift);
    return requantize(acc, M0, shift);
}

int32_t tq_s8_unpack(const int8_t *w, int32_t w_bits, size_t i) {
    return w_bits == 4 || w_bits == 2 ? unpack(w, w_bits, i) : w[i];
}

/* Row o's accumulator with the weights unpacked one at a time: x is int8 (is_u8 = 0) or raw
 * pixels (is_u8 = 1), plus off; inputs first.. of the row. */
TQ_INTERNAL int32_t tq_packed_row_(const tq_s8_layer *L, int32_t o, const uint8_t *x, int is_u8, int32_t off, int32_t first) {
    int32_t acc = 0;
    size_t base = (size_t)o * (size_t)L->in;
    for (int32_t i = first; i < L->in; i++)
        acc += unpack(L->w, L->w_bits, base + (size_t)i) * ((is_u8 ? (int32_t)x[i] : (int32_t)(int8_t)x[i]) + off);
    return acc;
}

void tq_linear_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    if (PACKED(L)) {
        for (int32_t o = 0; o < L->out; o++) y[o] = output(L, o, L->bias[o] + tq_packed_row_(L, o, (const uint8_t *)x, 0, -L->in_zp, 0));
        return;
    }
    for (int32_t o = 0; o < L->out; o++) {
        const int8_t *w = L->w + (size_t)o * (size_t)L->in;
        int32_t acc = L->bias[o];
        for (int32_t i = 0; i < L->in; i++) acc += (int32_t)w[i] * ((int32_t)x[i] - L->in_zp);
        y[o] = output(L, o, acc);
    }
}

/* n bytes, a word at a time where it can (the M4 and x86 load unaligned words; a call to memcpy
 * would need the C library). */
TQ_INTERNAL void tq_copy_bytes_(int8_t *dst, const int8_t *src, int32_t n) {
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
TQ_INTERNAL void tq_gather_patch_(const tq_s8_layer *L, const int8_t *x, int32_t oy, int32_t ox, int8_t *patch) {
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
        tq_copy_bytes_(row + kx0 * C, x + ((size_t)iy * (size_t)L->in_w + (size_t)(ix0 + kx0)) * (size_t)C, (kx1 - kx0) * C);
        for (int32_t i = kx1 * C; i < kw * C; i++) row[i] = (int8_t)L->in_zp;
    }
}


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
            else tq_gather_patch_(L, x, oy, ox, patch);
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
TQ_INTERNAL void tq_pool_(const tq_s8_layer *L, const int8_t *x, int8_t *y, int avg) {
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

void tq_maxpool_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) { tq_pool_(L, x, y, 0); }
void tq_avgpool_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) { tq_pool_(L, x, y, 1); }

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
        tq_copy_bytes_(y, x + (size_t)p * (size_t)c1, c1);
        tq_copy_bytes_(y + c1, x2 + (size_t)p * (size_t)c2, c2);
    }
}

/* TFLite Micro's three int8 MEANs (the header): per channel, the sum of the image's n values. */
void tq_mean_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    const int32_t C = L->in_c, n = L->in_h * L->in_w, form = L->mult[1], off = form == 2 ? 0 : L->in_zp;
    for (int32_t c = 0; c < C; c++) {
        int32_t sum = 0;
        for (int32_t p = 0; p < n; p++) sum += (int32_t)x[(size_t)p * (size_t)C + (size_t)c] - off;
        int64_t v;
        if (form == 2) {
            v = sum / n; /* C's division truncates, as TFLite's does */
        } else {
            v = requantize(sum, L->mult[0], L->shift[0]);
            if (form == 0) v = v > 0 ? (v + n / 2) / n : (v - n / 2) / n;
            v += L->out_zp;
        }
        y[c] = (int8_t)(v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v);
    }
}

/* ---- softmax: CMSIS-NN's arm_softmax_s8 in fixed point (docs/QUANTIZATION.md §20) ----
 * Values are int32 read as fixed-point numbers: Qm.n has m integer bits, n = 31 - m fractional.
 * Built from internal.h's two primitives: srdhm(a, b), high_mul saturating where a = b =
 * INT32_MIN, multiplies Qm.n by Qp.q into Q(m+p).(31-m-p); rounding_shift(a, e) divides by 2^e. */
static int32_t srdhm(int32_t a, int32_t b) { return a == INT32_MIN && b == INT32_MIN ? INT32_MAX : high_mul(a, b); }

/* a 2^e, saturated (e small) */
static int32_t mul_pow2_sat(int32_t a, int32_t e) {
    int32_t lim = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    return a > lim ? INT32_MAX : a < -lim ? INT32_MIN : a * (1 << e);
}

/* exp(a) for a <= 0 in Q5.26, in Q0.31. Write a = r - q: r in [-1/4, 0) and q >= 0 a whole number
 * of quarters (a quarter is 2^24 here). exp(r) = exp(-1/8) exp(t) with t = r + 1/8 in [-1/8, 1/8),
 * where four Taylor terms t + t^2/2 + t^3/6 + t^4/24 suffice; then exp(-q) is the product of
 * exp(-2^k / 4) over q's bits (k = 0..6: a > -32 here). The constants are round(2^31 f): f =
 * exp(-1/8); 1/3; exp(-1/4), exp(-1/2), exp(-1), exp(-2), exp(-4), exp(-8), exp(-16); the test
 * derives them again. */
int32_t tq_exp_q31_ref(int32_t a) {
    static const int32_t exp_bit[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24, exp_m1_8 = 1895147668, third = 715827883;
    if (a == 0) return INT32_MAX; /* 1, as near as Q0.31 comes */
    const int32_t r = (a & (quarter - 1)) - quarter, q = r - a;
    const int32_t t = r * 32 + (1 << 28); /* Q5.26 -> Q0.31, plus 1/8 */
    const int32_t t2 = srdhm(t, t), t3 = srdhm(t2, t), t4 = srdhm(t2, t2);
    const int32_t poly = t + rounding_shift(srdhm(rounding_shift(t4, 2) + t3, third) + t2, 1);
    int32_t y = exp_m1_8 + srdhm(exp_m1_8, poly);
    for (int k = 0; k < 7; k++)
        if (q & (quarter << k)) y = srdhm(y, exp_bit[k]);
    return y;
}

/* 1 / (1 + x) for x in [0, 1), both Q0.31: three Newton steps y <- y + y (1 - d y) on the half
 * denominator d = (1 + x) / 2 in [1/2, 1), from y = 48/17 - 32/17 d (the linear start whose
 * worst error on [1/2, 1] is least), in Q2.29; 2/(1+x) in Q2.29 read as Q0.31 is 1/(1+x) / 2,
 * so the result is y 2, saturated. */
static int32_t one_over_one_plus(int32_t x) {
    const int64_t s = (int64_t)x + INT32_MAX;
    const int32_t d = (int32_t)((s + 1) / 2), one = 1 << 29; /* (s >= 0: x >= 0) */
    int32_t y = 1515870810 + srdhm(d, -1010580540); /* 48/17 and -32/17 in Q2.29 */
    for (int i = 0; i < 3; i++) y += mul_pow2_sat(srdhm(y, one - srdhm(d, y)), 2);
    return mul_pow2_sat(y, 1);
}

/* Per position, over its channels (the header gives the formula): the row's exponentials summed
 * in Q12.19 (each rounding_shift(e, 12) <= 2^19, so C <= 511 keeps the sum below 2^28), the sum's
 * reciprocal from its normalized form 2^h sum = 2^31 (1 + x), then y = e / sum 256 - 128, which is
 * srdhm(1/(1+x), e) / 2^(12 + 23 - h). A difference below diff_min would overflow a once scaled:
 * its exponential counts as 0 (diff_min is -floor(31 2^26 / 2^shift), TFLite's input radius). */
void tq_softmax_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y) {
    const int32_t C = L->in_c, rows = L->in_h * L->in_w, M0 = L->mult[0], sh = L->shift[0];
    const int32_t diff_min = -((31 << 26) >> sh);
    for (int32_t p = 0; p < rows; p++, x += C, y += C) {
        int32_t mx = x[0], sum = 0;
        for (int32_t c = 1; c < C; c++) mx = x[c] > mx ? x[c] : mx;
        for (int32_t c = 0; c < C; c++) {
            const int32_t d = x[c] - mx;
            if (d >= diff_min) sum += rounding_shift(tq_exp_q31_ref(srdhm((int32_t)(d * ((int64_t)1 << sh)), M0)), 12);
        }
        const int32_t h = __builtin_clz((uint32_t)sum); /* sum >= 2^19: the maximum's exp is 1 */
        const int32_t recip = one_over_one_plus((int32_t)(((uint32_t)sum << h) - 0x80000000u));
        for (int32_t c = 0; c < C; c++) {
            const int32_t d = x[c] - mx;
            int32_t v = -128;
            if (d >= diff_min) {
                v = rounding_shift(srdhm(recip, tq_exp_q31_ref(srdhm((int32_t)(d * ((int64_t)1 << sh)), M0))), 35 - h) - 128;
                v = v > 127 ? 127 : v;
            }
            y[c] = (int8_t)v;
        }
    }
}

#if TQ_INT8_ACT16
/* TFLite's MultiplyByQuantizedMultiplier for int64 (its 16x8 kernels; CMSIS-NN's
 * arm_nn_requantize_s64 gives the same integers): M0 keeps its top 15 bits, rounded, so that the
 * product with an accumulator below 2^47 fits int64; then one rounding shift, half up. */
int32_t tq_requantize64_ref(int64_t acc, int32_t M0, int32_t shift) {
    const int64_t m = M0 < 0x7fff0000 ? ((int64_t)M0 + (1 << 15)) >> 16 : 0x7fff;
    if (shift > 14) return acc > 0 && m > 0 ? INT32_MAX : acc < 0 && m > 0 ? INT32_MIN : 0; /* M >= 2^14: no real layer */
    const int total = 15 - shift;
    const int64_t lim = (int64_t)1 << 47;
    acc = acc > lim ? lim : acc < -lim ? -lim : acc; /* within the header's ranges it already is */
    int64_t r = (acc * m + ((int64_t)1 << (total - 1))) >> total;
    return r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : (int32_t)r;
}

static int32_t load_act(const void *x, int wide, size_t i) { return wide ? ((const int16_t *)x)[i] : ((const int8_t *)x)[i]; }

static void store_act(const tq_s8_layer *L, void *y, size_t i, int64_t v) {
    v = v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v;
    if (OUT16(L)) ((int16_t *)y)[i] = (int16_t)v;
    else ((int8_t *)y)[i] = (int8_t)v;
}

/* The window of output (oy, ox) as one vector [ky][kx][c] of the input's type, positions outside
 * the image at the zero point (so they add nothing to the dot product). */
static void gather_s16(const tq_s8_layer *L, const void *x, int32_t oy, int32_t ox, void *patch) {
    const int in16 = IN16(L);
    const int32_t C = L->in_c, kw = KW(L);
    size_t at = 0;
    for (int32_t ky = 0; ky < L->k; ky++) {
        int32_t iy = oy * L->stride - L->pad + ky;
        for (int32_t kx = 0; kx < kw; kx++) {
            int32_t ix = ox * SW(L) - PW(L) + kx;
            int inside = iy >= 0 && iy < L->in_h && ix >= 0 && ix < L->in_w;
            size_t px = inside ? ((size_t)iy * (size_t)L->in_w + (size_t)ix) * (size_t)C : 0;
            for (int32_t c = 0; c < C; c++, at++)
                if (in16) ((int16_t *)patch)[at] = inside ? ((const int16_t *)x)[px + (size_t)c] : 0;
                else ((int8_t *)patch)[at] = inside ? ((const int8_t *)x)[px + (size_t)c] : (int8_t)L->in_zp;
        }
    }
}

/* Direct loops over the window: a linear layer is a 1 x 1 convolution of a 1 x 1 image (W OHWI
 * with k = 1 is [out][in]); a depthwise channel reads input channel o / mult (W 1HWO). The int64
 * accumulator and the 64-bit requantization follow TFLite's 16x8 kernels whichever side is wide.
 * Weights one to a byte take one dot product per output (a convolution's window gathered into
 * `patch` first, tq_s8_layer_scratch_bytes); packed ones and depthwise go weight by weight. */
void tq_layer_s16_ref(const tq_s8_layer *L, const void *x, void *y, void *patch) {
    const int in16 = IN16(L);
    const int32_t C = L->in_c, OC = L->out_c, k = L->k, kw = KW(L);
    const size_t out_px = (size_t)L->out_h * (size_t)L->out_w;
    if (L->kind == TQ_S8_FLATTEN) {
        for (size_t i = 0; i < (size_t)L->out; i++) store_act(L, y, i, load_act(x, in16, i));
        return;
    }
    if (L->kind == TQ_S8_MAXPOOL || L->kind == TQ_S8_AVGPOOL) {
        const int32_t count = k * kw;
        for (size_t p = 0; p < out_px; p++)
            for (int32_t c = 0; c < C; c++) {
                int32_t oy = (int32_t)(p / (size_t)L->out_w), ox = (int32_t)(p % (size_t)L->out_w), best = INT32_MIN;
                int64_t sum = 0;
                for (int32_t ky = 0; ky < k; ky++)
                    for (int32_t kx = 0; kx < kw; kx++) {
                        size_t at = ((size_t)(oy * L->stride + ky) * (size_t)L->in_w + (size_t)(ox * SW(L) + kx)) * (size_t)C + (size_t)c;
                        int32_t v = load_act(x, in16, at);
                        best = v > best ? v : best;
                        sum += v;
                    }
                int64_t v = L->kind == TQ_S8_MAXPOOL ? best : sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                store_act(L, y, p * (size_t)C + (size_t)c, v);
            }
        return;
    }
    const int dw = L->kind == TQ_S8_DEPTHWISE;
    const int32_t mult = dw ? OC / C : 1;
    if (!dw && !PACKED(L)) { /* a linear layer reads its input as it is; a convolution its gathered window */
        const int32_t K = k * kw * C;
        const int conv = L->kind == TQ_S8_CONV;
        for (size_t p = 0; p < out_px; p++) {
            if (conv) gather_s16(L, x, (int32_t)(p / (size_t)L->out_w), (int32_t)(p % (size_t)L->out_w), patch);
            const void *win = conv ? patch : x;
            for (int32_t o = 0; o < OC; o++) {
                int64_t acc = L->bias64[o] + dot_s16(L->w + (size_t)o * (size_t)K, win, in16, L->in_zp, K);
                store_act(L, y, p * (size_t)OC + (size_t)o, (int64_t)tq_requantize64_ref(acc, L->mult[o], L->shift[o]) + L->out_zp);
            }
        }
        return;
    }
    for (size_t p = 0; p < out_px; p++)
        for (int32_t o = 0; o < OC; o++) {
            int32_t oy = (int32_t)(p / (size_t)L->out_w), ox = (int32_t)(p % (size_t)L->out_w);
            int64_t acc = L->bias64[o];
            for (int32_t ky = 0; ky < k; ky++) {
                int32_t iy = oy * L->stride - L->pad + ky;
                if (iy < 0 || iy >= L->in_h) continue; /* outside the image: the zero point, which adds nothing */
                for (int32_t kx = 0; kx < kw; kx++) {
                    int32_t ix = ox * SW(L) - PW(L) + kx;
                    if (ix < 0 || ix >= L->in_w) continue;
                    size_t px = ((size_t)iy * (size_t)L->in_w + (size_t)ix) * (size_t)C;
                    if (dw) {
                        size_t at = (size_t)(ky * kw + kx) * (size_t)OC + (size_t)o;
                        acc += (int64_t)tq_s8_unpack(L->w, L->w_bits, at) * (load_act(x, in16, px + (size_t)(o / mult)) - L->in_zp);
                        continue;
                    }
                    size_t row = (((size_t)o * (size_t)k + (size_t)ky) * (size_t)kw + (size_t)kx) * (size_t)C;
                    for (int32_t c = 0; c < C; c++)
                        acc += (int64_t)tq_s8_unpack(L->w, L->w_bits, row + (size_t)c) * (load_act(x, in16, px + (size_t)c) - L->in_zp);
                }
            }
            store_act(L, y, p * (size_t)OC + (size_t)o, (int64_t)tq_requantize64_ref(acc, L->mult[o], L->shift[o]) + L->out_zp);
        }
}
#endif
