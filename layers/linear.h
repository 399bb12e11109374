/* Linear layer: y = x W^T + b, W:[out][in] as nn.Linear.weight, b:[1][out].
 * The graph part is two generic ops (src/ops.h: matmul_bt, add_bias); this file adds the
 * initialization and the place where QAT inserts fake quant (layers/model.c). */
#ifndef TQ_LINEAR_H
#define TQ_LINEAR_H

#include "../src/autograd.h"
#include "../src/rng.h"

/* PyTorch's nn.Linear default: kaiming_uniform_(a=sqrt(5)) on W works out to
 * U(-1/sqrt(in), 1/sqrt(in)), and the bias uses the same bound. W first (row-major), then b. */
void tq_linear_init(float *W, float *b, int in, int out, tq_rng *rng);

/* Record y = x W^T + b. x:[B][in], W:[out][in], b:[1][out] -> [B][out]. */
tq_node *tq_linear(tq_graph *g, tq_node *x, tq_node *W, tq_node *b);

#endif
