/* SGD with momentum over one flat parameter block, torch.optim.SGD semantics (dampening 0):
 *
 *   d = grad + wd * p                 (wd only where decay_mask says so, when there is one)
 *   buf = d (first step), else buf = momentum * buf + d
 *   d = nesterov ? d + momentum * buf : buf
 *   p -= lr * d
 */
#ifndef TQ_SGD_H
#define TQ_SGD_H

#include <stddef.h>
#include <stdint.h>

#include "../src/status.h"

typedef struct {
    float lr, momentum, weight_decay;
    int nesterov;
    int64_t t;
    size_t n;
    float *buf; /* n, owned */
    const uint8_t *decay_mask; /* n flags, 1 where weight decay applies (borrowed); NULL: everywhere */
} tq_sgd;

tq_status tq_sgd_init(tq_sgd *o, size_t n, float lr, float momentum);
void tq_sgd_step(tq_sgd *o, float *params, const float *grads);
void tq_sgd_free(tq_sgd *o); /* NULL-safe */

#endif
