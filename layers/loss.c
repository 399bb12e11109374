#include "layers/loss.h"

#include <math.h>

static tq_status xent_shape(tq_node *n) {
    n->rows = n->cols = 1;
    n->aux_len = tq_node_numel(n->in[0]); /* softmax probabilities */
    return TQ_OK;
}

static void xent_forward(tq_node *n, int training) {
    (void)training;
    const tq_node *z = n->in[0];
    const uint8_t *y = ((const tq_labels *)n->ctx)->y;
    int B = z->rows, C = z->cols;
    double total = 0;
    for (int b = 0; b < B; b++) {
        const float *zb = z->val + (size_t)b * C;
        float *p = n->aux + (size_t)b * C;
        float m = zb[0];
        for (int k = 1; k < C; k++) m = zb[k] > m ? zb[k] : m;
        float sum = 0;
        for (int k = 0; k < C; k++) sum += p[k] = expf(zb[k] - m);
        float inv = 1.0f / sum;
        for (int k = 0; k < C; k++) p[k] *= inv;
        total -= (double)(zb[y[b]] - m - logf(sum));
    }
    n->val[0] = (float)(total / B);
}

static void xent_backward(tq_node *n) {
    tq_node *z = n->in[0];
    if (!z->grad) return;
    const uint8_t *y = ((const tq_labels *)n->ctx)->y;
    int B = z->rows, C = z->cols;
    float scale = n->grad[0] / (float)B;
    for (int b = 0; b < B; b++) {
        const float *p = n->aux + (size_t)b * C;
        float *dz = z->grad + (size_t)b * C;
        for (int k = 0; k < C; k++) dz[k] += scale * (p[k] - (k == y[b] ? 1.0f : 0.0f));
    }
}

static const tq_op op_xent = {"softmax_xent", xent_shape, xent_forward, xent_backward, 0};

tq_node *tq_softmax_xent(tq_graph *g, tq_node *logits, tq_labels *labels) {
    return tq_graph_apply(g, &op_xent, labels, 1, &logits);
}
