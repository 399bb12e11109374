#include "layers/dropout.h"

#include <string.h>

#include "src/fake_quant.h" /* TQ_RUN_TRAIN */
#include "src/rng.h"

static tq_status dropout_shape(tq_node *n) {
    n->rows = n->in[0]->rows;
    n->cols = n->in[0]->cols;
    n->aux_len = tq_node_numel(n); /* the mask, as 0 or 1/keep: what backward multiplies by */
    return TQ_OK;
}

/* Only a training run drops: evaluation and PTQ calibration (whose observers must see the
 * values the deployed model sees) pass x through. */
static void dropout_forward(tq_node *n, int mode) {
    const int training = mode == TQ_RUN_TRAIN;
    const tq_dropout_cfg *c = n->ctx;
    const float *x = n->in[0]->val;
    float *y = n->val, *mask = n->aux;
    const size_t N = tq_node_numel(n);
    if (!training || c->rate <= 0.0f) {
        memcpy(y, x, N * sizeof *y);
        for (size_t i = 0; training && i < N; i++) mask[i] = 1.0f;
        return;
    }
    const float keep = 1.0f - c->rate, scale = 1.0f / keep;
    /* element i survives when the top 24 bits of its hash fall below keep * 2^24 */
    const uint64_t key = tq_hash64(c->run[0] ^ tq_hash64(c->run[1] * 0x9E3779B97F4A7C15ull + c->unit)),
                   below = (uint64_t)((double)keep * 16777216.0);
    for (size_t i = 0; i < N; i++) {
        mask[i] = (tq_hash64(key + i) >> 40) < below ? scale : 0.0f;
        y[i] = x[i] * mask[i];
    }
}

static void dropout_backward(tq_node *n) {
    float *dx = n->in[0]->grad;
    if (!dx) return;
    const float *dy = n->grad, *mask = n->aux;
    const size_t N = tq_node_numel(n);
    if (TQ_GRAD_ASSIGNED(n->in[0]))
        for (size_t i = 0; i < N; i++) dx[i] = dy[i] * mask[i];
    else
        for (size_t i = 0; i < N; i++) dx[i] += dy[i] * mask[i];
}

static const tq_op op_dropout = {"dropout", dropout_shape, dropout_forward, dropout_backward, 1};

tq_node *tq_dropout(tq_graph *g, tq_node *x, const tq_dropout_cfg *cfg) {
    return tq_graph_apply(g, &op_dropout, (void *)cfg, 1, &x);
}
