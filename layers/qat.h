/* Quantization state of a model's units: what QAT trains through and what PTQ calibrates. It
 * knows unit sizes and which unit reads which, not the model (layers/model.h owns one and calls it).
 *
 * Each weighted unit (a dense layer here; a convolution likewise) becomes
 *
 *     W^ = fq_w(W)                 symmetric, narrow, w_bits, per output channel (or per tensor)
 *     b^ = fq_b(b)                 int32 at s_in * s_w[o], optional (what the integer path adds)
 *     y  = fq_a(relu(x W^T + b^))  int8 affine; an observer watches the output
 *
 * The model's input needs no fake quant: its normalization is folded into the first layer, so
 * x = p/255, which the integer input q = p - 128 (s = 1/255, z = -128) represents exactly
 * (docs/QUANTIZATION.md §6). */
#ifndef TQ_QAT_H
#define TQ_QAT_H

#include "batchnorm.h"
#include "conv.h"
#include "../src/checkpoint.h"
#include "../src/fake_quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TQ_QAT_MAX_LAYERS 8
#define TQ_QAT_MAX_STAGES 32 /* a MobileNet v1 has 27 convolutions */

#define TQ_QAT_MAX_UNITS (TQ_QAT_MAX_STAGES + TQ_QAT_MAX_LAYERS)

typedef struct {
    int w_bits;          /* 2..8 */
    /* Per unit, in the model's order (layers/model.h: the stages, then the dense layers): that
     * unit's weight width, 2..8, or 0 for w_bits. A convolution's weights are quantized with its
     * batch norm folded in; an add or a concat has none, and its entry is not read. */
    int unit_bits[TQ_QAT_MAX_UNITS];
    int per_channel;     /* 1: one weight scale per output channel (default) */
    int quant_bias;      /* 1: fake-quantize the bias to int32 (default) */
    tq_ste ste;          /* clipped (default) or plain */
    tq_obs_kind obs;     /* activation observer */
    int w_mse;           /* 1: weight ranges by the least squared error (PTQ --method mse) */
    /* Activation widths (docs/QUANTIZATION.md §19): per unit, its output's, 8 or 16 (0: act_bits);
     * act_bits, 8 or 16 (0: 8), is every unit's but the last's, whose output (the logits) is int8. */
    int act_bits;
    int unit_act_bits[TQ_QAT_MAX_UNITS];
} tq_qat_cfg;

typedef struct {
    const tq_fq *w;      /* the layer's weight quantizer (s_w per channel) */
    const tq_fq *in;     /* the previous layer's activation quantizer, NULL for the input */
    int wide;            /* an int16 side: the bias is int64 (below 2^46), not int32 */
} tq_bias_q;

/* An add stage's simulation (tq_qat_add): its inputs' quantizers (NULL: the network's input, at
 * TQ_INPUT_SCALE and TQ_INPUT_ZERO_POINT) and its output's. */
typedef struct {
    const struct tq_fq *a, *b;
    struct tq_fq *y;
    int relu;
} tq_qadd;

/* An average pool's rounding (tq_qat_avgpool): the quantizer whose grid it keeps, the window. */
typedef struct {
    const struct tq_fq *fq;
    int count;
} tq_qpool;

/* A 16-bit unit's exact accumulators in evaluation (tq_fake_quant_exact): what its integer layer
 * sums, from the quantized input and weights and the bias the converter stores. */
typedef struct {
    const struct tq_fq *w, *in;   /* weight and input quantizers (in NULL: the network's input) */
    const tq_conv_shape *cs;      /* NULL: a dense layer */
    tq_bn *bn;                    /* a folded batch norm's running statistics, or NULL */
    const float *gamma, *beta;    /* and its scale and shift (the model's parameters) */
} tq_qexact;

/* One model's quantization state, indexed by unit: the feature stages (units 0 .. n_stages - 1),
 * then the dense layers. A unit that holds weights has wfq and bq; every unit has its output's
 * afq and observer (a concat's reads its inputs' observers); an add or average pool keeps what
 * its integer rounding needs. */
typedef struct tq_qat {
    tq_qat_cfg cfg;
    int n_units, n_stages;
    tq_fq wfq[TQ_QAT_MAX_UNITS], afq[TQ_QAT_MAX_UNITS];
    tq_observer aobs[TQ_QAT_MAX_UNITS];
    tq_bias_q bq[TQ_QAT_MAX_UNITS];
    tq_qexact exact[TQ_QAT_MAX_UNITS];
    tq_qadd qadd[TQ_QAT_MAX_UNITS];
    tq_qpool qpool[TQ_QAT_MAX_UNITS];
} tq_qat;

/* The integer input: x = p/255 is q = p - 128 with these (docs/QUANTIZATION.md §6). */
#define TQ_INPUT_SCALE (1.0f / 255.0f)
#define TQ_INPUT_ZERO_POINT (-128)

void tq_qat_cfg_defaults(tq_qat_cfg *c); /* 8 bits, per channel, bias quantized, clipped STE, ema */
/* Unit u's weight width: unit_bits[u], or w_bits where that is 0. */
int tq_qat_cfg_bits(const tq_qat_cfg *c, int u);
/* Unit u's output width (8 or 16) in a model of n_units units. */
int tq_qat_cfg_act_bits(const tq_qat_cfg *c, int u, int n_units);

/* Quantizers for n_units units of channels[u] outputs each, unit u reading unit src[u]'s output
 * (-1: the network's input; src NULL: the unit before); the first n_stages are feature stages,
 * the rest dense layers (the names of their records in a file differ). TQ_E_ARG when a unit reads
 * itself or a later one, a unit_bits entry is not 0 or 2..8, an activation width not 0, 8 or 16
 * or the last unit's 16, or one is set past the last unit. Observers start empty: calibrate (PTQ)
 * or train (QAT) before evaluating. *out is tq_malloc'd; tq_qat_free frees it. */
tq_status tq_qat_new(tq_qat **out, const tq_qat_cfg *cfg, int n_units, int n_stages, const int *channels, const int *src);
void tq_qat_free(tq_qat *q); /* NULL-safe */

void tq_qat_set_frozen(tq_qat *q, int frozen);            /* observers stop (1) or go on (0) */
void tq_qat_set_observer(tq_qat *q, tq_obs_kind kind);    /* switch kind, keep the range seen */

/* Record dense unit u: fake-quant W (and b), x W^T + b, ReLU if relu, fake-quant the output. */
tq_node *tq_qat_layer(tq_graph *g, tq_qat *q, int u, tq_node *x, tq_node *W, tq_node *b, int relu);

/* Record stage s's convolution, fused with its batch norm when bn is given (docs/QUANTIZATION.md
 * §10): fake_quant(W * s_bn) convolved, divided by s_bn, then batch norm (gamma, beta); without
 * batch norm: fake-quant W and the int32 bias b (with batch norm, b must be NULL: TQ_E_ARG in the
 * graph's status). Then ReLU if relu is 1, ReLU6 if 2, then the output fake quant.
 * The pool comes after (it needs no quantizer: it keeps the scale). */
tq_node *tq_qat_stage(tq_graph *g, tq_qat *q, int s, tq_node *x, tq_node *W, tq_node *b, tq_node *gamma, tq_node *beta,
                      tq_bn *bn, int relu, const tq_conv_shape *cs);

/* Record add stage s: y = a + b (ReLU if relu) on the output's grid, b being stage src_b's output
 * (-1: the network's input; a is the unit s reads). Calibration passes the float sum on while its
 * observer watches it; training and evaluation (once the range is known) compute the sum as
 * the int8 ADD does (docs/QUANTIZATION.md §18): each input back to its integers, both rescaled
 * to twice the larger scale 20 bits down, summed, requantized to the output's scale, clamped, so
 * the simulation is the integer model's add exactly. Backward: the clipped STE of the float sum,
 * to both inputs. */
tq_node *tq_qat_add(tq_graph *g, tq_qat *q, int s, tq_node *a, tq_node *b, int src_b, int relu);

/* Make concat stage t's inputs, stages a and b, quantize their outputs at one scale and zero
 * point, which t's output takes too: the int8 concat copies its inputs' integers, as TFLite's
 * does, which requires them all on one grid (docs/QUANTIZATION.md §18). The scale follows the
 * union of the inputs' observed ranges; inputs that are concats, or that feed another concat,
 * join that one's grid too (every quantizer of the group shares it). A concat's own output needs
 * no fake quant: its inputs are on its grid. TQ_E_ARG when an input is the network's (-1) or t
 * is not after both. LSQ learns no scale for a, b or t. */
tq_status tq_qat_share_concat(tq_qat *q, int t, int a, int b);

/* Record stage s's average pool on its quantized output x, rounded as the int8 pool rounds (the
 * window's integer sum divided by its size, half away from zero: §11), so the pool keeps x's
 * grid; gradients as the float pool's. */
tq_node *tq_qat_avgpool(tq_graph *g, tq_qat *q, int s, tq_node *x, const tq_pool_shape *ps);

/* The name of unit u's record `what` in a model file, the first n_stages units being feature
 * stages: stages.S.what, or layers.L.what for dense layer L = u - n_stages (the names files have
 * always used: docs/QUANTIZATION.md §8). */
typedef struct {
    char s[48];
} tq_record_name;
tq_record_name tq_unit_record(int u, int n_stages, const char *what);

/* The configuration and each layer's activation observer (range, batches seen, frozen) into a
 * checkpoint (copied), and back. Weight scales are not stored: they follow from the weights. */
tq_status tq_qat_save_state(const tq_qat *q, tq_ckpt *c);
tq_status tq_qat_cfg_load(tq_qat_cfg *cfg, const tq_ckpt *c, const char *path);
tq_status tq_qat_load_observers(tq_qat *q, const tq_ckpt *c, const char *path);

#ifdef __cplusplus
}
#endif
#endif
