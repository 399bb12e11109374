#include "layers/add.h"

tq_status tq_add_shape(tq_node *n) {
    if (n->in[0]->rows != n->in[1]->rows || n->in[0]->cols != n->in[1]->cols)
        TQ_FAIL(TQ_E_SHAPE, "add: %dx%d + %dx%d: the two tensors must have one shape", n->in[0]->rows, n->in[0]->cols,
                n->in[1]->rows, n->in[1]->cols);
    n->rows = n->in[0]->rows;
    n->cols = n->in[0]->cols;
    return TQ_OK;
}

static void add_forward(tq_node *n, int training) {
    (void)training;
    const float *restrict a = n->in[0]->val, *restrict b = n->in[1]->val;
    float *restrict y = n->val;
    size_t N = tq_node_numel(n);
    for (size_t i = 0; i < N; i++) y[i] = a[i] + b[i];
}

static void add_backward(tq_node *n) {
    const float *restrict dy = n->grad;
    size_t N = tq_node_numel(n);
    for (int j = 0; j < 2; j++) {
        float *restrict d = n->in[j]->grad;
        if (!d) continue;
        if (TQ_GRAD_ASSIGNED(n->in[j]))
            for (size_t i = 0; i < N; i++) d[i] = dy[i];
        else
            for (size_t i = 0; i < N; i++) d[i] += dy[i];
    }
}

static const tq_op op_add = {"add", tq_add_shape, add_forward, add_backward, 3};

tq_node *tq_add(tq_graph *g, tq_node *a, tq_node *b) {
    tq_node *in[2] = {a, b};
    return tq_graph_apply(g, &op_add, NULL, 2, in);
}
