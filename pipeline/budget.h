/* Weight widths per layer chosen to fit a flash budget (docs/QUANTIZATION.md §16).
 *
 * Each unit (a stage's convolution, or a dense layer) is quantized alone at each width of
 * tq_budget_widths, the others at 8 bits, by PTQ on the training data; the increase of the
 * cross-entropy over the first images of the training set (as many as the calibration reads)
 * is that unit's sensitivity at that width. The choice is the assignment of widths whose summed
 * increases are least among those whose integer model fits the budget (tq_model_int8_bytes):
 * every assignment is tried up to 7 units, beyond that the cheapest steps down are taken one at
 * a time. Summing the increases treats the units as independent, as HAWQ and its kin do; the
 * fine-tuning after (QAT) recovers what that misses. */
#ifndef TQ_BUDGET_H
#define TQ_BUDGET_H

#include "../data/dataset.h"
#include "../layers/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TQ_BUDGET_N_WIDTHS 5
extern const int tq_budget_widths[TQ_BUDGET_N_WIDTHS]; /* 2, 3, 4, 6, 8 */

typedef struct {
    int units;                                          /* the model's stages and dense layers */
    int bits[TQ_QAT_MAX_UNITS];                         /* the choice */
    double delta[TQ_QAT_MAX_UNITS][TQ_BUDGET_N_WIDTHS]; /* unit u alone at tq_budget_widths[k]: loss increase */
    double loss8;                                       /* the loss with every unit at 8 bits */
    size_t bytes;                                       /* the choice's integer model bytes */
    size_t smallest;                                    /* every unit at 2 bits */
    int uniform_bits;                                   /* the widest single width that fits (0: none) */
    size_t uniform_bytes;
} tq_budget;

/* Choose widths for the float model fp within budget bytes. base: the rest of the quantization
 * (per channel, observer...); its widths are ignored. calib_batches batches of 64 (seeded) for
 * each PTQ. TQ_E_ARG when even the smallest model does not fit (the message says how large it
 * is). The model is left as it was. */
tq_status tq_budget_choose(const tq_model *fp, const tq_qat_cfg *base, const tq_dataset *train, size_t budget, int calib_batches,
                           uint64_t seed, tq_budget *r);

#ifdef __cplusplus
}
#endif
#endif
