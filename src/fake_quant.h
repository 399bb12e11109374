/* The fake-quant op: quantize and dequantize in the forward pass, so training sees the rounding
 * and clipping the integer model will do, and pass gradients through with a straight-through
 * estimator (STE), since the staircase's true derivative is 0 almost everywhere.
 *
 * forward (docs/QUANTIZATION.md §2), per channel c (a row of a [rows][cols] tensor) or per tensor:
 *     u  = z + nearbyintf(x * (1/s))          q = clamp(u, qmin, qmax)       y = (q - z) s
 * backward (§3):
 *     clipped STE (default, PyTorch's): dx = dy where qmin <= u <= qmax, else 0
 *         i.e. the gradient passes on [(qmin - z - 1/2) s, (qmax - z + 1/2) s]
 *     plain STE (teaching): dx = dy everywhere
 *     LSQ (learned step size): the scale is a parameter node; dx as clipped, and with
 *         v = x/s, g = 1/sqrt(numel * qmax):
 *         ds += dy g (round(v) - v) inside, dy g (qmin - z) below, dy g (qmax - z) above
 *         (with lsq_log the node holds log s: its gradient is ds times s)
 *
 * Where s and z come from, by run mode (the `training` argument of a graph run):
 *     TQ_RUN_TRAIN      observer (if any, unless frozen) sees x, s and z follow; then quantize
 *     TQ_RUN_CALIBRATE  observer sees x; y = x unchanged (PTQ calibration)
 *     TQ_RUN_EVAL       s and z as they are: evaluation never moves an observer
 * Without an observer (weights), s is derived from x itself on every run: symmetric, from
 * max |x| per row (per channel) or over the tensor, as tq_weight_scales; or, with mse_range, the
 * clip of least squared error (§4).
 */
#ifndef TQ_FAKE_QUANT_H
#define TQ_FAKE_QUANT_H

#include <stdint.h>

#include "autograd.h"
#include "observer.h"
#include "quant.h"

enum { TQ_RUN_EVAL = 0, TQ_RUN_TRAIN = 1, TQ_RUN_CALIBRATE = 2 };

typedef enum { TQ_STE_CLIPPED = 0, TQ_STE_PLAIN = 1, TQ_STE_LSQ = 2 } tq_ste;

#define TQ_FQ_MAX_CH 4096

typedef struct tq_fq {
    int bits;
    int32_t qmin, qmax;
    int per_channel;          /* one (s, z) per row of the input */
    int n_ch;                 /* entries in scale / zero_point: rows, or 1 */
    float scale[TQ_FQ_MAX_CH];
    int32_t zero_point[TQ_FQ_MAX_CH];
    tq_ste ste;
    int enabled;              /* 0: y = x, dx = dy (a float model) */
    tq_observer *obs;         /* activations: the range watcher; NULL: weights (s from x) */
    /* Quantizers that share one s and z (a concat's inputs and output: its integer layer copies)
     * form a ring through `ring` (NULL: none). Each takes the union of the ring's observed ranges
     * and hands its s and z to the others whenever it computes them, so all agree after every
     * update, whichever input ran last. */
    struct tq_fq *ring;
    int mse_range;            /* weights: s from the clip of least squared error, not max|x| */
    /* Learned weight scales (LSQ in training, tq_qat): the scale node holds log s per channel,
     * so an optimizer's step changes s by a ratio, whatever its size (s = exp(v), ds/dv = s);
     * `learned` points at those values so that tq_fq_update (conversion) reads them too. */
    int lsq_log;
    float *learned, *learned_grad; /* [n_ch] values and gradients of the scale parameters, or NULL */
    /* Activations after a layer with weights (may be NULL): in evaluation, the output is rounded
     * as the integer path requantizes it (§5): acc = round(x / (s_in s_w[c])), then TFLite's double
     * rounding by M0, shift, so the simulation is the integer model up to float error in acc
     * (single rounding of x / s differs where the double rounding bites: often at low bit widths,
     * whose weight scales give small shifts). Channel c = column % req_w->n_ch (NHWC). */
    const struct tq_fq *req_w; /* the layer's weight quantizer */
    const float *req_in;      /* s_in: the previous activation quantizer's scale[0], or a constant */
    int req_wide;             /* the layer's input or output is int16: TFLite's 16x8 requantization (§19) */
    int req_relu;             /* with exact accumulators (tq_fake_quant_exact): the layer's ReLU (1) or ReLU6 (2) */
} tq_fq;

/* Weights: symmetric narrow range of `bits`, s from the tensor itself. */
tq_status tq_fq_init_weight(tq_fq *fq, int bits, int per_channel, int rows);
/* Activations: int8 affine [-128, 127], s and z from `obs` (which the caller owns). */
void tq_fq_init_act(tq_fq *fq, tq_observer *obs);
/* Make an activation quantizer int16 (TFLite's 16x8 mode, docs/QUANTIZATION.md §19): symmetric,
 * z = 0, s = max(|min|, |max|) / 32767 from its observer, values clamped to [-32768, 32767]. */
void tq_fq_set_act16(tq_fq *fq);

/* y = fake_quant(x), same shape. */
tq_node *tq_fake_quant(tq_graph *g, tq_node *x, tq_fq *fq);
/* LSQ: `scale` is a [1][n_ch] parameter leaf holding s (learned); fq gives range and z. */
tq_node *tq_fake_quant_lsq(tq_graph *g, tq_node *x, tq_node *scale, tq_fq *fq);

/* The same, where evaluation takes the layer's accumulators from acc instead of recovering them
 * from x: acc's aux holds one int64 per element of x (the integer path's own sums, computed
 * exactly by its op, layers/qat.c; INT64_MIN where it has none, and the float estimate serves).
 * The 16-bit layers use it: their output grid is fine enough
 * that the float sums' error would move an output across a rounding tie now and then. */
tq_node *tq_fake_quant_exact(tq_graph *g, tq_node *x, tq_node *acc, tq_fq *fq);

/* Recompute s, z from the observer (activations) or from x (weights), as a training run would. */
tq_status tq_fq_update(tq_fq *fq, const float *x, int rows, int cols, int observe);

#endif
