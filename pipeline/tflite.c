/* tinyqat export --tflite: see pipeline/tflite.h.
 *
 * The flatbuffer is written front to back: a table's vtable just before it, then the table, then
 * the objects it points at, each offset patched once its object is placed. FlatBuffers' offsets
 * to objects are unsigned and count forward from the field, which a parent-first layout gives;
 * the table's offset to its vtable is signed (table - vtable). Field ids and enum values are
 * TFLite's schema (schema.fbs, version 3). */
#include "pipeline/tflite.h"

#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"

/* ---- a forward flatbuffer writer ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int ok;
} fbb;

static void fb_grow(fbb *b, size_t n) {
    if (!b->ok || b->len + n <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = tq_realloc(b->p, cap);
    if (!p) {
        b->ok = 0;
        return;
    }
    b->p = p, b->cap = cap;
}

static size_t fb_put(fbb *b, const void *d, size_t n) {
    fb_grow(b, n);
    size_t at = b->len;
    if (!b->ok) return at;
    if (d) memcpy(b->p + at, d, n);
    else memset(b->p + at, 0, n);
    b->len += n;
    return at;
}

/* zeros until (len + extra) is a multiple of align */
static void fb_pad(fbb *b, size_t align, size_t extra) {
    while ((b->len + extra) % align) fb_put(b, NULL, 1);
}

static void fb_le(fbb *b, size_t at, uint64_t v, int bytes) {
    for (int i = 0; b->ok && i < bytes; i++) b->p[at + (size_t)i] = (uint8_t)(v >> (8 * i));
}

/* the uoffset at `field` points at `target` (always after it) */
static void fb_link(fbb *b, size_t field, size_t target) { fb_le(b, field, (uint64_t)(target - field), 4); }

/* A table of scalar (1 or 4 bytes) and offset fields; at[id] is where each offset field sits,
 * for fb_link once its object exists. */
enum { FB_MAX_FIELDS = 8 };
typedef struct {
    int n;
    int id[FB_MAX_FIELDS], size[FB_MAX_FIELDS], is_off[FB_MAX_FIELDS];
    uint32_t val[FB_MAX_FIELDS];
    size_t at[FB_MAX_FIELDS]; /* by field id, after fb_table */
    size_t pos;               /* the table */
} fb_fields;

static void fb_field(fb_fields *f, int id, int size, uint32_t v) { f->id[f->n] = id, f->size[f->n] = size, f->is_off[f->n] = 0, f->val[f->n++] = v; }
static void fb_offset(fb_fields *f, int id) { f->id[f->n] = id, f->size[f->n] = 4, f->is_off[f->n] = 1, f->val[f->n++] = 0; }

static size_t fb_table(fbb *b, fb_fields *f) {
    int max_id = -1;
    for (int i = 0; i < f->n; i++) max_id = f->id[i] > max_id ? f->id[i] : max_id;
    /* layout inside the table: the 4-byte soffset, the 4-byte fields, then the 1-byte ones */
    uint16_t off[FB_MAX_FIELDS] = {0};
    size_t inl = 4;
    for (int pass = 4; pass >= 1; pass -= 3)
        for (int i = 0; i < f->n; i++)
            if (f->size[i] == pass) off[i] = (uint16_t)inl, inl += (size_t)pass;
    inl = (inl + 3) / 4 * 4;
    const size_t vt_len = 4 + 2 * (size_t)(max_id + 1);
    fb_pad(b, 4, vt_len); /* the table, right after the vtable, starts 4-aligned */
    size_t vt = fb_put(b, NULL, vt_len);
    fb_le(b, vt, vt_len, 2);
    fb_le(b, vt + 2, inl, 2);
    for (int i = 0; i < f->n; i++) fb_le(b, vt + 4 + 2 * (size_t)f->id[i], off[i], 2);
    size_t t = fb_put(b, NULL, inl);
    fb_le(b, t, (uint64_t)(uint32_t)(int32_t)(t - vt), 4);
    for (int i = 0; i < FB_MAX_FIELDS; i++) f->at[i] = 0;
    for (int i = 0; i < f->n; i++) {
        fb_le(b, t + off[i], f->val[i], f->size[i]);
        if (f->is_off[i]) f->at[f->id[i]] = t + off[i];
    }
    f->pos = t;
    return t;
}

/* A vector of n elements of `elem` bytes (little-endian values from v, or zeros), its elements
 * aligned to max(elem, align); returns where its length sits (what offsets point at). */
static size_t fb_vector(fbb *b, const void *v, size_t n, size_t elem, size_t align) {
    size_t a = elem > align ? elem : align;
    fb_pad(b, a < 4 ? 4 : a, 4);
    size_t at = fb_put(b, NULL, 4);
    fb_le(b, at, n, 4);
    fb_put(b, v, n * elem);
    return at;
}

static size_t fb_string(fbb *b, const char *s) {
    size_t n = strlen(s), at = fb_vector(b, s, n, 1, 4);
    fb_put(b, NULL, 1); /* NUL */
    return at;
}

/* ---- the model as TFLite sees it ---- */

enum { T_FLOAT32 = 0, T_INT32 = 2, T_INT8 = 9 };                                                     /* TensorType */
enum { OP_ADD = 0, OP_AVG = 1, OP_CONCAT = 2, OP_CONV = 3, OP_DW = 4, OP_DEQUANTIZE = 6, OP_FC = 9, OP_MAX = 17, OP_RESHAPE = 22,
       OP_SOFTMAX = 25, OP_PAD = 34, OP_MEAN = 40, OP_QUANTIZE = 114 }; /* BuiltinOperator */
enum { O_NONE = 0, O_CONV = 1, O_DW = 2, O_POOL = 5, O_FC = 8, O_SOFTMAX = 9, O_CONCAT = 10, O_ADD = 11, O_RESHAPE = 17, O_PAD = 22,
       O_REDUCER = 27 }; /* BuiltinOptions */
enum { PAD_SAME = 0, PAD_VALID = 1 };

typedef struct {
    int32_t shape[4];
    int ndim, type, buffer; /* buffer 0: none (activations) */
    char name[32];
    int nq, qdim;           /* nq scales (0: no quantization) */
    float *scale;           /* [nq], owned */
    int64_t *zp;            /* [nq], owned */
} tl_tensor;

typedef struct {
    int code, version, nin, in[3], out;
    int opt_type, opt[6]; /* the options table's int fields, by id (see put_options) */
} tl_op;

typedef struct {
    tl_tensor *t;
    int nt;
    tl_op *op;
    int nop;
    uint8_t **buf; /* [nbuf] owned data; buf[0] the empty sentinel */
    size_t *buf_len;
    int nbuf;
    int ok;
} tl_model;

static int add_buffer(tl_model *m, const void *data, size_t len) {
    uint8_t *p = tq_malloc(len ? len : 1);
    if (!p) {
        m->ok = 0;
        return 0;
    }
    if (len) memcpy(p, data, len); /* (the empty sentinel has no data: memcpy from NULL is undefined even for 0) */
    m->buf[m->nbuf] = p, m->buf_len[m->nbuf] = len;
    return m->nbuf++;
}

/* a tensor; nq scales with their zero points (zp NULL: all 0) */
static int add_tensor(tl_model *m, const char *name, int ndim, const int32_t *shape, int type, int buffer, int nq, const float *scale,
                      const int64_t *zp, int qdim) {
    tl_tensor *t = &m->t[m->nt];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim, t->type = type, t->buffer = buffer, t->nq = nq, t->qdim = qdim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    if (nq) {
        t->scale = tq_malloc((size_t)nq * sizeof(float));
        t->zp = tq_calloc((size_t)nq, sizeof(int64_t));
        if (!t->scale || !t->zp) m->ok = 0;
        for (int i = 0; m->ok && i < nq; i++) t->scale[i] = scale[i], t->zp[i] = zp ? zp[i] : 0;
    }
    return m->nt++;
}

static int act_tensor(tl_model *m, const char *name, int ndim, const int32_t *shape, float s, int32_t z) {
    int64_t zp = z;
    return add_tensor(m, name, ndim, shape, T_INT8, 0, 1, &s, &zp, 0);
}

static void free_model(tl_model *m) {
    for (int i = 0; i < m->nt; i++) tq_free(m->t[i].scale), tq_free(m->t[i].zp);
    for (int i = 0; i < m->nbuf; i++) tq_free(m->buf[i]);
    tq_free(m->t), tq_free(m->op), tq_free(m->buf), tq_free(m->buf_len);
}

/* TFLite's SAME padding for one dimension: what it adds before (its total's floor half) */
static int same_pad_before(int in, int k, int s, int *out) {
    *out = (in + s - 1) / s;
    int total = (*out - 1) * s + k - in;
    return total > 0 ? total / 2 : 0;
}

static tq_status build(tl_model *m, const tq_qmodel *q, int flags) {
    const int cap = 8 * q->n_layers + 6, softmax = flags & TQ_TFLITE_SOFTMAX, float_io = flags & TQ_TFLITE_FLOAT_IO;
    m->t = tq_calloc((size_t)cap, sizeof *m->t);
    m->op = tq_calloc((size_t)cap, sizeof *m->op);
    m->buf = tq_calloc((size_t)cap, sizeof *m->buf);
    m->buf_len = tq_calloc((size_t)cap, sizeof *m->buf_len);
    m->ok = m->t && m->op && m->buf && m->buf_len;
    if (!m->ok) TQ_FAIL(TQ_E_NOMEM, "tflite: out of memory");
    add_buffer(m, NULL, 0);
    const tq_qlayer *L0 = &q->layer[0];
    int32_t shape[4] = {1, L0->in_h, L0->in_w, L0->in_c};
    const int in_dims = L0->kind == TQ_S8_LINEAR ? 2 : 4;
    if (L0->kind == TQ_S8_LINEAR) shape[1] = L0->in;
    /* the subgraph's input is tensor 0: with float_io the float one, quantized first, as the
     * converter's default interface does */
    if (float_io) add_tensor(m, "input", in_dims, shape, T_FLOAT32, 0, 0, NULL, NULL, 0);
    int x = act_tensor(m, float_io ? "input_int8" : "input", in_dims, shape, L0->in_scale, L0->in_zp);
    if (float_io) m->op[m->nop++] = (tl_op){.code = OP_QUANTIZE, .version = 2, .nin = 1, .in = {0}, .out = x, .opt_type = O_NONE};
    int out_of[TQ_INT8_MAX_LAYERS]; /* each layer's output tensor: what a later layer's src names */
    const int input = x;
#define PRODUCED(l, j) (tq_qmodel_producer(q, l, j) < 0 ? input : out_of[tq_qmodel_producer(q, l, j)])
    for (int l = 0; l < q->n_layers && m->ok; l++) {
        const tq_qlayer *L = &q->layer[l];
        char nm[32];
        x = PRODUCED(l, 0);
        tl_op *op = &m->op[m->nop];
        memset(op, 0, sizeof *op);
        int32_t oshape[4] = {1, L->out_h, L->out_w, L->out_c};
        const int32_t kw = tq_qlayer_kw(L), sw = tq_qlayer_stride_w(L), pw = tq_qlayer_pad_w(L);
        if (L->kind == TQ_S8_ADD) { /* the kernel derives its multipliers from the three scales, as the converter did */
            int x2 = PRODUCED(l, 1);
            snprintf(nm, sizeof nm, "l%d_add", l);
            int y = act_tensor(m, nm, 4, oshape, L->out_scale, L->out_zp);
            *op = (tl_op){.code = OP_ADD, .version = 2, .nin = 2, .in = {x, x2}, .out = y, .opt_type = O_ADD, .opt = {L->relu == 2 ? 3 : L->relu}};
            m->nop++, x = out_of[l] = y;
            continue;
        }
        if (L->kind == TQ_S8_CONCAT) { /* one scale and zero point on both sides: the copies TFLite's kernel makes */
            int x2 = PRODUCED(l, 1);
            snprintf(nm, sizeof nm, "l%d_concat", l);
            int y = act_tensor(m, nm, 4, oshape, L->out_scale, L->out_zp);
            *op = (tl_op){.code = OP_CONCAT, .version = 2, .nin = 2, .in = {x, x2}, .out = y, .opt_type = O_CONCAT, .opt = {3}};
            m->nop++, x = out_of[l] = y;
            continue;
        }
        if (L->kind == TQ_S8_MEAN) { /* keep_dims for form 0, [1][C] for the others (runtime/int8_infer.h) */
            const int keep = L->mult[1] == 0;
            for (int r = l + 1; r < q->n_layers && !keep; r++) /* a [1][C] tensor: a dense layer or a flatten reads it */
                if (tq_qmodel_producer(q, r, 0) == l && q->layer[r].kind != TQ_S8_LINEAR && q->layer[r].kind != TQ_S8_FLATTEN)
                    TQ_FAIL(TQ_E_ARG, "tflite: layer %d (mean) without keep_dims writes [1][%d], which layer %d (%s) cannot read", l,
                            L->out_c, r, tq_qlayer_kind_name(q->layer[r].kind));
            const int32_t axes[2] = {1, 2};
            snprintf(nm, sizeof nm, "l%d_axes", l);
            int at = add_tensor(m, nm, 1, (int32_t[]){2}, T_INT32, add_buffer(m, axes, sizeof axes), 0, NULL, NULL, 0);
            snprintf(nm, sizeof nm, "l%d_mean", l);
            int y = keep ? act_tensor(m, nm, 4, oshape, L->out_scale, L->out_zp)
                         : act_tensor(m, nm, 2, (int32_t[]){1, L->out_c}, L->out_scale, L->out_zp);
            *op = (tl_op){.code = OP_MEAN, .version = 2, .nin = 2, .in = {x, at}, .out = y, .opt_type = O_REDUCER, .opt = {keep}};
            m->nop++, x = out_of[l] = y;
            continue;
        }
        if (L->kind == TQ_S8_SOFTMAX) { /* beta 1 (the multiplier is the input scale's); its input tensor's shape */
            int32_t sh[4];
            const int nd = m->t[x].ndim;
            memcpy(sh, m->t[x].shape, sizeof sh);
            snprintf(nm, sizeof nm, "l%d_softmax", l);
            int y = act_tensor(m, nm, nd, sh, L->out_scale, L->out_zp);
            *op = (tl_op){.code = OP_SOFTMAX, .version = 2, .nin = 1, .in = {x}, .out = y, .opt_type = O_SOFTMAX};
            m->nop++, x = out_of[l] = y;
            continue;
        }
        if (L->kind == TQ_S8_FLATTEN) {
            int32_t ns[2] = {1, L->out};
            snprintf(nm, sizeof nm, "l%d_shape", l);
            int st = add_tensor(m, nm, 1, (int32_t[]){2}, T_INT32, add_buffer(m, ns, sizeof ns), 0, NULL, NULL, 0);
            snprintf(nm, sizeof nm, "l%d_flat", l);
            int y = act_tensor(m, nm, 2, ns, L->out_scale, L->out_zp);
            *op = (tl_op){.code = OP_RESHAPE, .version = 1, .nin = 2, .in = {x, st}, .out = y, .opt_type = O_RESHAPE};
            m->nop++, x = out_of[l] = y;
            continue;
        }
        if (L->kind == TQ_S8_MAXPOOL || L->kind == TQ_S8_AVGPOOL) {
            snprintf(nm, sizeof nm, "l%d_pool", l);
            int y = act_tensor(m, nm, 4, oshape, L->out_scale, L->out_zp);
            *op = (tl_op){.code = L->kind == TQ_S8_MAXPOOL ? OP_MAX : OP_AVG, .version = 2, .nin = 1, .in = {x}, .out = y, .opt_type = O_POOL,
                          .opt = {PAD_VALID, sw, L->stride, kw, L->k, 0}};
            m->nop++, x = out_of[l] = y;
            continue;
        }
        /* a layer with weights: int8 weights per channel, int32 bias at s_in s_w[o] */
        const int32_t C = L->out_c;
        const size_t nw = tq_qlayer_weights(L);
        int8_t *w = tq_malloc(nw);
        float *bs = tq_malloc((size_t)C * sizeof(float));
        if (!w || !bs) {
            tq_free(w), tq_free(bs);
            TQ_FAIL(TQ_E_NOMEM, "tflite: out of memory");
        }
        for (size_t i = 0; i < nw; i++) w[i] = (int8_t)tq_s8_unpack(L->w, tq_qlayer_storage_bits(L->w_bits), i);
        for (int32_t o = 0; o < C; o++) bs[o] = L->in_scale * L->w_scale[o]; /* the product the converter used */
        int pad_input = x;
        int padding = PAD_VALID;
        if (L->kind != TQ_S8_LINEAR && (L->pad || pw || (L->out_h - 1) * L->stride + L->k > L->in_h ||
                                        (L->out_w - 1) * sw + kw > L->in_w)) {
            int oh, ow, ph = same_pad_before(L->in_h, L->k, L->stride, &oh), pwb = same_pad_before(L->in_w, kw, sw, &ow);
            if (oh == L->out_h && ow == L->out_w && ph == L->pad && pwb == pw) {
                padding = PAD_SAME;
            } else { /* a PAD of the zero point first, then VALID: before as given; after the same, or one more
                      * where the output needs it (padding after within a stride less than before is what
                      * VALID's floor drops) */
                int32_t ah = (L->out_h - 1) * L->stride + L->k - L->in_h - L->pad, aw = (L->out_w - 1) * sw + kw - L->in_w - pw;
                ah = ah > L->pad ? ah : L->pad, aw = aw > pw ? aw : pw;
                int32_t pads[8] = {0, 0, L->pad, ah, pw, aw, 0, 0};
                snprintf(nm, sizeof nm, "l%d_pads", l);
                int pt = add_tensor(m, nm, 2, (int32_t[]){4, 2}, T_INT32, add_buffer(m, pads, sizeof pads), 0, NULL, NULL, 0);
                snprintf(nm, sizeof nm, "l%d_padded", l);
                int32_t ps[4] = {1, L->in_h + L->pad + ah, L->in_w + pw + aw, L->in_c};
                pad_input = act_tensor(m, nm, 4, ps, L->in_scale, L->in_zp);
                m->op[m->nop++] = (tl_op){.code = OP_PAD, .version = 2, .nin = 2, .in = {x, pt}, .out = pad_input, .opt_type = O_PAD};
                op = &m->op[m->nop];
            }
        }
        int32_t wshape[4];
        int wdim = 4, qdim = 0;
        if (L->kind == TQ_S8_LINEAR) wdim = 2, wshape[0] = L->out, wshape[1] = L->in;
        else if (L->kind == TQ_S8_CONV) wshape[0] = C, wshape[1] = L->k, wshape[2] = kw, wshape[3] = L->in_c;
        else wshape[0] = 1, wshape[1] = L->k, wshape[2] = kw, wshape[3] = C, qdim = 3;
        /* one scale when every channel has the same (a per-tensor model): the form every reader takes */
        int same = 1;
        for (int32_t o = 1; o < C; o++) same &= L->w_scale[o] == L->w_scale[0];
        const int nq = same ? 1 : C;
        snprintf(nm, sizeof nm, "l%d_w", l);
        int wt = add_tensor(m, nm, wdim, wshape, T_INT8, add_buffer(m, w, nw), nq, L->w_scale, NULL, qdim);
        snprintf(nm, sizeof nm, "l%d_b", l);
        int bt = add_tensor(m, nm, 1, &C, T_INT32, add_buffer(m, L->bias, (size_t)C * sizeof(int32_t)), nq, bs, NULL, 0);
        tq_free(w), tq_free(bs);
        snprintf(nm, sizeof nm, "l%d_out", l);
        int y = L->kind == TQ_S8_LINEAR ? act_tensor(m, nm, 2, (int32_t[]){1, L->out}, L->out_scale, L->out_zp)
                                        : act_tensor(m, nm, 4, oshape, L->out_scale, L->out_zp);
        /* ActivationFunctionType RELU (1): the clamp from z_y, as tinyqat's; RELU6 (3): and at z_y + round(6 / s_y) */
        const int relu = L->relu == 2 ? 3 : L->relu;
        if (L->kind == TQ_S8_LINEAR)
            *op = (tl_op){.code = OP_FC, .version = 4, .nin = 3, .in = {pad_input, wt, bt}, .out = y, .opt_type = O_FC, .opt = {relu}};
        else if (L->kind == TQ_S8_CONV)
            *op = (tl_op){.code = OP_CONV, .version = 3, .nin = 3, .in = {pad_input, wt, bt}, .out = y, .opt_type = O_CONV,
                          .opt = {padding, sw, L->stride, relu}};
        else
            *op = (tl_op){.code = OP_DW, .version = 3, .nin = 3, .in = {pad_input, wt, bt}, .out = y, .opt_type = O_DW,
                          .opt = {padding, sw, L->stride, C / L->in_c, relu}};
        m->nop++, x = out_of[l] = y;
    }
    if (softmax && m->ok && q->layer[q->n_layers - 1].kind != TQ_S8_SOFTMAX) { /* beta 1; int8 SOFTMAX's output is fixed at s = 1/256, z = -128 */
        const tq_qlayer *L = &q->layer[q->n_layers - 1];
        int y = act_tensor(m, "probabilities", 2, (int32_t[]){1, L->out}, 1.0f / 256, -128);
        m->op[m->nop++] = (tl_op){.code = OP_SOFTMAX, .version = 2, .nin = 1, .in = {x}, .out = y, .opt_type = O_SOFTMAX};
        x = y;
    }
    if (float_io && m->ok) { /* and the output dequantized last */
        const tl_tensor *t = &m->t[x];
        int y = add_tensor(m, "output", t->ndim, t->shape, T_FLOAT32, 0, 0, NULL, NULL, 0);
        m->op[m->nop++] = (tl_op){.code = OP_DEQUANTIZE, .version = 2, .nin = 1, .in = {x}, .out = y, .opt_type = O_NONE};
    }
#undef PRODUCED
    if (!m->ok) TQ_FAIL(TQ_E_NOMEM, "tflite: out of memory");
    return TQ_OK;
}

/* The options table of an operator: its fields in schema order (the ints and bytes it has). */
static size_t put_options(fbb *b, const tl_op *op) {
    fb_fields f = {0};
    switch (op->opt_type) {
    case O_CONV: /* padding:byte, stride_w, stride_h, fused_activation_function:byte */
        fb_field(&f, 0, 1, (uint32_t)op->opt[0]), fb_field(&f, 1, 4, (uint32_t)op->opt[1]), fb_field(&f, 2, 4, (uint32_t)op->opt[2]);
        fb_field(&f, 3, 1, (uint32_t)op->opt[3]);
        break;
    case O_DW: /* padding, stride_w, stride_h, depth_multiplier, fused_activation_function */
        fb_field(&f, 0, 1, (uint32_t)op->opt[0]), fb_field(&f, 1, 4, (uint32_t)op->opt[1]), fb_field(&f, 2, 4, (uint32_t)op->opt[2]);
        fb_field(&f, 3, 4, (uint32_t)op->opt[3]), fb_field(&f, 4, 1, (uint32_t)op->opt[4]);
        break;
    case O_POOL: /* padding, stride_w, stride_h, filter_width, filter_height, fused_activation_function */
        fb_field(&f, 0, 1, (uint32_t)op->opt[0]), fb_field(&f, 1, 4, (uint32_t)op->opt[1]), fb_field(&f, 2, 4, (uint32_t)op->opt[2]);
        fb_field(&f, 3, 4, (uint32_t)op->opt[3]), fb_field(&f, 4, 4, (uint32_t)op->opt[4]), fb_field(&f, 5, 1, (uint32_t)op->opt[5]);
        break;
    case O_FC:  /* fused_activation_function */
    case O_ADD: /* fused_activation_function (pot_scale_int16 left at its default) */
        fb_field(&f, 0, 1, (uint32_t)op->opt[0]);
        break;
    case O_REDUCER: /* keep_dims: bool */
        fb_field(&f, 0, 1, (uint32_t)op->opt[0]);
        break;
    case O_CONCAT: /* axis: int32 (3, the channels of NHWC), fused_activation_function NONE */
        fb_field(&f, 0, 4, (uint32_t)op->opt[0]);
        break;
    case O_SOFTMAX: /* beta: float 1 */
        fb_field(&f, 0, 4, 0x3f800000u);
        break;
    default: /* RESHAPE (new_shape left to the shape tensor), PAD: empty tables */
        break;
    }
    return fb_table(b, &f);
}

static void put_model(fbb *b, const tl_model *m) {
    /* the operator codes in use, in first-use order */
    int codes[16], versions[16], nc = 0, code_of[256];
    for (int i = 0; i < m->nop; i++) {
        int k = 0;
        while (k < nc && codes[k] != m->op[i].code) k++;
        if (k == nc) codes[nc] = m->op[i].code, versions[nc++] = m->op[i].version;
        code_of[i] = k;
    }
    size_t root = fb_put(b, NULL, 4);
    fb_put(b, "TFL3", 4);
    fb_fields model = {0}; /* version, operator_codes, subgraphs, description, buffers */
    fb_field(&model, 0, 4, 3);
    fb_offset(&model, 1), fb_offset(&model, 2), fb_offset(&model, 3), fb_offset(&model, 4);
    fb_link(b, root, fb_table(b, &model));
    /* operator codes: builtin_code (the byte field every reader knows), version */
    size_t v = fb_vector(b, NULL, (size_t)nc, 4, 4);
    fb_link(b, model.at[1], v);
    for (int k = 0; k < nc; k++) {
        fb_fields oc = {0};
        fb_field(&oc, 0, 1, (uint32_t)codes[k]), fb_field(&oc, 2, 4, (uint32_t)versions[k]);
        fb_link(b, v + 4 + 4 * (size_t)k, fb_table(b, &oc));
    }
    /* one subgraph: tensors, inputs, outputs, operators, name */
    v = fb_vector(b, NULL, 1, 4, 4);
    fb_link(b, model.at[2], v);
    fb_fields sg = {0};
    for (int i = 0; i < 5; i++) fb_offset(&sg, i);
    fb_link(b, v + 4, fb_table(b, &sg));
    size_t tv = fb_vector(b, NULL, (size_t)m->nt, 4, 4);
    fb_link(b, sg.at[0], tv);
    for (int i = 0; i < m->nt; i++) {
        const tl_tensor *t = &m->t[i];
        fb_fields tf = {0}; /* shape, type, buffer, name, quantization */
        fb_offset(&tf, 0), fb_field(&tf, 1, 1, (uint32_t)t->type), fb_field(&tf, 2, 4, (uint32_t)t->buffer), fb_offset(&tf, 3);
        if (t->nq) fb_offset(&tf, 4);
        fb_link(b, tv + 4 + 4 * (size_t)i, fb_table(b, &tf));
        fb_link(b, tf.at[0], fb_vector(b, t->shape, (size_t)t->ndim, 4, 4));
        fb_link(b, tf.at[3], fb_string(b, t->name));
        if (!t->nq) continue;
        fb_fields qp = {0}; /* scale (2), zero_point (3), quantized_dimension (6) */
        fb_offset(&qp, 2), fb_offset(&qp, 3), fb_field(&qp, 6, 4, (uint32_t)t->qdim);
        fb_link(b, tf.at[4], fb_table(b, &qp));
        fb_link(b, qp.at[2], fb_vector(b, t->scale, (size_t)t->nq, 4, 4));
        fb_link(b, qp.at[3], fb_vector(b, t->zp, (size_t)t->nq, 8, 8));
    }
    int32_t in = 0, out = m->op[m->nop - 1].out;
    fb_link(b, sg.at[1], fb_vector(b, &in, 1, 4, 4));
    fb_link(b, sg.at[2], fb_vector(b, &out, 1, 4, 4));
    size_t ov = fb_vector(b, NULL, (size_t)m->nop, 4, 4);
    fb_link(b, sg.at[3], ov);
    for (int i = 0; i < m->nop; i++) {
        const tl_op *op = &m->op[i];
        fb_fields of = {0}; /* opcode_index, inputs, outputs, builtin_options_type, builtin_options */
        fb_field(&of, 0, 4, (uint32_t)code_of[i]), fb_offset(&of, 1), fb_offset(&of, 2), fb_field(&of, 3, 1, (uint32_t)op->opt_type);
        fb_offset(&of, 4);
        fb_link(b, ov + 4 + 4 * (size_t)i, fb_table(b, &of));
        fb_link(b, of.at[1], fb_vector(b, op->in, (size_t)op->nin, 4, 4));
        fb_link(b, of.at[2], fb_vector(b, &op->out, 1, 4, 4));
        fb_link(b, of.at[4], put_options(b, op));
    }
    fb_link(b, sg.at[4], fb_string(b, "main"));
    fb_link(b, model.at[3], fb_string(b, "tinyqat"));
    /* buffers: [0] empty, then the constants, 16-aligned */
    size_t bv = fb_vector(b, NULL, (size_t)m->nbuf, 4, 4);
    fb_link(b, model.at[4], bv);
    for (int i = 0; i < m->nbuf; i++) {
        fb_fields bf = {0};
        if (i) fb_offset(&bf, 0);
        fb_link(b, bv + 4 + 4 * (size_t)i, fb_table(b, &bf));
        if (i) fb_link(b, bf.at[0], fb_vector(b, m->buf[i], m->buf_len[i], 1, 16));
    }
}

tq_status tq_export_tflite(const tq_qmodel *q, const char *path, int flags) {
    if (!q || !path) TQ_FAIL(TQ_E_ARG, "tflite: a model and a path are required");
    if (tq_int8_net_check(&q->net) != TQ_INT8_OK) TQ_FAIL(TQ_E_ARG, "tflite: the integer model is not a valid network");
    tq_status st = tq_qmodel_check_scales(q, "tflite");
    if (st != TQ_OK) return st;
    tl_model m;
    memset(&m, 0, sizeof m);
    st = build(&m, q, flags);
    fbb b = {NULL, 0, 0, 1};
    if (st == TQ_OK) put_model(&b, &m);
    if (st == TQ_OK && !b.ok) st = tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "tflite: out of memory");
    if (st == TQ_OK) st = tq_file_write_atomic(path, b.p, b.len);
    tq_free(b.p);
    free_model(&m);
    return st;
}
