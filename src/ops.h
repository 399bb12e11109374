/* Generic graph ops: matrix product, bias add, mean. (ReLU and the loss live in layers/,
 * fake quant in src/fake_quant.c; every op follows the same tq_op pattern.) */
#ifndef TQ_OPS_H
#define TQ_OPS_H

#include "autograd.h"

/* y = x W^T.   x:[B][K]  W:[O][K] (nn.Linear layout)  y:[B][O]
 * backward: dx += dy W ; dW += dy^T x */
tq_node *tq_matmul_bt(tq_graph *g, tq_node *x, tq_node *W);

/* y = x + b, b broadcast over rows.   x:[B][C]  b:[1][C]
 * backward: dx += dy ; db += sum over rows of dy */
tq_node *tq_add_bias(tq_graph *g, tq_node *x, tq_node *b);

/* y = mean of all elements of x, [1][1].   backward: dx += dy / numel */
tq_node *tq_mean(tq_graph *g, tq_node *x);

/* C = alpha * op(A) op(B) + beta * C, row-major; trans_a/trans_b select A^T/B^T.
 * One wrapper over cblas_sgemm so every product in tinyqat goes through one place. */
void tq_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* The plain triple loop (double accumulation) tq_matmul_bt is checked against. */
void tq_matmul_bt_ref(float *y, const float *x, const float *W, int B, int K, int O);

/* Set the number of BLAS threads (1 gives bit-reproducible runs independent of the machine). */
void tq_set_threads(int n);

#endif
