/* tinyqat import of an int8 .tflite: see pipeline/tflite_import.h.
 *
 * A FlatBuffers reader with bounds: every offset is followed only after checking it lands inside
 * the file, every vector's length against what is left, every table's vtable too; the first
 * failure marks the read bad and the file is refused as damaged. Field ids and enum values are
 * TFLite's schema (schema.fbs, version 3), as pipeline/tflite.c writes them. */
#include "pipeline/tflite_import.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"

typedef struct {
    const uint8_t *p;
    size_t n;
    int bad;
} fb;

static uint32_t rd(fb *b, size_t at, int bytes) {
    if (at > b->n || b->n - at < (size_t)bytes) {
        b->bad = 1;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint32_t)b->p[at + (size_t)i] << (8 * i);
    return v;
}

/* the object an offset field at `at` points to (0 when bad) */
static size_t deref(fb *b, size_t at) {
    uint32_t o = rd(b, at, 4);
    if (b->bad || o == 0 || o > b->n - at) {
        b->bad = 1;
        return 0;
    }
    return at + o;
}

/* the position of field id of the table at t, or 0 when absent */
static size_t field(fb *b, size_t t, int id) {
    if (!t) return 0;
    int32_t so = (int32_t)rd(b, t, 4);
    if (b->bad) return 0;
    int64_t vt = (int64_t)t - so;
    if (vt < 0 || (uint64_t)vt + 4 > b->n) {
        b->bad = 1;
        return 0;
    }
    uint32_t vlen = rd(b, (size_t)vt, 2), tlen = rd(b, (size_t)vt + 2, 2);
    if (vlen < 4 || (uint64_t)vt + vlen > b->n || t + tlen > b->n) {
        b->bad = 1;
        return 0;
    }
    if (4 + 2 * (uint32_t)id + 2 > vlen) return 0;
    uint32_t off = rd(b, (size_t)vt + 4 + 2 * (size_t)id, 2);
    if (off && off + 1 > tlen) {
        b->bad = 1;
        return 0;
    }
    return off ? t + off : 0;
}

static uint32_t f_u32(fb *b, size_t t, int id, uint32_t def) {
    size_t f = field(b, t, id);
    return f ? rd(b, f, 4) : def;
}
static uint32_t f_u8(fb *b, size_t t, int id, uint32_t def) {
    size_t f = field(b, t, id);
    return f ? rd(b, f, 1) : def;
}
static size_t f_obj(fb *b, size_t t, int id) { /* a table, vector or string; 0 when absent */
    size_t f = field(b, t, id);
    return f ? deref(b, f) : 0;
}

/* a vector's length, its elements checked to lie in the file (elem bytes each) */
static uint32_t vlen(fb *b, size_t v, size_t elem) {
    if (!v) return 0;
    uint32_t n = rd(b, v, 4);
    if (b->bad || (uint64_t)n * elem > b->n - v - 4) {
        b->bad = 1;
        return 0;
    }
    return n;
}
static size_t v_table(fb *b, size_t v, uint32_t i) { return deref(b, v + 4 + 4 * (size_t)i); }
static int32_t v_i32(fb *b, size_t v, uint32_t i) { return (int32_t)rd(b, v + 4 + 4 * (size_t)i, 4); }
static float v_f32(fb *b, size_t v, uint32_t i) {
    uint32_t x = rd(b, v + 4 + 4 * (size_t)i, 4);
    float f;
    memcpy(&f, &x, 4);
    return f;
}
static int64_t v_i64(fb *b, size_t v, uint32_t i) {
    uint64_t lo = rd(b, v + 4 + 8 * (size_t)i, 4), hi = rd(b, v + 8 + 8 * (size_t)i, 4);
    return (int64_t)(lo | hi << 32);
}

/* ---- the model ---- */

enum { T_FLOAT32 = 0, T_INT32 = 2, T_INT8 = 9 };
enum { OP_ADD = 0, OP_AVG = 1, OP_CONCAT = 2, OP_CONV = 3, OP_DW = 4, OP_DEQUANTIZE = 6, OP_FC = 9, OP_MAX = 17, OP_RESHAPE = 22,
       OP_SOFTMAX = 25, OP_PAD = 34, OP_MEAN = 40, OP_QUANTIZE = 114 };
enum { PAD_SAME = 0, PAD_VALID = 1 };

typedef struct {
    fb b;
    const char *file;
    size_t tensors, buffers;
    uint32_t n_tensors, n_buffers;
} ctx;

typedef struct {
    int32_t shape[8];
    int ndim, type;
    const uint8_t *data; /* the buffer's bytes, or NULL */
    size_t bytes;
    uint32_t nq;        /* scales */
    size_t scale, zp;   /* their vectors */
    int qdim;
} tens;

static tq_status tensor(ctx *c, int32_t i, tens *t) {
    memset(t, 0, sizeof *t);
    if (i < 0 || (uint32_t)i >= c->n_tensors) TQ_FAIL(TQ_E_FORMAT, "%s: a tensor index %d out of range (%u tensors)", c->file, i, c->n_tensors);
    fb *b = &c->b;
    size_t T = v_table(b, c->tensors, (uint32_t)i), shape = f_obj(b, T, 0);
    uint32_t nd = vlen(b, shape, 4);
    if (nd > 8) TQ_FAIL(TQ_E_FORMAT, "%s: tensor %d has %u dimensions", c->file, i, nd);
    t->ndim = (int)nd;
    for (uint32_t k = 0; k < nd; k++) t->shape[k] = v_i32(b, shape, k);
    t->type = (int)f_u8(b, T, 1, T_FLOAT32);
    uint32_t buf = f_u32(b, T, 2, 0);
    if (buf) {
        if (buf >= c->n_buffers) TQ_FAIL(TQ_E_FORMAT, "%s: tensor %d names buffer %u of %u", c->file, i, buf, c->n_buffers);
        size_t B = v_table(b, c->buffers, buf), data = f_obj(b, B, 0);
        uint32_t n = vlen(b, data, 1);
        if (n) t->data = b->p + data + 4, t->bytes = n;
    }
    size_t q = f_obj(b, T, 4);
    if (q) {
        t->scale = f_obj(b, q, 2), t->zp = f_obj(b, q, 3);
        t->nq = vlen(b, t->scale, 4);
        if (t->nq && vlen(b, t->zp, 8) != t->nq) TQ_FAIL(TQ_E_FORMAT, "%s: tensor %d: %u scales but other zero points", c->file, i, t->nq);
        t->qdim = (int)f_u32(b, q, 6, 0);
    }
    if (b->bad) TQ_FAIL(TQ_E_FORMAT, "%s: tensor %d is damaged", c->file, i);
    return TQ_OK;
}

/* The builtin code of operator code table entry ci (ci < the table's length): the byte field, or
 * the int32 field newer writers use past 127. */
static int code_of(fb *b, size_t codes, uint32_t ci) {
    size_t oc = v_table(b, codes, ci);
    int code = (int)f_u8(b, oc, 0, 0), code2 = (int)f_u32(b, oc, 3, 0);
    return code2 > code ? code2 : code;
}

/* Operator k's code, its first input and first output tensor (-1 when it has none); -1 for a
 * damaged operator. */
static int op_ends(ctx *c, size_t ops, size_t codes, uint32_t n_codes, uint32_t k, int32_t *in, int32_t *out) {
    fb *b = &c->b;
    size_t op = v_table(b, ops, k), oin = f_obj(b, op, 1), oout = f_obj(b, op, 2);
    uint32_t ci = f_u32(b, op, 0, 0);
    *in = vlen(b, oin, 4) ? v_i32(b, oin, 0) : -1;
    *out = vlen(b, oout, 4) ? v_i32(b, oout, 0) : -1;
    if (b->bad || ci >= n_codes) return -1;
    int code = code_of(b, codes, ci);
    return b->bad ? -1 : code;
}

#define OP_FAIL(...) return op_fail(c, k, code, __VA_ARGS__)

static const char *op_name(int code) {
    switch (code) {
    case OP_ADD: return "ADD";
    case OP_AVG: return "AVERAGE_POOL_2D";
    case OP_CONV: return "CONV_2D";
    case OP_DW: return "DEPTHWISE_CONV_2D";
    case OP_FC: return "FULLY_CONNECTED";
    case OP_MAX: return "MAX_POOL_2D";
    case OP_RESHAPE: return "RESHAPE";
    case OP_SOFTMAX: return "SOFTMAX";
    case OP_PAD: return "PAD";
    case OP_DEQUANTIZE: return "DEQUANTIZE";
    case OP_QUANTIZE: return "QUANTIZE";
    case OP_CONCAT: return "CONCATENATION";
    case 21: return "RELU6";
    case 19: return "RELU";
    case 14: return "LOGISTIC";
    case OP_MEAN: return "MEAN";
    default: return "an operator";
    }
}

static tq_status op_fail(const ctx *c, int k, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static tq_status op_fail(const ctx *c, int k, int code, const char *fmt, ...) {
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: operator %d (%s, code %d): %s", c->file, k, op_name(code), code, why);
}

/* the activation's int8 scale and zero point */
static int act_q(ctx *c, const tens *t, float *s, int32_t *z) {
    if (t->type != T_INT8 || t->nq != 1) return 0;
    *s = v_f32(&c->b, t->scale, 0);
    int64_t zp = v_i64(&c->b, t->zp, 0);
    *z = (int32_t)zp;
    return !c->b.bad && *s > 0.0f && isfinite(*s) && zp >= -128 && zp <= 127;
}

static void spec_add(char *spec, int *sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void spec_add(char *spec, int *sp, const char *fmt, ...) {
    if (*sp < 0 || *sp >= 128) return;
    va_list ap;
    va_start(ap, fmt);
    *sp += vsnprintf(spec + *sp, 128 - (size_t)*sp, fmt, ap);
    va_end(ap);
}

/* SAME padding for one dimension: what it adds before and after */
static void same_pads(int in, int k, int s, int *before, int *after) {
    int out = (in + s - 1) / s, total = (out - 1) * s + k - in;
    if (total < 0) total = 0;
    *before = total / 2, *after = total - total / 2;
}

/* What the importer knows of a tensor an earlier operator wrote: the layer holding it (-1: the
 * model's input), its shape and quantization, and for a PAD's output the padding still to fold
 * into the convolution that reads it. */
typedef struct {
    int known, layer, H, W, C, flat;
    float s;
    int32_t z;
    int pad[4]; /* a PAD's output: top, bottom, left, right */
} tinfo;

tq_status tq_import_tflite_bytes(tq_qmodel *q, const unsigned char *data, size_t len, const char *name, tq_tflite_info *info) {
    if (!q || !data || !name) TQ_FAIL(TQ_E_ARG, "import: a model, data and a name are required");
    memset(q, 0, sizeof *q);
    if (info) memset(info, 0, sizeof *info);
    ctx cx = {.b = {data, len, 0}, .file = name}, *c = &cx;
    fb *b = &c->b;
    if (len < 8 || memcmp(data + 4, "TFL3", 4)) TQ_FAIL(TQ_E_FORMAT, "%s: not a TensorFlow Lite model (no TFL3 identifier)", name);
    size_t model = deref(b, 0), codes = f_obj(b, model, 1), subgraphs = f_obj(b, model, 2);
    c->buffers = f_obj(b, model, 4), c->n_buffers = vlen(b, c->buffers, 4);
    uint32_t n_codes = vlen(b, codes, 4), n_sg = vlen(b, subgraphs, 4);
    if (b->bad || !n_sg) TQ_FAIL(TQ_E_FORMAT, "%s: a damaged TensorFlow Lite model (no subgraph)", name);
    if (n_sg > 1) TQ_FAIL(TQ_E_ARG, "%s: %u subgraphs: tinyqat imports models of one", name, n_sg);
    size_t sg = v_table(b, subgraphs, 0), ins = f_obj(b, sg, 1), outs = f_obj(b, sg, 2), ops = f_obj(b, sg, 3);
    c->tensors = f_obj(b, sg, 0), c->n_tensors = vlen(b, c->tensors, 4);
    uint32_t n_ops = vlen(b, ops, 4);
    if (b->bad || vlen(b, ins, 4) != 1 || vlen(b, outs, 4) != 1 || !n_ops)
        TQ_FAIL(b->bad ? TQ_E_FORMAT : TQ_E_ARG, "%s: %s", name, b->bad ? "a damaged TensorFlow Lite model" : "not one input, one output and operators");
    if (info) info->operators = (int)n_ops;
    int32_t in0 = v_i32(b, ins, 0), out = v_i32(b, outs, 0);
    tens t, w, bias, y;
    TQ_TRY(tensor(c, in0, &t));
    /* A float model interface (the converter's default): a QUANTIZE of the float input first, a
     * DEQUANTIZE into the float output last. The integer model is what lies between: its input is
     * the QUANTIZE's int8 tensor, its output the DEQUANTIZE's. */
    uint32_t first = 0, end = n_ops;
    {
        int32_t oi, oo;
        if (t.type == T_FLOAT32 && op_ends(c, ops, codes, n_codes, 0, &oi, &oo) == OP_QUANTIZE && oi == in0) {
            in0 = oo, first = 1;
            TQ_TRY(tensor(c, in0, &t));
            if (info) info->float_in = 1;
        }
        if (n_ops > first + 1 && op_ends(c, ops, codes, n_codes, n_ops - 1, &oi, &oo) == OP_DEQUANTIZE && oo == out) {
            out = oi, end = n_ops - 1;
            if (info) info->float_out = 1;
        }
    }
    float s0;
    int32_t z0;
    if (!act_q(c, &t, &s0, &z0))
        TQ_FAIL(TQ_E_ARG, "%s: the input is not an int8 tensor with one scale and zero point (a float input: convert the model with "
                          "an int8 input)", name);
    int H0 = 1, W0 = 1, C0 = 0;
    if (t.ndim == 4 && t.shape[0] == 1) H0 = t.shape[1], W0 = t.shape[2], C0 = t.shape[3];
    else if (t.ndim == 2 && t.shape[0] == 1) C0 = t.shape[1];
    else TQ_FAIL(TQ_E_ARG, "%s: the input is not [1][H][W][C] or [1][N]", name);
    const int image_in = t.ndim == 4;
    if (H0 < 1 || W0 < 1 || C0 < 1 || H0 > 4096 || W0 > 4096 || C0 > (1 << 20)) TQ_FAIL(TQ_E_ARG, "%s: input dimensions out of range", name);
    tinfo *ti = tq_calloc(c->n_tensors, sizeof *ti); /* (tensor() checked in0 < n_tensors) */
    if (!ti) TQ_FAIL(TQ_E_NOMEM, "%s: out of memory", name);
    ti[in0] = (tinfo){.known = 1, .layer = -1, .H = H0, .W = W0, .C = C0, .flat = !image_in, .s = s0, .z = z0};
    tq_qlayer_src src[TQ_INT8_MAX_LAYERS];
    memset(src, 0, sizeof src);
    void *owned[3 * TQ_INT8_MAX_LAYERS];
    int n_owned = 0, n = 0;
    tq_status st = TQ_OK;
    char spec[128];
    int sp = image_in ? snprintf(spec, sizeof spec, "%dx%dx%d", H0, W0, C0) : snprintf(spec, sizeof spec, "%d", C0);
    for (uint32_t k32 = first; k32 < end && st == TQ_OK; k32++) {
        const int k = (int)k32;
        size_t op = v_table(b, ops, k32), opt = f_obj(b, op, 4), oin = f_obj(b, op, 1), oout = f_obj(b, op, 2);
        uint32_t ci = f_u32(b, op, 0, 0), nin = vlen(b, oin, 4), nout = vlen(b, oout, 4);
        if (b->bad || ci >= n_codes || nout < 1 || nin < 1) {
            st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: operator %d is damaged", name, k);
            break;
        }
        int code = code_of(b, codes, ci);
        /* the operator's input: a tensor an earlier operator wrote (or the model's input) */
        int32_t xin = v_i32(b, oin, 0);
        if (xin < 0 || (uint32_t)xin >= c->n_tensors || !ti[xin].known) {
            st = op_fail(c, k, code, "reads tensor %d, which no earlier operator writes", xin);
            break;
        }
        const tinfo X = ti[xin];
        int H = X.H, W = X.W, C = X.C, flat = X.flat;
        float s_in = X.s;
        int32_t z_in = X.z;
        const int padded = X.pad[0] || X.pad[1] || X.pad[2] || X.pad[3];
        int32_t next = v_i32(b, oout, 0);
        if ((st = tensor(c, next, &y)) != TQ_OK) break;
        if (ti[next].known) {
            st = op_fail(c, k, code, "writes tensor %d, which an earlier operator wrote", next);
            break;
        }
        float s_out;
        int32_t z_out;
        if (!act_q(c, &y, &s_out, &z_out)) {
            st = op_fail(c, k, code, "its output is not an int8 tensor with one scale and zero point");
            break;
        }
        if (n >= TQ_INT8_MAX_LAYERS - 1) {
            st = op_fail(c, k, code, "more than %d integer layers", TQ_INT8_MAX_LAYERS);
            break;
        }
        if (padded && code != OP_CONV && code != OP_DW) {
            st = op_fail(c, k, code, "reads a PAD's output: tinyqat folds a PAD into a convolution only");
            break;
        }
        /* the runtime gives the model's input to its first layer only; a layer reads the one before
         * it unless it says which (src) */
        if (X.layer < 0 && n > 0) {
            st = op_fail(c, k, code, "reads the model's input after another operator did: tinyqat's runtime gives the input to "
                                     "the first layer only");
            break;
        }
        const int from = X.layer == n - 1 ? 0 : X.layer + 1;
        tq_qlayer_src *L = &src[n];
        if (code == OP_SOFTMAX) { /* over the last axis: TFLite Micro's int8 SOFTMAX (runtime/int8_infer.h) */
            uint32_t bits = f_u32(b, opt, 0, 0);
            float beta;
            int32_t M0, shm;
            memcpy(&beta, &bits, 4);
            if (s_out != 1.0f / 256 || z_out != -128 || y.ndim != (flat ? 2 : 4) || y.shape[y.ndim - 1] != C || beta != 1.0f || C > 511 ||
                tq_softmax_multiplier(s_in, &M0, &shm)) {
                st = op_fail(c, k, code, "a SOFTMAX tinyqat cannot hold (beta 1, over at most 511 values, input scale at least 2^-26, "
                                         "output at scale 1/256 and zero point -128: beta %g, %d values, scale %g and %d)",
                             (double)beta, C, (double)s_out, z_out);
                break;
            }
            *L = (tq_qlayer_src){.in_scale = s_in, .out_scale = s_out, .in_zp = z_in, .out_zp = z_out, .kind = TQ_S8_SOFTMAX, .in_h = H,
                                 .in_w = W, .in_c = C, .out_h = H, .out_w = W, .out_c = C, .k = 1, .stride = 1, .src = {from, 0}};
            ti[next] = (tinfo){.known = 1, .layer = n, .H = H, .W = W, .C = C, .flat = flat, .s = s_out, .z = z_out};
            n++;
            spec_add(spec, &sp, "-softmax");
            if (info) info->softmax = 1;
            continue;
        }
        if (code == OP_PAD) {
            tens pads;
            if ((st = tensor(c, nin > 1 ? v_i32(b, oin, 1) : -1, &pads)) != TQ_OK) break;
            const int32_t *pv = (const int32_t *)(const void *)pads.data;
            int32_t pd[8] = {0};
            if (!pads.data || pads.type != T_INT32 || pads.bytes != 32) {
                st = op_fail(c, k, code, "paddings that are not [4][2] int32 constants");
                break;
            }
            memcpy(pd, pv, 32); /* (little-endian, as the file) */
            if (pd[0] || pd[1] || pd[6] || pd[7] || pd[2] < 0 || pd[3] < 0 || pd[4] < 0 || pd[5] < 0 || pd[2] > 64 || pd[3] > 64 ||
                pd[4] > 64 || pd[5] > 64 || s_out != s_in || z_out != z_in || flat || padded) {
                st = op_fail(c, k, code, "a PAD tinyqat cannot fold into the convolution after it (H and W only, at most 64, "
                                         "the tensor's own scale and zero point)");
                break;
            }
            ti[next] = X;
            ti[next].pad[0] = pd[2], ti[next].pad[1] = pd[3], ti[next].pad[2] = pd[4], ti[next].pad[3] = pd[5];
            continue;
        }
        if (code == OP_RESHAPE) {
            if (s_out != s_in || z_out != z_in) {
                st = op_fail(c, k, code, "a RESHAPE that changes the scale");
                break;
            }
            ti[next] = X;
            if (!flat) { /* NHWC [1][H][W][C] -> [1][H W C]: the same bytes */
                *L = (tq_qlayer_src){.in_scale = s_in, .out_scale = s_in, .in_zp = z_in, .out_zp = z_in, .kind = TQ_S8_FLATTEN, .in_h = H,
                                     .in_w = W, .in_c = C, .out_h = 1, .out_w = 1, .out_c = H * W * C, .k = 1, .stride = 1,
                                     .src = {from, 0}};
                ti[next] = (tinfo){.known = 1, .layer = n, .H = 1, .W = 1, .C = H * W * C, .flat = 1, .s = s_in, .z = z_in};
                n++;
            }
            continue;
        }
        if (code == OP_ADD) {
            int32_t xin2 = nin > 1 ? v_i32(b, oin, 1) : -1;
            const tinfo *X2 = xin2 >= 0 && (uint32_t)xin2 < c->n_tensors && ti[xin2].known ? &ti[xin2] : NULL;
            int act = (int)f_u8(b, opt, 0, 0);
            if (!X2 || X2->H != H || X2->W != W || X2->C != C || X2->pad[0] || X2->pad[1] || X2->pad[2] || X2->pad[3] || X2->layer < 0 ||
                (act != 0 && act != 1 && act != 3) || y.ndim < 2) {
                st = op_fail(c, k, code, "an ADD tinyqat cannot hold (two tensors of one shape written by earlier layers; NONE, RELU "
                                         "or RELU6)");
                break;
            }
            *L = (tq_qlayer_src){.relu = act == 3 ? 2 : act, .in_scale = s_in, .in2_scale = X2->s, .out_scale = s_out, .in_zp = z_in,
                                 .in2_zp = X2->z, .out_zp = z_out, .kind = TQ_S8_ADD, .in_h = H, .in_w = W, .in_c = C, .out_h = H,
                                 .out_w = W, .out_c = C, .k = 1, .stride = 1, .src = {X.layer + 1, X2->layer + 1}};
            ti[next] = (tinfo){.known = 1, .layer = n, .H = H, .W = W, .C = C, .flat = flat, .s = s_out, .z = z_out};
            n++;
            spec_add(spec, &sp, "-add%s", act == 3 ? "r6" : act ? "r" : "");
            continue;
        }
        if (code == OP_CONCAT) {
            int32_t xin2 = nin == 2 ? v_i32(b, oin, 1) : -1;
            const tinfo *X2 = xin2 >= 0 && (uint32_t)xin2 < c->n_tensors && ti[xin2].known ? &ti[xin2] : NULL;
            int axis = (int)f_u32(b, opt, 0, 0);
            if (!X2 || flat || X2->flat || (axis != 3 && axis != -1) || f_u8(b, opt, 1, 0) != 0 || X2->H != H || X2->W != W ||
                X2->pad[0] || X2->pad[1] || X2->pad[2] || X2->pad[3] || X2->layer < 0 || y.ndim != 4 || y.shape[3] != C + X2->C) {
                st = op_fail(c, k, code, "a CONCATENATION tinyqat cannot hold (two images of one height and width written by earlier "
                                         "layers, joined along the channels, no activation)");
                break;
            }
            if (X2->s != s_out || s_in != s_out || X2->z != z_out || z_in != z_out) {
                st = op_fail(c, k, code, "inputs at scales %g and %g, zero points %d and %d, output at %g and %d: tinyqat's concat keeps "
                                         "one scale (requantize an input first)", (double)s_in, (double)X2->s, z_in, X2->z, (double)s_out, z_out);
                break;
            }
            *L = (tq_qlayer_src){.in_scale = s_in, .in2_scale = X2->s, .out_scale = s_out, .in_zp = z_in, .in2_zp = X2->z, .out_zp = z_out,
                                 .kind = TQ_S8_CONCAT, .in_h = H, .in_w = W, .in_c = C, .in2_c = X2->C, .out_h = H, .out_w = W,
                                 .out_c = C + X2->C, .k = 1, .stride = 1, .src = {X.layer + 1, X2->layer + 1}};
            ti[next] = (tinfo){.known = 1, .layer = n, .H = H, .W = W, .C = C + X2->C, .s = s_out, .z = z_out};
            n++;
            spec_add(spec, &sp, "-cat");
            continue;
        }
        if (code == OP_MEAN) { /* over height and width: TFLite Micro's three forms (runtime/int8_infer.h) */
            tens ax;
            if ((st = tensor(c, nin > 1 ? v_i32(b, oin, 1) : -1, &ax)) != TQ_OK) break;
            int32_t a[2] = {0, 0};
            if (ax.data && ax.type == T_INT32 && ax.bytes == 8) memcpy(a, ax.data, 8); /* (little-endian, as the file) */
            for (int j = 0; j < 2; j++) a[j] = a[j] < 0 ? a[j] + 4 : a[j];
            const int keep = f_u8(b, opt, 0, 0) != 0;
            if (flat || !((a[0] == 1 && a[1] == 2) || (a[0] == 2 && a[1] == 1)) || (int64_t)H * W > (1 << 23) ||
                (keep ? y.ndim != 4 || y.shape[1] != 1 || y.shape[2] != 1 : y.ndim != 2) || y.shape[y.ndim - 1] != C) {
                st = op_fail(c, k, code, "a MEAN tinyqat cannot hold (over the height and width of an image, axis a constant [1, 2])");
                break;
            }
            const int form = keep ? 0 : s_in == s_out && z_in == z_out ? 2 : 1;
            *L = (tq_qlayer_src){.in_scale = s_in, .out_scale = s_out, .in_zp = z_in, .out_zp = z_out, .kind = TQ_S8_MEAN, .in_h = H,
                                 .in_w = W, .in_c = C, .out_h = 1, .out_w = 1, .out_c = C, .k = 1, .stride = 1, .src = {from, 0},
                                 .mean_form = form};
            ti[next] = (tinfo){.known = 1, .layer = n, .H = 1, .W = 1, .C = C, .flat = !keep, .s = s_out, .z = z_out};
            n++;
            spec_add(spec, &sp, "-mean");
            continue;
        }
        if (code == OP_MAX || code == OP_AVG) {
            int fw = (int)f_u32(b, opt, 3, 0), fh = (int)f_u32(b, opt, 4, 0), sw = (int)f_u32(b, opt, 1, 0), sh = (int)f_u32(b, opt, 2, 0);
            if (flat || f_u8(b, opt, 0, 0) != PAD_VALID || fw < 1 || fh < 1 || sw < 1 || sh < 1 || fh > H || fw > W || fh > 64 ||
                fw > 64 || sh > 64 || sw > 64 || f_u8(b, opt, 5, 0) != 0 || s_out != s_in || z_out != z_in) {
                st = op_fail(c, k, code, "a pool tinyqat cannot hold (VALID, windows and strides up to 64, no activation, the "
                                         "scale kept)");
                break;
            }
            int oh = (H - fh) / sh + 1, ow = (W - fw) / sw + 1;
            *L = (tq_qlayer_src){.in_scale = s_in, .out_scale = s_in, .in_zp = z_in, .out_zp = z_in,
                                 .kind = code == OP_MAX ? TQ_S8_MAXPOOL : TQ_S8_AVGPOOL, .in_h = H, .in_w = W, .in_c = C, .out_h = oh,
                                 .out_w = ow, .out_c = C, .k = fh, .stride = sh, .src = {from, 0}};
            if (fw != fh || sw != sh) L->kw = fw, L->stride_w = sw;
            ti[next] = (tinfo){.known = 1, .layer = n, .H = oh, .W = ow, .C = C, .s = s_in, .z = z_in};
            n++;
            spec_add(spec, &sp, "-%c%d", code == OP_MAX ? 'm' : 'a', fh);
            if (fw != fh) spec_add(spec, &sp, "x%d", fw);
            if (sh != fh || sw != fw) spec_add(spec, &sp, "s%d", sh);
            continue;
        }
        if (code != OP_CONV && code != OP_DW && code != OP_FC) {
            st = op_fail(c, k, code, "not an operator tinyqat imports (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, CONCATENATION, "
                                     "MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, RESHAPE, PAD, SOFTMAX, a QUANTIZE of a float input "
                                     "first and a DEQUANTIZE of the output last)");
            break;
        }
        if (nin < 3 || (st = tensor(c, v_i32(b, oin, 1), &w)) != TQ_OK || (st = tensor(c, v_i32(b, oin, 2), &bias)) != TQ_OK) {
            if (st == TQ_OK) st = op_fail(c, k, code, "without a weight and a bias");
            break;
        }
        /* fused activation: NONE, RELU (the clamp from the zero point, as tinyqat's) or RELU6 */
        int act = (int)f_u8(b, opt, code == OP_FC ? 0 : code == OP_CONV ? 3 : 4, 0);
        if (act != 0 && act != 1 && act != 3) {
            st = op_fail(c, k, code, "fused activation %d: tinyqat fuses NONE, RELU and RELU6", act);
            break;
        }
        int lsrc = from;
        if (code == OP_FC && !flat) { /* FULLY_CONNECTED flattens an image itself */
            *L = (tq_qlayer_src){.in_scale = s_in, .out_scale = s_in, .in_zp = z_in, .out_zp = z_in, .kind = TQ_S8_FLATTEN, .in_h = H,
                                 .in_w = W, .in_c = C, .out_h = 1, .out_w = 1, .out_c = H * W * C, .k = 1, .stride = 1,
                                 .src = {from, 0}};
            n++, C = H * W * C, H = W = 1, flat = 1, lsrc = 0;
            L = &src[n];
        }
        int O, K = 1, KW = 1, stride = 1, stride_w = 1, pad = 0, pad_w = 0, OH = 1, OW = 1;
        if (code == OP_FC) {
            if (w.ndim != 2 || w.shape[1] != C) {
                st = op_fail(c, k, code, "a weight of another shape than [outputs][%d]", C);
                break;
            }
            O = w.shape[0];
        } else {
            const int dw = code == OP_DW;
            if (flat || w.ndim != 4 || w.shape[1] < 1 || w.shape[2] < 1 || w.shape[1] > 64 || w.shape[2] > 64 ||
                (dw ? w.shape[0] != 1 : w.shape[3] != C)) {
                st = op_fail(c, k, code, "a weight tinyqat cannot hold ([O][KH][KW][%d], or [1][KH][KW][O] depthwise; kernels up to 64)", C);
                break;
            }
            O = dw ? w.shape[3] : w.shape[0], K = w.shape[1], KW = w.shape[2];
            int sw = (int)f_u32(b, opt, 1, 0), sh = (int)f_u32(b, opt, 2, 0), padding = (int)f_u8(b, opt, 0, 0);
            int dil_w = (int)f_u32(b, opt, dw ? 5 : 4, 1), dil_h = (int)f_u32(b, opt, dw ? 6 : 5, 1);
            if (sw < 1 || sh < 1 || sw > 64 || sh > 64 || dil_w != 1 || dil_h != 1 || (dw && O % C) ||
                (dw && (int)f_u32(b, opt, 3, 1) != O / C)) {
                st = op_fail(c, k, code, "strides, dilation or depth multiplier tinyqat cannot hold");
                break;
            }
            stride = sh, stride_w = sw;
            if (padding == PAD_SAME) {
                if (padded) {
                    st = op_fail(c, k, code, "SAME padding after a PAD");
                    break;
                }
                int ah, aw; /* SAME's odd row and column go after: what the runtime's padding after allows */
                same_pads(H, K, stride, &pad, &ah);
                same_pads(W, KW, stride_w, &pad_w, &aw);
                OH = (H + stride - 1) / stride, OW = (W + stride_w - 1) / stride_w;
            } else { /* VALID, on the PAD's output if there is one */
                pad = X.pad[0], pad_w = X.pad[2];
                int ph = H + X.pad[0] + X.pad[1], pw = W + X.pad[2] + X.pad[3];
                if (ph < K || pw < KW) {
                    st = op_fail(c, k, code, "a %dx%d kernel on a %dx%d input", K, KW, ph, pw);
                    break;
                }
                OH = (ph - K) / stride + 1, OW = (pw - KW) / stride_w + 1;
            }
            if (y.ndim != 4 || y.shape[1] != OH || y.shape[2] != OW || y.shape[3] != O) {
                st = op_fail(c, k, code, "an output shape that is not the convolution's [1][%d][%d][%d]", OH, OW, O);
                break;
            }
        }
        const size_t per = code == OP_FC ? (size_t)C : (size_t)K * (size_t)KW * (code == OP_DW ? 1 : (size_t)C), nw = per * (size_t)O;
        if (O < 1 || O > 65536 || w.type != T_INT8 || !w.data || w.bytes != nw || bias.type != T_INT32 || !bias.data ||
            bias.bytes != 4 * (size_t)O || (w.nq != 1 && w.nq != (uint32_t)O) ||
            (w.nq == (uint32_t)O && O > 1 && w.qdim != (code == OP_DW ? 3 : 0))) {
            st = op_fail(c, k, code, "weights or bias that are not int8 [%zu] with one scale or one per output channel, and int32 [%d]",
                         nw, O);
            break;
        }
        /* the file's integers, in conversion's layout (src is [channel][per]; depthwise files are [per][channel]) */
        int8_t *wq = tq_malloc(nw);
        int32_t *bq = tq_malloc((size_t)O * sizeof(int32_t));
        float *sw = tq_malloc((size_t)O * sizeof(float));
        if (!wq || !bq || !sw) {
            tq_free(wq), tq_free(bq), tq_free(sw);
            st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "%s: out of memory", name);
            break;
        }
        owned[n_owned++] = wq, owned[n_owned++] = bq, owned[n_owned++] = sw;
        for (int o = 0; o < O; o++) {
            sw[o] = v_f32(b, w.scale, w.nq == 1 ? 0 : (uint32_t)o);
            const float step = s_in * sw[o];
            if (v_i64(b, w.zp, w.nq == 1 ? 0 : (uint32_t)o) != 0 || !(sw[o] > 0.0f) || !isfinite(sw[o]) || !(step > 0.0f) ||
                !isfinite(step))
                st = TQ_E_ARG;
            for (size_t i = 0; i < per; i++)
                wq[(size_t)o * per + i] = (int8_t)w.data[code == OP_DW ? i * (size_t)O + (size_t)o : (size_t)o * per + i];
            memcpy(&bq[o], bias.data + 4 * (size_t)o, 4);
        }
        if (st != TQ_OK || b->bad) {
            st = op_fail(c, k, code, "weights that are not symmetric (zero point 0), or scales that are not positive and finite");
            break;
        }
        *L = (tq_qlayer_src){.in = code == OP_FC ? C : H * W * C, .out = code == OP_FC ? O : OH * OW * O, .relu = act == 3 ? 2 : act, .w_bits = 8,
                             .w_scale = sw, .in_scale = s_in, .out_scale = s_out, .in_zp = z_in, .out_zp = z_out,
                             .kind = code == OP_FC ? TQ_S8_LINEAR : code == OP_CONV ? TQ_S8_CONV : TQ_S8_DEPTHWISE, .in_h = H,
                             .in_w = W, .in_c = C, .out_h = OH, .out_w = OW, .out_c = O, .k = K, .stride = stride, .pad = pad,
                             .Wq = wq, .bq = bq, .src = {lsrc, 0}};
        if (KW != K || stride_w != stride || pad_w != pad) L->kw = KW, L->stride_w = stride_w, L->pad_w = pad_w;
        if (code == OP_FC) {
            spec_add(spec, &sp, "-%d%s", O, act == 3 ? "r6" : act ? "r" : "");
        } else {
            spec_add(spec, &sp, "-%c%dk%d", code == OP_DW ? 'd' : 'c', code == OP_DW ? O / C : O, K);
            if (KW != K) spec_add(spec, &sp, "x%d", KW);
            if (stride > 1 || stride_w != stride) spec_add(spec, &sp, "s%d", stride);
            if (pad) spec_add(spec, &sp, "p%d", pad);
            if (act) spec_add(spec, &sp, act == 3 ? "r6" : "r");
        }
        ti[next] = (tinfo){.known = 1, .layer = n, .H = OH, .W = OW, .C = O, .flat = code == OP_FC, .s = s_out, .z = z_out};
        n++;
    }
    if (st == TQ_OK && (out < 0 || (uint32_t)out >= c->n_tensors || !ti[out].known || ti[out].layer != n - 1))
        st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: the model's output is not what its last operator writes", name);
    if (st == TQ_OK && (n == 0 || (src[n - 1].kind != TQ_S8_LINEAR && src[n - 1].kind != TQ_S8_SOFTMAX)))
        st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "%s: the model does not end with a FULLY_CONNECTED or a SOFTMAX (tinyqat's "
                           "classifier)", name);
    if (st == TQ_OK && (st = tq_qmodel_convert(q, spec, src, n)) != TQ_OK)
        st = tq_error_set_(st, __FILE__, __LINE__, "%s: %s", name, tq_last_error());
    for (int i = 0; i < n_owned; i++) tq_free(owned[i]);
    tq_free(ti);
    if (st != TQ_OK) tq_qmodel_free(q), memset(q, 0, sizeof *q);
    return st;
}

tq_status tq_import_tflite(tq_qmodel *q, const char *path, tq_tflite_info *info) {
    if (!q || !path) TQ_FAIL(TQ_E_ARG, "import: a model and a path are required");
    unsigned char *data = NULL;
    size_t len = 0;
    tq_status st = tq_file_read_all(path, (size_t)1 << 30, &data, &len);
    if (st == TQ_OK) st = tq_import_tflite_bytes(q, data, len, path, info);
    else memset(q, 0, sizeof *q);
    tq_free(data);
    return st;
}
