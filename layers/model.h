/* A model described by a spec string, its parameters in one flat block, optional quantization
 * state, and the graph that trains or evaluates it.
 *
 * A model is a list of units (tq_unit), each reading earlier ones: the feature stages, then the
 * dense layers. A stage is a convolution (or a depthwise one), optionally batch norm, optionally
 * ReLU, optionally a pool; or the sum of two earlier units' outputs (a residual add), optionally
 * ReLU, optionally a pool; or their channels joined (a concat). A stage reads the unit before it,
 * or (in a graph) any earlier one. A dense layer is x W^T + b, optionally ReLU, and reads the unit
 * before it. Every other part (QAT, PTQ, the files, the converter, the exporters) walks this one
 * list. Activations are NHWC (layers/conv.h).
 *
 * Spec: tokens joined by '-', the input first:
 *   N or HxWxC     the input: N values (dense only), or an H x W image of C channels
 *   cOkK           a convolution to O channels with a K x K kernel (cOkKxL: K rows, L columns);
 *                  then optionally sS (stride, default 1), pP (zero padding on every side, default
 *                  0; pPxQ: P above and below, Q left and right), b (batch norm), r (ReLU) or r6
 *                  (ReLU6): c8k5br, c64k10x4s2p4x1br
 *   dMkK           a depthwise convolution, M output channels per input channel, same options
 *   mK / aK        a K x K max / average pool after the stage before it; sS sets its stride
 *                  (default K): m2
 *   g              a global average pool after the stage before it (its window the whole image)
 *   W              a dense layer of W outputs; r puts a ReLU after it: 100r
 *   dropP          after a stage or a dense layer (not the last): P% of its output dropped in
 *                  training (layers/dropout.h); evaluation and the integer model have no such
 *                  layer: 100r-drop20-10
 * Graphs (residual networks) name tensors and refer to them:
 *   TOKEN@NAME     names the output of a stage token (after its pool): c16k3p1br@x
 *   +NAME          a stage adding NAME's output to the current one (one shape); r: ReLU after
 *   ^NAME          a stage joining NAME's channels after the current one's (one height and width;
 *                  its integer layer copies, so both inputs are quantized at one scale, §18)
 *   ~NAME          goes back to NAME's output: the next stage reads it (a branch)
 * Each stage's output must be read by a later stage or the dense layers, which read the last
 * stage's. A ResNet-8 block with a 1x1 stride-2 shortcut:
 *   ...@b-c32k3s2p1br-c32k3p1b@m-~b-c32k1s2-+mr-...
 * `in` and `out` stand for the data's input (a number when the model is dense only, HxWxC when
 * it has stages) and its class count, so one spec fits any dataset; tq_model_spec_resolve turns
 * them, and the presets, into numbers:
 *   digitsnet   in-100r-100r-out                (784-100r-100r-10 on MNIST)
 *   digitscnn   in-c8k5br-m2-c16k5br-m2-out     (28x28x1-c8k5br-m2-c16k5br-m2-10: 322,560 MACs)
 *   dscnn       MLPerf Tiny's keyword spotting DS-CNN: a 10x4 convolution to 64 (stride 2), four
 *               depthwise-separable blocks (3x3 depthwise, 1x1 to 64), global average pool, dense
 *   mobilenet   MobileNet v1 of width 0.25 (MLPerf Tiny's visual wake words): a 3x3 convolution to 8
 *               (stride 2), 13 depthwise-separable blocks, ReLU6, global average pool, dense
 *   resnet8     MLPerf Tiny's image classification ResNet-8 (12,501,632 MACs on 32x32x3): a 3x3
 *               convolution to 16 channels, three residual blocks of 16, 32 and 64 (the last two
 *               stride 2 with 1x1 shortcuts), global average pool, dense
 *   article     in-100-100-outr                 (the seed article's network, ReLU on the logits)
 *
 * Parameters: one block, unit by unit, W then b (or batch norm's gamma and beta): W0 b0 W1 b1 ...
 * (W row-major [out][in]), and a gradient block of the same layout, so an optimizer step is one loop and zero_grad one memset.
 *
 * Input: a raw pixel p in 0..255 enters as x = (p/255 - in_mean) / in_std, with the training
 * set's statistics (tq_dataset_norm). Quantizing the model folds the normalization into the first
 * layer, which makes the input x = p/255, the form the integer path uses (docs/QUANTIZATION.md §6). */
#ifndef TQ_MODEL_H
#define TQ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "batchnorm.h"
#include "concat.h"
#include "conv.h"
#include "dropout.h"
#include "loss.h"
#include "qat.h"
#include "../src/autograd.h"
#include "../src/checkpoint.h"
#include "../src/qmodel.h"
#include "../src/rng.h"
#include "../src/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TQ_MAX_LAYERS TQ_QAT_MAX_LAYERS
#define TQ_MAX_STAGES TQ_QAT_MAX_STAGES

#define TQ_MAX_UNITS TQ_QAT_MAX_UNITS

/* The kinds of unit. A layer kind that holds weights is a unit of its own kind; ReLU, pools and
 * dropout are a unit's options, fused as the integer path fuses them. */
enum { TQ_UNIT_CONV = 0, TQ_UNIT_ADD = 1, TQ_UNIT_CONCAT = 2, TQ_UNIT_DENSE = 3 };

/* A unit: one node of the model's graph.
 *   conv (or depthwise), [batch norm], [ReLU], [pool]      reads src[0]
 *   add of two tensors of one shape, [ReLU], [pool]        reads src[0] and src[1]
 *   concat of two tensors' channels, [pool]                reads src[0] and src[1]
 *   dense x W^T + b, [ReLU]                                reads src[0], flattened (NHWC order)
 * Every unit has a conv shape: a dense layer's is the 1 x 1 convolution of a 1 x 1 x IN image to
 * OUT channels (what it computes), so conv.C and conv.OC are its widths and code that walks
 * weights walks both kinds alike. */
typedef struct {
    int kind;                      /* TQ_UNIT_* */
    int src[2];                    /* the units whose outputs it reads (-1: the model's input); an add or concat reads two */
    tq_conv_shape conv;            /* input H x W x C -> OH x OW x OC (an add: H x W x C both; a concat: C its first input's) */
    tq_concat_shape cat;           /* a concat's two inputs' channels */
    int bn, relu;                  /* relu: 1 ReLU, 2 ReLU6 (an add or dense: ReLU only) */
    int pool;                      /* 0 none, 1 max, 2 average */
    tq_pool_shape pool_shape;
    int drop;                      /* percent of the output dropped in training (0: no dropout) */
    int out_h, out_w, out_c;       /* after the pool (a dense layer: 1 x 1 x OUT) */
    float *W, *b;                  /* views into params: W [OC][K]; b [OC], NULL with batch norm */
    float *gamma, *beta;           /* batch norm's, or NULL */
    float *dW, *db, *dgamma, *dbeta;
    float *running_mean, *running_var; /* views into buffers */
    tq_bn bn_state;
} tq_unit;

typedef struct tq_model {
    char spec[TQ_SPEC_MAX];        /* resolved: numbers only */
    int in_h, in_w, in_c;          /* the input image (a dense-only model: 1 x 1 x its inputs) */
    /* The graph: units in an order where each reads earlier ones. The feature units (stages:
     * conv, add, concat) come first, then the n_layers dense layers, each reading the one
     * before it (the first: the last stage, or the input). */
    int n_units, n_stages, n_layers;
    tq_unit unit[TQ_MAX_UNITS];
    float *buffers;                /* the stages' running statistics (not trained), owned */
    size_t n_buffers;
    float in_mean, in_std;         /* input normalization (0 and 1 once folded) */
    size_t n_params;
    float *params, *grads;         /* the flat blocks, tq_calloc'd, owned */
    tq_qat *qat;                   /* owned; NULL = float model */
    float *lsq;                    /* LSQ training: the log weight scales, the last n_lsq of params (NULL otherwise) */
    size_t n_lsq;
} tq_model;

/* Dense layer l (unit n_stages + l). */
#define TQ_DENSE(m, l) ((m)->unit[(m)->n_stages + (l)])

/* A preset name or a spec, with `in` and `out` replaced by the data's: in_shape = {H, W, C}
 * (NULL when not known) and classes (0 when not known). A spec whose input or output does not
 * fit the data is TQ_E_SHAPE with a message saying which end. */
tq_status tq_model_spec_resolve(const char *spec, const int *in_shape, int classes, char *out, size_t cap);
/* The spec (or preset) is well formed, whatever the data: TQ_E_ARG with a message if not. */
tq_status tq_model_spec_check(const char *spec);
/* Read a resolved spec into m's units, shapes and input (no parameters: tq_model_init allocates
 * them). m must start zeroed. TQ_E_ARG (a malformed spec) or TQ_E_SHAPE (layers that do not
 * meet), with a message naming the token. */
tq_status tq_model_parse_spec(tq_model *m, const char *spec);

/* 1 when some stage reads other than the stage before it (an add, a branch). */
int tq_model_is_graph(const tq_model *m);

/* 1 when unit u holds weights: a convolution or a dense layer. */
static inline int tq_model_unit_has_weights(const tq_model *m, int u) {
    return m->unit[u].kind == TQ_UNIT_CONV || m->unit[u].kind == TQ_UNIT_DENSE;
}

/* Weights unit u holds: OC x KH x KW x C (depthwise: OC x KH x KW); 0 for an add or a concat. */
size_t tq_unit_weights(const tq_unit *u);

/* Values of one input image: in_h * in_w * in_c. */
static inline int tq_model_inputs(const tq_model *m) { return m->in_h * m->in_w * m->in_c; }
/* The outputs (logits, one per class): the last unit's. */
static inline int tq_model_classes(const tq_model *m) { return m->unit[m->n_units - 1].out_c; }

/* Parse a resolved spec and allocate zeroed parameters (normalization 0/1). TQ_E_ARG on a bad spec. */
tq_status tq_model_init(tq_model *m, const char *spec);
void tq_model_init_params(tq_model *m, tq_rng *rng);   /* PyTorch's default init, layer by layer */
void tq_model_free(tq_model *m);                       /* NULL-safe */
/* mask[n_params]: 1 on the convolution kernels and dense weight matrices, 0 on biases, batch
 * norm's scale and shift and LSQ's scales: where weight decay applies. Decaying gamma and beta
 * would pull every channel towards zero output for no gain in generalization (with batch norm the
 * kernel's scale does not matter, its decay only raises the effective learning rate), and biases
 * are too few to overfit with. DigitsCNN on Fashion-MNIST with SGD and decay 2e-3 (README:
 * DigitsCNN): 90.57% with this mask, 90.20% decaying every parameter as tinyqat did before. */
void tq_model_decay_mask(const tq_model *m, uint8_t *mask);
/* A float copy of src's spec, normalization and parameters (no quantization state). */
tq_status tq_model_clone(tq_model *dst, const tq_model *src);

/* W0' = W0 / std, b0' = b0 - (mean/std) sum_i W0[o][i] (for a first stage with batch norm the
 * shift goes into its running mean instead); then mean = 0, std = 1. The same function up to
 * float rounding, except where a first convolution pads its input (tq_model_quantize refuses that). */
void tq_model_fold_input_norm(tq_model *m);

/* pixels: n * tq_model_inputs bytes -> x: as many floats, with the model's normalization. */
void tq_model_input(const tq_model *m, const uint8_t *pixels, size_t n, float *x);

/* Give a float model quantization state (folding the input normalization first). Observers start
 * empty: calibrate (PTQ) or train (QAT) before evaluating. TQ_E_ARG if already quantized. */
tq_status tq_model_quantize(tq_model *m, const tq_qat_cfg *cfg);

/* The integer model of a quantized model (PTQ-calibrated or QAT-trained): weights through the
 * same quantizer the fake quant used (a stage's with its batch norm folded in), the activation
 * scales its observers hold. A stage becomes a conv (or depthwise) layer and its pool; a flatten
 * layer leads to the dense ones. q is filled (tq_qmodel_free it). TQ_E_ARG for a float model or
 * one never calibrated. */
tq_status tq_model_to_int8(tq_model *m, tq_qmodel *q);

/* Bytes of the float parameters; of the integer model's weights (packed: 2 bits a weight at 2
 * bits, 4 at 3 and 4), int32 biases (int64 in a layer with 16-bit activations on a side),
 * per-channel multiplier/shift (int32 each) and zero points (what the integer model file stores
 * per layer). */
size_t tq_model_float_bytes(const tq_model *m);
size_t tq_model_int8_bytes(const tq_model *m);
/* The same with unit_bits[u] the width of unit u (the stages, then the dense layers). */
size_t tq_model_int8_bytes_with(const tq_model *m, const int *unit_bits);

/* Save / load a float or quantized model (.tqf, docs/QUANTIZATION.md §8). */
tq_status tq_model_save(const tq_model *m, const char *path);
tq_status tq_model_load(tq_model *m, const char *path);
/* The same through a tq_ckpt the caller owns, so a training checkpoint can add its own state.
 * to_ckpt borrows m's weight arrays until the save (copies the rest); tq_ckpt_free after it. */
tq_status tq_model_to_ckpt(const tq_model *m, tq_ckpt *c);
tq_status tq_model_from_ckpt(tq_model *m, const tq_ckpt *c, const char *path);

/* Batch norm statistics of every stage: frozen (1: training uses and keeps the running ones). */
void tq_model_freeze_bn(tq_model *m, int frozen);

/* The graph for a model: input leaf, logits, loss. Built once for up to max_batch rows; set
 * the batch with tq_net_set_batch before each run. */
typedef struct {
    tq_graph *g;
    tq_node *x, *logits, *loss;
    tq_node *out[TQ_MAX_UNITS]; /* each unit's output (after its pool) */
    tq_labels labels;
    float *xbuf;        /* [max_batch][tq_model_inputs] owned input buffer */
    uint8_t *no_labels; /* [max_batch] zeros: the loss's labels when only logits are wanted */
    uint64_t run[2];    /* dropout's draws: the run's seed and the step, set by tq_train before each step */
    tq_dropout_cfg drop[TQ_MAX_UNITS]; /* the dropout layers' settings (they point at run) */
    int max_batch;
} tq_net;

tq_status tq_net_init(tq_net *net, tq_model *m, int max_batch);
void tq_net_free(tq_net *net);
/* Convert n images (and labels; NULL when only the logits matter) into the net's input.
 * TQ_E_ARG when n is not in 1..max_batch (the input buffer's capacity). */
tq_status tq_net_set_batch(tq_net *net, const tq_model *m, const uint8_t *pixels, const uint8_t *labels, int n);

#ifdef __cplusplus
}
#endif
#endif
