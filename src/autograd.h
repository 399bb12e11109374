/* The autograd engine: a tape of nodes, forward in recorded order, backward in reverse.
 *
 * A node is a 2-D row-major float tensor [rows][cols] with an optional gradient of the same
 * shape. Leaves are inputs and parameters (their buffers may belong to the caller: the
 * parameter block, a batch buffer). Every other node is made by an op (tq_op: a shape rule,
 * a forward and a backward) applied to earlier nodes, so the order in which nodes are
 * recorded is already a topological order: forward walks the tape, backward walks it back.
 *
 * The graph is built once and run many times. The batch size may change between runs
 * (tq_leaf_set_rows on the input leaves): forward re-derives every shape and grows a
 * buffer only when it must, so a training step allocates nothing after the first.
 *
 *     tq_graph *g = tq_graph_new();
 *     tq_node *x = tq_leaf(g, "x", 64, 784, xbuf, NULL);        // input, no gradient
 *     tq_node *W = tq_leaf(g, "W", 10, 784, w, dw);             // parameter
 *     tq_node *y = tq_matmul_bt(g, x, W);                       // y = x W^T  [64][10]
 *     tq_node *L = tq_softmax_xent(g, y, &labels);               // mean loss, [1][1]
 *     if (tq_graph_status(g) != TQ_OK) ...                      // shape errors surface here
 *     tq_graph_forward(g, 1);  tq_graph_backward(g, L);          // dw += dL/dW
 *     tq_graph_free(g);
 *
 * Errors while building are sticky: an op given a NULL input or bad shapes returns NULL and
 * records TQ_E_SHAPE / TQ_E_NOMEM in the graph; later ops on NULL return NULL too, so a
 * builder checks tq_graph_status() once at the end instead of after every call.
 *
 * Adding an op: write infer_shape/forward/backward, put them in a `const tq_op`, and call
 * tq_graph_apply(). backward must ACCUMULATE (+=) into each input's grad, and must skip
 * inputs whose grad is NULL (they need none). An op may also offer to ASSIGN (=) an input's
 * grad (its `assigns` bits): the engine marks an input TQ_NODE_GRAD_ASSIGN when that op is its
 * only consumer and then leaves its grad unzeroed, so the op must write every element of it. On
 * activations larger than a cache, the pass of zeros and the read of the old values it saves
 * are a good part of a step.
 */
#ifndef TQ_AUTOGRAD_H
#define TQ_AUTOGRAD_H

#include <stddef.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TQ_MAX_INPUTS 3

typedef struct tq_node tq_node;
typedef struct tq_graph tq_graph;

typedef struct tq_op {
    const char *name;
    /* Check the inputs' shapes and set n->rows, n->cols (and n->aux_len if the op keeps
     * per-run scratch, e.g. softmax probabilities or an STE mask). Return TQ_E_SHAPE (with a
     * message through TQ_FAIL) when they do not fit. Called at build time and before every
     * forward, because the batch size can change. */
    tq_status (*infer_shape)(tq_node *n);
    /* n->val = f(inputs). `training` is 1 in a training run, 0 in evaluation (observers
     * move only when it is 1). */
    void (*forward)(tq_node *n, int training);
    /* inputs' grad += (df/dinput)^T n->grad, for each input whose grad is not NULL; or, for an
     * input marked TQ_NODE_GRAD_ASSIGN, grad = (df/dinput)^T n->grad, every element written. */
    void (*backward)(tq_node *n);
    /* Bit i set: backward honours TQ_NODE_GRAD_ASSIGN on input i. 0 (the default): it always adds. */
    unsigned assigns;
} tq_op;

enum {
    TQ_NODE_PARAM = 1u << 0,     /* a trainable leaf: its grad is accumulated, never zeroed here */
    TQ_NODE_EXTERNAL = 1u << 1,  /* val/grad belong to the caller, not the graph */
    TQ_NODE_NEEDS_GRAD = 1u << 2, /* a gradient flows into this node in backward */
    /* An op node whose only consumer writes its gradient instead of adding to it (that op's
     * `assigns` says it can): backward then need not zero the gradient first, and the consumer
     * need not read it. The engine sets and clears it as consumers are recorded. */
    TQ_NODE_GRAD_ASSIGN = 1u << 3
};

/* dst = v when the gradient is assigned, else dst += v: how an op with `assigns` writes. */
#define TQ_GRAD_ASSIGNED(node) (((node)->flags & TQ_NODE_GRAD_ASSIGN) != 0)

struct tq_node {
    const tq_op *op;              /* NULL for a leaf */
    tq_node *in[TQ_MAX_INPUTS];
    int n_in;
    int rows, cols;               /* shape: row-major [rows][cols] */
    float *val;                   /* rows*cols values */
    float *grad;                  /* rows*cols, or NULL when no gradient flows here */
    float *aux;                   /* aux_len floats of op scratch kept from forward to backward */
    size_t aux_len;
    size_t cap, grad_cap, aux_cap; /* floats allocated (for an external leaf: what its buffer holds) */
    unsigned flags;
    int consumers;                /* ops recorded so far that take this node as an input */
    void *ctx;                    /* op parameters (labels, quantizer...), owned by the caller */
    const char *name;             /* static string, for messages */
};

tq_graph *tq_graph_new(void);            /* NULL when out of memory */
void tq_graph_free(tq_graph *g);         /* frees every node and graph-owned buffer; NULL ok */

/* A leaf of shape [rows][cols]. `val`: the caller's buffer (kept, never freed), or NULL for a
 * graph-owned one. `grad`: the caller's gradient buffer for a parameter (the leaf is then
 * TQ_NODE_PARAM), or NULL when no gradient is wanted. */
tq_node *tq_leaf(tq_graph *g, const char *name, int rows, int cols, float *val, float *grad);

/* Change a leaf's row count (the batch size) and, for an external leaf, its buffer (which must
 * hold rows*cols floats). TQ_E_ARG, leaf unchanged, when rows is below 1 or above the rows the
 * leaf was created with: that is its buffer's capacity. */
tq_status tq_leaf_set_rows(tq_node *leaf, int rows, float *val);

/* Record op(inputs) on the tape. Returns the new node, or NULL (status recorded in g). */
tq_node *tq_graph_apply(tq_graph *g, const tq_op *op, void *ctx, int n_in, tq_node *const *inputs);

/* Record an error a builder found (its message already set, e.g. by tq_error_set_), unless an
 * earlier one is there: builders that return nodes report through the graph as tq_graph_apply
 * does. Returns NULL, the node such a builder then returns. */
tq_node *tq_graph_fail(tq_graph *g, tq_status st);

/* TQ_OK, or the first error met while building or running. */
tq_status tq_graph_status(const tq_graph *g);

/* Run every op in tape order. Returns TQ_E_SHAPE if the changed batch no longer fits,
 * TQ_E_NOMEM if a buffer could not grow. */
tq_status tq_graph_forward(tq_graph *g, int training);

/* Seed d(loss)/d(loss) = 1 on the scalar `loss` node, zero the gradients of every non-leaf
 * node, then walk the tape back. Parameters' gradients are ACCUMULATED: the caller zeroes
 * them (one memset of the flat gradient block) before each step. */
tq_status tq_graph_backward(tq_graph *g, tq_node *loss);

size_t tq_graph_size(const tq_graph *g);       /* number of nodes on the tape */
tq_node *tq_graph_node(const tq_graph *g, size_t i);

/* Helpers for op writers. */
static inline size_t tq_node_numel(const tq_node *n) { return (size_t)n->rows * (size_t)n->cols; }

#ifdef __cplusplus
}
#endif
#endif
