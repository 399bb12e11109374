/* Residual add: y = a + b, two tensors of one shape (a residual block's two branches).
 * backward: da += dy, db += dy (the gradient passes to both unchanged). */
#ifndef TQ_ADD_H
#define TQ_ADD_H

#include "../src/autograd.h"

tq_node *tq_add(tq_graph *g, tq_node *a, tq_node *b);

#endif
