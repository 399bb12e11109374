#include "layers/concat.h"

#include <string.h>

static tq_status concat_shape(tq_node *n) {
    const tq_concat_shape *cs = n->ctx;
    const tq_node *a = n->in[0], *b = n->in[1];
    if (cs->c[0] < 1 || cs->c[1] < 1 || a->rows != b->rows || a->cols % cs->c[0] || b->cols % cs->c[1] ||
        a->cols / cs->c[0] != b->cols / cs->c[1])
        TQ_FAIL(TQ_E_SHAPE, "concat: %dx%d (%d channels) and %dx%d (%d channels): want one batch and one height and width", a->rows,
                a->cols, cs->c[0], b->rows, b->cols, cs->c[1]);
    n->rows = a->rows;
    n->cols = a->cols + b->cols;
    return TQ_OK;
}

/* Every position's channels are contiguous (NHWC): the join is two copies per position, and
 * the gradient the same copies the other way. */
static void concat_forward(tq_node *n, int training) {
    (void)training;
    const tq_concat_shape *cs = n->ctx;
    const size_t c0 = (size_t)cs->c[0], c1 = (size_t)cs->c[1], P = (size_t)n->rows * (size_t)(n->in[0]->cols / cs->c[0]);
    const float *a = n->in[0]->val, *b = n->in[1]->val;
    float *y = n->val;
    for (size_t p = 0; p < P; p++, y += c0 + c1) {
        memcpy(y, a + p * c0, c0 * sizeof(float));
        memcpy(y + c0, b + p * c1, c1 * sizeof(float));
    }
}

static void concat_backward(tq_node *n) {
    const tq_concat_shape *cs = n->ctx;
    const size_t c[2] = {(size_t)cs->c[0], (size_t)cs->c[1]}, P = (size_t)n->rows * (size_t)(n->in[0]->cols / cs->c[0]);
    for (int j = 0; j < 2; j++) {
        float *d = n->in[j]->grad;
        if (!d) continue;
        const int assign = TQ_GRAD_ASSIGNED(n->in[j]);
        const float *dy = n->grad + (j ? c[0] : 0);
        for (size_t p = 0; p < P; p++, d += c[j], dy += c[0] + c[1])
            for (size_t k = 0; k < c[j]; k++) d[k] = assign ? dy[k] : d[k] + dy[k];
    }
}

static const tq_op op_concat = {"concat", concat_shape, concat_forward, concat_backward, 3};

tq_node *tq_concat(tq_graph *g, tq_node *a, tq_node *b, const tq_concat_shape *cs) {
    tq_node *in[2] = {a, b};
    return tq_graph_apply(g, &op_concat, (void *)cs, 2, in);
}
