/* tinyqat import: ONNX -> a float model; see pipeline/onnx_import.h.
 *
 * The file is read as protocol buffers (onnx.proto's field numbers; the encoding is described in
 * pipeline/onnx.c) with every length checked against what holds it, so a damaged or hostile
 * file is refused, never read past. The graph is indexed once (nodes, initializers, the input),
 * then walked in the file's order, following each computed value to the stage it belongs to
 * (conv, batch norm, ReLU, pool; or an add of two stages) and then the dense layers; that gives a
 * spec (layers/model.h, graphs included) and the parameters to copy in. */
#include "pipeline/onnx_import.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"

/* ---- protocol buffers, read with bounds ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} pv; /* a view of bytes in the file */

typedef struct {
    int field, wire;
    uint64_t v; /* varint, fixed32 or fixed64 */
    pv sub;     /* length-delimited */
} pf;

static int rd_varint(pv m, size_t *at, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*at >= m.n) return 0;
        uint8_t b = m.p[(*at)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

/* The next field of m from *at: 1, or 0 at the end, or -1 when the bytes are not protobuf. */
static int pb_next(pv m, size_t *at, pf *f) {
    if (*at >= m.n) return 0;
    uint64_t key, len;
    if (!rd_varint(m, at, &key) || (key >> 3) == 0 || (key >> 3) > (1u << 29)) return -1;
    f->field = (int)(key >> 3), f->wire = (int)(key & 7);
    f->v = 0, f->sub = (pv){NULL, 0};
    switch (f->wire) {
    case 0:
        return rd_varint(m, at, &f->v) ? 1 : -1;
    case 1:
    case 5: {
        size_t w = f->wire == 1 ? 8 : 4;
        if (m.n - *at < w) return -1;
        for (size_t i = 0; i < w; i++) f->v |= (uint64_t)m.p[*at + i] << (8 * i);
        *at += w;
        return 1;
    }
    case 2:
        if (!rd_varint(m, at, &len) || len > m.n - *at) return -1;
        f->sub = (pv){m.p + *at, (size_t)len};
        *at += (size_t)len;
        return 1;
    default:
        return -1;
    }
}

static int pv_is(pv s, const char *t) { return s.n == strlen(t) && (s.n == 0 || !memcmp(s.p, t, s.n)); }
static int pv_eq(pv a, pv b) { return a.n == b.n && (a.n == 0 || !memcmp(a.p, b.p, a.n)); }

/* ---- the graph, indexed ---- */

enum { MAX_IN = 8, MAX_OUT = 4, MAX_NODES = 4096 };

typedef struct {
    pv op, name, msg;
    pv in[MAX_IN], out[MAX_OUT];
    int n_in, n_out;
} onode;

typedef struct {
    pv name, tensor;
} oconst; /* an initializer, or a Constant node's value */

typedef struct {
    const char *file;
    onode *node;
    int n_node;
    oconst *cst;
    int n_cst, cap_cst;
    pv input, output;
    int64_t in_dims[4];
    int in_rank;
} ctx;

#define DAMAGED(c, what) tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: not a valid ONNX file (%s)", (c)->file, what)

static tq_status add_const(ctx *c, pv name, pv tensor) {
    if (c->n_cst == c->cap_cst) {
        int cap = c->cap_cst ? 2 * c->cap_cst : 64;
        oconst *p = tq_realloc(c->cst, (size_t)cap * sizeof *p);
        if (!p) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", c->file);
        c->cst = p, c->cap_cst = cap;
    }
    c->cst[c->n_cst++] = (oconst){name, tensor};
    return TQ_OK;
}

static int find_const(const ctx *c, pv name, pv *tensor) {
    for (int i = c->n_cst - 1; i >= 0; i--)
        if (pv_eq(c->cst[i].name, name)) {
            *tensor = c->cst[i].tensor;
            return 1;
        }
    return 0;
}

static tq_status read_node(ctx *c, pv msg, onode *nd) {
    memset(nd, 0, sizeof *nd);
    nd->msg = msg;
    size_t at = 0;
    pf f;
    int r;
    while ((r = pb_next(msg, &at, &f)) > 0) {
        if (f.wire != 2) continue;
        if (f.field == 1) {
            if (nd->n_in == MAX_IN) TQ_FAIL(TQ_E_ARG, "%s: node %d has more than %d inputs", c->file, c->n_node, MAX_IN);
            nd->in[nd->n_in++] = f.sub;
        } else if (f.field == 2) {
            if (nd->n_out == MAX_OUT) TQ_FAIL(TQ_E_ARG, "%s: node %d has more than %d outputs", c->file, c->n_node, MAX_OUT);
            nd->out[nd->n_out++] = f.sub;
        } else if (f.field == 3) {
            nd->name = f.sub;
        } else if (f.field == 4) {
            nd->op = f.sub;
        } else if (f.field == 7 && f.sub.n && !pv_is(f.sub, "ai.onnx")) {
            TQ_FAIL(TQ_E_ARG, "%s: node %d is in the operator domain '%.*s': tinyqat reads the standard ONNX operators", c->file,
                    c->n_node, (int)f.sub.n, (const char *)f.sub.p);
        }
    }
    if (r < 0) return DAMAGED(c, "a node");
    if (!nd->op.n || !nd->n_out) return DAMAGED(c, "a node without an operator or an output");
    return TQ_OK;
}

/* the graph's input (the first that is not an initializer) with its dims: ValueInfoProto ->
 * type (2) -> tensor_type (1) -> shape (2) -> dim (1) -> dim_value (1) / dim_param (2) */
static tq_status read_input(ctx *c, pv vi) {
    size_t at = 0;
    pf f;
    pv name = {NULL, 0}, type = {NULL, 0};
    int r;
    while ((r = pb_next(vi, &at, &f)) > 0)
        if (f.wire == 2 && f.field == 1) name = f.sub;
        else if (f.wire == 2 && f.field == 2) type = f.sub;
    if (r < 0) return DAMAGED(c, "the graph's input");
    pv tmp;
    if (find_const(c, name, &tmp)) return TQ_OK; /* an initializer listed as an input (IR < 4) */
    if (c->input.n) TQ_FAIL(TQ_E_ARG, "%s: the graph has more than one input: tinyqat models take one", c->file);
    c->input = name;
    pv cur = type;
    const int path[3] = {1, 2, 0};
    for (int k = 0; k < 2; k++) { /* tensor_type, shape */
        at = 0;
        pv next = {NULL, 0};
        while ((r = pb_next(cur, &at, &f)) > 0)
            if (f.wire == 2 && f.field == path[k]) next = f.sub;
        if (r < 0 || !next.p) TQ_FAIL(TQ_E_ARG, "%s: the graph's input has no tensor shape", c->file);
        cur = next;
    }
    at = 0;
    while ((r = pb_next(cur, &at, &f)) > 0) {
        if (f.wire != 2 || f.field != 1) continue;
        if (c->in_rank == 4) TQ_FAIL(TQ_E_ARG, "%s: the input has more than 4 dimensions", c->file);
        size_t a2 = 0;
        pf d;
        int64_t v = -1; /* a dim_param (the batch) or nothing: free */
        int r2;
        while ((r2 = pb_next(f.sub, &a2, &d)) > 0)
            if (d.wire == 0 && d.field == 1) v = (int64_t)d.v;
        if (r2 < 0) return DAMAGED(c, "the input's shape");
        c->in_dims[c->in_rank++] = v;
    }
    if (r < 0) return DAMAGED(c, "the input's shape");
    return TQ_OK;
}

static tq_status index_graph(ctx *c, const unsigned char *data, size_t len) {
    pv model = {data, len}, graph = {NULL, 0};
    size_t at = 0;
    pf f;
    int r;
    while ((r = pb_next(model, &at, &f)) > 0)
        if (f.field == 7 && f.wire == 2) graph = f.sub;
    if (r < 0 || !graph.p) return DAMAGED(c, r < 0 ? "the model" : "no graph");
    int nodes = 0;
    for (at = 0; (r = pb_next(graph, &at, &f)) > 0;) nodes += f.field == 1 && f.wire == 2;
    if (r < 0) return DAMAGED(c, "the graph");
    if (nodes == 0) TQ_FAIL(TQ_E_ARG, "%s: the graph has no operators", c->file);
    if (nodes > MAX_NODES) TQ_FAIL(TQ_E_ARG, "%s: %d operators, more than the %d tinyqat reads", c->file, nodes, MAX_NODES);
    c->node = tq_calloc((size_t)nodes, sizeof *c->node);
    if (!c->node) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", c->file);
    /* initializers first: the input list may name them */
    for (at = 0; pb_next(graph, &at, &f) > 0;)
        if (f.field == 5 && f.wire == 2) {
            size_t a2 = 0;
            pf t;
            pv name = {NULL, 0};
            while ((r = pb_next(f.sub, &a2, &t)) > 0)
                if (t.field == 8 && t.wire == 2) name = t.sub;
            if (r < 0) return DAMAGED(c, "an initializer");
            TQ_TRY(add_const(c, name, f.sub));
        }
    for (at = 0; pb_next(graph, &at, &f) > 0;) {
        if (f.wire != 2) continue;
        if (f.field == 1) TQ_TRY(read_node(c, f.sub, &c->node[c->n_node++]));
        else if (f.field == 11) TQ_TRY(read_input(c, f.sub));
        else if (f.field == 12 && !c->output.p) {
            size_t a2 = 0;
            pf o;
            while ((r = pb_next(f.sub, &a2, &o)) > 0)
                if (o.field == 1 && o.wire == 2) c->output = o.sub;
            if (r < 0) return DAMAGED(c, "the graph's output");
        }
    }
    if (!c->input.p) TQ_FAIL(TQ_E_ARG, "%s: the graph has no input", c->file);
    if (!c->output.p) TQ_FAIL(TQ_E_ARG, "%s: the graph has no output", c->file);
    return TQ_OK;
}

/* ---- attributes and tensors ---- */

/* node nd's attribute `name` (AttributeProto), or 0 */
static int attr(const onode *nd, const char *name, pv *a) {
    size_t at = 0;
    pf f;
    while (pb_next(nd->msg, &at, &f) > 0) {
        if (f.field != 5 || f.wire != 2) continue;
        size_t a2 = 0;
        pf g;
        while (pb_next(f.sub, &a2, &g) > 0)
            if (g.field == 1 && g.wire == 2 && pv_is(g.sub, name)) {
                *a = f.sub;
                return 1;
            }
    }
    return 0;
}

static int64_t attr_i(const onode *nd, const char *name, int64_t def) {
    pv a;
    if (!attr(nd, name, &a)) return def;
    size_t at = 0;
    pf f;
    while (pb_next(a, &at, &f) > 0)
        if (f.field == 3 && f.wire == 0) return (int64_t)f.v;
    return def;
}

static float attr_f(const onode *nd, const char *name, float def) {
    pv a;
    if (!attr(nd, name, &a)) return def;
    size_t at = 0;
    pf f;
    while (pb_next(a, &at, &f) > 0)
        if (f.field == 2 && f.wire == 5) {
            uint32_t b = (uint32_t)f.v;
            float x;
            memcpy(&x, &b, 4);
            return x;
        }
    return def;
}

/* repeated int64 ints (8), packed or not: up to cap values; the count, or -1 when there are more */
static int attr_ints(const onode *nd, const char *name, int64_t *v, int cap) {
    pv a;
    if (!attr(nd, name, &a)) return 0;
    size_t at = 0;
    pf f;
    int n = 0;
    while (pb_next(a, &at, &f) > 0) {
        if (f.field != 8) continue;
        if (f.wire == 0) {
            if (n == cap) return -1;
            v[n++] = (int64_t)f.v;
        } else if (f.wire == 2) {
            size_t a2 = 0;
            uint64_t x;
            while (a2 < f.sub.n) {
                if (n == cap || !rd_varint(f.sub, &a2, &x)) return -1;
                v[n++] = (int64_t)x;
            }
        }
    }
    return n;
}

static int attr_s(const onode *nd, const char *name, const char *value) {
    pv a;
    if (!attr(nd, name, &a)) return 0;
    size_t at = 0;
    pf f;
    while (pb_next(a, &at, &f) > 0)
        if (f.field == 4 && f.wire == 2) return pv_is(f.sub, value);
    return 0;
}

enum { DT_FLOAT = 1, DT_INT64 = 7, MAX_VALUES = 1 << 26 };

typedef struct {
    int64_t dims[8];
    int ndim, type;
    size_t count;
    pv raw, packed; /* raw_data, or float_data / int64_data packed */
    int n_loose;    /* float_data / int64_data values written one key each */
} tinfo;

static tq_status tensor_info(const ctx *c, pv t, tinfo *ti, const char *what) {
    memset(ti, 0, sizeof *ti);
    size_t at = 0;
    pf f;
    int r;
    while ((r = pb_next(t, &at, &f)) > 0) {
        if (f.field == 1 && f.wire == 0) {
            if (ti->ndim == 8) TQ_FAIL(TQ_E_ARG, "%s: %s has more than 8 dimensions", c->file, what);
            ti->dims[ti->ndim++] = (int64_t)f.v;
        } else if (f.field == 1 && f.wire == 2) {
            size_t a2 = 0;
            uint64_t x;
            while (a2 < f.sub.n) {
                if (ti->ndim == 8 || !rd_varint(f.sub, &a2, &x)) TQ_FAIL(TQ_E_ARG, "%s: %s: bad dimensions", c->file, what);
                ti->dims[ti->ndim++] = (int64_t)x;
            }
        } else if (f.field == 2 && f.wire == 0) {
            ti->type = (int)f.v;
        } else if (f.field == 9 && f.wire == 2) {
            ti->raw = f.sub;
        } else if ((f.field == 4 || f.field == 7) && f.wire == 2) {
            ti->packed = f.sub;
        } else if ((f.field == 4 && f.wire == 5) || (f.field == 7 && f.wire == 0)) {
            ti->n_loose++;
        } else if (f.field == 14 && f.wire == 0 && f.v == 1) {
            TQ_FAIL(TQ_E_ARG, "%s: %s is stored outside the file (external data): save the model with its weights inside", c->file, what);
        }
    }
    if (r < 0) return DAMAGED(c, what);
    ti->count = 1;
    for (int i = 0; i < ti->ndim; i++) {
        if (ti->dims[i] < 0 || ti->dims[i] > MAX_VALUES || (ti->dims[i] && ti->count > (size_t)MAX_VALUES / (size_t)ti->dims[i]))
            TQ_FAIL(TQ_E_ARG, "%s: %s: dimensions out of range", c->file, what);
        ti->count *= (size_t)ti->dims[i];
    }
    return TQ_OK;
}

/* The values of tensor t as floats (FLOAT or INT64 data), count of them; *out tq_malloc'd. */
static tq_status tensor_floats(const ctx *c, pv t, const char *what, float **out, tinfo *ti) {
    TQ_TRY(tensor_info(c, t, ti, what));
    if (ti->type != DT_FLOAT && ti->type != DT_INT64)
        TQ_FAIL(TQ_E_ARG, "%s: %s has data type %d: tinyqat reads float (1) and int64 (7) tensors", c->file, what, ti->type);
    const size_t elem = ti->type == DT_FLOAT ? 4 : 8;
    float *v = tq_malloc((ti->count ? ti->count : 1) * sizeof(float));
    if (!v) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", c->file);
    size_t n = 0;
    if (ti->raw.p) {
        if (ti->raw.n != ti->count * elem) {
            tq_free(v);
            TQ_FAIL(TQ_E_FORMAT, "%s: %s holds %zu bytes, its shape asks for %zu", c->file, what, ti->raw.n, ti->count * elem);
        }
        for (n = 0; n < ti->count; n++) {
            const uint8_t *p = ti->raw.p + n * elem;
            uint64_t b = 0;
            for (size_t i = 0; i < elem; i++) b |= (uint64_t)p[i] << (8 * i);
            if (elem == 4) {
                uint32_t b32 = (uint32_t)b;
                memcpy(&v[n], &b32, 4);
            } else {
                v[n] = (float)(int64_t)b;
            }
        }
    } else { /* float_data / int64_data, packed and loose in file order */
        size_t at = 0;
        pf f;
        while (pb_next(t, &at, &f) > 0) {
            const int want = ti->type == DT_FLOAT ? 4 : 7;
            if (f.field != want) continue;
            if (f.wire == 2) {
                size_t a2 = 0;
                while (a2 < f.sub.n && n < ti->count) {
                    uint64_t x = 0;
                    if (ti->type == DT_FLOAT) {
                        if (f.sub.n - a2 < 4) break;
                        for (int i = 0; i < 4; i++) x |= (uint64_t)f.sub.p[a2 + (size_t)i] << (8 * i);
                        a2 += 4;
                        uint32_t b32 = (uint32_t)x;
                        memcpy(&v[n++], &b32, 4);
                    } else {
                        if (!rd_varint(f.sub, &a2, &x)) break;
                        v[n++] = (float)(int64_t)x;
                    }
                }
            } else if (n < ti->count) {
                uint32_t b32 = (uint32_t)f.v;
                if (ti->type == DT_FLOAT) memcpy(&v[n++], &b32, 4);
                else v[n++] = (float)(int64_t)f.v;
            }
        }
        if (n != ti->count) {
            tq_free(v);
            TQ_FAIL(TQ_E_FORMAT, "%s: %s holds fewer values than its shape asks for (%zu)", c->file, what, ti->count);
        }
    }
    for (size_t i = 0; i < ti->count; i++)
        if (!isfinite(v[i])) {
            tq_free(v);
            TQ_FAIL(TQ_E_ARG, "%s: %s holds a value that is not finite", c->file, what);
        }
    *out = v;
    return TQ_OK;
}

/* ---- the graph as tinyqat stages and dense layers ---- */

typedef struct {
    int kind;               /* TQ_UNIT_CONV, TQ_UNIT_ADD or TQ_UNIT_CONCAT */
    int src[2];             /* the stages read (-1: the input) */
    int depthwise, O, KH, KW, stride, stride_w, pad, pad_w;
    int same;               /* TFLite's SAME: pad above and left, one more below or right where odd */
    int C, H, W, OH, OW;    /* input, conv output */
    float *Wt, *b;          /* ONNX's OIHW; bias or NULL */
    int bn;
    float *gamma, *beta, *mean, *var, eps;
    int relu, pool, pk, ps; /* relu: 1 ReLU, 2 ReLU6; pool: 1 max, 2 average; pk 0: global */
    int drop;               /* a Dropout after it: percent dropped in training (dropP) */
    int out_h, out_w, out_c; /* after the pool */
} stage_in;

typedef struct {
    int in, out, relu, drop;
    float *Wt, *b; /* [out][in] (ONNX's columns) */
    int perm_h, perm_w, perm_c; /* the image a flatten made of this layer's input (1, 1, in: none) */
} dense_in;

typedef struct {
    stage_in st[TQ_MAX_STAGES];
    int n_st;
    dense_in dl[TQ_MAX_LAYERS];
    int n_dl;
} layers_in; /* what the walk collected, in the model's order */

static void layers_free(layers_in *ch) {
    for (int s = 0; s < ch->n_st; s++) {
        stage_in *S = &ch->st[s];
        tq_free(S->Wt), tq_free(S->b), tq_free(S->gamma), tq_free(S->beta), tq_free(S->mean), tq_free(S->var);
    }
    for (int l = 0; l < ch->n_dl; l++) tq_free(ch->dl[l].Wt), tq_free(ch->dl[l].b);
}

#define NODE_FAIL(code, ...) return node_fail(c, i, nd, code, __VA_ARGS__)

static tq_status node_fail(const ctx *c, int i, const onode *nd, tq_status code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static tq_status node_fail(const ctx *c, int i, const onode *nd, tq_status code, const char *fmt, ...) {
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return tq_error_set_(code, __FILE__, __LINE__, "%s: node %d (%.*s '%.*s'): %s", c->file, i, (int)(nd->op.n > 64 ? 64 : nd->op.n),
                         (const char *)nd->op.p, (int)(nd->name.n > 96 ? 96 : nd->name.n), (const char *)nd->name.p, why);
}

/* A Constant node: its tensor value becomes a constant by the node's output name. */
static tq_status constant_node(ctx *c, int i, const onode *nd) {
    pv a;
    size_t at = 0;
    pf f;
    tq_status st = TQ_OK;
    int found = 0;
    if (attr(nd, "value", &a))
        while (st == TQ_OK && pb_next(a, &at, &f) > 0)
            if (f.field == 5 && f.wire == 2) st = add_const(c, nd->out[0], f.sub), found = 1;
    if (st == TQ_OK && !found) st = node_fail(c, i, nd, TQ_E_ARG, "a Constant without a tensor value");
    return st;
}

/* a constant input of node nd (an initializer or a Constant's value) as floats */
static tq_status const_input(const ctx *c, int i, const onode *nd, int k, float **v, tinfo *ti) {
    pv t;
    if (k >= nd->n_in || !find_const(c, nd->in[k], &t))
        NODE_FAIL(TQ_E_ARG, "input %d is not a constant: tinyqat reads weights, biases and amounts from initializers or Constant "
                            "nodes", k + 1);
    char what[64];
    snprintf(what, sizeof what, "node %d's input %d", i, k + 1);
    return tensor_floats(c, t, what, v, ti);
}

static int is_shape_op(pv op) {
    static const char *ops[] = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", NULL};
    for (int k = 0; ops[k]; k++)
        if (pv_is(op, ops[k])) return 1;
    return 0;
}

/* A MaxPool's or AveragePool's window, as tinyqat's pools hold it: square, one stride, no
 * padding, floor mode, inside the H x W image. */
static tq_status pool_window(const ctx *c, int i, const onode *nd, int H, int W, int *k, int *s) {
    int64_t ks[4], st[4] = {1, 1}, pd[8] = {0};
    int nk = attr_ints(nd, "kernel_shape", ks, 4), ns = attr_ints(nd, "strides", st, 4), np = attr_ints(nd, "pads", pd, 8);
    int pads = 0;
    for (int q = 0; q < (np > 0 ? np : 0); q++) pads |= pd[q] != 0;
    if (nk != 2 || ks[0] != ks[1] || ns < 0 || (ns == 2 && st[0] != st[1]) || np < 0 || pads || attr_i(nd, "ceil_mode", 0))
        NODE_FAIL(TQ_E_ARG, "a pool tinyqat cannot hold (square, one stride, no padding, floor mode)");
    *k = (int)ks[0], *s = ns == 2 ? (int)st[0] : 1;
    if (*k < 1 || *k > 64 || *s < 1 || *s > 64 || *k > H || *k > W) NODE_FAIL(TQ_E_ARG, "a %dx%d pool over a %dx%d image", *k, *k, H, W);
    return TQ_OK;
}

/* The values the walk follows. Each belongs to a slot: the input (IN), the dense layers' vector
 * (VEC), or a stage (STAGE0 + s). An operator that extends a stage (batch norm, ReLU, a pool)
 * must read the slot's newest value, and no other operator may have read the stage's output
 * yet: tinyqat keeps a stage's output only, not the values inside it. Reading a stage (a
 * convolution, an add, a flatten) seals it. */
enum { IN = 0, VEC = 1, STAGE0 = 2, SLOTS = STAGE0 + TQ_MAX_STAGES };

typedef struct {
    pv name;
    int slot, version;
} oval;

typedef struct {
    oval *v;
    int n;
    int version[SLOTS], sealed[SLOTS];
} values;

static void val_add(values *vs, pv name, int slot) { vs->v[vs->n++] = (oval){name, slot, vs->version[slot]}; }

static const oval *val_find(const values *vs, pv name) {
    for (int k = vs->n - 1; k >= 0; k--)
        if (pv_eq(vs->v[k].name, name)) return &vs->v[k];
    return NULL;
}

/* 1 when v is its slot's newest value (what the slot holds now) */
static int val_current(const values *vs, const oval *v) { return v->version == vs->version[v->slot]; }

/* The input of node nd that the walk follows (k): a value computed from the graph's input, the
 * newest of its slot. */
static tq_status follow(const ctx *c, const values *vs, int i, const onode *nd, int k, const oval **out) {
    const oval *v = k < nd->n_in ? val_find(vs, nd->in[k]) : NULL;
    if (!v)
        NODE_FAIL(TQ_E_ARG, "input %d ('%.*s') is neither a constant nor a value computed from the graph's input", k + 1,
                  k < nd->n_in ? (int)(nd->in[k].n > 96 ? 96 : nd->in[k].n) : 0, k < nd->n_in ? (const char *)nd->in[k].p : "");
    if (!val_current(vs, v))
        NODE_FAIL(TQ_E_ARG, "reads a value inside a layer that a later operator changed (before its batch norm, ReLU or pool): "
                            "tinyqat keeps each layer's output only");
    *out = v;
    return TQ_OK;
}

/* Walk the nodes in the file's order (ONNX's is topological). */
/* The next stage, zeroed; NULL (with *st naming node i) when the model holds no more. */
static stage_in *new_stage(const ctx *c, layers_in *ch, int i, const onode *nd, tq_status *st) {
    if (ch->n_st == TQ_MAX_STAGES) {
        *st = node_fail(c, i, nd, TQ_E_ARG, "more than %d layers with adds and convolutions", TQ_MAX_STAGES);
        return NULL;
    }
    stage_in *T = &ch->st[ch->n_st];
    memset(T, 0, sizeof *T);
    return T;
}

static tq_status walk(ctx *c, layers_in *ch, float *mean, float *sd, tq_onnx_info *info) {
    int rank = c->in_rank, C = 0, H = 1, W = 1, D = 0;
    if (rank == 4) {
        if (c->in_dims[1] < 1 || c->in_dims[2] < 1 || c->in_dims[3] < 1 || c->in_dims[1] > 4096 || c->in_dims[2] > 4096 ||
            c->in_dims[3] > 4096)
            TQ_FAIL(TQ_E_ARG, "%s: the input's shape must be [N][C][H][W] with C, H and W given", c->file);
        C = (int)c->in_dims[1], H = (int)c->in_dims[2], W = (int)c->in_dims[3];
    } else if (rank == 2) {
        if (c->in_dims[1] < 1 || c->in_dims[1] > (1 << 24)) TQ_FAIL(TQ_E_ARG, "%s: the input's shape must be [N][D] with D given", c->file);
        D = (int)c->in_dims[1];
    } else {
        TQ_FAIL(TQ_E_ARG, "%s: the input has %d dimensions: tinyqat reads images [N][C][H][W] or vectors [N][D]", c->file, c->in_rank);
    }
    values vs;
    memset(&vs, 0, sizeof vs);
    vs.v = tq_malloc((size_t)(c->n_node + 1) * sizeof *vs.v);
    if (!vs.v) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", c->file);
    val_add(&vs, c->input, rank == 4 ? IN : VEC);
    int flat_h = 1, flat_w = 1, flat_c = rank == 2 ? D : 0; /* the image a flatten turned into the vector */
    int computed = 0, pending_add = 0;
    tq_status st = TQ_OK;
    for (int i = 0; i < c->n_node && st == TQ_OK; i++) {
        const onode *nd = &c->node[i];
        const pv op = nd->op;
        const int n_vals = vs.n;
        if (pv_is(op, "Constant")) {
            st = constant_node(c, i, nd);
            continue;
        }
        int data_concat = 0; /* a Concat of computed values joins layers' outputs; of constants and shapes, a Reshape's shape */
        for (int k = 0; k < nd->n_in && pv_is(op, "Concat"); k++) data_concat |= val_find(&vs, nd->in[k]) != NULL;
        if (data_concat) {
            const int64_t axis = attr_i(nd, "axis", 1);
            if (nd->n_in < 2 || (axis != 1 && axis != -3)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Concat along axis %lld of %d values: tinyqat joins two or more images along the "
                                                   "channels (axis 1 of NCHW)", (long long)axis, nd->n_in);
                break;
            }
            const oval *x;
            if ((st = follow(c, &vs, i, nd, 0, &x)) != TQ_OK) break;
            int cur = x->slot;
            for (int k = 1; k < nd->n_in && st == TQ_OK; k++) { /* in0 ++ in1, then ++ in2 ...: the channels in the file's order */
                const oval *y;
                if ((st = follow(c, &vs, i, nd, k, &y)) != TQ_OK) break;
                if (cur < STAGE0 || y->slot < STAGE0) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "a Concat %s: tinyqat joins convolutions', adds' or concats' outputs",
                                   cur == IN || y->slot == IN ? "of the input" : "of dense layers' values");
                    break;
                }
                const stage_in *A = &ch->st[cur - STAGE0], *B = &ch->st[y->slot - STAGE0];
                if (A->out_h != B->out_h || A->out_w != B->out_w) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "joins %dx%dx%d to %dx%dx%d: a concat's images have one height and width",
                                   B->out_c, B->out_h, B->out_w, A->out_c, A->out_h, A->out_w);
                    break;
                }
                stage_in *T = new_stage(c, ch, i, nd, &st);
                if (!T) break;
                T->kind = TQ_UNIT_CONCAT, T->src[0] = cur - STAGE0, T->src[1] = y->slot - STAGE0;
                T->C = A->out_c, T->O = T->out_c = A->out_c + B->out_c;
                T->H = T->OH = T->out_h = A->out_h, T->W = T->OW = T->out_w = A->out_w;
                vs.sealed[cur] = vs.sealed[y->slot] = 1;
                cur = STAGE0 + ch->n_st++;
            }
            if (st != TQ_OK) break;
            val_add(&vs, nd->out[0], cur);
            computed = 1;
            continue;
        }
        if (is_shape_op(op)) continue; /* the batch size's arithmetic for a Reshape */
        int reads_data = 0; /* arithmetic on constants and shapes (a Pad's amounts, a Reshape's shape) is read past */
        for (int k = 0; k < nd->n_in; k++) reads_data |= val_find(&vs, nd->in[k]) != NULL;
        if (!reads_data && nd->n_in) continue;
        /* the followed value comes first, but an Add or a Mul may take a constant first */
        pv tmp;
        const int two = nd->n_in == 2 && (pv_is(op, "Add") || pv_is(op, "Mul") || pv_is(op, "Sub") || pv_is(op, "Div"));
        const int c0 = two && find_const(c, nd->in[0], &tmp), c1 = two && find_const(c, nd->in[1], &tmp);
        const int kv = c0 && !c1 ? 1 : 0, kc = 1 - kv;
        const oval *x;
        if ((st = follow(c, &vs, i, nd, kv, &x)) != TQ_OK) break;
        const int slot = x->slot;
        stage_in *S = slot >= STAGE0 ? &ch->st[slot - STAGE0] : NULL;
        const pv next = nd->out[0];
        if (pv_is(op, "Dropout")) { /* a training export keeps it: its ratio becomes the layer's dropP */
            float r = attr_f(nd, "ratio", 0.5f); /* (an input from opset 12 on) */
            if (nd->n_in > 1 && nd->in[1].n) {
                float *v;
                tinfo ti;
                if ((st = const_input(c, i, nd, 1, &v, &ti)) != TQ_OK) break;
                r = ti.count ? v[0] : r;
                tq_free(v);
            }
            const long pct = r >= 0.0f && r <= 1.0f ? lroundf(r * 100.0f) : -1;
            stage_in *Ds = slot == VEC && !ch->n_dl && ch->n_st ? &ch->st[ch->n_st - 1] : S; /* after a flatten: the last layer's */
            int *d = slot == VEC && ch->n_dl ? &ch->dl[ch->n_dl - 1].drop : Ds ? &Ds->drop : NULL;
            if (pct != 0 && (pct < 1 || pct > 90 || fabsf(r * 100.0f - (float)pct) > 1e-3f || !d || *d)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Dropout of ratio %g%s: tinyqat drops a whole percent, 1 to 90, once after a layer",
                               (double)r, !d ? " on the input" : "");
                break;
            }
            if (pct) *d = (int)pct;
            val_add(&vs, next, slot);
            continue;
        }
        if (pv_is(op, "Identity")) {
            val_add(&vs, next, slot);
            continue;
        }
        if (pv_is(op, "Pad")) { /* PyTorch puts one of nothing before an average pool */
            float *v;
            tinfo ti;
            if (nd->n_in < 2 || !find_const(c, nd->in[1], &tmp)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Pad of amounts computed in the graph (nn.ZeroPad2d, F.pad): tinyqat pads inside "
                                                   "its convolutions (give the convolution its padding)");
                break;
            }
            if ((st = const_input(c, i, nd, 1, &v, &ti)) != TQ_OK) break;
            int any = 0;
            for (size_t k = 0; k < ti.count; k++) any |= v[k] != 0.0f;
            tq_free(v);
            if (any) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Pad that pads: tinyqat pads inside its convolutions, equally above and "
                                                   "below, left and right (export the padding as the convolution's pads)");
                break;
            }
            val_add(&vs, next, slot);
            continue;
        }
        if (two && !c0 && !c1) { /* two computed values: a residual add */
            const oval *y;
            if (!pv_is(op, "Add")) {
                st = node_fail(c, i, nd, TQ_E_ARG, "%.*s of two computed values: tinyqat adds two layers' outputs, nothing else",
                               (int)op.n, (const char *)op.p);
                break;
            }
            if ((st = follow(c, &vs, i, nd, 1, &y)) != TQ_OK) break;
            if (slot < STAGE0 || y->slot < STAGE0) {
                st = node_fail(c, i, nd, TQ_E_ARG, "an add %s: tinyqat adds two convolutions' or adds' outputs",
                               slot == IN || y->slot == IN ? "of the input" : "of dense layers' values");
                break;
            }
            const stage_in *A = S, *B = &ch->st[y->slot - STAGE0];
            if (A->out_h != B->out_h || A->out_w != B->out_w || A->out_c != B->out_c || slot == y->slot) {
                st = node_fail(c, i, nd, TQ_E_ARG, "adds %dx%dx%d to %dx%dx%d: tinyqat adds two different tensors of one shape",
                               B->out_c, B->out_h, B->out_w, A->out_c, A->out_h, A->out_w);
                break;
            }
            stage_in *T = new_stage(c, ch, i, nd, &st);
            if (!T) break;
            T->kind = TQ_UNIT_ADD, T->src[0] = slot - STAGE0, T->src[1] = y->slot - STAGE0;
            T->C = T->O = T->out_c = A->out_c, T->H = T->OH = T->out_h = A->out_h, T->W = T->OW = T->out_w = A->out_w;
            vs.sealed[slot] = vs.sealed[y->slot] = 1;
            val_add(&vs, next, STAGE0 + ch->n_st++);
            computed = 1;
            continue;
        }
        if (two && (pv_is(op, "Sub") || pv_is(op, "Div") || pv_is(op, "Mul") || pv_is(op, "Add")) && !(pending_add && slot == VEC)) {
            /* by a constant: the input's normalization */
            if (computed || vs.sealed[slot] || slot > VEC) {
                st = node_fail(c, i, nd, TQ_E_ARG, "an elementwise %.*s by a constant between layers: tinyqat models have none",
                               (int)op.n, (const char *)op.p);
                break;
            }
            if (kv == 1 && pv_is(op, "Sub")) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a constant minus the input: tinyqat's normalization is (x - mean) / std");
                break;
            }
            float *v;
            tinfo ti;
            if ((st = const_input(c, i, nd, kc, &v, &ti)) != TQ_OK) break;
            float k = ti.count ? v[0] : 0.0f;
            tq_free(v);
            if (ti.count != 1) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a normalization by %zu values: tinyqat takes one mean and one scale", ti.count);
                break;
            }
            if (kv == 1 && pv_is(op, "Div")) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a constant divided by the input: tinyqat's normalization is (x - mean) / std");
                break;
            }
            if (pv_is(op, "Sub")) *mean += k * *sd;
            else if (pv_is(op, "Add")) *mean -= k * *sd;
            else if (pv_is(op, "Div")) *sd *= k;
            else *sd /= k;
            if (!(*sd > 0) || !isfinite(*sd) || !isfinite(*mean)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a normalization that is not a positive scale");
                break;
            }
            vs.version[slot]++;
            val_add(&vs, next, slot);
            continue;
        }
        /* an operator that extends the stage it reads */
        const int extends = pv_is(op, "BatchNormalization") || pv_is(op, "Relu") || pv_is(op, "Clip") || pv_is(op, "MaxPool") ||
                            pv_is(op, "AveragePool") || pv_is(op, "GlobalAveragePool");
        if (extends && S && vs.sealed[slot]) {
            st = node_fail(c, i, nd, TQ_E_ARG, "changes a layer's output that another operator already read: tinyqat keeps each "
                                               "layer's output only");
            break;
        }
        computed = 1;
        if (pv_is(op, "Conv")) {
            if (slot == VEC) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a convolution after the dense layers began");
                break;
            }
            if (slot == IN && vs.sealed[IN]) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a second layer reading the network's input: tinyqat's models read it once");
                break;
            }
            stage_in *T = new_stage(c, ch, i, nd, &st);
            if (!T) break;
            vs.sealed[slot] = 1;
            const int h = S ? S->out_h : H, w = S ? S->out_w : W, ci = S ? S->out_c : C;
            T->kind = TQ_UNIT_CONV, T->src[0] = S ? slot - STAGE0 : -1, T->src[1] = -1;
            val_add(&vs, next, STAGE0 + ch->n_st++);
            tinfo ti;
            if ((st = const_input(c, i, nd, 1, &T->Wt, &ti)) != TQ_OK) break;
            int64_t ks[4], sd4[4], pd[8], dl[4];
            int nk = attr_ints(nd, "kernel_shape", ks, 4), ns = attr_ints(nd, "strides", sd4, 4), np = attr_ints(nd, "pads", pd, 8),
                nl = attr_ints(nd, "dilations", dl, 4);
            int64_t group = attr_i(nd, "group", 1);
            if (ti.ndim != 4) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a %d-dimensional kernel: tinyqat's convolutions are 2-D", ti.ndim);
                break;
            }
            if ((nk == 2 && (ks[0] != ti.dims[2] || ks[1] != ti.dims[3])) || nk < 0 || (nk != 0 && nk != 2) || ti.dims[2] < 1 ||
                ti.dims[3] < 1 || ti.dims[2] > 64 || ti.dims[3] > 64) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a kernel_shape that is not its weight's %lldx%lld (at most 64x64)",
                               (long long)ti.dims[2], (long long)ti.dims[3]);
                break;
            }
            if (ns < 0 || (ns != 0 && ns != 2)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "strides tinyqat's float convolutions cannot hold (two: rows and columns)");
                break;
            }
            int same = 0; /* pads as SAME gives them ([top, left, bottom, right]): a `same` stage */
            if (np == 4 && (pd[0] != pd[2] || pd[1] != pd[3]) && ns >= 0 && ti.dims[2] >= 1 && ti.dims[3] >= 1) {
                tq_conv_shape sm;
                same = tq_conv_shape_init_same(&sm, h, w, ci, (int)ti.dims[2], (int)ti.dims[3], ns == 2 ? (int)sd4[0] : 1,
                                               ns == 2 ? (int)sd4[1] : 1, 1, 0) == TQ_OK &&
                       sm.pad == pd[0] && sm.pad_w == pd[1] && sm.pad_b == pd[2] && sm.pad_r == pd[3];
            }
            if (np < 0 || (np != 0 && np != 4) || (np == 4 && !same && (pd[0] != pd[2] || pd[1] != pd[3]))) {
                st = node_fail(c, i, nd, TQ_E_ARG, "pads tinyqat cannot hold (as many above as below and left as right, or SAME's: "
                                                   "the odd row or column below or right)");
                break;
            }
            if (nl < 0 || (nl == 2 && (dl[0] != 1 || dl[1] != 1)) || (nl != 0 && nl != 2)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a dilated convolution: tinyqat's have none");
                break;
            }
            if (attr(nd, "auto_pad", &tmp) && !attr_s(nd, "auto_pad", "NOTSET") && !attr_s(nd, "auto_pad", "VALID")) {
                st = node_fail(c, i, nd, TQ_E_ARG, "auto_pad SAME: export the model with explicit pads");
                break;
            }
            T->C = ci, T->H = h, T->W = w, T->O = (int)ti.dims[0], T->KH = (int)ti.dims[2], T->KW = (int)ti.dims[3];
            T->stride = ns == 2 ? (int)sd4[0] : 1, T->stride_w = ns == 2 ? (int)sd4[1] : 1;
            T->pad = np == 4 ? (int)pd[0] : 0, T->pad_w = np == 4 ? (int)pd[1] : 0, T->same = same;
            if (group == 1 && ti.dims[1] == ci) {
                T->depthwise = 0;
            } else if (group == ci && ti.dims[1] == 1 && T->O % ci == 0) {
                T->depthwise = 1;
            } else {
                st = node_fail(c, i, nd, TQ_E_ARG, "group %lld with %lld input channels a filter on %d channels: tinyqat has plain "
                               "(group 1) and depthwise (group = channels) convolutions", (long long)group, (long long)ti.dims[1], ci);
                break;
            }
            if (T->O < 1 || T->O > 4096 || T->stride < 1 || T->stride > 64 || T->stride_w < 1 || T->stride_w > 64 || T->pad < 0 || T->pad > 64 || T->pad_w < 0 ||
                T->pad_w > 64 || (!same && (h + 2 * T->pad < T->KH || w + 2 * T->pad_w < T->KW))) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a %dx%d kernel does not fit its %dx%d input padded by %dx%d", T->KH, T->KW, h, w,
                               T->pad, T->pad_w);
                break;
            }
            if (nd->n_in > 2 && nd->in[2].n) {
                if ((st = const_input(c, i, nd, 2, &T->b, &ti)) != TQ_OK) break;
                if (ti.count != (size_t)T->O) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "a bias of %zu values for %d channels", ti.count, T->O);
                    break;
                }
            }
            T->OH = (h + T->pad + (int)(np == 4 ? pd[2] : 0) - T->KH) / T->stride + 1;
            T->OW = (w + T->pad_w + (int)(np == 4 ? pd[3] : 0) - T->KW) / T->stride_w + 1;
            T->out_h = T->OH, T->out_w = T->OW, T->out_c = T->O;
        } else if (pv_is(op, "BatchNormalization")) {
            if (!S || S->kind != TQ_UNIT_CONV || S->bn || S->relu || S->pool || S->drop) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a batch norm that does not follow a convolution%s",
                               S && S->drop ? " (tinyqat's dropout comes last in a layer)" : "");
                break;
            }
            float **dst[4] = {&S->gamma, &S->beta, &S->mean, &S->var};
            for (int k = 0; k < 4 && st == TQ_OK; k++) {
                tinfo ti;
                if ((st = const_input(c, i, nd, k + 1, dst[k], &ti)) == TQ_OK && ti.count != (size_t)S->O)
                    st = node_fail(c, i, nd, TQ_E_ARG, "%zu values for %d channels", ti.count, S->O);
            }
            if (st != TQ_OK) break;
            S->bn = 1, S->eps = attr_f(nd, "epsilon", 1e-5f);
        } else if (pv_is(op, "Relu") || pv_is(op, "Clip")) {
            int relu = 1;
            if (pv_is(op, "Clip")) { /* a ReLU when it clips to [0, inf), a ReLU6 to [0, 6] */
                float *v, lo = -1.0f, hi = INFINITY;
                tinfo ti;
                for (int k = 1; k <= 2 && k < nd->n_in && st == TQ_OK; k++) {
                    if (!nd->in[k].n) continue; /* an empty name: the input left out */
                    if ((st = const_input(c, i, nd, k, &v, &ti)) != TQ_OK) break;
                    if (ti.count) *(k == 1 ? &lo : &hi) = v[0];
                    tq_free(v);
                }
                if (st != TQ_OK) break;
                if (nd->n_in == 1) lo = attr_f(nd, "min", -INFINITY), hi = attr_f(nd, "max", INFINITY); /* opset < 11 */
                relu = lo == 0.0f && hi == 6.0f ? 2 : 1;
                if (lo != 0.0f || (relu == 1 && hi < 3.0e38f)) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "a Clip to [%g, %g]: tinyqat has ReLU (to [0, inf)) and ReLU6 (to [0, 6])",
                                   (double)lo, (double)hi);
                    break;
                }
            }
            if (slot == VEC) {
                dense_in *L = ch->n_dl ? &ch->dl[ch->n_dl - 1] : NULL;
                if (!L || L->relu || relu == 2) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "%s", !L ? "a ReLU on the input" : L->relu ? "two ReLUs in a row"
                                                                                                : "a ReLU6 after a dense layer: tinyqat's dense layers take ReLU");
                    break;
                }
                L->relu = 1;
            } else if (S) { /* after a max pool: the ReLU commutes with it; after an average pool it does not */
                if (S->relu || S->pool == 2 || (S->kind == TQ_UNIT_ADD && relu == 2) || S->kind == TQ_UNIT_CONCAT) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "%s", S->relu ? "two ReLUs in a row"
                                                         : S->pool == 2 ? "a ReLU after an average pool: tinyqat's stages put the ReLU before the pool"
                                                         : S->kind == TQ_UNIT_CONCAT ? "a ReLU after a Concat: tinyqat's concat copies (put the ReLU on each of its inputs)"
                                                                        : "a ReLU6 after an add: tinyqat's adds take ReLU");
                    break;
                }
                S->relu = relu;
            } else {
                st = node_fail(c, i, nd, TQ_E_ARG, "a ReLU on the input");
                break;
            }
        } else if (pv_is(op, "MaxPool") || pv_is(op, "AveragePool") || pv_is(op, "GlobalAveragePool")) {
            if (!S || S->pool || S->drop) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a pool that does not follow a convolution or an add (one pool each; a dropout "
                                                   "comes after the pool)");
                break;
            }
            int k = 0, s = 0;
            int64_t ks[4], pd[8] = {0};
            const int nk = attr_ints(nd, "kernel_shape", ks, 4), np = attr_ints(nd, "pads", pd, 8);
            int whole = pv_is(op, "AveragePool") && nk == 2 && ks[0] == S->out_h && ks[1] == S->out_w && np >= 0 &&
                        !attr_i(nd, "ceil_mode", 0); /* a global pool written as an AveragePool */
            for (int q = 0; q < np; q++) whole &= pd[q] == 0;
            if (!pv_is(op, "GlobalAveragePool") && !whole && (st = pool_window(c, i, nd, S->out_h, S->out_w, &k, &s)) != TQ_OK) break;
            S->pool = pv_is(op, "MaxPool") ? 1 : 2, S->pk = k, S->ps = s;
            S->out_h = k ? (S->out_h - k) / s + 1 : 1, S->out_w = k ? (S->out_w - k) / s + 1 : 1;
        } else if (pv_is(op, "Flatten") || pv_is(op, "Reshape")) {
            if (pv_is(op, "Flatten") && attr_i(nd, "axis", 1) != 1) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Flatten that keeps more than the batch");
                break;
            }
            if (slot != VEC) { /* a Reshape of a vector to a vector changes nothing */
                if (vs.sealed[VEC] || (S && slot - STAGE0 != ch->n_st - 1)) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "%s", vs.sealed[VEC] ? "a second flatten: tinyqat's dense layers read one image"
                                                                          : "a flatten of an earlier layer than the last: tinyqat's dense layers read the last");
                    break;
                }
                vs.sealed[slot] = vs.sealed[VEC] = 1;
                flat_h = S ? S->out_h : H, flat_w = S ? S->out_w : W, flat_c = S ? S->out_c : C, D = flat_h * flat_w * flat_c;
                rank = 2;
            }
            vs.version[VEC]++;
            val_add(&vs, next, VEC);
            pending_add = 0;
            continue;
        } else if (pv_is(op, "Gemm") || pv_is(op, "MatMul")) {
            if (slot != VEC) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a dense layer on an image: flatten it first");
                break;
            }
            if (ch->n_dl == TQ_MAX_LAYERS) {
                st = node_fail(c, i, nd, TQ_E_ARG, "more than %d dense layers", TQ_MAX_LAYERS);
                break;
            }
            vs.sealed[VEC] = 1;
            dense_in *L = &ch->dl[ch->n_dl];
            memset(L, 0, sizeof *L);
            ch->n_dl++;
            tinfo ti;
            float *w;
            if ((st = const_input(c, i, nd, 1, &w, &ti)) != TQ_OK) break;
            L->Wt = w;
            int trans = pv_is(op, "Gemm") ? (int)attr_i(nd, "transB", 0) : 0;
            if (pv_is(op, "Gemm") && (attr_i(nd, "transA", 0) || attr_f(nd, "alpha", 1.0f) != 1.0f || attr_f(nd, "beta", 1.0f) != 1.0f)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Gemm with transA, alpha or beta: tinyqat's dense layer is x W^T + b");
                break;
            }
            if (ti.ndim != 2) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a %d-dimensional weight", ti.ndim);
                break;
            }
            L->in = (int)(trans ? ti.dims[1] : ti.dims[0]), L->out = (int)(trans ? ti.dims[0] : ti.dims[1]);
            if (L->in != D || L->out < 1 || L->out > 65536) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a weight for %d inputs and %d outputs where the value before it has %d", L->in,
                               L->out, D);
                break;
            }
            if (!trans) { /* [in][out] -> [out][in] */
                float *t = tq_malloc(ti.count * sizeof(float));
                if (!t) {
                    st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory", c->file);
                    break;
                }
                for (int o = 0; o < L->out; o++)
                    for (int j = 0; j < L->in; j++) t[(size_t)o * (size_t)L->in + (size_t)j] = w[(size_t)j * (size_t)L->out + (size_t)o];
                tq_free(w);
                L->Wt = t;
            }
            L->b = tq_calloc((size_t)L->out, sizeof(float));
            if (!L->b) {
                st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory", c->file);
                break;
            }
            if (pv_is(op, "Gemm") && nd->n_in > 2 && nd->in[2].n) {
                float *b;
                if ((st = const_input(c, i, nd, 2, &b, &ti)) != TQ_OK) break;
                if (ti.count == (size_t)L->out) memcpy(L->b, b, (size_t)L->out * sizeof(float));
                tq_free(b);
                if (ti.count != (size_t)L->out) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "a bias of %zu values for %d outputs", ti.count, L->out);
                    break;
                }
            }
            L->perm_h = flat_h, L->perm_w = flat_w, L->perm_c = flat_c;
            flat_h = flat_w = 1, flat_c = L->out, D = L->out;
            vs.version[VEC]++;
            val_add(&vs, next, VEC);
            pending_add = pv_is(op, "MatMul");
            continue;
        } else if (pv_is(op, "Add") && pending_add && slot == VEC) { /* MatMul's bias */
            dense_in *L = &ch->dl[ch->n_dl - 1];
            float *b;
            tinfo ti;
            if ((st = const_input(c, i, nd, kc, &b, &ti)) != TQ_OK) break;
            if (ti.count == (size_t)L->out)
                for (int o = 0; o < L->out; o++) L->b[o] += b[o];
            tq_free(b);
            if (ti.count != (size_t)L->out) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a bias of %zu values for %d outputs", ti.count, L->out);
                break;
            }
        } else if ((pv_is(op, "Softmax") || pv_is(op, "LogSoftmax")) && pv_eq(next, c->output) && slot == VEC) {
            if (info) info->softmax_dropped = 1;
            val_add(&vs, next, VEC);
            continue;
        } else {
            st = node_fail(c, i, nd, TQ_E_ARG, "not an operator tinyqat imports: it reads Conv, BatchNormalization, Relu, Clip (ReLU, "
                                               "ReLU6), MaxPool, AveragePool, GlobalAveragePool, Add, Flatten, Reshape, Gemm, MatMul + "
                                               "Add, Dropout, a final Softmax (replace the operator in the model, or export it without)");
            break;
        }
        /* an extension: the slot's newest value */
        if (vs.n == n_vals) {
            vs.version[slot]++;
            val_add(&vs, next, slot);
        }
        pending_add = 0;
    }
    const oval *out = st == TQ_OK ? val_find(&vs, c->output) : NULL;
    if (st == TQ_OK && (!out || out->slot != VEC || !val_current(&vs, out) || !ch->n_dl))
        st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: the graph's output '%.*s' is not the last dense layer's (tinyqat's models "
                           "end with a dense classifier)", c->file, (int)(c->output.n > 96 ? 96 : c->output.n), (const char *)c->output.p);
    for (int s = 0; st == TQ_OK && s < ch->n_st; s++)
        if (!vs.sealed[STAGE0 + s])
            st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: layer %d's output is read by nothing that leads to the output", c->file, s + 1);
    tq_free(vs.v);
    return st;
}

/* The name of stage s in the spec */
static void stage_name(char *out, size_t cap, int s) { snprintf(out, cap, "n%d", s + 1); }

/* The spec the graph is, and its parameters copied into m. */
static tq_status build(const ctx *c, const layers_in *ch, tq_model *m) {
    char spec[2 * TQ_SPEC_MAX], a[16], b[16];
    int n = 0, named[TQ_MAX_STAGES] = {0};
    for (int s = 0; s < ch->n_st; s++) { /* the stages a later one reads other than as the one before it */
        const stage_in *S = &ch->st[s];
        if (S->src[0] >= 0 && S->src[0] != s - 1) named[S->src[0]] = 1;
        if (S->kind == TQ_UNIT_ADD && S->src[0] == s - 1) named[S->src[1]] = 1;
        else if (S->kind == TQ_UNIT_ADD && S->src[1] != s - 1) named[S->src[1]] = 1;
        else if (S->kind == TQ_UNIT_CONCAT) named[S->src[1]] = 1; /* ^NAME, whichever stage it is */
    }
#define PUT(...) (n += snprintf(spec + n, sizeof spec - (size_t)n, __VA_ARGS__), n = n < (int)sizeof spec ? n : (int)sizeof spec - 1)
    if (c->in_rank == 4 && ch->n_st) PUT("%lldx%lldx%lld", (long long)c->in_dims[2], (long long)c->in_dims[3], (long long)c->in_dims[1]);
    else PUT("%d", ch->dl[0].in);
    for (int s = 0; s < ch->n_st; s++) {
        const stage_in *S = &ch->st[s];
        if (S->kind == TQ_UNIT_ADD) {
            int x = S->src[0], y = S->src[1];
            if (y == s - 1) x = S->src[1], y = S->src[0]; /* the add reads the stage before it and a named one */
            stage_name(b, sizeof b, y);
            if (x != s - 1) stage_name(a, sizeof a, x), PUT("-~%s", a);
            PUT("-+%s%s", b, S->relu ? "-r" : "");
        } else if (S->kind == TQ_UNIT_CONCAT) { /* the first input current, the second named: its channels come after */
            if (S->src[0] != s - 1) stage_name(a, sizeof a, S->src[0]), PUT("-~%s", a);
            stage_name(b, sizeof b, S->src[1]);
            PUT("-^%s", b);
        } else {
            if (S->src[0] >= 0 && S->src[0] != s - 1) stage_name(a, sizeof a, S->src[0]), PUT("-~%s", a);
            PUT("-%c%dk%d", S->depthwise ? 'd' : 'c', S->depthwise ? S->O / S->C : S->O, S->KH);
            if (S->KW != S->KH) PUT("x%d", S->KW);
            if (S->stride != 1 || S->stride_w != 1) PUT("s%d", S->stride);
            if (S->stride_w != S->stride) PUT("x%d", S->stride_w);
            if (S->same) PUT("same");
            else if (S->pad || S->pad_w) PUT("p%d", S->pad);
            if (!S->same && S->pad != S->pad_w) PUT("x%d", S->pad_w);
            PUT("%s%s", S->bn ? "b" : "", S->relu == 2 ? "r6" : S->relu ? "r" : "");
        }
        if (S->pool && !S->pk) PUT("-g");
        else if (S->pool) PUT("-%c%d", S->pool == 1 ? 'm' : 'a', S->pk);
        if (S->pool && S->pk && S->ps != S->pk) PUT("s%d", S->ps);
        if (named[s]) stage_name(a, sizeof a, s), PUT("@%s", a);
        if (S->drop) PUT("-drop%d", S->drop);
    }
    for (int l = 0; l < ch->n_dl; l++) {
        PUT("-%d%s", ch->dl[l].out, ch->dl[l].relu ? "r" : "");
        if (ch->dl[l].drop) PUT("-drop%d", ch->dl[l].drop);
    }
#undef PUT
    if (n >= (int)sizeof m->spec - 1) TQ_FAIL(TQ_E_ARG, "%s: the model's spec is longer than tinyqat's %zu characters", c->file, sizeof m->spec - 1);
    tq_status st = tq_model_init(m, spec);
    if (st != TQ_OK) return tq_error_set_(st, __FILE__, __LINE__, "%s: %s", c->file, tq_last_error());
    for (int s = 0; s < ch->n_st; s++) {
        const stage_in *S = &ch->st[s];
        tq_unit *T = &m->unit[s];
        if (S->kind != TQ_UNIT_CONV) continue;
        const size_t IC = S->depthwise ? 1 : (size_t)S->C, KH = (size_t)S->KH, KW = (size_t)S->KW;
        for (size_t o = 0; o < (size_t)S->O; o++) /* OIHW -> OHWI (depthwise: [O][1][KH][KW] is [O][KH*KW] already) */
            for (size_t ky = 0; ky < KH; ky++)
                for (size_t kx = 0; kx < KW; kx++)
                    for (size_t ci = 0; ci < IC; ci++)
                        T->W[((o * KH + ky) * KW + kx) * IC + ci] = S->Wt[((o * IC + ci) * KH + ky) * KW + kx];
        if (!S->bn) {
            for (int o = 0; o < S->O; o++) T->b[o] = S->b ? S->b[o] : 0.0f;
            continue;
        }
        for (int o = 0; o < S->O; o++) {
            /* a conv bias before batch norm moves its mean; another eps its variance (the same function) */
            T->gamma[o] = S->gamma[o], T->beta[o] = S->beta[o];
            T->running_mean[o] = S->mean[o] - (S->b ? S->b[o] : 0.0f);
            T->running_var[o] = S->var[o] + (S->eps - T->bn_state.eps);
            if (!(T->running_var[o] > 0.0f)) {
                tq_model_free(m);
                TQ_FAIL(TQ_E_ARG, "%s: convolution %d's batch norm: a variance with epsilon %g that tinyqat's (1e-5) cannot hold",
                        c->file, s + 1, (double)S->eps);
            }
        }
    }
    for (int l = 0; l < ch->n_dl; l++) {
        const dense_in *L = &ch->dl[l];
        const size_t in = (size_t)L->in, hw = (size_t)L->perm_h * (size_t)L->perm_w, C = (size_t)L->perm_c;
        for (int o = 0; o < L->out; o++) { /* ONNX's column c*H*W + p is tinyqat's p*C + c */
            for (size_t j = 0; j < in; j++) TQ_DENSE(m, l).W[(size_t)o * in + (j % hw) * C + j / hw] = L->Wt[(size_t)o * in + j];
            TQ_DENSE(m, l).b[o] = L->b[o];
        }
    }
    return TQ_OK;
}

tq_status tq_import_onnx_bytes(tq_model *m, const unsigned char *data, size_t len, const char *name, float in_mean, float in_std,
                               tq_onnx_info *info) {
    if (!m || !data || !name) TQ_FAIL(TQ_E_ARG, "import: a model, data and a name are required");
    memset(m, 0, sizeof *m);
    if (info) memset(info, 0, sizeof *info);
    if (!isnan(in_std) && !(in_std > 0.0f && isfinite(in_std))) TQ_FAIL(TQ_E_ARG, "import: the input's std must be positive");
    if (!isnan(in_mean) && !isfinite(in_mean)) TQ_FAIL(TQ_E_ARG, "import: the input's mean must be finite");
    ctx c;
    memset(&c, 0, sizeof c);
    c.file = name;
    layers_in ch;
    memset(&ch, 0, sizeof ch);
    float mean = isnan(in_mean) ? 0.0f : in_mean, sd = isnan(in_std) ? 1.0f : in_std;
    tq_status st = index_graph(&c, data, len);
    if (st == TQ_OK && info) info->nodes = c.n_node;
    if (st == TQ_OK) st = walk(&c, &ch, &mean, &sd, info);
    if (st == TQ_OK) st = build(&c, &ch, m);
    if (st == TQ_OK) m->in_mean = mean, m->in_std = sd;
    layers_free(&ch);
    tq_free(c.node), tq_free(c.cst);
    return st;
}

tq_status tq_import_onnx(tq_model *m, const char *path, float in_mean, float in_std, tq_onnx_info *info) {
    if (!m || !path) TQ_FAIL(TQ_E_ARG, "import: a model and a path are required");
    unsigned char *data = NULL;
    size_t len = 0;
    tq_status st = tq_file_read_all(path, (size_t)1 << 30, &data, &len);
    if (st == TQ_OK) st = tq_import_onnx_bytes(m, data, len, path, in_mean, in_std, info);
    else memset(m, 0, sizeof *m);
    tq_free(data);
    return st;
}

/* ---- a QDQ graph (tq_export_onnx's form) as an integer model ---- */

enum { DT_UINT8 = 2, DT_INT8 = 3, DT_INT32 = 6 };

/* The values of an INT8 or INT32 tensor, exactly: raw_data, or int32_data (field 5, packed or
 * not); *out tq_malloc'd. */
static tq_status tensor_ints(const ctx *c, pv t, const char *what, int32_t **out, tinfo *ti) {
    TQ_TRY(tensor_info(c, t, ti, what));
    if (ti->type != DT_INT8 && ti->type != DT_INT32 && ti->type != DT_UINT8)
        TQ_FAIL(TQ_E_ARG, "%s: %s has data type %d where int8 (3), uint8 (2) or int32 (6) was expected", c->file, what, ti->type);
    int32_t *v = tq_malloc((ti->count ? ti->count : 1) * sizeof(int32_t));
    if (!v) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", c->file);
    size_t n = 0;
    const size_t elem = ti->type == DT_INT32 ? 4 : 1;
    if (ti->raw.p) {
        if (ti->raw.n == ti->count * elem)
            for (n = 0; n < ti->count; n++) {
                const uint8_t *p = ti->raw.p + n * elem;
                v[n] = elem == 4 ? (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24)
                       : ti->type == DT_UINT8 ? (int32_t)p[0] : (int32_t)(int8_t)p[0];
            }
    } else {
        size_t at = 0;
        pf f;
        while (pb_next(t, &at, &f) > 0) {
            if (f.field != 5) continue;
            if (f.wire == 0 && n < ti->count) v[n++] = (int32_t)(uint32_t)f.v;
            for (size_t a2 = 0; f.wire == 2 && a2 < f.sub.n && n < ti->count;) {
                uint64_t x;
                if (!rd_varint(f.sub, &a2, &x)) break;
                v[n++] = (int32_t)(uint32_t)x;
            }
        }
    }
    int in_range = 1;
    for (size_t k = 0; ti->type == DT_INT8 && k < n; k++) in_range &= v[k] >= -128 && v[k] <= 127;
    for (size_t k = 0; ti->type == DT_UINT8 && k < n; k++) in_range &= v[k] >= 0 && v[k] <= 255;
    if (n != ti->count || !in_range) {
        tq_free(v);
        TQ_FAIL(TQ_E_FORMAT, "%s: %s holds %s", c->file, what, in_range ? "other than the values its shape asks for" : "8-bit values out of range");
    }
    *out = v;
    return TQ_OK;
}

/* The scale and zero point a QuantizeLinear or DequantizeLinear of an activation names: one each.
 * A uint8 activation (PyTorch's quint8) is read as int8: q - 128 at zero point z - 128 stands for
 * the same real values, so z comes back less 128. */
static tq_status act_qparams(const ctx *c, int i, const onode *nd, float *s, int32_t *z, int *u8) {
    float *sv = NULL;
    int32_t *zv = NULL;
    tinfo ts, tz;
    pv t;
    if (nd->n_in < 3 || !find_const(c, nd->in[2], &t)) NODE_FAIL(TQ_E_ARG, "no zero point: tinyqat reads int8 activations with one");
    TQ_TRY(const_input(c, i, nd, 1, &sv, &ts));
    tq_status st = tensor_ints(c, t, "a zero point", &zv, &tz);
    if (st == TQ_OK && (ts.count != 1 || tz.count != 1 || (tz.type != DT_INT8 && tz.type != DT_UINT8) || !(sv[0] > 0.0f) || !isfinite(sv[0])))
        st = node_fail(c, i, nd, TQ_E_ARG, "an activation quantized other than int8 or uint8 with one positive scale and zero point");
    if (st == TQ_OK) *s = sv[0], *z = zv[0] - (tz.type == DT_UINT8 ? 128 : 0), *u8 = tz.type == DT_UINT8;
    tq_free(sv), tq_free(zv);
    return st;
}

typedef struct {
    pv name;                /* DequantizeLinear's output */
    int32_t *q;             /* the initializer's integers */
    tinfo qi;
    float *scale;           /* [1] or [channels] */
    size_t n_scale;
} deq_const;

typedef struct {
    deq_const *d;
    int n, cap;
} deq_table;

static deq_const *deq_find(deq_table *t, pv name) {
    for (int i = 0; i < t->n; i++)
        if (pv_eq(t->d[i].name, name)) return &t->d[i];
    return NULL;
}

static void spec_append(char *spec, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void spec_append(char *spec, size_t cap, const char *fmt, ...) {
    size_t n = strlen(spec);
    if (n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec + n, cap - n, fmt, ap);
    va_end(ap);
}

tq_status tq_import_onnx_int8_bytes(tq_qmodel *q, const unsigned char *data, size_t len, const char *name, tq_onnx_info *info) {
    if (!q || !data || !name) TQ_FAIL(TQ_E_ARG, "import: a model, data and a name are required");
    memset(q, 0, sizeof *q);
    if (info) memset(info, 0, sizeof *info);
    ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.file = name;
    ctx *c = &cx;
    deq_table dt = {0};
    tq_qlayer_src src[TQ_INT8_MAX_LAYERS];
    memset(src, 0, sizeof src);
    void *owned[2 * TQ_INT8_MAX_LAYERS];
    int n_owned = 0, n = 0;
    char spec[128] = "";
    tq_status st = index_graph(c, data, len);
    if (st == TQ_OK && info) info->nodes = c->n_node;
    int rank = c->in_rank, H = 1, W = 1, C = 0, flat = 0, fh = 1, fw = 1, fc = 0;
    if (st == TQ_OK) {
        if (rank == 4 && c->in_dims[1] > 0 && c->in_dims[2] > 0 && c->in_dims[3] > 0 && c->in_dims[1] <= 4096 && c->in_dims[2] <= 4096 &&
            c->in_dims[3] <= 4096) {
            C = (int)c->in_dims[1], H = (int)c->in_dims[2], W = (int)c->in_dims[3];
            snprintf(spec, sizeof spec, "%dx%dx%d", H, W, C);
        } else if (rank == 2 && c->in_dims[1] > 0 && c->in_dims[1] <= (1 << 24)) {
            C = (int)c->in_dims[1], flat = 1, fc = C;
            snprintf(spec, sizeof spec, "%d", C);
        } else {
            st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: the input is not [N][C][H][W] or [N][D] with the sizes given", name);
        }
    }
    pv cur_q = {NULL, 0}, cur_f = {NULL, 0}, pend_out = {NULL, 0}, final = {NULL, 0};
    float s_q = 0.0f;
    int32_t z_q = 0;
    /* the layer being read: a Conv / Gemm / AveragePool on the dequantized value, its Relu, then the
     * QuantizeLinear that ends it */
    int pend = 0, pend_kind = 0, pend_relu = 0, softmax = 0, u8 = 0;
    for (int i = 0; st == TQ_OK && i < c->n_node; i++) {
        const onode *nd = &c->node[i];
        pv op = nd->op;
        /* PyTorch's export of a quantized model holds its constants in Constant nodes, makes each
         * bias's zero point with ConstantOfShape and a Cast (0: ONNX requires it of int32), and
         * casts each activation to its own type (uint8) after quantizing it: an alias */
        if (pv_is(op, "Constant")) {
            st = constant_node(c, i, nd);
            continue;
        }
        if (pv_is(op, "ConstantOfShape")) continue;
        if (pv_is(op, "Cast")) {
            if (cur_q.p && pv_eq(nd->in[0], cur_q)) {
                if (attr_i(nd, "to", 0) != (u8 ? DT_UINT8 : DT_INT8)) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "casts a quantized activation to another type");
                    break;
                }
                cur_q = nd->out[0];
            }
            continue;
        }
        if (pv_is(op, "DequantizeLinear") && nd->n_in >= 2) {
            pv t;
            if (find_const(c, nd->in[0], &t)) { /* a weight or a bias */
                if (dt.n == dt.cap) {
                    int cap = dt.cap ? 2 * dt.cap : 16;
                    deq_const *p = tq_realloc(dt.d, (size_t)cap * sizeof *p);
                    if (!p) {
                        st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory", name);
                        break;
                    }
                    dt.d = p, dt.cap = cap;
                }
                deq_const *d = &dt.d[dt.n++];
                memset(d, 0, sizeof *d);
                d->name = nd->out[0];
                tinfo ts;
                if ((st = tensor_ints(c, t, "a quantized constant", &d->q, &d->qi)) != TQ_OK ||
                    (st = const_input(c, i, nd, 1, &d->scale, &ts)) != TQ_OK)
                    break;
                d->n_scale = ts.count;
                /* weights are symmetric (a zero point, where given, is 0), their scales per tensor
                 * or along axis 0, the output channels; a bias's zero point is 0 by ONNX's rule */
                if (d->qi.type == DT_UINT8 || (d->n_scale > 1 && attr_i(nd, "axis", 1) != 0)) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "a quantized constant tinyqat cannot hold (int8 weights, int32 biases; "
                                                       "per-channel scales along axis 0)");
                    break;
                }
                if (d->qi.type == DT_INT8 && nd->n_in > 2) {
                    pv zt;
                    int32_t *zv = NULL;
                    tinfo tz;
                    if (!find_const(c, nd->in[2], &zt)) {
                        st = node_fail(c, i, nd, TQ_E_ARG, "a weight zero point that is not a constant");
                        break;
                    }
                    if ((st = tensor_ints(c, zt, "a weight zero point", &zv, &tz)) != TQ_OK) break;
                    int zero = tz.count == 1 || tz.count == d->n_scale;
                    for (size_t k = 0; k < tz.count; k++) zero &= zv[k] == 0;
                    tq_free(zv);
                    if (!zero) {
                        st = node_fail(c, i, nd, TQ_E_ARG, "weights with a zero point other than 0: tinyqat's weights are symmetric");
                        break;
                    }
                }
                continue;
            }
            if (!pv_eq(nd->in[0], cur_q)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "dequantizes a value that is not the chain's last");
                break;
            }
            float s = 0.0f;
            int32_t z = 0;
            int du8 = 0;
            if ((st = act_qparams(c, i, nd, &s, &z, &du8)) != TQ_OK) break;
            if (s != s_q || z != z_q || du8 != u8) {
                st = node_fail(c, i, nd, TQ_E_ARG, "dequantizes at another scale or zero point than its QuantizeLinear's");
                break;
            }
            cur_f = final = nd->out[0]; /* the model's output, when it is the last */
            continue;
        }
        if (pv_is(op, "QuantizeLinear")) {
            float s = 0.0f;
            int32_t z = 0;
            int qu8 = 0;
            if ((st = act_qparams(c, i, nd, &s, &z, &qu8)) != TQ_OK) break;
            if (cur_q.p && !pend && cur_f.p && pv_eq(nd->in[0], cur_f)) { /* quantized again as it was: the same int8 value */
                if (s != s_q || z != z_q || qu8 != u8) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "requantizes a value without a layer between (tinyqat has none to do it)");
                    break;
                }
                cur_q = nd->out[0], cur_f = (pv){NULL, 0};
                continue;
            }
            if (!cur_q.p) { /* the input's */
                if (!pv_eq(nd->in[0], c->input)) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "the first QuantizeLinear does not read the graph's input");
                    break;
                }
            } else if (!pend || !pv_eq(nd->in[0], pend_out)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "quantizes a value no layer made");
                break;
            } else {
                tq_qlayer_src *L = &src[n - 1];
                L->out_scale = s, L->out_zp = z, L->relu = pend_relu;
                if ((pend_kind == TQ_S8_AVGPOOL || pend_kind == TQ_S8_MAXPOOL || pend_kind == TQ_S8_FLATTEN) && (s != s_q || z != z_q)) {
                    st = node_fail(c, i, nd, TQ_E_ARG, "a pool or flatten that changes the scale");
                    break;
                }
                pend = 0;
            }
            cur_q = nd->out[0], s_q = s, z_q = z, u8 = qu8, cur_f = (pv){NULL, 0};
            continue;
        }
        if (pv_is(op, "Softmax") && final.p && pv_eq(nd->in[0], final) && pv_eq(nd->out[0], c->output) && i == c->n_node - 1) {
            if (info) info->softmax_dropped = 1;
            softmax = 1;
            continue;
        }
        if (n >= TQ_INT8_MAX_LAYERS - 1) {
            st = node_fail(c, i, nd, TQ_E_ARG, "more than %d integer layers", TQ_INT8_MAX_LAYERS);
            break;
        }
        tq_qlayer_src *L = &src[n];
        if (pv_is(op, "Relu")) {
            if (!pend || pend_relu || pend_kind == TQ_S8_AVGPOOL || pend_kind == TQ_S8_MAXPOOL || pend_kind == TQ_S8_FLATTEN ||
                !pv_eq(nd->in[0], pend_out)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Relu that does not follow a Conv or Gemm");
                break;
            }
            pend_relu = 1, pend_out = nd->out[0];
            spec_append(spec, sizeof spec, "r");
            continue;
        }
        if (pv_is(op, "MaxPool") || pv_is(op, "Flatten")) {
            /* on the int8 tensor (tinyqat's form), or between a DequantizeLinear and a QuantizeLinear
             * of one scale (PyTorch's): the same integers either way */
            const int on_q = pv_eq(nd->in[0], cur_q), on_f = cur_f.p && pv_eq(nd->in[0], cur_f);
            if (pend || (!on_q && !on_f)) {
                st = node_fail(c, i, nd, TQ_E_ARG, "does not read the chain's int8 value");
                break;
            }
            int made = 1;
            if (pv_is(op, "Flatten")) {
                made = !flat;
                if (!flat) {
                    *L = (tq_qlayer_src){.in_scale = s_q, .out_scale = s_q, .in_zp = z_q, .out_zp = z_q, .kind = TQ_S8_FLATTEN, .in_h = H,
                                         .in_w = W, .in_c = C, .out_h = 1, .out_w = 1, .out_c = H * W * C, .k = 1, .stride = 1};
                    n++, fh = H, fw = W, fc = C, C = H * W * C, H = W = 1, flat = 1;
                }
            } else {
                int k, s;
                if (flat) st = node_fail(c, i, nd, TQ_E_ARG, "a pool after the flatten");
                if (st != TQ_OK || (st = pool_window(c, i, nd, H, W, &k, &s)) != TQ_OK) break;
                int oh = (H - k) / s + 1, ow = (W - k) / s + 1;
                *L = (tq_qlayer_src){.in_scale = s_q, .out_scale = s_q, .in_zp = z_q, .out_zp = z_q, .kind = TQ_S8_MAXPOOL, .in_h = H,
                                     .in_w = W, .in_c = C, .out_h = oh, .out_w = ow, .out_c = C, .k = k, .stride = s};
                n++, H = oh, W = ow;
                spec_append(spec, sizeof spec, "-m%d", k);
                if (s != k) spec_append(spec, sizeof spec, "s%d", s);
            }
            if (on_q) cur_q = nd->out[0];
            else if (made) pend = 1, pend_kind = L->kind, pend_relu = 0, pend_out = nd->out[0];
            else cur_f = nd->out[0]; /* a flatten of what is flat already: nothing */
            continue;
        }
        if (pend || !cur_f.p || !pv_eq(nd->in[0], cur_f)) {
            st = node_fail(c, i, nd, TQ_E_ARG, "does not read the chain's dequantized value (tinyqat reads QDQ graphs as it writes them)");
            break;
        }
        if (pv_is(op, "AveragePool")) {
            int k, s;
            if (flat) st = node_fail(c, i, nd, TQ_E_ARG, "a pool after the flatten");
            if (st != TQ_OK || (st = pool_window(c, i, nd, H, W, &k, &s)) != TQ_OK) break;
            int oh = (H - k) / s + 1, ow = (W - k) / s + 1;
            *L = (tq_qlayer_src){.in_scale = s_q, .out_scale = s_q, .in_zp = z_q, .out_zp = z_q, .kind = TQ_S8_AVGPOOL, .in_h = H,
                                 .in_w = W, .in_c = C, .out_h = oh, .out_w = ow, .out_c = C, .k = k, .stride = s};
            n++, H = oh, W = ow;
            spec_append(spec, sizeof spec, "-a%d", k);
            if (s != k) spec_append(spec, sizeof spec, "s%d", s);
            pend = 1, pend_kind = TQ_S8_AVGPOOL, pend_relu = 0, pend_out = nd->out[0];
            continue;
        }
        if (!pv_is(op, "Conv") && !pv_is(op, "Gemm")) {
            st = node_fail(c, i, nd, TQ_E_ARG, "not an operator of the QDQ chains tinyqat reads (QuantizeLinear, "
                                               "DequantizeLinear, Conv, Gemm, Relu, MaxPool, AveragePool, Flatten, Constant, Cast, a final "
                                               "Softmax)");
            break;
        }
        deq_const *wd = nd->n_in > 1 ? deq_find(&dt, nd->in[1]) : NULL, *bd = nd->n_in > 2 ? deq_find(&dt, nd->in[2]) : NULL;
        const int gemm = pv_is(op, "Gemm");
        if (!wd || !bd || wd->qi.type != DT_INT8 || bd->qi.type != DT_INT32) {
            st = node_fail(c, i, nd, TQ_E_ARG, "its weight and bias are not dequantized int8 and int32 constants");
            break;
        }
        int O, K = 1, stride = 1, pad = 0, group = 1, OH = 1, OW = 1;
        if (gemm) {
            if (!flat || attr_i(nd, "transB", 0) != 1 || attr_i(nd, "transA", 0) || wd->qi.ndim != 2 || wd->qi.dims[1] != C) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Gemm other than x W^T + b on the flattened value (W [outputs][%d])", C);
                break;
            }
            O = (int)wd->qi.dims[0];
        } else {
            int64_t ks[4], sd[4] = {1, 1}, pd[8] = {0}, dl[4] = {1, 1};
            int nk = attr_ints(nd, "kernel_shape", ks, 4), ns = attr_ints(nd, "strides", sd, 4), np = attr_ints(nd, "pads", pd, 8),
                nl = attr_ints(nd, "dilations", dl, 4);
            group = (int)attr_i(nd, "group", 1);
            if (flat || wd->qi.ndim != 4 || wd->qi.dims[2] != wd->qi.dims[3] || (nk == 2 && ks[0] != wd->qi.dims[2]) || ns < 0 ||
                (ns == 2 && sd[0] != sd[1]) || np < 0 || (np == 4 && (pd[0] != pd[1] || pd[0] != pd[2] || pd[0] != pd[3])) || nl < 0 ||
                (nl == 2 && (dl[0] != 1 || dl[1] != 1)) ||
                !((group == 1 && wd->qi.dims[1] == C) || (group == C && wd->qi.dims[1] == 1 && wd->qi.dims[0] % C == 0))) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a Conv tinyqat cannot hold (square kernel, one stride, equal pads, group 1 or "
                                                   "the channels)");
                break;
            }
            O = (int)wd->qi.dims[0], K = (int)wd->qi.dims[2], stride = (int)sd[0], pad = np == 4 ? (int)pd[0] : 0;
            if (K < 1 || stride < 1 || stride > 64 || pad < 0 || pad > 64 || H + 2 * pad < K || W + 2 * pad < K) {
                st = node_fail(c, i, nd, TQ_E_ARG, "a kernel that does not fit its input");
                break;
            }
            OH = (H + 2 * pad - K) / stride + 1, OW = (W + 2 * pad - K) / stride + 1;
        }
        const int dw = !gemm && group > 1;
        const size_t per = gemm ? (size_t)C : (size_t)K * (size_t)K * (dw ? 1 : (size_t)C), nw = per * (size_t)O;
        if (O < 1 || O > 65536 || wd->qi.count != nw || bd->qi.count != (size_t)O || (wd->n_scale != 1 && wd->n_scale != (size_t)O) ||
            (bd->n_scale != 1 && bd->n_scale != (size_t)O)) {
            st = node_fail(c, i, nd, TQ_E_ARG, "weights, bias or scales of sizes that do not meet (%d outputs)", O);
            break;
        }
        /* the file's integers in tinyqat's layout: OHWI, depthwise [O][K*K], dense [out][in] in NHWC's order */
        int8_t *wq = tq_malloc(nw);
        float *sw = tq_malloc((size_t)O * sizeof(float));
        if (!wq || !sw) {
            tq_free(wq), tq_free(sw);
            st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory", name);
            break;
        }
        owned[n_owned++] = wq, owned[n_owned++] = sw;
        const size_t hw = (size_t)fh * (size_t)fw;
        for (int o = 0; o < O && st == TQ_OK; o++) {
            sw[o] = wd->scale[wd->n_scale == 1 ? 0 : o];
            float step = s_q * sw[o];
            if (!(sw[o] > 0.0f) || !isfinite(sw[o]) || !(step > 0.0f) || !isfinite(step)) st = TQ_E_ARG;
            /* the int32 bias is added to the accumulator as it is: it must be on its grid, s_in s_w */
            const float sb = bd->scale[bd->n_scale == 1 ? 0 : o];
            if (st == TQ_OK && !(fabsf(sb - step) <= 1e-5f * step)) st = TQ_E_SHAPE;
            for (size_t j = 0; j < per; j++) {
                size_t from; /* the ONNX index of tinyqat's weight j of channel o */
                if (gemm) from = (size_t)o * per + (hw > 1 ? (j % (size_t)fc) * hw + j / (size_t)fc : j);
                else if (dw) from = (size_t)o * per + j;
                else {
                    size_t ci = j % (size_t)C, kk = j / (size_t)C; /* OHWI: (ky, kx) then c */
                    from = ((size_t)o * (size_t)C + ci) * (size_t)K * (size_t)K + kk;
                }
                wq[(size_t)o * per + j] = (int8_t)wd->q[from]; /* (an int8 tensor's values, checked in range when read) */
                if (wd->q[from] == -128 && st == TQ_OK) st = TQ_E_NUMERIC;
            }
        }
        if (st == TQ_E_SHAPE) {
            st = node_fail(c, i, nd, TQ_E_ARG, "a bias at another scale than its input's times its weights' (the accumulator's)");
            break;
        }
        if (st == TQ_E_NUMERIC) {
            st = node_fail(c, i, nd, TQ_E_ARG, "a weight of -128: tinyqat's int8 weights are -127..127 (in PyTorch, observe the "
                                               "weights with quant_min=-127, quant_max=127)");
            break;
        }
        if (st != TQ_OK) {
            st = node_fail(c, i, nd, TQ_E_ARG, "scales that are not positive and finite");
            break;
        }
        *L = (tq_qlayer_src){.in = gemm ? C : H * W * C, .out = gemm ? O : OH * OW * O, .w_bits = 8, .w_scale = sw, .in_scale = s_q,
                             .in_zp = z_q, .kind = gemm ? TQ_S8_LINEAR : dw ? TQ_S8_DEPTHWISE : TQ_S8_CONV, .in_h = H, .in_w = W,
                             .in_c = C, .out_h = OH, .out_w = OW, .out_c = O, .k = K, .stride = stride, .pad = pad, .Wq = wq,
                             .bq = bd->q};
        if (gemm) {
            spec_append(spec, sizeof spec, "-%d", O);
            C = O, fh = fw = 1, fc = O;
        } else {
            spec_append(spec, sizeof spec, "-%c%dk%d", dw ? 'd' : 'c', dw ? O / C : O, K);
            if (stride > 1) spec_append(spec, sizeof spec, "s%d", stride);
            if (pad) spec_append(spec, sizeof spec, "p%d", pad);
            H = OH, W = OW, C = O;
        }
        n++;
        pend = 1, pend_kind = L->kind, pend_relu = 0, pend_out = nd->out[0];
    }
    if (st == TQ_OK && (!final.p || !(softmax || pv_eq(final, c->output)) || pend || n == 0 || src[n - 1].kind != TQ_S8_LINEAR))
        st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: not a QDQ chain that ends in a dequantized Gemm (tinyqat's classifier)", name);
    if (st == TQ_OK && (st = tq_qmodel_convert(q, spec, src, n)) != TQ_OK) st = tq_error_set_(st, __FILE__, __LINE__, "%s: %s", name, tq_last_error());
    for (int i = 0; i < n_owned; i++) tq_free(owned[i]);
    for (int i = 0; i < dt.n; i++) tq_free(dt.d[i].q), tq_free(dt.d[i].scale);
    tq_free(dt.d);
    tq_free(c->node), tq_free(c->cst);
    if (st != TQ_OK) tq_qmodel_free(q), memset(q, 0, sizeof *q);
    return st;
}

tq_status tq_import_onnx_int8(tq_qmodel *q, const char *path, tq_onnx_info *info) {
    if (!q || !path) TQ_FAIL(TQ_E_ARG, "import: a model and a path are required");
    unsigned char *data = NULL;
    size_t len = 0;
    tq_status st = tq_file_read_all(path, (size_t)1 << 30, &data, &len);
    if (st == TQ_OK) st = tq_import_onnx_int8_bytes(q, data, len, path, info);
    else memset(q, 0, sizeof *q);
    tq_free(data);
    return st;
}
