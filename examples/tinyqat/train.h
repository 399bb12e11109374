/* Training and evaluation of a tq_model on MNIST, shared by the train, eval, ptq, qat and
 * experiment commands. */
#ifndef TQ_TRAIN_H
#define TQ_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "data/mnist.h"
#include "layers/model.h"
#include "src/checkpoint.h"

#define TQ_MAX_EPOCHS 1000

typedef struct {
    int epochs, batch, threads;
    float lr, lr_min_frac;         /* cosine: lr decays to lr*lr_min_frac at the end */
    const char *schedule;          /* "cosine" or "const" */
    const char *optim;             /* "adam" or "sgd" */
    float momentum, weight_decay;
    uint64_t seed;
    int freeze_observers_epoch;    /* QAT: observers stop moving from this epoch (0-based); -1 never */
    int quiet;                     /* no per-epoch lines */
    const char *label;             /* progress-bar label */
    int checkpoint_every;          /* epochs between checkpoints (0: none) */
    const char *checkpoint_path;   /* where checkpoints go (atomically replaced) */
    const tq_ckpt *resume;         /* a checkpoint to continue from, or NULL */
    volatile sig_atomic_t *stop;   /* set (by a signal handler) to stop after the current step */
} tq_train_cfg;

typedef struct {
    int epochs;
    double seconds_total, seconds_per_epoch, samples_per_second;
    float train_loss[TQ_MAX_EPOCHS], test_acc[TQ_MAX_EPOCHS];   /* per epoch */
    float final_test_acc;
} tq_train_result;

void tq_train_cfg_defaults(tq_train_cfg *c);

/* Train m in place. Shuffles with its own generator seeded from cfg->seed, so the same seed
 * and thread count give the same bytes. `test` may be NULL (no per-epoch evaluation).
 * Checkpoints (cfg->checkpoint_every) hold the model and everything the run needs to go on:
 * optimizer moments and step, the shuffle generator and order, the epochs done and their
 * figures. Resuming from one (cfg->resume, its model already loaded into m) gives the same final
 * model, byte for byte, as the run that was never stopped. A NaN/Inf loss or gradient stops the
 * run (TQ_E_NUMERIC) before anything is written, so the last checkpoint stays the last good one;
 * *cfg->stop stops it too (TQ_E_INTERRUPTED). */
tq_status tq_train(tq_model *m, const tq_mnist *train, const tq_mnist *test, const tq_train_cfg *cfg,
                   tq_train_result *res);

/* Test accuracy in percent. confusion: 10x10 counts [true][pred] or NULL. pred: per-image
 * predicted class or NULL. Evaluation never moves an observer. */
tq_status tq_evaluate(tq_model *m, const tq_mnist *ds, float *acc, int64_t *confusion, uint8_t *pred);

/* The model's output rows for every image of ds: logits [n][classes]. */
tq_status tq_predict_logits(tq_model *m, const tq_mnist *ds, float *logits);

/* PTQ calibration: run n_batches random training batches (seeded) through the model in
 * calibrate mode, so the activation observers see them; outputs stay unquantized meanwhile.
 * Never the test set. */
tq_status tq_calibrate(tq_model *m, const tq_mnist *train, int n_batches, int batch, uint64_t seed);

/* After tq_train: print the one-line message for an interruption (exit 130, the checkpoint to
 * resume from) or a failure (exit 1, the last good checkpoint), or save the model to `out`.
 * Returns the exit status. */
int tq_train_finish(tq_status st, const char *cmd, const tq_model *m, const char *out, const char *checkpoint);

/* Load the train and/or test split from the data directory (--data, $MNIST_DIR, data/mnist),
 * with a hint to run the fetch script when the files are missing. */
int tq_load_split(const char *dir_opt, tq_mnist_split split, tq_mnist *ds);

#endif
