/* A sequential MLP described by a spec string, its parameters in one flat block, and the
 * graph that trains or evaluates it.
 *
 * Spec: layer widths joined by '-', input first; an 'r' after a width puts a ReLU after the
 * layer that produces it. "784-100r-100r-10" is DigitsNet (two hidden ReLU layers, raw logits
 * out); "784-100-100-10r" is the seed article's variant (one ReLU, on the logits).
 *
 * Parameters: one block, W0 b0 W1 b1 ... (W row-major [out][in]), and a gradient block of the
 * same layout, so an optimizer step is one loop and zero_grad one memset.
 *
 * Input: a raw pixel p in 0..255 enters as x = (p/255 - in_mean) / in_std. Folding the
 * normalization into the first layer (tq_model_fold_input_norm) makes it x = p/255, the
 * form the integer path uses (docs/QUANTIZATION.md §6). */
#ifndef TQ_MODEL_H
#define TQ_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "layers/loss.h"
#include "src/autograd.h"
#include "src/checkpoint.h"
#include "src/rng.h"
#include "src/status.h"

#define TQ_MAX_LAYERS 8
#define TQ_MNIST_MEAN 0.1307f
#define TQ_MNIST_STD 0.3081f

struct tq_qat; /* quantization state, layers/qat.h; NULL for a float model */

typedef struct tq_model {
    char spec[128];
    int n_layers;
    int dims[TQ_MAX_LAYERS + 1];   /* dims[0] inputs ... dims[n_layers] outputs */
    int relu[TQ_MAX_LAYERS];       /* ReLU after layer l */
    float in_mean, in_std;
    size_t n_params;
    float *params, *grads;         /* the flat blocks, tq_calloc'd, owned */
    float *W[TQ_MAX_LAYERS], *b[TQ_MAX_LAYERS];    /* views into params */
    float *dW[TQ_MAX_LAYERS], *db[TQ_MAX_LAYERS];  /* views into grads */
    struct tq_qat *qat;            /* owned; NULL = float model */
} tq_model;

/* Parse `spec` and allocate zeroed parameters. TQ_E_ARG with a message on a bad spec. */
tq_status tq_model_init(tq_model *m, const char *spec);
void tq_model_init_params(tq_model *m, tq_rng *rng);   /* PyTorch's default init, layer by layer */
void tq_model_free(tq_model *m);                       /* NULL-safe */
/* A float copy of src's spec, normalization and parameters (no quantization state). */
tq_status tq_model_clone(tq_model *dst, const tq_model *src);

/* W0' = W0 / std, b0' = b0 - (mean/std) sum_i W0[o][i]; then mean = 0, std = 1. Same function,
 * up to float rounding. */
void tq_model_fold_input_norm(tq_model *m);

/* pixels: n*dims[0] bytes -> x: n*dims[0] floats, with the model's normalization. */
void tq_model_input(const tq_model *m, const uint8_t *pixels, size_t n, float *x);

/* Save / load a float (or QAT, when m->qat is set) model: src/checkpoint.h format. */
tq_status tq_model_save(const tq_model *m, const char *path);
tq_status tq_model_load(tq_model *m, const char *path);
/* The same through a tq_ckpt the caller owns, so a training checkpoint can add its own state.
 * to_ckpt borrows m's weight arrays until the save (copies the rest); tq_ckpt_free after it. */
tq_status tq_model_to_ckpt(const tq_model *m, tq_ckpt *c);
tq_status tq_model_from_ckpt(tq_model *m, const tq_ckpt *c, const char *path);

/* The graph for a model: input leaf, logits, loss. Built once for up to max_batch rows; set
 * the batch with tq_net_set_batch before each run. */
typedef struct {
    tq_graph *g;
    tq_node *x, *logits, *loss;
    tq_labels labels;
    float *xbuf;       /* [max_batch][dims[0]] owned input buffer */
    int32_t *no_labels; /* [max_batch] zeros: the loss's labels when only logits are wanted */
    int max_batch;
} tq_net;

tq_status tq_net_init(tq_net *net, tq_model *m, int max_batch);
void tq_net_free(tq_net *net);
/* Convert n images (and labels; NULL when only the logits matter) into the net's input.
 * TQ_E_ARG when n is not in 1..max_batch (the input buffer's capacity). */
tq_status tq_net_set_batch(tq_net *net, const tq_model *m, const uint8_t *pixels, const int32_t *labels, int n);

#endif
