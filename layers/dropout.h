/* Dropout, in training only: y = x m / keep, each m_i 1 with probability keep = 1 - rate and 0
 * otherwise, so E[y] = x; in evaluation y = x (and the integer model has no such layer).
 *
 * The mask is not drawn from a stream but hashed from (the run's seed, the training step, the
 * layer, the element): a run resumed from a checkpoint at step t draws what the uninterrupted
 * run drew at t, with nothing to save, and a forward pass repeated at one step draws the same
 * mask (which is what lets finite differences check the gradient). */
#ifndef TQ_DROPOUT_H
#define TQ_DROPOUT_H

#include <stdint.h>

#include "../src/autograd.h"

typedef struct {
    float rate;            /* the fraction dropped, 0 <= rate < 1 */
    uint32_t unit;         /* which dropout of the model: another mask for each */
    const uint64_t *run;   /* run[0] the run's seed, run[1] the step: read at every forward */
} tq_dropout_cfg;

/* cfg must outlive the graph (the op reads it at every forward). */
tq_node *tq_dropout(tq_graph *g, tq_node *x, const tq_dropout_cfg *cfg);

#endif
