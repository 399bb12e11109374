/* The integer model on the host, against a dataset: accuracy through the fast kernels, and
 * agreement with the fake-quant simulation it was converted from. */
#ifndef TQ_PIPELINE_INT8_H
#define TQ_PIPELINE_INT8_H

#include <stdint.h>

#include "../data/dataset.h"
#include "../layers/model.h"
#include "../src/qmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Classify every image of ds integer-only (kernel k; TQ_KERNEL_AUTO picks the fastest the CPU
 * has): accuracy in percent; logits [n][outputs] and pred [n] if not NULL. */
tq_status tq_int8_evaluate(const tq_qmodel *q, const tq_dataset *ds, tq_kernel k, float *acc, int8_t *logits, uint8_t *pred);

typedef struct {
    uint32_t images;
    float int_acc, sim_acc;    /* accuracy of the integer path and of the simulation, percent */
    long disagreements;        /* images whose predicted class differs */
    int max_logit_diff;        /* largest |q_int - q_sim| over all logits, in output steps */
} tq_agreement;

/* The integer model q against the quantized float model sim it came from, on ds. The simulated
 * logits are fake-quantized, x^ = (q - z) s, so q = round(x^/s) + z compares step for step. */
tq_status tq_int8_agreement(tq_model *sim, const tq_qmodel *q, const tq_dataset *ds, tq_agreement *a);

#ifdef __cplusplus
}
#endif
#endif
