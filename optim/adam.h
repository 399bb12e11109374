/* Adam (and AdamW) over one flat parameter block, with PyTorch's torch.optim.Adam semantics:
 *
 *   g  = grad + wd * p                (L2 weight decay; AdamW instead does p *= 1 - lr*wd;
 *                                      either only where decay_mask says so, when there is one)
 *   m  = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
 *   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * The state (m, v, t) is public so a checkpoint can save and restore it. */
#ifndef TQ_ADAM_H
#define TQ_ADAM_H

#include <stddef.h>
#include <stdint.h>

#include "../src/status.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled;   /* 1 = AdamW */
    int64_t t;       /* steps taken */
    size_t n;
    float *m, *v;    /* n each, owned */
    const uint8_t *decay_mask; /* n flags, 1 where weight decay applies (borrowed); NULL: everywhere */
} tq_adam;

/* beta1 0.9, beta2 0.999, eps 1e-8, no weight decay (PyTorch's defaults); m, v zeroed. */
tq_status tq_adam_init(tq_adam *o, size_t n, float lr);
void tq_adam_step(tq_adam *o, float *params, const float *grads);
void tq_adam_free(tq_adam *o); /* NULL-safe */

#endif
