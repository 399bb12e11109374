/* Training, evaluation, calibration and PTQ of a tq_model on a tq_dataset: the loop every
 * command and every library caller shares. Nothing here prints: progress reaches the caller
 * through a callback.
 *
 *     tq_train_cfg cfg;
 *     tq_train_cfg_defaults(&cfg);            // Adam 1e-3, cosine, batch 64, 10 epochs
 *     cfg.epochs = 2;
 *     tq_train_result res;
 *     tq_status st = tq_train(&model, &train, &test, &cfg, &res);
 */
#ifndef TQ_TRAIN_H
#define TQ_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "../data/dataset.h"
#include "../layers/model.h"
#include "../layers/qat.h"
#include "../src/checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TQ_MAX_EPOCHS 1000

typedef enum {
    TQ_EVENT_STEP = 0,       /* after each optimizer step */
    TQ_EVENT_EPOCH = 1,      /* after each epoch (and its test evaluation) */
    TQ_EVENT_CHECKPOINT = 2, /* after a checkpoint was written */
    TQ_EVENT_RESUMED = 3     /* a run resumed from a checkpoint: `epoch` epochs were done */
} tq_event_kind;

typedef struct {
    tq_event_kind kind;
    int epoch, epochs;           /* the epoch (1-based) in progress or just done, of `epochs` */
    long samples_done, samples;  /* within this epoch */
    double loss;                 /* mean training loss of this epoch so far */
    double seconds;              /* since this epoch started */
    float test_acc;              /* EPOCH: test accuracy in percent, NaN without a test set */
    const char *path;            /* CHECKPOINT: the file */
} tq_train_event;

/* Return 0 to go on; anything else stops the run after the current step (TQ_E_INTERRUPTED). */
typedef int (*tq_train_callback)(const tq_train_event *ev, void *user);

typedef struct {
    /* threads: the process's thread counts for the run (a dense model's BLAS threads, a CNN's
     * pool threads; the same seed and count give the same bytes), set when the run starts; 0
     * leaves them as they are, for threads of one program training models side by side (set
     * them once beforehand: tq_set_threads, tq_parallel_set_threads). Default 1. */
    int epochs, batch, threads;
    float lr, lr_min_frac;         /* cosine: lr decays to lr*lr_min_frac at the end */
    const char *schedule;          /* "cosine" or "const" */
    const char *optim;             /* "adam" or "sgd" */
    float momentum, weight_decay;  /* decay on the weights only, not biases or batch norm (tq_model_decay_mask) */
    uint64_t seed;                 /* the shuffle order (the model's init is the caller's) */
    int shift, flip;               /* augmentation: each training image moved by up to `shift` pixels
                                    * each way (zeros come in), mirrored left-right when flip; drawn
                                    * from (seed, epoch, image), so a resumed run draws the same */
    int freeze_observers_epoch;    /* QAT: observers stop moving from this epoch (0-based); -1 never */
    int freeze_bn_epoch;           /* batch norm uses and keeps its running statistics from this epoch; -1 never */
    int checkpoint_every;          /* epochs between checkpoints (0: none) */
    const char *checkpoint_path;   /* where checkpoints go (atomically replaced) */
    const tq_ckpt *resume;         /* a checkpoint to continue from, or NULL */
    volatile sig_atomic_t *stop;   /* if set (by a signal handler), stop after the current step */
    tq_train_callback callback;    /* progress, or NULL */
    void *user;                    /* handed to the callback */
} tq_train_cfg;

typedef struct {
    int epochs;
    double seconds_total, seconds_per_epoch, samples_per_second;
    float train_loss[TQ_MAX_EPOCHS], test_acc[TQ_MAX_EPOCHS];   /* per epoch */
    float final_test_acc;
} tq_train_result;

void tq_train_cfg_defaults(tq_train_cfg *c);
/* The augmentation tq_train applies to training image idx in epoch e (0-based): dst (H x W x C,
 * not src) is src moved by dy, dx in -shift..shift (zeros where it came from outside) and
 * mirrored left-right, when cfg->flip, for half the draws. */
void tq_train_augment(const tq_train_cfg *cfg, int e, uint32_t idx, const uint8_t *src, uint8_t *dst, int H, int W, int C);

/* The QAT fine-tuning recipe the README reports (cfg from a float model): `epochs` epochs of Adam
 * 1e-3 (3e-3 when q asks for LSQ, q may be NULL) annealed by a cosine, observers and batch norm
 * statistics frozen for the last epoch, the shuffle seeded from seed + 1000. */
void tq_train_cfg_qat(tq_train_cfg *c, const tq_qat_cfg *q, int epochs, uint64_t seed);

/* Train m in place on `train` (its labels must be below m's outputs). Shuffles with its own
 * generator seeded from cfg->seed, so the same seed and thread count give the same bytes. `test`
 * may be NULL (no per-epoch evaluation). Checkpoints (cfg->checkpoint_every) hold the model and
 * everything the run needs to go on: optimizer moments and step, the shuffle generator and order,
 * the epochs done and their figures. Resuming from one (cfg->resume, its model already loaded
 * into m) gives the same final model, byte for byte, as the run that was never stopped. A NaN/Inf
 * loss or gradient stops the run (TQ_E_NUMERIC) before anything is written, so the last
 * checkpoint stays the last good one; cfg->stop or the callback stop it (TQ_E_INTERRUPTED). */
tq_status tq_train(tq_model *m, const tq_dataset *train, const tq_dataset *test, const tq_train_cfg *cfg,
                   tq_train_result *res);

/* ds fits m: images of its input's shape, at least one, labels below its outputs (TQ_E_SHAPE,
 * TQ_E_FORMAT naming the file otherwise). What training, evaluation and calibration check first. */
tq_status tq_model_check_data(const tq_model *m, const tq_dataset *ds);

/* Accuracy in percent over ds. confusion: classes x classes counts [true][pred] (classes = m's
 * outputs), or NULL. pred: per-image predicted class, or NULL. Never moves an observer. */
tq_status tq_evaluate(tq_model *m, const tq_dataset *ds, float *acc, int64_t *confusion, uint8_t *pred);

/* The model's outputs for every image of ds: logits [n][classes]. */
tq_status tq_predict_logits(tq_model *m, const tq_dataset *ds, float *logits);

/* PTQ calibration: n_batches random training batches (seeded) through the model in calibrate
 * mode, so the activation observers see them; outputs stay unquantized meanwhile. Never the test
 * set. */
tq_status tq_calibrate(tq_model *m, const tq_dataset *train, int n_batches, int batch, uint64_t seed);

/* Quantization error layer by layer: the first n_images of ds (all when 0) through the quantized
 * model m, as evaluated, and through a float reference: `ref` (the FP32 model m was quantized
 * from: the error then includes what QAT's training moved), or, when NULL, m itself with every
 * fake quant and bias rounding off (the noise its quantizers add to its own weights). For each
 * feature stage (its output after the pool) and each dense layer, in order, the SQNR of its output
 * in dB: 10 log10(sum y_ref^2 / sum (y_quant - y_ref)^2), the error being what every layer up to it
 * added. db holds n_units values. TQ_E_ARG for a float m, TQ_E_SHAPE when ref's
 * layers differ; observers do not move. */
tq_status tq_layer_sqnr(tq_model *m, tq_model *ref, const tq_dataset *ds, uint32_t n_images, double *db);

/* Post-training quantization: *q becomes a quantized copy of the float model fp (cfg), calibrated
 * on n_batches batches of 64 training images. fp is not changed. */
tq_status tq_ptq(tq_model *q, const tq_model *fp, const tq_qat_cfg *cfg, const tq_dataset *train, int n_batches,
                 uint64_t seed);

/* GPTQ (docs/QUANTIZATION.md §4) on a calibrated PTQ model's dense layers, in order: each layer's
 * weights rounded a column at a time, the columns left moved to cancel the error on its inputs
 * from n_batches batches of 64 training images (drawn as tq_calibrate draws them with `seed`).
 * The weight scales stay max|w| per channel (TQ_E_ARG with MSE ranges or LSQ); convolutions are
 * left as PTQ rounds them. */
tq_status tq_gptq(tq_model *m, const tq_dataset *train, int n_batches, uint64_t seed);

/* A new float model for ds: the spec (or preset) resolved against its image size and classes,
 * PyTorch's init from `seed`, the normalization from ds's pixels (tq_dataset_norm), except where
 * the first convolution pads its input: that model takes p/255 (mean 0, std 1), so it quantizes. */
tq_status tq_model_for_data(tq_model *m, const char *spec, const tq_dataset *ds, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
