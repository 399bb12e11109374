/* Softmax cross-entropy, fused, averaged over the batch.
 *
 *   loss = -(1/B) sum_b log softmax(z_b)[y_b],   log softmax(z)_k = z_k - m - log sum_j exp(z_j - m)
 *
 * with m = max_j z_j (log-sum-exp: no overflow for large logits, no log(0) for small ones).
 * backward: dz_b += dloss * (softmax(z_b) - onehot(y_b)) / B. The probabilities are kept in the
 * node's aux buffer between forward and backward.
 *
 * Labels come through a tq_labels the caller owns and points at each batch's labels (uint8, as
 * datasets hold them, each in [0, C)); the caller checks the range (out-of-range labels are a data error found
 * when loading, not in the hot loop). */
#ifndef TQ_LOSS_H
#define TQ_LOSS_H

#include <stdint.h>

#include "../src/autograd.h"

typedef struct {
    const uint8_t *y;   /* [B] labels of the current batch */
} tq_labels;

/* logits:[B][C] -> [1][1] */
tq_node *tq_softmax_xent(tq_graph *g, tq_node *logits, tq_labels *labels);

#endif
