/* Residual add: y = a + b, two tensors of one shape (a residual block's two branches).
 * backward: da += dy, db += dy (the gradient passes to both unchanged). */
#ifndef TQ_ADD_H
#define TQ_ADD_H

#include "../src/autograd.h"

tq_node *tq_add(tq_graph *g, tq_node *a, tq_node *b);
/* The add's shape rule, for ops that add two tensors (layers/qat.c's quantized add): one shape,
 * which the output takes. TQ_E_SHAPE otherwise. */
tq_status tq_add_shape(tq_node *n);

#endif
