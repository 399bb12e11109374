/* Quantization math (docs/QUANTIZATION.md §1, §2).
 *
 *     real = s * (q - z)         s > 0, z integer, q in [qmin, qmax]
 *     q    = clamp(z + nearbyintf(x * (1/s)), qmin, qmax)     ties to even; z added after rounding
 *     x^   = (q - z) * s
 *
 * Weights: symmetric, z = 0, narrow range [-(2^(b-1)-1), 2^(b-1)-1] (never -2^(b-1): TFLite's
 * rule, which also keeps pairwise int16 sums from overflowing), s = max(|min|,|max|) / qmax, per
 * output channel (row of W[out][in]) by default. Activations: int8 [-128, 127], affine, the
 * range widened to include 0 so that 0 is exact (ReLU zeros and padding stay zero):
 *
 *     lo = min(min, 0), hi = max(max, 0), s = max((hi - lo) / (qmax - qmin), FLT_EPSILON)
 *     z  = clamp(qmin - round_half_even(lo / s), qmin, qmax)
 *
 * tq_quantize_ref is THE rounding of tinyqat: fake quant in training, weight export and the
 * reference checks all call it, so training and the integer path see the same integers. */
#ifndef TQ_QUANT_H
#define TQ_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    float scale;
    int32_t zero_point;
    int32_t qmin, qmax;
} tq_qparams;

/* Signed b-bit range, 2 <= bits <= 8. narrow: [-(2^(b-1)-1), 2^(b-1)-1]; else [-2^(b-1), 2^(b-1)-1]. */
tq_status tq_qrange(int bits, int narrow, int32_t *qmin, int32_t *qmax);

/* Affine parameters from an observed range (activations). TQ_E_NUMERIC if min or max is not finite. */
tq_status tq_qparams_affine(float min, float max, int32_t qmin, int32_t qmax, tq_qparams *out);
/* Symmetric parameters (z = 0) for a narrow range [-qmax, qmax] (weights). */
tq_status tq_qparams_symmetric(float min, float max, int32_t qmax, tq_qparams *out);

int32_t tq_quantize_ref(float x, float scale, int32_t zero_point, int32_t qmin, int32_t qmax);
float tq_dequantize_ref(int32_t q, float scale, int32_t zero_point);
/* The fake quant's rule, the same as the graph op's: + x * 0, so NaN and +-Inf give NaN (they stay
 * visible downstream; tq_quantize_ref, an integer, maps NaN to the zero point). */
static inline float tq_fake_quant_ref(float x, const tq_qparams *p) {
    return tq_dequantize_ref(tq_quantize_ref(x, p->scale, p->zero_point, p->qmin, p->qmax), p->scale, p->zero_point) + x * 0.0f;
}

/* Weight scales of W[rows][cols]: one per row (per_channel) or one for all, written to
 * scale[0..rows) (all equal when per tensor). Symmetric, narrow range of `bits`. */
tq_status tq_weight_scales(const float *W, int rows, int cols, int bits, int per_channel, float *scale);

/* Quantization error of x against its fake-quantized self: mean squared and largest absolute. */
void tq_quant_error(const float *x, size_t n, const tq_qparams *p, double *mse, double *max_abs);

/* The seed article's zero point, z = round(-min / s) clamped to [qmin, qmax]: right only for
 * unsigned ranges (qmin = 0). Kept to show the pitfall (docs/QUANTIZATION.md §9). */
int32_t tq_zero_point_naive(float min, float scale, int32_t qmin, int32_t qmax);

#endif
