#include "src/ops.h"

#include <cblas.h>
#include <string.h>

void tq_set_threads(int n) { openblas_set_num_threads(n > 0 ? n : 1); }

void tq_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void tq_matmul_bt_ref(float *y, const float *x, const float *W, int B, int K, int O) {
    for (int b = 0; b < B; b++)
        for (int o = 0; o < O; o++) {
            double acc = 0;
            for (int i = 0; i < K; i++) acc += (double)x[b * K + i] * W[o * K + i];
            y[b * O + o] = (float)acc;
        }
}

/* ---- matmul_bt: y = x W^T ---- */

static tq_status matmul_shape(tq_node *n) {
    tq_node *x = n->in[0], *W = n->in[1];
    if (x->cols != W->cols)
        TQ_FAIL(TQ_E_SHAPE, "matmul: x is [%d][%d] but W is [%d][%d] (want W's columns = x's columns)",
                x->rows, x->cols, W->rows, W->cols);
    n->rows = x->rows;
    n->cols = W->rows;
    return TQ_OK;
}

static void matmul_forward(tq_node *n, int training) {
    (void)training;
    tq_node *x = n->in[0], *W = n->in[1];
    tq_sgemm(0, 1, x->rows, W->rows, x->cols, 1.0f, x->val, x->cols, W->val, W->cols, 0.0f, n->val, n->cols);
}

static void matmul_backward(tq_node *n) {
    tq_node *x = n->in[0], *W = n->in[1];
    int B = x->rows, K = x->cols, O = W->rows;   /* K: input features (I is taken by complex.h) */
    if (x->grad) /* dx[B][K] += dy[B][O] W[O][K] */
        tq_sgemm(0, 0, B, K, O, 1.0f, n->grad, O, W->val, K, 1.0f, x->grad, K);
    if (W->grad) /* dW[O][K] += dy^T[O][B] x[B][K] */
        tq_sgemm(1, 0, O, K, B, 1.0f, n->grad, O, x->val, K, 1.0f, W->grad, K);
}

static const tq_op op_matmul_bt = {"matmul_bt", matmul_shape, matmul_forward, matmul_backward, 0};

tq_node *tq_matmul_bt(tq_graph *g, tq_node *x, tq_node *W) {
    tq_node *in[2] = {x, W};
    return tq_graph_apply(g, &op_matmul_bt, NULL, 2, in);
}

/* ---- add_bias: y = x + b ---- */

static tq_status bias_shape(tq_node *n) {
    tq_node *x = n->in[0], *b = n->in[1];
    if (b->rows != 1 || b->cols != x->cols)
        TQ_FAIL(TQ_E_SHAPE, "add_bias: x is [%d][%d] but b is [%d][%d] (want [1][%d])", x->rows, x->cols,
                b->rows, b->cols, x->cols);
    n->rows = x->rows;
    n->cols = x->cols;
    return TQ_OK;
}

static void bias_forward(tq_node *n, int training) {
    (void)training;
    const float *x = n->in[0]->val, *b = n->in[1]->val;
    float *y = n->val;
    for (int r = 0; r < n->rows; r++, x += n->cols, y += n->cols)
        for (int c = 0; c < n->cols; c++) y[c] = x[c] + b[c];
}

static void bias_backward(tq_node *n) {
    tq_node *x = n->in[0], *b = n->in[1];
    const float *dy = n->grad;
    for (int r = 0; r < n->rows; r++, dy += n->cols) {
        if (x->grad)
            for (int c = 0; c < n->cols; c++) x->grad[r * n->cols + c] += dy[c];
        if (b->grad)
            for (int c = 0; c < n->cols; c++) b->grad[c] += dy[c];
    }
}

static const tq_op op_add_bias = {"add_bias", bias_shape, bias_forward, bias_backward, 0};

tq_node *tq_add_bias(tq_graph *g, tq_node *x, tq_node *b) {
    tq_node *in[2] = {x, b};
    return tq_graph_apply(g, &op_add_bias, NULL, 2, in);
}

/* ---- mean ---- */

static tq_status mean_shape(tq_node *n) {
    n->rows = n->cols = 1;
    return TQ_OK;
}

static void mean_forward(tq_node *n, int training) {
    (void)training;
    size_t N = tq_node_numel(n->in[0]);
    double s = 0;
    for (size_t i = 0; i < N; i++) s += n->in[0]->val[i];
    n->val[0] = (float)(s / (double)N);
}

static void mean_backward(tq_node *n) {
    tq_node *x = n->in[0];
    if (!x->grad) return;
    size_t N = tq_node_numel(x);
    float d = n->grad[0] / (float)N;
    for (size_t i = 0; i < N; i++) x->grad[i] += d;
}

static const tq_op op_mean = {"mean", mean_shape, mean_forward, mean_backward, 0};

tq_node *tq_mean(tq_graph *g, tq_node *x) { return tq_graph_apply(g, &op_mean, NULL, 1, &x); }
