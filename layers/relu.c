#include "layers/relu.h"

static tq_status relu_shape(tq_node *n) {
    n->rows = n->in[0]->rows;
    n->cols = n->in[0]->cols;
    return TQ_OK;
}

/* Both loops are branch-free selects over restrict pointers so the compiler vectorizes them. */
static void relu_forward(tq_node *n, int training) {
    (void)training;
    const float *restrict x = n->in[0]->val;
    float *restrict y = n->val;
    size_t N = tq_node_numel(n);
    for (size_t i = 0; i < N; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* The output is its own mask: y > 0 exactly where x > 0, so nothing extra is cached. */
static void relu_backward(tq_node *n) {
    float *restrict dx = n->in[0]->grad;
    if (!dx) return;
    const float *restrict y = n->val, *restrict dy = n->grad;
    size_t N = tq_node_numel(n);
    if (TQ_GRAD_ASSIGNED(n->in[0]))
        for (size_t i = 0; i < N; i++) {
            float d = dy[i]; /* loaded unconditionally, so the select below needs no branch */
            dx[i] = y[i] > 0.0f ? d : 0.0f;
        }
    else
        for (size_t i = 0; i < N; i++) {
            float d = dy[i];
            dx[i] += y[i] > 0.0f ? d : 0.0f;
        }
}

static const tq_op op_relu = {"relu", relu_shape, relu_forward, relu_backward, 1};

tq_node *tq_relu(tq_graph *g, tq_node *x) { return tq_graph_apply(g, &op_relu, NULL, 1, &x); }
