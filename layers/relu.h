/* ReLU: y = max(x, 0). backward: dx += dy where y > 0 (the kink at 0 gets gradient 0, as in PyTorch). */
#ifndef TQ_RELU_H
#define TQ_RELU_H

#include "../src/autograd.h"

tq_node *tq_relu(tq_graph *g, tq_node *x);
/* ReLU6: y = min(max(x, 0), 6) (MobileNet's). backward: dx += dy where 0 < y < 6. */
tq_node *tq_relu6(tq_graph *g, tq_node *x);
/* A stage's activation by its code: 0 none (x itself), 1 ReLU, 2 ReLU6. */
tq_node *tq_activation(tq_graph *g, tq_node *x, int relu);

#endif
