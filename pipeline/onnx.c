/* tinyqat export --onnx: see pipeline/onnx.h.
 *
 * ONNX is a protocol buffer (onnx.proto, proto2). Its encoding is small enough to write by hand:
 * a field is a key (field number << 3 | wire type) then its value, a varint (wire 0), a 4-byte
 * little-endian float (wire 5) or a length and bytes (wire 2: strings, packed data and nested
 * messages). A message nests by being written into its own buffer first, then copied into its
 * parent behind its length. Repeated scalars are written one key each (proto2's unpacked form,
 * which every reader takes). Field numbers are onnx.proto's. */
#include "pipeline/onnx.h"

#include <stdio.h>
#include <string.h>

#include "tinyqat.h" /* tq_version */
#include "src/alloc.h"
#include "src/fileio.h"

/* ---- protocol buffer encoding ---- */

static void pb_varint(tq_buf *b, uint64_t v) {
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    tq_buf_put(b, t, n);
}

static void pb_key(tq_buf *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
/* int64 fields: negative values as their 64-bit two's complement (ten bytes) */
static void pb_int(tq_buf *b, int field, int64_t v) { pb_key(b, field, 0), pb_varint(b, (uint64_t)v); }
static void pb_float(tq_buf *b, int field, float v) { pb_key(b, field, 5), tq_buf_f32(b, v); }

static void pb_bytes(tq_buf *b, int field, const void *p, size_t n) {
    pb_key(b, field, 2);
    pb_varint(b, n);
    tq_buf_put(b, p, n);
}

static void pb_str(tq_buf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* the message m as field `field` of b; m is freed (and left empty) */
static void pb_msg(tq_buf *b, int field, tq_buf *m) {
    if (!m->ok) b->ok = 0;
    pb_bytes(b, field, m->p, m->len);
    tq_buf_free(m);
    tq_buf_init(m);
}

/* ---- a graph, written as it is built ---- */

enum { DT_FLOAT = 1, DT_INT8 = 3, DT_INT32 = 6 };            /* TensorProto.DataType */
enum { AT_FLOAT = 1, AT_INT = 2, AT_INTS = 7 };                /* AttributeProto.AttributeType */
enum { G_NODE = 1, G_NAME = 2, G_INIT = 5, G_INPUT = 11, G_OUTPUT = 12 }; /* GraphProto */
enum { N_IN = 1, N_OUT = 2, N_NAME = 3, N_OP = 4, N_ATTR = 5 };           /* NodeProto */

typedef struct {
    tq_buf nodes, inits; /* GraphProto's node and initializer fields, serialized */
    int n_nodes;
    char x[48];          /* the value the next operator reads */
} ox_graph;

typedef struct {
    tq_buf b;
} ox_node;

static void node_begin(ox_node *n, const char *op) {
    tq_buf_init(&n->b);
    pb_str(&n->b, N_OP, op);
}

static void node_in(ox_node *n, const char *name) { pb_str(&n->b, N_IN, name); }

static void attr_begin(tq_buf *a, const char *name, int type) {
    tq_buf_init(a);
    pb_str(a, 1, name);
    pb_int(a, 20, type);
}

static void attr_int(ox_node *n, const char *name, int64_t v) {
    tq_buf a;
    attr_begin(&a, name, AT_INT);
    pb_int(&a, 3, v);
    pb_msg(&n->b, N_ATTR, &a);
}

static void attr_float(ox_node *n, const char *name, float v) {
    tq_buf a;
    attr_begin(&a, name, AT_FLOAT);
    pb_float(&a, 2, v);
    pb_msg(&n->b, N_ATTR, &a);
}

static void attr_ints2(ox_node *n, const char *name, int64_t v0, int64_t v1, int count) {
    tq_buf a;
    attr_begin(&a, name, AT_INTS);
    for (int i = 0; i < count; i++) pb_int(&a, 8, i % 2 ? v1 : v0);
    pb_msg(&n->b, N_ATTR, &a);
}

/* the node's one output: `out`, which becomes the graph's current value */
static void node_end(ox_graph *g, ox_node *n, const char *out) {
    char name[24];
    snprintf(name, sizeof name, "n%d", g->n_nodes++);
    pb_str(&n->b, N_OUT, out);
    pb_str(&n->b, N_NAME, name);
    pb_msg(&g->nodes, G_NODE, &n->b);
    snprintf(g->x, sizeof g->x, "%s", out);
}

/* op(in0[, in1[, in2]]) -> out, no attributes */
static void node3(ox_graph *g, const char *op, const char *in0, const char *in1, const char *in2, const char *out) {
    ox_node n;
    node_begin(&n, op);
    node_in(&n, in0);
    if (in1) node_in(&n, in1);
    if (in2) node_in(&n, in2);
    node_end(g, &n, out);
}

/* An initializer: dims (ndim 0: a scalar), n values of `dtype` from v, little-endian. */
static void init_tensor(ox_graph *g, const char *name, int dtype, const int64_t *dims, int ndim, const void *v, size_t n) {
    tq_buf t, raw;
    tq_buf_init(&t);
    tq_buf_init(&raw);
    for (int i = 0; i < ndim; i++) pb_int(&t, 1, dims[i]);
    pb_int(&t, 2, dtype);
    pb_str(&t, 8, name);
    for (size_t i = 0; i < n; i++) {
        if (dtype == DT_FLOAT) tq_buf_f32(&raw, ((const float *)v)[i]);
        else if (dtype == DT_INT32) tq_buf_u32(&raw, (uint32_t)((const int32_t *)v)[i]);
        else tq_buf_u8(&raw, (uint8_t)((const int8_t *)v)[i]);
    }
    if (!raw.ok) t.ok = 0;
    pb_bytes(&t, 9, raw.p, raw.len);
    tq_buf_free(&raw);
    pb_msg(&g->inits, G_INIT, &t);
}

static void init_scalar_f(ox_graph *g, const char *name, float v) { init_tensor(g, name, DT_FLOAT, NULL, 0, &v, 1); }

/* A float tensor's name, type and shape (dims < 0: the batch, left free as "N"). */
static void value_info(tq_buf *graph, int field, const char *name, const int64_t *dims, int ndim) {
    tq_buf shape, tensor, type, vi;
    tq_buf_init(&shape), tq_buf_init(&tensor), tq_buf_init(&type), tq_buf_init(&vi);
    for (int i = 0; i < ndim; i++) {
        tq_buf d;
        tq_buf_init(&d);
        if (dims[i] < 0) pb_str(&d, 2, "N");
        else pb_int(&d, 1, dims[i]);
        pb_msg(&shape, 1, &d);
    }
    pb_int(&tensor, 1, DT_FLOAT);
    pb_msg(&tensor, 2, &shape);
    pb_msg(&type, 1, &tensor);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(graph, field, &vi);
}

/* ModelProto around the graph (IR version 7, the default opset at 13), written atomically; with
 * softmax, a Softmax over the logits gives the output. */
static tq_status save_model(ox_graph *g, const char *path, const int64_t *in_dims, int in_ndim, int64_t classes, int softmax,
                            const char *doc) {
    if (softmax) {
        ox_node n;
        node_begin(&n, "Softmax");
        node_in(&n, "logits");
        attr_int(&n, "axis", 1);
        node_end(g, &n, "probabilities");
    }
    tq_buf graph, opset, model;
    tq_buf_init(&graph), tq_buf_init(&opset), tq_buf_init(&model);
    if (!g->nodes.ok || !g->inits.ok) graph.ok = 0;
    tq_buf_put(&graph, g->nodes.p, g->nodes.len);
    pb_str(&graph, G_NAME, "tinyqat");
    tq_buf_put(&graph, g->inits.p, g->inits.len);
    value_info(&graph, G_INPUT, "input", in_dims, in_ndim);
    value_info(&graph, G_OUTPUT, softmax ? "probabilities" : "logits", (const int64_t[]){-1, classes}, 2);
    pb_int(&opset, 2, 13);
    pb_int(&model, 1, 7);
    pb_str(&model, 2, "tinyqat");
    pb_str(&model, 3, tq_version());
    pb_str(&model, 6, doc);
    pb_msg(&model, 8, &opset);
    pb_msg(&model, 7, &graph);
    tq_status st = model.ok ? tq_file_write_atomic(path, model.p, model.len) : tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "onnx: out of memory");
    tq_buf_free(&model);
    return st;
}

static void graph_free(ox_graph *g) { tq_buf_free(&g->nodes), tq_buf_free(&g->inits); }

/* Where the weight of output o at kernel row ky, column kx, input channel c of a convolution
 * (depthwise: c = 0) sits in ONNX's OIHW layout, and where tinyqat keeps it: OHWI for a
 * convolution; for a depthwise one [OC][KH*KW] in the float model, 1HWO in the integer one. */
static size_t oihw(int o, int c, int ky, int kx, int IC, int KH, int KW) { return (((size_t)o * (size_t)IC + (size_t)c) * (size_t)KH + (size_t)ky) * (size_t)KW + (size_t)kx; }

/* Column j of ONNX's flattened NCHW input (c, h, w) is tinyqat's NHWC column (h, w, c). */
static size_t nhwc_col(size_t j, int H, int W, int C) {
    size_t hw = (size_t)H * (size_t)W, c = j / hw, p = j % hw;
    return p * (size_t)C + c;
}

/* ---- the integer model as a QDQ graph ---- */

/* x (int8, scale xs, zero point xz) -> float, named out */
static void dequant(ox_graph *g, const char *x, const char *xs, const char *xz, const char *out) { node3(g, "DequantizeLinear", x, xs, xz, out); }

/* The scale and zero point initializers of a quantized activation, named tag_s and tag_z. */
static void act_params(ox_graph *g, const char *tag, float s, int32_t z, char *sn, char *zn, size_t cap) {
    snprintf(sn, cap, "%s_s", tag);
    snprintf(zn, cap, "%s_z", tag);
    int8_t z8 = (int8_t)z;
    init_scalar_f(g, sn, s);
    init_tensor(g, zn, DT_INT8, NULL, 0, &z8, 1);
}

/* A dequantized weight or bias: q (int8 or int32, ONNX layout, dims) at scale[C] (one scalar
 * when every channel has the same) with zero point 0, per output channel (axis 0). */
static void const_dq(ox_graph *g, const char *tag, int dtype, const void *q, const int64_t *dims, int ndim, size_t n, const float *scale,
                     int C, int same) {
    char qn[64], sn[64], zn[64];
    snprintf(qn, sizeof qn, "%s_q", tag);
    snprintf(sn, sizeof sn, "%s_s", tag);
    snprintf(zn, sizeof zn, "%s_z", tag);
    init_tensor(g, qn, dtype, dims, ndim, q, n);
    const int64_t nC = same ? 0 : C;
    void *zeros = tq_calloc((size_t)C, 4);
    if (!zeros) g->inits.ok = 0;
    else init_tensor(g, zn, dtype, &nC, same ? 0 : 1, zeros, same ? 1 : (size_t)C);
    tq_free(zeros);
    init_tensor(g, sn, DT_FLOAT, &nC, same ? 0 : 1, scale, same ? 1 : (size_t)C);
    ox_node nd;
    node_begin(&nd, "DequantizeLinear");
    node_in(&nd, qn), node_in(&nd, sn), node_in(&nd, zn);
    if (!same) attr_int(&nd, "axis", 0);
    node_end(g, &nd, tag);
}

static tq_status build_qdq(ox_graph *g, const tq_qmodel *q) {
    const tq_qlayer *L0 = &q->layer[0];
    char xs[48], xz[48], nm[48], in[48];
    act_params(g, "input", L0->in_scale, L0->in_zp, xs, xz, sizeof xs);
    node3(g, "QuantizeLinear", "input", xs, xz, "input_q");
    int flat_h = 1, flat_w = 1, flat_c = 1; /* the NHWC image a flatten just turned into a row */
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        char tag[24];
        snprintf(tag, sizeof tag, "l%d", l);
        if (L->kind == TQ_S8_FLATTEN || L->kind == TQ_S8_MAXPOOL) { /* on the int8 values: exact */
            ox_node n;
            node_begin(&n, L->kind == TQ_S8_FLATTEN ? "Flatten" : "MaxPool");
            node_in(&n, g->x);
            if (L->kind == TQ_S8_FLATTEN) {
                attr_int(&n, "axis", 1);
                flat_h = L->in_h, flat_w = L->in_w, flat_c = L->in_c;
            } else {
                attr_ints2(&n, "kernel_shape", L->k, L->k, 2);
                attr_ints2(&n, "strides", L->stride, L->stride, 2);
            }
            snprintf(nm, sizeof nm, "%s_%s", tag, L->kind == TQ_S8_FLATTEN ? "flat" : "pool");
            node_end(g, &n, nm);
            continue;
        }
        snprintf(in, sizeof in, "%s_in", tag);
        dequant(g, g->x, xs, xz, in);
        ox_node n;
        if (L->kind == TQ_S8_AVGPOOL) {
            node_begin(&n, "AveragePool");
            node_in(&n, in);
            attr_ints2(&n, "kernel_shape", L->k, L->k, 2);
            attr_ints2(&n, "strides", L->stride, L->stride, 2);
        } else {
            /* int8 weights in ONNX's layout, int32 bias at s_in s_w[o] */
            const int C = L->out_c;
            const size_t nw = tq_qlayer_weights(L);
            int8_t *w = tq_malloc(nw);
            float *bs = tq_malloc((size_t)C * sizeof(float));
            if (!w || !bs) {
                tq_free(w), tq_free(bs);
                TQ_FAIL(TQ_E_NOMEM, "onnx: out of memory");
            }
            const int bits = tq_qlayer_storage_bits(L->w_bits);
            int64_t wd[4];
            int wdim = 4;
            if (L->kind == TQ_S8_LINEAR) { /* [out][in], columns in ONNX's flatten order */
                wdim = 2, wd[0] = L->out, wd[1] = L->in;
                for (int o = 0; o < L->out; o++)
                    for (size_t j = 0; j < (size_t)L->in; j++)
                        w[(size_t)o * (size_t)L->in + j] =
                            (int8_t)tq_s8_unpack(L->w, bits, (size_t)o * (size_t)L->in + nhwc_col(j, flat_h, flat_w, flat_c));
                flat_h = flat_w = 1, flat_c = L->out;
            } else if (L->kind == TQ_S8_CONV) { /* OHWI -> OIHW */
                wd[0] = C, wd[1] = L->in_c, wd[2] = wd[3] = L->k;
                size_t i = 0;
                for (int o = 0; o < C; o++)
                    for (int ky = 0; ky < L->k; ky++)
                        for (int kx = 0; kx < L->k; kx++)
                            for (int c = 0; c < L->in_c; c++) w[oihw(o, c, ky, kx, L->in_c, L->k, L->k)] = (int8_t)tq_s8_unpack(L->w, bits, i++);
            } else { /* depthwise: 1HWO -> [OC][1][KH][KW] */
                wd[0] = C, wd[1] = 1, wd[2] = wd[3] = L->k;
                size_t i = 0;
                for (int ky = 0; ky < L->k; ky++)
                    for (int kx = 0; kx < L->k; kx++)
                        for (int o = 0; o < C; o++) w[oihw(o, 0, ky, kx, 1, L->k, L->k)] = (int8_t)tq_s8_unpack(L->w, bits, i++);
            }
            int same = 1;
            for (int o = 0; o < C; o++) {
                bs[o] = L->in_scale * L->w_scale[o]; /* the product the converter used */
                same &= L->w_scale[o] == L->w_scale[0];
            }
            char wn[48], bn[48];
            snprintf(wn, sizeof wn, "%s_w", tag);
            snprintf(bn, sizeof bn, "%s_b", tag);
            const int64_t bd = C;
            const_dq(g, wn, DT_INT8, w, wd, wdim, nw, L->w_scale, C, same);
            const_dq(g, bn, DT_INT32, L->bias, &bd, 1, (size_t)C, bs, C, same);
            tq_free(w), tq_free(bs);
            node_begin(&n, L->kind == TQ_S8_LINEAR ? "Gemm" : "Conv");
            node_in(&n, in), node_in(&n, wn), node_in(&n, bn);
            if (L->kind == TQ_S8_LINEAR) {
                attr_int(&n, "transB", 1);
            } else {
                attr_ints2(&n, "kernel_shape", L->k, L->k, 2);
                attr_ints2(&n, "strides", L->stride, L->stride, 2);
                attr_ints2(&n, "pads", L->pad, L->pad, 4);
                if (L->kind == TQ_S8_DEPTHWISE) attr_int(&n, "group", L->in_c);
            }
        }
        snprintf(nm, sizeof nm, "%s_y", tag);
        node_end(g, &n, nm);
        if (L->relu) { /* the requantization's clamp at z_y, the quantized zero */
            snprintf(nm, sizeof nm, "%s_relu", tag);
            node3(g, "Relu", g->x, NULL, NULL, nm);
        }
        act_params(g, tag, L->out_scale, L->out_zp, xs, xz, sizeof xs);
        snprintf(nm, sizeof nm, "%s_q", tag);
        node3(g, "QuantizeLinear", g->x, xs, xz, nm);
    }
    dequant(g, g->x, xs, xz, "logits");
    return g->nodes.ok && g->inits.ok ? TQ_OK : tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "onnx: out of memory");
}

static void input_dims(int h, int w, int c, int dense_in, int64_t *dims, int *ndim) {
    if (dense_in) {
        dims[0] = -1, dims[1] = dense_in, *ndim = 2;
    } else {
        dims[0] = -1, dims[1] = c, dims[2] = h, dims[3] = w, *ndim = 4;
    }
}

tq_status tq_export_onnx(const tq_qmodel *q, const char *path, int softmax) {
    if (!q || !path) TQ_FAIL(TQ_E_ARG, "onnx: a model and a path are required");
    if (tq_int8_net_check(&q->net) != TQ_INT8_OK) TQ_FAIL(TQ_E_ARG, "onnx: the integer model is not a valid network");
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].relu == 2)
            TQ_FAIL(TQ_E_ARG, "onnx: layer %d of %s ends in a ReLU6, which this exporter does not write yet (export --tflite writes it)", l,
                    q->spec);
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].kind == TQ_S8_SOFTMAX || q->layer[l].kind == TQ_S8_MEAN)
            TQ_FAIL(TQ_E_ARG, "onnx: layer %d of %s is an int8 %s, which this exporter does not write (export --tflite writes it)", l,
                    q->spec, tq_qlayer_kind_name(q->layer[l].kind));
    if (!tq_qmodel_is_chain(q))
        TQ_FAIL(TQ_E_ARG, "onnx: model %s is a graph (an add, a layer reading an earlier one, or a non-square kernel); this exporter writes chains of square kernels only", q->spec);
    tq_status st = tq_qmodel_check_scales(q, "onnx");
    if (st != TQ_OK) return st;
    ox_graph g;
    memset(&g, 0, sizeof g);
    tq_buf_init(&g.nodes), tq_buf_init(&g.inits);
    st = build_qdq(&g, q);
    const tq_qlayer *L0 = &q->layer[0], *Ln = &q->layer[q->n_layers - 1];
    int64_t dims[4];
    int nd;
    input_dims(L0->in_h, L0->in_w, L0->in_c, L0->kind == TQ_S8_LINEAR ? L0->in : 0, dims, &nd);
    if (st == TQ_OK)
        st = save_model(&g, path, dims, nd, Ln->out, softmax,
                        "tinyqat integer model as QDQ. Input: p/255 for pixels p, NCHW. Output: the int8 logits, dequantized.");
    graph_free(&g);
    return st;
}

/* ---- the float model ---- */

/* Stage s's convolution and batch norm, reading g->x. */
static tq_status conv_float(ox_graph *g, const tq_unit *S, int s) {
    const tq_conv_shape *cs = &S->conv;
    char nm[48], wn[48], bn[48];
    const int IC = cs->depthwise ? 1 : cs->C;
    const size_t nw = (size_t)cs->OC * (size_t)IC * (size_t)cs->KH * (size_t)cs->KW;
    float *w = tq_malloc(nw * sizeof(float));
    if (!w) TQ_FAIL(TQ_E_NOMEM, "onnx: out of memory");
    size_t i = 0; /* OHWI (depthwise: [OC][KH*KW], which is OIHW with I = 1) */
    for (int o = 0; o < cs->OC; o++)
        for (int ky = 0; ky < cs->KH; ky++)
            for (int kx = 0; kx < cs->KW; kx++)
                for (int c = 0; c < IC; c++) w[oihw(o, c, ky, kx, IC, cs->KH, cs->KW)] = S->W[i++];
    snprintf(wn, sizeof wn, "s%d_w", s);
    init_tensor(g, wn, DT_FLOAT, (const int64_t[]){cs->OC, IC, cs->KH, cs->KW}, 4, w, nw);
    tq_free(w);
    const int64_t oc = cs->OC;
    ox_node n;
    node_begin(&n, "Conv");
    node_in(&n, g->x), node_in(&n, wn);
    if (S->b) {
        snprintf(bn, sizeof bn, "s%d_b", s);
        init_tensor(g, bn, DT_FLOAT, &oc, 1, S->b, (size_t)oc);
        node_in(&n, bn);
    }
    attr_ints2(&n, "kernel_shape", cs->KH, cs->KW, 2);
    attr_ints2(&n, "strides", cs->stride, cs->stride_w, 2);
    {
        tq_buf a; /* pads: top, left, bottom, right (SAME puts its odd one below and right) */
        attr_begin(&a, "pads", AT_INTS);
        const int64_t pv[4] = {cs->pad, cs->pad_w, cs->pad_b, cs->pad_r};
        for (int k = 0; k < 4; k++) pb_int(&a, 8, pv[k]);
        pb_msg(&n.b, N_ATTR, &a);
    }
    if (cs->depthwise) attr_int(&n, "group", cs->C);
    snprintf(nm, sizeof nm, "s%d_conv", s);
    node_end(g, &n, nm);
    if (S->bn) { /* evaluation: the running statistics */
        static const char *part[4] = {"gamma", "beta", "mean", "var"};
        const float *v[4] = {S->gamma, S->beta, S->running_mean, S->running_var};
        char pn[4][48];
        node_begin(&n, "BatchNormalization");
        node_in(&n, g->x);
        for (int k = 0; k < 4; k++) {
            snprintf(pn[k], sizeof pn[k], "s%d_bn_%s", s, part[k]);
            init_tensor(g, pn[k], DT_FLOAT, &oc, 1, v[k], (size_t)oc);
            node_in(&n, pn[k]);
        }
        attr_float(&n, "epsilon", S->bn_state.eps);
        snprintf(nm, sizeof nm, "s%d_bn", s);
        node_end(g, &n, nm);
    }
    return TQ_OK;
}

static tq_status build_float(ox_graph *g, const tq_model *m) {
    snprintf(g->x, sizeof g->x, "input");
    if (m->in_mean != 0.0f || m->in_std != 1.0f) { /* x = (p/255 - mean) / std, as tq_model_input */
        init_scalar_f(g, "in_mean", m->in_mean);
        init_scalar_f(g, "in_std", m->in_std);
        node3(g, "Sub", "input", "in_mean", NULL, "input_centered");
        node3(g, "Div", "input_centered", "in_std", NULL, "input_norm");
    }
    char nm[48], wn[48], bn[48], in_name[sizeof g->x], out_of[TQ_MAX_STAGES][sizeof g->x];
    snprintf(in_name, sizeof in_name, "%s", g->x);
    for (int s = 0; s < m->n_stages; s++) {
        const tq_unit *S = &m->unit[s];
        /* a graph: the stage reads its source's output, not necessarily the value before it */
        snprintf(g->x, sizeof g->x, "%s", S->src[0] < 0 ? in_name : out_of[S->src[0]]);
        if (S->kind == TQ_UNIT_ADD) {
            snprintf(nm, sizeof nm, "s%d_add", s);
            node3(g, "Add", g->x, out_of[S->src[1]], NULL, nm);
        } else if (S->kind == TQ_UNIT_CONCAT) { /* along NCHW's channels */
            ox_node n;
            node_begin(&n, "Concat");
            node_in(&n, g->x);
            node_in(&n, out_of[S->src[1]]);
            attr_int(&n, "axis", 1);
            snprintf(nm, sizeof nm, "s%d_concat", s);
            node_end(g, &n, nm);
        } else {
            TQ_TRY(conv_float(g, S, s));
        }
        if (S->relu == 2) { /* ReLU6: Clip with its bounds as inputs (opset 11 on) */
            char lo[32], hi[32];
            snprintf(nm, sizeof nm, "s%d_relu6", s);
            snprintf(lo, sizeof lo, "s%d_relu6_lo", s);
            snprintf(hi, sizeof hi, "s%d_relu6_hi", s);
            init_scalar_f(g, lo, 0.0f);
            init_scalar_f(g, hi, 6.0f);
            node3(g, "Clip", g->x, lo, hi, nm);
        } else if (S->relu) {
            snprintf(nm, sizeof nm, "s%d_relu", s);
            node3(g, "Relu", g->x, NULL, NULL, nm);
        }
        if (S->pool) {
            ox_node n;
            node_begin(&n, S->pool == 1 ? "MaxPool" : "AveragePool");
            node_in(&n, g->x);
            attr_ints2(&n, "kernel_shape", S->pool_shape.K, S->pool_shape.KW, 2);
            attr_ints2(&n, "strides", S->pool_shape.stride, S->pool_shape.stride, 2);
            snprintf(nm, sizeof nm, "s%d_pool", s);
            node_end(g, &n, nm);
        }
        snprintf(out_of[s], sizeof out_of[s], "%s", g->x);
    }
    int fh = 1, fw = 1, fc = 1;
    if (m->n_stages) {
        const tq_unit *S = &m->unit[m->n_stages - 1];
        fh = S->out_h, fw = S->out_w, fc = S->out_c;
        ox_node n;
        node_begin(&n, "Flatten");
        node_in(&n, g->x);
        attr_int(&n, "axis", 1);
        node_end(g, &n, "flat");
    }
    for (int l = 0; l < m->n_layers; l++) {
        const tq_unit *L = &TQ_DENSE(m, l);
        const int in = L->conv.C, out = L->conv.OC;
        float *w = tq_malloc((size_t)in * (size_t)out * sizeof(float));
        if (!w) TQ_FAIL(TQ_E_NOMEM, "onnx: out of memory");
        for (int o = 0; o < out; o++) /* columns in ONNX's flatten order (the first layer after stages) */
            for (size_t j = 0; j < (size_t)in; j++)
                w[(size_t)o * (size_t)in + j] = L->W[(size_t)o * (size_t)in + (l ? j : nhwc_col(j, fh, fw, fc))];
        snprintf(wn, sizeof wn, "d%d_w", l);
        snprintf(bn, sizeof bn, "d%d_b", l);
        init_tensor(g, wn, DT_FLOAT, (const int64_t[]){out, in}, 2, w, (size_t)in * (size_t)out);
        tq_free(w);
        const int64_t o64 = out;
        init_tensor(g, bn, DT_FLOAT, &o64, 1, L->b, (size_t)out);
        const int last = l == m->n_layers - 1;
        ox_node n;
        node_begin(&n, "Gemm");
        node_in(&n, g->x), node_in(&n, wn), node_in(&n, bn);
        attr_int(&n, "transB", 1);
        snprintf(nm, sizeof nm, "d%d", l);
        node_end(g, &n, last && !L->relu ? "logits" : nm);
        if (L->relu) {
            snprintf(nm, sizeof nm, "d%d_relu", l);
            node3(g, "Relu", g->x, NULL, NULL, last ? "logits" : nm);
        }
    }
    return g->nodes.ok && g->inits.ok ? TQ_OK : tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "onnx: out of memory");
}

tq_status tq_export_onnx_float(const tq_model *m, const char *path, int softmax) {
    if (!m || !path) TQ_FAIL(TQ_E_ARG, "onnx: a model and a path are required");
    if (m->qat)
        TQ_FAIL(TQ_E_ARG, "onnx: model %s is quantized: its deployed form is the integer model (tinyqat convert, then export the .tqm "
                          "--onnx for the QDQ graph)", m->spec);
    if (m->n_layers < 1) TQ_FAIL(TQ_E_ARG, "onnx: model %s has no dense layer", m->spec);
    ox_graph g;
    memset(&g, 0, sizeof g);
    tq_buf_init(&g.nodes), tq_buf_init(&g.inits);
    tq_status st = build_float(&g, m);
    int64_t dims[4];
    int nd;
    input_dims(m->in_h, m->in_w, m->in_c, m->n_stages ? 0 : tq_model_inputs(m), dims, &nd);
    if (st == TQ_OK)
        st = save_model(&g, path, dims, nd, tq_model_classes(m), softmax, "tinyqat float model. Input: p/255 for pixels p, NCHW. Output: the logits.");
    graph_free(&g);
    return st;
}
