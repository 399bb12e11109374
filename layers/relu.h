/* ReLU: y = max(x, 0). backward: dx += dy where y > 0 (the kink at 0 gets gradient 0, as in PyTorch). */
#ifndef TQ_RELU_H
#define TQ_RELU_H

#include "../src/autograd.h"

tq_node *tq_relu(tq_graph *g, tq_node *x);

#endif
