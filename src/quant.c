#include "src/quant.h"

#include <float.h>
#include <math.h>

tq_status tq_qrange(int bits, int narrow, int32_t *qmin, int32_t *qmax) {
    if (bits < 2 || bits > 8) TQ_FAIL(TQ_E_ARG, "%d-bit quantization: bits must be 2..8", bits);
    *qmax = (1 << (bits - 1)) - 1;
    *qmin = narrow ? -*qmax : -*qmax - 1;
    return TQ_OK;
}

/* nearbyintf in the default rounding mode rounds half to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2. */
static float round_half_even(float v) { return nearbyintf(v); }

static int32_t clamp32(int64_t v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : (int32_t)v; }

tq_status tq_qparams_affine(float min, float max, int32_t qmin, int32_t qmax, tq_qparams *out) {
    if (!isfinite(min) || !isfinite(max)) TQ_FAIL(TQ_E_NUMERIC, "quantization range [%g, %g] is not finite", min, max);
    if (qmin >= qmax) TQ_FAIL(TQ_E_ARG, "bad integer range [%d, %d]", qmin, qmax);
    float lo = min < 0.0f ? min : 0.0f, hi = max > 0.0f ? max : 0.0f;
    float s = (hi - lo) / (float)(qmax - qmin);
    if (!(s > FLT_EPSILON)) s = FLT_EPSILON; /* a constant-zero tensor still gets a valid scale */
    /* z = qmin - round(lo/s): maps lo to qmin. The seed's round(-lo/s) forgets qmin (section 5). */
    out->scale = s;
    out->zero_point = clamp32((int64_t)qmin - (int64_t)round_half_even(lo / s), qmin, qmax);
    out->qmin = qmin;
    out->qmax = qmax;
    return TQ_OK;
}

tq_status tq_qparams_symmetric(float min, float max, int32_t qmax, tq_qparams *out) {
    if (!isfinite(min) || !isfinite(max)) TQ_FAIL(TQ_E_NUMERIC, "quantization range [%g, %g] is not finite", min, max);
    if (qmax < 1) TQ_FAIL(TQ_E_ARG, "bad qmax %d", qmax);
    float a = fmaxf(fabsf(min), fabsf(max));
    float s = a / (float)qmax;
    out->scale = s > FLT_EPSILON ? s : FLT_EPSILON;
    out->zero_point = 0;
    out->qmin = -qmax;
    out->qmax = qmax;
    return TQ_OK;
}

int32_t tq_quantize_ref(float x, float scale, int32_t zero_point, int32_t qmin, int32_t qmax) {
    /* Multiply by the reciprocal, as PyTorch's fake_quantize_per_tensor_affine does: x * (1/s)
     * and x / s differ in the last bit for some x, and that bit decides ties. */
    float v = nearbyintf(x * (1.0f / scale));
    if (!(v == v)) return zero_point; /* NaN input: map to real 0 rather than UB in the cast */
    if (v > 2147483520.0f) v = 2147483520.0f; /* keep the cast defined; the clamp below decides */
    if (v < -2147483520.0f) v = -2147483520.0f;
    return clamp32((int64_t)zero_point + (int64_t)v, qmin, qmax);
}

float tq_dequantize_ref(int32_t q, float scale, int32_t zero_point) { return (float)(q - zero_point) * scale; }

tq_status tq_weight_scales(const float *W, int rows, int cols, int bits, int per_channel, float *scale) {
    int32_t qmin = 0, qmax = 0;
    TQ_TRY(tq_qrange(bits, 1, &qmin, &qmax));
    float all = 0.0f;
    for (int r = 0; r < rows; r++) {
        float a = 0.0f;
        for (int c = 0; c < cols; c++) {
            float v = W[(size_t)r * cols + c];
            /* checked one by one: fmaxf would silently drop a NaN */
            if (!isfinite(v)) TQ_FAIL(TQ_E_NUMERIC, "weights row %d holds a NaN or Inf at column %d", r, c);
            a = fmaxf(a, fabsf(v));
        }
        scale[r] = a;
        all = fmaxf(all, a);
    }
    for (int r = 0; r < rows; r++) {
        float s = (per_channel ? scale[r] : all) / (float)qmax;
        scale[r] = s > FLT_EPSILON ? s : FLT_EPSILON;
    }
    return TQ_OK;
}

void tq_quant_error(const float *x, size_t n, const tq_qparams *p, double *mse, double *max_abs) {
    double se = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)tq_fake_quant_ref(x[i], p));
        se += e * e;
        if (e > mx) mx = e;
    }
    *mse = n ? se / (double)n : 0;
    *max_abs = mx;
}

int32_t tq_zero_point_naive(float min, float scale, int32_t qmin, int32_t qmax) {
    return clamp32((int64_t)nearbyintf(-min / scale), qmin, qmax);
}
