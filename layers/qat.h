/* Quantization state of a model: what QAT trains through and what PTQ calibrates.
 *
 * Each linear layer l becomes
 *
 *     W^ = fq_w(W)               symmetric, narrow, w_bits, per output channel (or per tensor)
 *     b^ = fq_b(b)               int32 at s_in * s_w[o], optional (what the integer path adds)
 *     y  = fq_a(relu(x W^T + b^))   int8 affine; observer watches the output
 *
 * The input needs no fake quant: tq_qat_attach folds the dataset normalization into the first
 * layer, so x = p/255, which the integer input q = p - 128 (s = 1/255, z = -128) represents
 * exactly (docs/QUANTIZATION.md §6). */
#ifndef TQ_QAT_H
#define TQ_QAT_H

#include "layers/model.h"
#include "src/checkpoint.h"
#include "src/fake_quant.h"
#include "src/qmodel.h"

typedef struct {
    int w_bits;          /* 2..8 */
    int per_channel;     /* 1: one weight scale per output channel (default) */
    int quant_bias;      /* 1: fake-quantize the bias to int32 (default) */
    tq_ste ste;          /* clipped (default) or plain */
    tq_obs_kind obs;     /* activation observer */
} tq_qat_cfg;

typedef struct {
    const tq_fq *w;      /* the layer's weight quantizer (s_w per channel) */
    const tq_fq *in;     /* the previous layer's activation quantizer, NULL for the input */
} tq_bias_q;

typedef struct tq_qat {
    tq_qat_cfg cfg;
    tq_fq wfq[TQ_MAX_LAYERS], afq[TQ_MAX_LAYERS];
    tq_observer aobs[TQ_MAX_LAYERS];
    tq_bias_q bq[TQ_MAX_LAYERS];
} tq_qat;

#define TQ_INPUT_SCALE (1.0f / 255.0f)
#define TQ_INPUT_ZERO_POINT (-128)

void tq_qat_cfg_defaults(tq_qat_cfg *c); /* 8 bits, per channel, bias quantized, clipped STE, ema */

/* Give a float model quantization state (fold the input normalization first). Observers start
 * empty: calibrate (PTQ) or train (QAT) before evaluating. */
tq_status tq_qat_attach(tq_model *m, const tq_qat_cfg *cfg);
void tq_qat_set_frozen(tq_model *m, int frozen);
/* Switch every activation observer to `kind`, keeping the range seen so far. */
void tq_qat_set_observer(tq_model *m, tq_obs_kind kind);

/* Hooks used by layers/model.c. */
tq_node *tq_qat_apply_layer(tq_graph *g, tq_model *m, int l, tq_node *x, tq_node *W, tq_node *b);
void tq_qat_free(struct tq_qat *q);
tq_status tq_qat_save_state(const tq_model *m, tq_ckpt *c);
tq_status tq_qat_load_state(tq_model *m, const tq_ckpt *c, const char *path);

/* The integer model of a quantized model (PTQ-calibrated or QAT-trained): weights through the
 * same quantizer the fake quant used, the activation scales its observers hold. */
tq_status tq_qat_to_int8(tq_model *m, tq_qmodel *q);

/* Float bytes of the model vs its int8 weights + int32 biases + per-channel multiplier/shift
 * (int32 each) + zero points (what the integer model file stores per layer). */
size_t tq_model_float_bytes(const tq_model *m);
size_t tq_model_int8_bytes(const tq_model *m);

#endif
