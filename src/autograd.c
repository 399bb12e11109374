/* The tape. See src/autograd.h for the model; this file is the whole engine. */
#include "src/autograd.h"

#include <string.h>

#include "src/alloc.h"

struct tq_graph {
    tq_node **nodes;   /* the tape, in recorded (= topological) order */
    size_t n, cap;
    tq_status status;  /* first error met, sticky */
};

tq_graph *tq_graph_new(void) { return tq_calloc(1, sizeof(tq_graph)); }

void tq_graph_free(tq_graph *g) {
    if (!g) return;
    for (size_t i = 0; i < g->n; i++) {
        tq_node *n = g->nodes[i];
        if (!(n->flags & TQ_NODE_EXTERNAL)) {
            tq_free(n->val);
            tq_free(n->grad);
        }
        tq_free(n->aux);
        tq_free(n);
    }
    tq_free(g->nodes);
    tq_free(g);
}

tq_status tq_graph_status(const tq_graph *g) { return g ? g->status : TQ_E_ARG; }
size_t tq_graph_size(const tq_graph *g) { return g->n; }
tq_node *tq_graph_node(const tq_graph *g, size_t i) { return i < g->n ? g->nodes[i] : NULL; }

static tq_node *push(tq_graph *g, tq_node *n) {
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        tq_node **p = tq_realloc(g->nodes, cap * sizeof *p);
        if (!p) { /* the node and what it owns (tq_graph_free's rule) */
            if (!(n->flags & TQ_NODE_EXTERNAL)) {
                tq_free(n->val);
                tq_free(n->grad);
            }
            tq_free(n->aux);
            tq_free(n);
            g->status = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "graph: out of memory");
            return NULL;
        }
        g->nodes = p;
        g->cap = cap;
    }
    g->nodes[g->n++] = n;
    return n;
}

/* A zeroed node, or NULL with TQ_E_NOMEM recorded in the graph. */
static tq_node *new_node(tq_graph *g) {
    tq_node *n = tq_calloc(1, sizeof *n);
    if (!n) g->status = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "graph: out of memory");
    return n;
}

tq_node *tq_leaf(tq_graph *g, const char *name, int rows, int cols, float *val, float *grad) {
    if (!g || g->status != TQ_OK) return NULL;
    if (rows <= 0 || cols <= 0) {
        g->status = tq_error_set_(TQ_E_SHAPE, __FILE__, __LINE__, "leaf %s: bad shape [%d][%d]",
                                  name ? name : "?", rows, cols);
        return NULL;
    }
    tq_node *n = new_node(g);
    if (!n) return NULL;
    n->name = name;
    n->rows = rows;
    n->cols = cols;
    if (val) {
        /* A caller's buffer: a parameter (with its gradient slot) or a batch. It holds the
         * rows*cols floats it was created with: cap records that, so a later batch cannot
         * grow past it (tq_leaf_set_rows). */
        n->flags = TQ_NODE_EXTERNAL;
        n->cap = tq_node_numel(n);
        n->val = val;
        n->grad = grad;
        if (grad) n->flags |= TQ_NODE_PARAM | TQ_NODE_NEEDS_GRAD;
    } else {
        n->cap = tq_node_numel(n);
        n->val = tq_calloc(n->cap, sizeof(float));
        if (!n->val) {
            tq_free(n);
            g->status = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "graph: out of memory");
            return NULL;
        }
    }
    return push(g, n);
}

tq_status tq_leaf_set_rows(tq_node *leaf, int rows, float *val) {
    if (!leaf || leaf->op) TQ_FAIL(TQ_E_ARG, "set_rows: not a leaf");
    if (rows < 1 || (size_t)rows * (size_t)leaf->cols > leaf->cap)
        TQ_FAIL(TQ_E_ARG, "leaf %s: %d rows do not fit the %zu rows it was built for", leaf->name, rows,
                leaf->cap / (size_t)leaf->cols);
    leaf->rows = rows;
    if (val && (leaf->flags & TQ_NODE_EXTERNAL)) leaf->val = val;
    return TQ_OK;
}

/* Grow a graph-owned buffer to hold `want` floats; only reallocates when it must, so after the
 * largest batch has gone through once, runs allocate nothing. */
static tq_status reserve(float **buf, size_t *cap, size_t want) {
    if (want <= *cap) return TQ_OK;
    float *p = tq_realloc(*buf, want * sizeof(float));
    if (!p) TQ_FAIL(TQ_E_NOMEM, "graph: cannot allocate %zu floats", want);
    *buf = p;
    *cap = want;
    return TQ_OK;
}

/* Derive the node's shape from its inputs and make its buffers big enough. */
static tq_status prepare(tq_node *n) {
    TQ_TRY(n->op->infer_shape(n));
    size_t numel = tq_node_numel(n);
    TQ_TRY(reserve(&n->val, &n->cap, numel));
    if (n->flags & TQ_NODE_NEEDS_GRAD) TQ_TRY(reserve(&n->grad, &n->grad_cap, numel));
    if (n->aux_len) TQ_TRY(reserve(&n->aux, &n->aux_cap, n->aux_len));
    return TQ_OK;
}

tq_node *tq_graph_fail(tq_graph *g, tq_status st) {
    if (g && g->status == TQ_OK) g->status = st;
    return NULL;
}

tq_node *tq_graph_apply(tq_graph *g, const tq_op *op, void *ctx, int n_in, tq_node *const *inputs) {
    if (!g || g->status != TQ_OK) return NULL;
    if (!op || n_in < 0 || n_in > TQ_MAX_INPUTS) {
        g->status = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "graph: bad op or input count");
        return NULL;
    }
    tq_node *n = new_node(g);
    if (!n) return NULL;
    n->op = op;
    n->ctx = ctx;
    n->name = op->name;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) {
        if (!inputs[i]) { /* an earlier builder failed; its error is already recorded */
            tq_free(n);
            if (g->status == TQ_OK)
                g->status = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: NULL input", op->name);
            return NULL;
        }
        n->in[i] = inputs[i];
        if (inputs[i]->flags & TQ_NODE_NEEDS_GRAD) n->flags |= TQ_NODE_NEEDS_GRAD;
    }
    for (int i = 0; i < n_in; i++) { /* a gradient can be assigned only by an op node's only consumer */
        tq_node *in = inputs[i];
        if (++in->consumers == 1 && in->op && (op->assigns >> i & 1u)) in->flags |= TQ_NODE_GRAD_ASSIGN;
        else in->flags &= ~(unsigned)TQ_NODE_GRAD_ASSIGN;
    }
    tq_status st = prepare(n);
    if (st != TQ_OK) {
        tq_free(n->val);
        tq_free(n->grad);
        tq_free(n->aux);
        tq_free(n);
        g->status = st;
        return NULL;
    }
    return push(g, n);
}

tq_status tq_graph_forward(tq_graph *g, int training) {
    if (!g) TQ_FAIL(TQ_E_ARG, "graph: NULL");
    TQ_TRY(g->status);
    for (size_t i = 0; i < g->n; i++) {
        tq_node *n = g->nodes[i];
        if (!n->op) {
            if (tq_node_numel(n) > n->cap)
                TQ_FAIL(TQ_E_SHAPE, "leaf %s: %d rows do not fit its buffer", n->name, n->rows);
            continue;
        }
        TQ_TRY(prepare(n));
        n->op->forward(n, training);
    }
    return TQ_OK;
}

tq_status tq_graph_backward(tq_graph *g, tq_node *loss) {
    if (!g || !loss) TQ_FAIL(TQ_E_ARG, "graph: NULL");
    TQ_TRY(g->status);
    if (tq_node_numel(loss) != 1) TQ_FAIL(TQ_E_SHAPE, "backward: loss %s is [%d][%d], not a scalar",
                                          loss->name, loss->rows, loss->cols);
    if (!(loss->flags & TQ_NODE_NEEDS_GRAD)) TQ_FAIL(TQ_E_ARG, "backward: no parameter feeds %s", loss->name);
    /* Intermediate gradients start from zero each run; ops accumulate into them (those whose
     * only consumer assigns them need no zeros). Parameters keep accumulating until the caller
     * zeroes the flat gradient block. */
    for (size_t i = 0; i < g->n; i++) {
        tq_node *n = g->nodes[i];
        if (n->op && n->grad && !(n->flags & TQ_NODE_GRAD_ASSIGN)) memset(n->grad, 0, tq_node_numel(n) * sizeof(float));
    }
    loss->grad[0] = 1.0f;
    for (size_t i = g->n; i-- > 0;) {
        tq_node *n = g->nodes[i];
        if (n->op && (n->flags & TQ_NODE_NEEDS_GRAD)) n->op->backward(n);
    }
    return TQ_OK;
}
