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

/* ReLU6: y = min(max(x, 0), 6); the gradient passes where 0 < y < 6, which is where 0 < x < 6
 * (PyTorch's hardtanh: both kinks get 0). Again the output is the mask. */
static void relu6_forward(tq_node *n, int training) {
    (void)training;
    const float *restrict x = n->in[0]->val;
    float *restrict y = n->val;
    size_t N = tq_node_numel(n);
    for (size_t i = 0; i < N; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        y[i] = v < 6.0f ? v : 6.0f;
    }
}

static void relu6_backward(tq_node *n) {
    float *restrict dx = n->in[0]->grad;
    if (!dx) return;
    const float *restrict y = n->val, *restrict dy = n->grad;
    size_t N = tq_node_numel(n);
    const int assign = TQ_GRAD_ASSIGNED(n->in[0]);
    for (size_t i = 0; i < N; i++) {
        float d = dy[i], g = y[i] > 0.0f && y[i] < 6.0f ? d : 0.0f;
        dx[i] = assign ? g : dx[i] + g;
    }
}

static const tq_op op_relu6 = {"relu6", relu_shape, relu6_forward, relu6_backward, 1};

tq_node *tq_relu6(tq_graph *g, tq_node *x) { return tq_graph_apply(g, &op_relu6, NULL, 1, &x); }

tq_node *tq_activation(tq_graph *g, tq_node *x, int relu) { return relu == 2 ? tq_relu6(g, x) : relu ? tq_relu(g, x) : x; }
