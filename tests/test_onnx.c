/* The ONNX writer (pipeline/onnx.c) read back by a protocol buffer reader written here from the
 * encoding's rules (keys of field number and wire type, varints, length-delimited messages): the
 * operators in order with their attributes, the initializers' shapes, types and bytes against the
 * model written (OIHW weights, the dense columns in NCHW's flatten order, biases at s_in s_w), the
 * float graph's weights, batch norm and normalization, and the refusals. ONNX Runtime and the
 * ONNX checker reading the files are tests/onnx_test.sh; this needs nothing installed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "layers/model.h"
#include "pipeline/onnx.h"
#include "src/alloc.h"
#include "src/fileio.h"
#include "src/qmodel.h"
#include "src/rng.h"

#include "tests/tq_test_tmpdir.h"

/* ---- a minimal protocol buffer reader ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} msg;

typedef struct {
    int field, wire;
    uint64_t v; /* a varint, or a fixed32's bits */
    msg sub;    /* a length-delimited value */
} pbf;

static uint64_t varint(msg m, size_t *at) {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        assert_true(*at < m.n && shift < 64);
        uint8_t b = m.p[(*at)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
    }
}

/* the next field of m from *at; 0 at the end. Every length must fit in the message. */
static int next(msg m, size_t *at, pbf *f) {
    if (*at >= m.n) return 0;
    uint64_t key = varint(m, at);
    f->field = (int)(key >> 3), f->wire = (int)(key & 7);
    if (f->wire == 0) {
        f->v = varint(m, at);
    } else if (f->wire == 2) {
        uint64_t len = varint(m, at);
        assert_true(len <= m.n - *at);
        f->sub = (msg){m.p + *at, (size_t)len};
        *at += (size_t)len;
    } else {
        assert_int_equal(f->wire, 5);
        assert_true(*at + 4 <= m.n);
        f->v = (uint64_t)m.p[*at] | (uint64_t)m.p[*at + 1] << 8 | (uint64_t)m.p[*at + 2] << 16 | (uint64_t)m.p[*at + 3] << 24;
        *at += 4;
    }
    return 1;
}

/* the i-th occurrence of field in m (asserting there is one) */
static pbf nth(msg m, int field, int i) {
    size_t at = 0;
    pbf f;
    while (next(m, &at, &f))
        if (f.field == field && i-- == 0) return f;
    fail_msg("field %d: fewer occurrences than asked", field);
    return f;
}

static int count(msg m, int field) {
    size_t at = 0;
    int n = 0;
    pbf f;
    while (next(m, &at, &f)) n += f.field == field;
    return n;
}

static int is_str(msg s, const char *t) { return s.n == strlen(t) && !memcmp(s.p, t, s.n); }

static float f32_at(const uint8_t *p) {
    uint32_t x = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* The graph's initializer (TensorProto) named name: its dims, data type and raw bytes. */
typedef struct {
    int64_t dims[4];
    int ndim, type;
    msg raw;
} tensor;

static tensor init_named(msg graph, const char *name) {
    for (int i = 0; i < count(graph, 5); i++) {
        msg t = nth(graph, 5, i).sub;
        if (!is_str(nth(t, 8, 0).sub, name)) continue;
        tensor r = {.ndim = count(t, 1), .type = (int)nth(t, 2, 0).v, .raw = nth(t, 9, 0).sub};
        for (int d = 0; d < r.ndim && d < 4; d++) r.dims[d] = (int64_t)nth(t, 1, d).v;
        return r;
    }
    fail_msg("no initializer %s", name);
    return (tensor){0};
}

/* attribute name of node: its int (ints: its k-th) */
static int64_t attr_i(msg node, const char *name, int k) {
    for (int i = 0; i < count(node, 5); i++) {
        msg a = nth(node, 5, i).sub;
        if (!is_str(nth(a, 1, 0).sub, name)) continue;
        return (int64_t)(k < 0 ? nth(a, 3, 0).v : nth(a, 8, k).v);
    }
    fail_msg("no attribute %s", name);
    return 0;
}

static int has_attr(msg node, const char *name) {
    for (int i = 0; i < count(node, 5); i++)
        if (is_str(nth(nth(node, 5, i).sub, 1, 0).sub, name)) return 1;
    return 0;
}

/* the model file's graph, and its nodes that are not QuantizeLinear / DequantizeLinear */
static msg read_graph(const char *path, unsigned char **data) {
    size_t len;
    assert_int_equal(tq_file_read_all(path, 1 << 24, data, &len), TQ_OK);
    msg model = {*data, len};
    assert_int_equal(nth(model, 1, 0).v, 7);                        /* IR version 7 */
    assert_int_equal(nth(nth(model, 8, 0).sub, 2, 0).v, 13);        /* opset 13 */
    return nth(model, 7, 0).sub;
}

static int compute_nodes(msg graph, msg *out, const char **ops, int cap) {
    int n = 0;
    for (int i = 0; i < count(graph, 1); i++) {
        msg node = nth(graph, 1, i).sub, op = nth(node, 4, 0).sub;
        if (is_str(op, "QuantizeLinear") || is_str(op, "DequantizeLinear")) continue;
        assert_true(n < cap);
        int k = 0;
        while (ops[k] && !is_str(op, ops[k])) k++;
        assert_non_null(ops[k]); /* an operator this test knows */
        out[n++] = node;
    }
    return n;
}

static int op_is(msg node, const char *op) { return is_str(nth(node, 4, 0).sub, op); }

static const char *KNOWN[] = {"Conv", "Relu", "AveragePool", "MaxPool", "Flatten", "Gemm", "BatchNormalization", "Sub", "Div", NULL};

/* 6x6x2 -> conv k3 p1 to 3, ReLU -> depthwise k2 s2 (x2, 4-bit) -> average pool 2 s1 -> flatten
 * (2x2x6: the column order matters) -> linear 4 */
static void make_qdq(tq_qmodel *q) {
    static float Wc[3 * 9 * 2], Bc[3], Sc[3], Wd[6 * 4], Bd[6], Sd[6], Wl[4 * 24], Bl[4], Sl[4];
    tq_rng r;
    tq_rng_seed(&r, 7);
    for (size_t i = 0; i < sizeof Wc / sizeof Wc[0]; i++) Wc[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wd / sizeof Wd[0]; i++) Wd[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wl / sizeof Wl[0]; i++) Wl[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 3; i++) Bc[i] = tq_rng_uniform_in(&r, -1, 1), Sc[i] = 0.01f * (float)(i + 1);
    for (int i = 0; i < 6; i++) Bd[i] = tq_rng_uniform_in(&r, -1, 1), Sd[i] = 0.05f + 0.01f * (float)i;
    for (int i = 0; i < 4; i++) Bl[i] = tq_rng_uniform_in(&r, -1, 1), Sl[i] = 0.03f;
    tq_qlayer_src src[5] = {
        {.relu = 1, .w_bits = 8, .W = Wc, .b = Bc, .w_scale = Sc, .in_scale = 1.0f / 255, .out_scale = 0.05f, .in_zp = -128,
         .out_zp = -128, .kind = TQ_S8_CONV, .in_h = 6, .in_w = 6, .in_c = 2, .out_h = 6, .out_w = 6, .out_c = 3, .k = 3,
         .stride = 1, .pad = 1},
        {.w_bits = 4, .W = Wd, .b = Bd, .w_scale = Sd, .in_scale = 0.05f, .out_scale = 0.07f, .in_zp = -128, .out_zp = 3,
         .kind = TQ_S8_DEPTHWISE, .in_h = 6, .in_w = 6, .in_c = 3, .out_h = 3, .out_w = 3, .out_c = 6, .k = 2, .stride = 2},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_AVGPOOL, .in_h = 3, .in_w = 3, .in_c = 6,
         .out_h = 2, .out_w = 2, .out_c = 6, .k = 2, .stride = 1},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_FLATTEN, .in_h = 2, .in_w = 2, .in_c = 6,
         .out_h = 1, .out_w = 1, .out_c = 24, .k = 1, .stride = 1},
        {.in = 24, .out = 4, .w_bits = 8, .W = Wl, .b = Bl, .w_scale = Sl, .in_scale = 0.07f, .out_scale = 0.1f, .in_zp = 3, .out_zp = -2},
    };
    assert_int_equal(tq_qmodel_convert(q, "6x6x2-c3k3p1r-d2k2s2-a2s1-4", src, 5), TQ_OK);
}

static void qdq_graph_reads_back(void **state) {
    (void)state;
    tq_qmodel q;
    make_qdq(&q);
    char path[128];
    snprintf(path, sizeof path, "%s/m.onnx", dir);
    assert_int_equal(tq_export_onnx(&q, path, 0), TQ_OK);
    unsigned char *data;
    msg g = read_graph(path, &data);
    msg nodes[16];
    int n = compute_nodes(g, nodes, KNOWN, 16);
    const char *want[6] = {"Conv", "Relu", "Conv", "AveragePool", "Flatten", "Gemm"};
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) assert_true(op_is(nodes[i], want[i]));
    assert_int_equal(attr_i(nodes[0], "pads", 0), 1);
    assert_int_equal(attr_i(nodes[0], "kernel_shape", 1), 3);
    assert_false(has_attr(nodes[0], "group"));
    assert_int_equal(attr_i(nodes[2], "group", -1), 3); /* depthwise: one group per input channel */
    assert_int_equal(attr_i(nodes[2], "strides", 1), 2);
    assert_int_equal(attr_i(nodes[3], "kernel_shape", 0), 2);
    assert_int_equal(attr_i(nodes[3], "strides", 0), 1);
    assert_int_equal(attr_i(nodes[5], "transB", -1), 1);
    /* one QuantizeLinear for the input and one for each layer that computes */
    int nq = 0;
    for (int i = 0; i < count(g, 1); i++) nq += op_is(nth(g, 1, i).sub, "QuantizeLinear");
    assert_int_equal(nq, 1 + 4);
    /* the input: at s = 1/255, z = -128; the graph input [N][2][6][6] */
    assert_true(f32_at(init_named(g, "input_s").raw.p) == 1.0f / 255);
    assert_int_equal((int8_t)init_named(g, "input_z").raw.p[0], -128);
    msg shape = nth(nth(nth(nth(g, 11, 0).sub, 2, 0).sub, 1, 0).sub, 2, 0).sub; /* input -> type -> tensor_type -> shape */
    assert_int_equal(count(shape, 1), 4);
    assert_true(is_str(nth(nth(shape, 1, 0).sub, 2, 0).sub, "N"));
    assert_int_equal(nth(nth(shape, 1, 1).sub, 1, 0).v, 2);
    /* the conv's weights: OIHW int8, the 8-bit values of OHWI */
    const tq_qlayer *L = &q.layer[0];
    tensor w = init_named(g, "l0_w_q");
    assert_int_equal(w.type, 3);
    assert_int_equal(w.ndim, 4);
    assert_true(w.dims[0] == 3 && w.dims[1] == 2 && w.dims[2] == 3 && w.dims[3] == 3);
    for (int o = 0; o < 3; o++)
        for (int c = 0; c < 2; c++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    assert_int_equal((int8_t)w.raw.p[((o * 2 + c) * 3 + ky) * 3 + kx], L->w[((o * 3 + ky) * 3 + kx) * 2 + c]);
    /* its scales per channel (axis 0), its bias int32 at s_in s_w[o] */
    tensor ws = init_named(g, "l0_w_s"), b = init_named(g, "l0_b_q"), bs = init_named(g, "l0_b_s");
    assert_int_equal(ws.ndim, 1);
    assert_int_equal(b.type, 6);
    for (int o = 0; o < 3; o++) {
        assert_true(f32_at(ws.raw.p + 4 * o) == L->w_scale[o]);
        assert_true(f32_at(bs.raw.p + 4 * o) == L->in_scale * L->w_scale[o]);
    }
    assert_memory_equal(b.raw.p, L->bias, 12);
    /* the depthwise's: [6][1][2][2] from 1HWO, 4-bit values unpacked */
    L = &q.layer[1];
    w = init_named(g, "l1_w_q");
    assert_true(w.dims[0] == 6 && w.dims[1] == 1 && w.dims[2] == 2 && w.dims[3] == 2);
    for (int o = 0; o < 6; o++)
        for (int k = 0; k < 4; k++) assert_int_equal((int8_t)w.raw.p[o * 4 + k], tq_s8_unpack(L->w, 4, (size_t)k * 6 + (size_t)o));
    /* the dense layer's columns in NCHW order: ONNX's column c*4 + p is tinyqat's p*6 + c */
    L = &q.layer[4];
    w = init_named(g, "l4_w_q");
    assert_true(w.ndim == 2 && w.dims[0] == 4 && w.dims[1] == 24);
    for (int o = 0; o < 4; o++)
        for (int c = 0; c < 6; c++)
            for (int p = 0; p < 4; p++) assert_int_equal((int8_t)w.raw.p[o * 24 + c * 4 + p], L->w[o * 24 + p * 6 + c]);
    assert_int_equal(init_named(g, "l4_w_s").ndim, 0); /* every channel at 0.03: one scale */
    tq_free(data);
    /* the same model, the same bytes */
    char again[128];
    snprintf(again, sizeof again, "%s/again.onnx", dir);
    assert_int_equal(tq_export_onnx(&q, again, 0), TQ_OK);
    assert_same_bytes(path, again);
    /* with a softmax: a Softmax over the logits gives the output "probabilities" */
    snprintf(again, sizeof again, "%s/softmax.onnx", dir);
    assert_int_equal(tq_export_onnx(&q, again, 1), TQ_OK);
    g = read_graph(again, &data);
    msg last = nth(g, 1, count(g, 1) - 1).sub;
    assert_true(op_is(last, "Softmax"));
    assert_int_equal(attr_i(last, "axis", -1), 1);
    assert_true(is_str(nth(last, 1, 0).sub, "logits"));
    assert_true(is_str(nth(nth(g, 12, 0).sub, 1, 0).sub, "probabilities"));
    tq_free(data);
    /* a path that cannot be written: refused, nothing left; no model */
    snprintf(path, sizeof path, "%s/no/m.onnx", dir);
    assert_int_equal(tq_export_onnx(&q, path, 0), TQ_E_IO);
    assert_int_equal(tq_export_onnx(NULL, path, 0), TQ_E_ARG);
    /* a multiplier that is not the one the scales give: ONNX keeps only the scales */
    q.layer[1].mult[2]++;
    snprintf(path, sizeof path, "%s/m2.onnx", dir);
    assert_int_equal(tq_export_onnx(&q, path, 0), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "layer 1 channel 2"));
    FILE *f = fopen(path, "rb");
    assert_null(f);
    tq_qmodel_free(&q);
}

static void float_graph_reads_back(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "5x5x2-c3k3p1br-d2k2r-m2s1-4r-3"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 3);
    tq_model_init_params(&m, &r);
    for (int c = 0; c < 3; c++) m.unit[0].running_mean[c] = 0.1f * (float)c, m.unit[0].running_var[c] = 1.0f + (float)c;
    m.in_mean = 0.13f, m.in_std = 0.31f;
    char path[128];
    snprintf(path, sizeof path, "%s/f.onnx", dir);
    assert_int_equal(tq_export_onnx_float(&m, path, 0), TQ_OK);
    unsigned char *data;
    msg g = read_graph(path, &data);
    msg nodes[16];
    int n = compute_nodes(g, nodes, KNOWN, 16);
    const char *want[12] = {"Sub", "Div", "Conv", "BatchNormalization", "Relu", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm"};
    assert_int_equal(n, 12);
    for (int i = 0; i < n; i++) assert_true(op_is(nodes[i], want[i]));
    assert_int_equal(count(g, 1), 12); /* no quantizers */
    assert_true(f32_at(init_named(g, "in_mean").raw.p) == 0.13f);
    assert_true(f32_at(init_named(g, "in_std").raw.p) == 0.31f);
    assert_int_equal(count(nodes[2], 1), 2); /* batch norm: the conv has no bias */
    assert_true(f32_at(init_named(g, "s0_bn_var").raw.p + 8) == 3.0f);
    /* the conv's OHWI weights as OIHW; the depthwise's [OC][KH*KW] as [OC][1][KH][KW] */
    tensor w = init_named(g, "s0_w");
    assert_true(w.type == 1 && w.dims[0] == 3 && w.dims[1] == 2 && w.dims[2] == 3 && w.dims[3] == 3);
    for (int o = 0; o < 3; o++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 9; k++) assert_true(f32_at(w.raw.p + 4 * ((o * 2 + c) * 9 + k)) == m.unit[0].W[(o * 9 + k) * 2 + c]);
    w = init_named(g, "s1_w");
    assert_true(w.dims[0] == 6 && w.dims[1] == 1);
    for (int i = 0; i < 24; i++) assert_true(f32_at(w.raw.p + 4 * i) == m.unit[1].W[i]);
    assert_int_equal(attr_i(nodes[5], "group", -1), 3);
    /* the first dense layer's columns in NCHW order (3x3x6 -> 54), the second's as they are */
    const int HW = 9, C = 6;
    w = init_named(g, "d0_w");
    assert_true(w.dims[0] == 4 && w.dims[1] == HW * C);
    for (int o = 0; o < 4; o++)
        for (int c = 0; c < C; c++)
            for (int p = 0; p < HW; p++)
                assert_true(f32_at(w.raw.p + 4 * (o * HW * C + c * HW + p)) == TQ_DENSE(&m, 0).W[o * HW * C + p * C + c]);
    w = init_named(g, "d1_w");
    for (int i = 0; i < 12; i++) assert_true(f32_at(w.raw.p + 4 * i) == TQ_DENSE(&m, 1).W[i]);
    /* the last Gemm writes the graph's output */
    assert_true(is_str(nth(nodes[11], 2, 0).sub, "logits"));
    assert_true(is_str(nth(nth(g, 12, 0).sub, 1, 0).sub, "logits"));
    tq_free(data);
    /* a quantized model is refused: its deployed form is the integer model */
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    m.in_mean = 0.0f, m.in_std = 1.0f; /* (a padded first conv cannot take the normalization in) */
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
    snprintf(path, sizeof path, "%s/q.onnx", dir);
    assert_int_equal(tq_export_onnx_float(&m, path, 0), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "quantized"));
    assert_int_equal(tq_export_onnx_float(NULL, path, 0), TQ_E_ARG);
    tq_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(qdq_graph_reads_back), cmocka_unit_test(float_graph_reads_back)};
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
