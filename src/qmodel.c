#include "src/qmodel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/fileio.h"
#include "src/quant.h"

void tq_quantize_multiplier(double M, int32_t *M0, int32_t *shift) {
    if (!(M > 0)) {
        *M0 = 0;
        *shift = 0;
        return;
    }
    if (!(M < 1073741824.0)) { /* M >= 2^30 or +inf: the largest multiplier, which saturates the
                                  output for every acc != 0 exactly as M itself would */
        *M0 = INT32_MAX;
        *shift = 30;
        return;
    }
    int e;
    double q = frexp(M, &e); /* M = q 2^e, q in [0.5, 1) */
    int64_t m = (int64_t)round(q * 2147483648.0); /* round() is half away from zero */
    if (m == ((int64_t)1 << 31)) {
        m /= 2;
        e++;
    }
    if (e < -31) {
        m = 0;
        e = 0;
    }
    *M0 = (int32_t)m;
    *shift = e;
}

int32_t tq_qlayer_kw(const tq_qlayer *L) { return L->kw ? L->kw : L->k; }
int32_t tq_qlayer_stride_w(const tq_qlayer *L) { return L->kw ? L->stride_w : L->stride; }
int32_t tq_qlayer_pad_w(const tq_qlayer *L) { return L->kw ? L->pad_w : L->pad; }

size_t tq_qlayer_weights(const tq_qlayer *L) {
    switch (L->kind) {
    case TQ_S8_LINEAR: return (size_t)L->out * (size_t)L->in;
    case TQ_S8_CONV: return (size_t)L->out_c * (size_t)L->k * (size_t)tq_qlayer_kw(L) * (size_t)L->in_c;
    case TQ_S8_DEPTHWISE: return (size_t)L->k * (size_t)tq_qlayer_kw(L) * (size_t)L->out_c;
    default: return 0;
    }
}

int32_t tq_qlayer_storage_bits(int32_t w_bits) { return w_bits <= 2 ? 2 : w_bits <= 4 ? 4 : 8; }

size_t tq_qlayer_weight_bytes(const tq_qlayer *L) {
    return (tq_qlayer_weights(L) * (size_t)tq_qlayer_storage_bits(L->w_bits) + 7) / 8;
}

int32_t tq_qlayer_channels(const tq_qlayer *L) {
    return TQ_S8_IN(TQ_S8_WEIGHTED, L->kind) ? L->out_c : 0;
}

int32_t tq_qlayer_requants(const tq_qlayer *L) {
    return TQ_S8_IN(TQ_S8_WEIGHTED, L->kind) ? L->out_c : TQ_S8_FIXED_REQUANTS(L->kind);
}

int tq_qmodel_is_chain(const tq_qmodel *q) {
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        if (TQ_S8_IN(TQ_S8_INT8_ONLY, L->kind) || L->src[0] || L->src[1] || L->kw || L->stride_w || L->pad_w ||
            L->in2_zp || L->in2_c || L->in2_scale != 0)
            return 0;
    }
    return 1;
}

int tq_qmodel_has_act16(const tq_qmodel *q) {
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].act16) return 1;
    return 0;
}

uint64_t tq_qmodel_macs(const tq_qmodel *q) {
    uint64_t n = 0;
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        /* every weight is used once per output position (a linear layer has one) */
        n += (uint64_t)L->out_h * (uint64_t)L->out_w * tq_qlayer_weights(L);
    }
    return n;
}

void tq_qmodel_free(tq_qmodel *q) {
    if (!q) return;
    for (int l = 0; l < TQ_INT8_MAX_LAYERS; l++) {
        tq_qlayer *L = &q->layer[l];
        tq_free(L->w_scale);
        tq_free(L->w);
        tq_free(L->bias);
        tq_free(L->bias64);
        tq_free(L->mult);
        tq_free(L->shift);
    }
    memset(q, 0, sizeof *q);
}

/* Weight i of a zeroed weight buffer := v, packed to the layer's storage width. */
static void put_weight(tq_qlayer *L, size_t i, int32_t v) {
    size_t sb = (size_t)tq_qlayer_storage_bits(L->w_bits), per = 8 / sb;
    uint8_t *w = (uint8_t *)L->w;
    w[i / per] |= (uint8_t)(((uint32_t)v & ((1u << sb) - 1)) << (sb * (i % per)));
}

static tq_status alloc_layer(tq_qlayer *L) {
    size_t ch = (size_t)tq_qlayer_channels(L);
    if (TQ_S8_FIXED_REQUANTS(L->kind)) {
        L->mult = tq_calloc(3, sizeof(int32_t));
        L->shift = tq_calloc(3, sizeof(int32_t));
        if (!L->mult || !L->shift) TQ_FAIL(TQ_E_NOMEM, "integer model: out of memory");
        return TQ_OK;
    }
    if (!ch) return TQ_OK;
    L->w_scale = tq_malloc(ch * sizeof(float));
    L->w = tq_calloc(tq_qlayer_weight_bytes(L), 1); /* zeros: packing ORs into it */
    if (L->act16) L->bias64 = tq_malloc(ch * sizeof(int64_t));
    else L->bias = tq_malloc(ch * sizeof(int32_t));
    L->mult = tq_malloc(ch * sizeof(int32_t));
    L->shift = tq_malloc(ch * sizeof(int32_t));
    if (!L->w_scale || !L->w || !(L->bias || L->bias64) || !L->mult || !L->shift)
        TQ_FAIL(TQ_E_NOMEM, "integer model: out of memory for %zu weights", tq_qlayer_weights(L));
    return TQ_OK;
}

static void bind_view(tq_qmodel *q) {
    q->net = (tq_int8_net){q->n_layers, q->view};
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        q->view[l] = (tq_s8_layer){.in = L->in, .out = L->out, .w = L->w, .bias = L->bias, .mult = L->mult,
                                        .shift = L->shift, .in_zp = L->in_zp, .out_zp = L->out_zp, .act_min = L->act_min,
                                        .act_max = L->act_max, .kind = L->kind, .in_h = L->in_h, .in_w = L->in_w,
                                        .in_c = L->in_c, .out_h = L->out_h, .out_w = L->out_w, .out_c = L->out_c,
                                        .k = L->k, .stride = L->stride, .pad = L->pad,
                                        .w_bits = tq_qlayer_storage_bits(L->w_bits), .src = {L->src[0], L->src[1]},
                                        .in2_zp = L->in2_zp, .kw = L->kw, .stride_w = L->stride_w, .pad_w = L->pad_w,
                                        .in2_c = L->in2_c, .act16 = L->act16, .bias64 = L->bias64};
    }
}

const char *tq_qlayer_kind_name(int32_t kind) {
    static const char *names[] = {"linear", "conv", "depthwise", "max pool", "avg pool", "flatten", "add", "concat", "mean", "softmax"};
    return kind >= 0 && kind <= TQ_S8_SOFTMAX ? names[kind] : "unknown";
}

/* A size the formats and kernels handle: 1..65536 per dimension, 2^24 values per activation,
 * a patch of at most 2^20 values. */
#define DIM_OK(v) ((v) >= 1 && (v) <= 65536)

static int two_inputs(const tq_qlayer *L) { return TQ_S8_IN(TQ_S8_BINARY, L->kind); }

int tq_qmodel_producer(const tq_qmodel *q, int l, int j) { return q->layer[l].src[j] ? q->layer[l].src[j] - 1 : l - 1; }

/* Layer l's fields against its kind and the layers it reads: what the loader and the converter
 * both check, so a model that passes runs without reading out of bounds (tq_int8_net_check's
 * rules, with messages). Sets in and out. */
static tq_status check_layer(tq_qmodel *q, int l, const char *path) {
    tq_qlayer *L = &q->layer[l];
#define BAD(...) TQ_FAIL(TQ_E_FORMAT, __VA_ARGS__)
    if (L->kind < 0 || L->kind > TQ_S8_SOFTMAX) BAD("%s: layer %d: unknown kind %d", path, l, L->kind);
    const char *kn = tq_qlayer_kind_name(L->kind);
    if (L->w_bits < 2 || L->w_bits > 8) BAD("%s: layer %d (%s): %d-bit weights (2..8)", path, l, kn, L->w_bits);
    if (!DIM_OK(L->in_h) || !DIM_OK(L->in_w) || !DIM_OK(L->in_c) || !DIM_OK(L->out_h) || !DIM_OK(L->out_w) ||
        !DIM_OK(L->out_c) || (int64_t)L->in_h * L->in_w * L->in_c > (1 << 24) || (int64_t)L->out_h * L->out_w * L->out_c > (1 << 24))
        BAD("%s: layer %d (%s): bad shape %dx%dx%d -> %dx%dx%d", path, l, kn, L->in_h, L->in_w, L->in_c, L->out_h, L->out_w,
            L->out_c);
    L->in = L->in_h * L->in_w * L->in_c;
    L->out = L->out_h * L->out_w * L->out_c;
    int image = TQ_S8_IN(TQ_S8_WINDOWED, L->kind);
    if (L->kw < 0 || L->stride_w < 0 || L->pad_w < 0 || (!L->kw && (L->stride_w || L->pad_w)))
        BAD("%s: layer %d (%s): bad kernel width fields", path, l, kn);
    if (image) {
        int conv = TQ_S8_IN(TQ_S8_WEIGHTED, L->kind);
        /* per axis: the padding after is what the output size implies: at most one more than
         * before (TFLite's SAME), less than a window, none for pools */
        const int32_t geo[2][5] = {{L->k, L->stride, L->pad, L->in_h, L->out_h},
                                   {tq_qlayer_kw(L), tq_qlayer_stride_w(L), tq_qlayer_pad_w(L), L->in_w, L->out_w}};
        for (int a = 0; a < 2; a++) {
            int32_t k = geo[a][0], st = geo[a][1], p = geo[a][2], n = geo[a][3];
            int32_t pad_max = conv && k >= 1 && k <= 64 ? k - 1 : 0; /* k checked first: k - 1 of INT32_MIN overflows */
            if (k < 1 || k > 64 || st < 1 || st > 64 || p < 0 || p > pad_max || k > n + p + (p + 1 < pad_max ? p + 1 : pad_max))
                BAD("%s: layer %d (%s): kernel %d, stride %d, padding %d do not fit a %dx%d input", path, l, kn, k, st, p, L->in_h,
                    L->in_w);
        }
        if (L->kind == TQ_S8_CONV && (int64_t)L->k * tq_qlayer_kw(L) * L->in_c > (1 << 20))
            BAD("%s: layer %d (conv): a %dx%dx%d window needs too much scratch", path, l, L->k, tq_qlayer_kw(L), L->in_c);
        for (int a = 0; a < 2; a++) {
            int32_t k = geo[a][0], st = geo[a][1], p = geo[a][2], n = geo[a][3], o = geo[a][4], pad_max = conv ? k - 1 : 0;
            int64_t after = (int64_t)(o - 1) * st + k - n - p;
            if (after > p + 1 || after > pad_max || after <= p - st)
                BAD("%s: layer %d (%s): output %dx%d, the kernel gives %dx%d", path, l, kn, L->out_h, L->out_w,
                    (L->in_h + 2 * L->pad - L->k) / L->stride + 1,
                    (L->in_w + 2 * tq_qlayer_pad_w(L) - tq_qlayer_kw(L)) / tq_qlayer_stride_w(L) + 1);
        }
        if ((L->kind == TQ_S8_DEPTHWISE && L->out_c % L->in_c) || (!conv && L->out_c != L->in_c))
            BAD("%s: layer %d (%s): %d output channels from %d", path, l, kn, L->out_c, L->in_c);
    } else if (two_inputs(L)) {
        int32_t want_c = L->kind == TQ_S8_CONCAT ? L->in_c + L->in2_c : L->in_c;
        if (L->out_h != L->in_h || L->out_w != L->in_w || L->out_c != want_c || L->k != 1 || L->stride != 1 || L->pad != 0 || L->kw ||
            (L->kind == TQ_S8_CONCAT ? !DIM_OK(L->in2_c) : L->in2_c != 0))
            BAD("%s: layer %d (%s): bad shape fields", path, l, kn);
        if (L->in2_zp < -128 || L->in2_zp > 127 || !(L->in2_scale > 0) || !isfinite(L->in2_scale))
            BAD("%s: layer %d (%s): bad second input zero point or scale", path, l, kn);
        /* a concat copies: its inputs at its own scale and zero point (the converter requantizes them to one) */
        if (L->kind == TQ_S8_CONCAT && (L->in_zp != L->out_zp || L->in2_zp != L->out_zp || L->in_scale != L->out_scale ||
                                        L->in2_scale != L->out_scale || L->relu))
            BAD("%s: layer %d (concat): inputs at scales %g and %g, zero points %d and %d, output at %g and %d: a concat keeps one", path,
                l, (double)L->in_scale, (double)L->in2_scale, L->in_zp, L->in2_zp, (double)L->out_scale, L->out_zp);
    } else if (L->kind == TQ_S8_SOFTMAX) { /* over each position's channels; the output on TFLite's fixed grid */
        if (L->out_h != L->in_h || L->out_w != L->in_w || L->out_c != L->in_c || L->k != 1 || L->stride != 1 || L->pad != 0 || L->kw)
            BAD("%s: layer %d (softmax): bad shape fields", path, l);
        if (L->in_c > 511) BAD("%s: layer %d (softmax): over %d values; the int8 softmax sums at most 511", path, l, L->in_c);
        if (L->out_zp != -128 || L->out_scale != 1.0f / 256 || L->act_min != -128 || L->act_max != 127)
            BAD("%s: layer %d (softmax): output at scale %g, zero point %d, clamp [%d, %d]: an int8 softmax writes 1/256, -128, "
                "[-128, 127]", path, l, (double)L->out_scale, L->out_zp, L->act_min, L->act_max);
    } else {
        int want_c = L->kind == TQ_S8_FLATTEN ? L->in : L->kind == TQ_S8_MEAN ? L->in_c : L->out_c;
        if (L->kind == TQ_S8_LINEAR && (L->in_h != 1 || L->in_w != 1))
            BAD("%s: layer %d (linear): input %dx%dx%d is not flat (a flatten layer goes first)", path, l, L->in_h, L->in_w, L->in_c);
        if (L->out_h != 1 || L->out_w != 1 || L->out_c != want_c || L->k != 1 || L->stride != 1 || L->pad != 0 || L->kw)
            BAD("%s: layer %d (%s): bad shape fields", path, l, kn);
        if (L->kind == TQ_S8_MEAN && (int64_t)L->in_h * L->in_w > (1 << 23))
            BAD("%s: layer %d (mean): %dx%d positions, more than its int32 sum holds (2^23)", path, l, L->in_h, L->in_w);
    }
    if (L->relu > 2 || L->relu < 0 || (tq_qlayer_channels(L) == 0 && L->kind != TQ_S8_ADD && L->relu))
        BAD("%s: layer %d (%s): bad relu flag %d", path, l, kn, L->relu);
    /* 16-bit activations (act16): symmetric int16 on that side, where a layer with weights may
     * change width; the others keep their input's, and adds and concats take int8 only */
    const int in16 = L->act16 & 1, out16 = (L->act16 >> 1) & 1;
    if (L->act16 & ~3) BAD("%s: layer %d (%s): bad activation width flags %d", path, l, kn, L->act16);
    const int int8_only = TQ_S8_IN(TQ_S8_INT8_ONLY, L->kind);
    if (L->act16 && (int8_only || (!tq_qlayer_channels(L) && in16 != out16)))
        BAD("%s: layer %d (%s): 16-bit activations %s", path, l, kn,
            int8_only ? "are for layers with weights, pools and flatten, not an add, a concat, a mean or a softmax"
                                                   : "in or out only: it keeps its input's width");
    if ((in16 ? L->in_zp != 0 : L->in_zp < -128 || L->in_zp > 127) || (out16 ? L->out_zp != 0 : L->out_zp < -128 || L->out_zp > 127))
        BAD("%s: layer %d: zero point outside %s (an int16 side's is 0)", path, l, in16 || out16 ? "its type" : "int8");
    if (!tq_qlayer_requants(L) && L->in_zp != L->out_zp)
        BAD("%s: layer %d (%s): zero points %d in, %d out (a %s keeps them)", path, l, kn, L->in_zp, L->out_zp, kn);
    if (L->act_min < (out16 ? -32768 : -128) || L->act_max > (out16 ? 32767 : 127) || L->act_min > L->act_max)
        BAD("%s: layer %d: bad activation clamp [%d, %d]", path, l, L->act_min, L->act_max);
    if (!(L->in_scale > 0) || !(L->out_scale > 0) || !isfinite(L->in_scale) || !isfinite(L->out_scale))
        BAD("%s: layer %d: bad scales", path, l);
    if (!two_inputs(L) && (L->src[1] || L->in2_c)) BAD("%s: layer %d (%s): a second input", path, l, kn);
    for (int j = 0; j < (two_inputs(L) ? 2 : 1); j++) {
        if (L->src[j] < 0 || L->src[j] > l)
            BAD("%s: layer %d (%s): input %d is layer %lld's output, which is not an earlier layer", path, l, kn, j,
                (long long)L->src[j] - 1);
        int p = tq_qmodel_producer(q, l, j);
        int32_t zp = j ? L->in2_zp : L->in_zp, c = j && L->kind == TQ_S8_CONCAT ? L->in2_c : L->in_c;
        if (p < 0 && in16) BAD("%s: layer %d (%s): the network's input is int8, read as int16", path, l, kn);
        if (p < 0) { /* the network's input, twice: both reads are layer 0's input */
            if (j && (c != L->in_c || zp != L->in_zp || L->in2_scale != L->in_scale))
                BAD("%s: layer %d (%s): its second input is the network's, %dx%dx%d z %d, read as %dx%dx%d z %d", path, l, kn,
                    L->in_h, L->in_w, L->in_c, L->in_zp, L->in_h, L->in_w, c, zp);
            continue;
        }
        const tq_qlayer *P = &q->layer[p];
        if (L->in_h != P->out_h || L->in_w != P->out_w || c != P->out_c || zp != P->out_zp)
            BAD("%s: layer %d (%s) does not follow layer %d: input %dx%dx%d z %d, outputs %dx%dx%d z %d", path, l, kn, p, L->in_h,
                L->in_w, c, zp, P->out_h, P->out_w, P->out_c, P->out_zp);
        if (in16 != ((P->act16 >> 1) & 1))
            BAD("%s: layer %d (%s) reads layer %d's int%d output as int%d", path, l, kn, p, (P->act16 & 2) ? 16 : 8, in16 ? 16 : 8);
    }
    if (l == q->n_layers - 1) {
        if (L->kind == TQ_S8_FLATTEN) BAD("%s: the last layer is a flatten", path);
        if (out16) BAD("%s: the last layer's output is int16: the network's output (its logits) is int8", path);
        for (int p = 0; p < l; p++) { /* the last layer's output is the network's; every other is read */
            int read = 0;
            for (int r = p + 1; r < q->n_layers && !read; r++)
                for (int j = 0; j < (two_inputs(&q->layer[r]) ? 2 : 1); j++) read |= tq_qmodel_producer(q, r, j) == p;
            if (!read) BAD("%s: layer %d (%s): its output is read by no layer", path, p, tq_qlayer_kind_name(q->layer[p].kind));
        }
    }
#undef BAD
    return TQ_OK;
}

/* Per-channel arrays against their ranges (after conversion or loading). */
static tq_status check_channels(const tq_qlayer *L, int l, const char *path) {
    const int32_t qmax = (1 << (L->w_bits - 1)) - 1, sb = tq_qlayer_storage_bits(L->w_bits), ch = tq_qlayer_channels(L);
    const size_t n = tq_qlayer_weights(L), nb = tq_qlayer_weight_bytes(L), per = ch ? n / (size_t)ch : 0;
    if (n * (size_t)sb < nb * 8 && ((uint8_t)L->w[nb - 1] >> (n * (size_t)sb % 8)))
        TQ_FAIL(TQ_E_FORMAT, "%s: layer %d: the unused bits of the last weight byte are not zero", path, l);
    for (int32_t o = 0; o < ch; o++) {
        /* each weight in its range, and the accumulator bound of runtime/int8_infer.h (TQ_S8_ACC_MAX) */
        int64_t sum = 0;
        for (size_t i = 0; i < per; i++) {
            size_t k = L->kind == TQ_S8_DEPTHWISE ? i * (size_t)ch + (size_t)o : (size_t)o * per + i;
            int32_t w = tq_s8_unpack(L->w, sb, k);
            if (w < -qmax || w > qmax)
                TQ_FAIL(TQ_E_FORMAT, "%s: layer %d: weight %zu is %d, outside the %d-bit range [%d, %d]", path, l, k, w, L->w_bits, -qmax, qmax);
            sum += w < 0 ? -w : w;
        }
        if (L->act16) { /* the int64 accumulator's bound (runtime/int8_infer.h) */
            if (L->bias64[o] > ((int64_t)1 << 46) || L->bias64[o] < -((int64_t)1 << 46))
                TQ_FAIL(TQ_E_FORMAT, "%s: layer %d channel %d: bias %lld is beyond 2^46", path, l, o, (long long)L->bias64[o]);
            continue;
        }
        int64_t need = llabs((long long)L->bias[o]) + 510 * ((int64_t)1 << (8 - sb)) * sum;
        if (need > TQ_S8_ACC_MAX)
            TQ_FAIL(TQ_E_FORMAT, "%s: layer %d channel %d: bias %d with these weights can overflow the int32 accumulator "
                    "(|bias| + 510 * 2^%d * sum |w| = %lld > %d)", path, l, o, L->bias[o], 8 - sb, (long long)need, TQ_S8_ACC_MAX);
    }
    if (L->kind == TQ_S8_MEAN && (L->mult[1] < 0 || L->mult[1] > 2 || L->shift[1] != 0 || (L->mult[1] == 2 && L->in_zp != L->out_zp)))
        TQ_FAIL(TQ_E_FORMAT, "%s: layer %d (mean): form %d, %d (0, 1, or 2 with one zero point; then 0)", path, l, L->mult[1], L->shift[1]);
    for (int32_t o = 0; o < (L->kind == TQ_S8_MEAN ? 1 : tq_qlayer_requants(L)); o++) {
        int32_t m = L->mult[o], s = L->shift[o];
        /* (a mean's multiplier with 1/n folded in is below 2^30 as TFLite leaves it: tq_mean_multiplier) */
        /* (a softmax's shift is a left shift up to 31: tq_softmax_multiplier) */
        if (L->kind == TQ_S8_SOFTMAX ? m < (1 << 30) || s < 0 || s > 31
                                     : !(m == 0 && s == 0) && (m < (L->kind == TQ_S8_MEAN && L->mult[1] == 1 ? 1 : 1 << 30) || s < -31 || s > 30))
            TQ_FAIL(TQ_E_FORMAT, "%s: layer %d channel %d: multiplier %d / shift %d out of range", path, l, o, m, s);
        /* an add's inputs are scaled down to twice the larger scale: M <= 1/2, never a left shift
         * (which is what keeps their sum inside int32, runtime/int8_infer.h) */
        if (L->act16 && s > 14)
            TQ_FAIL(TQ_E_FORMAT, "%s: layer %d channel %d: shift %d: a layer with 16-bit activations takes multipliers below 2^14", path, l, o, s);
        if (L->kind == TQ_S8_ADD && o < 2 && s > 0)
            TQ_FAIL(TQ_E_FORMAT, "%s: layer %d (add): input %d's multiplier shifts left (%d): an add scales its inputs down", path, l, o, s);
    }
    for (int32_t o = 0; o < ch; o++)
        if (!(L->w_scale[o] > 0) || !isfinite(L->w_scale[o])) TQ_FAIL(TQ_E_FORMAT, "%s: layer %d channel %d: bad weight scale", path, l, o);
    return TQ_OK;
}

/* TFLite's int8 ADD parameters from the add's three scales (docs/QUANTIZATION.md §18): both inputs
 * to twice the larger input scale, 20 bits below it, then the sum to the output's. What the
 * converter writes and what the exporters check. */
void tq_add_multipliers(float s_a, float s_b, float s_y, int32_t *M0, int32_t *shift) {
    double twice = 2.0 * fmax((double)s_a, (double)s_b);
    tq_quantize_multiplier((double)s_a / twice, &M0[0], &shift[0]);
    tq_quantize_multiplier((double)s_b / twice, &M0[1], &shift[1]);
    tq_quantize_multiplier(twice / ((double)(1 << 20) * (double)s_y), &M0[2], &shift[2]);
}

void tq_mean_multiplier(int32_t form, float s_in, float s_out, int32_t n, int32_t *M0, int32_t *shift) {
    *M0 = *shift = 0;
    if (form == 2 || n < 1) return; /* the raw mean: no multiplier */
    tq_quantize_multiplier((double)s_in / (double)s_out, M0, shift);
    if (form != 1) return;
    /* TFLite's QuantizedMeanOrSum folds 1/n into M: M0 2^k / n, shift - k, with k = floor(log2 n),
     * at most 32 and at most 31 + shift (so the shift stays >= -31); M0 may fall below 2^30 */
    int k = 0;
    while (k < 62 && ((int64_t)1 << (k + 1)) <= (int64_t)n) k++;
    k = k < 32 ? k : 32;
    k = k < 31 + *shift ? k : 31 + *shift;
    *M0 = (int32_t)(((int64_t)*M0 << k) / n);
    *shift -= k;
}

int tq_softmax_multiplier(float s_in, int32_t *M0, int32_t *shift) {
    /* TFLite's PreprocessSoftmaxScaling with beta 1 and 5 integer bits: s_in 2^26, capped below
     * 2^31, as M0 2^(shift - 31) with M0 in [2^30, 2^31) and shift >= 0 (QuantizeMultiplierGreaterThanOne) */
    *M0 = *shift = 0;
    double M = fmin((double)s_in * 67108864.0, 2147483647.0);
    if (!(M >= 1.0)) return -1;
    if (M < 1073741824.0) tq_quantize_multiplier(M, M0, shift);
    else *M0 = (int32_t)round(M), *shift = 31; /* where tq_quantize_multiplier saturates: M = M0 2^0 */
    return 0;
}

static void add_multipliers(const tq_qlayer *L, int32_t *M0, int32_t *shift) {
    tq_add_multipliers(L->in_scale, L->in2_scale, L->out_scale, M0, shift);
}

/* ReLU6's top as TFLite computes it (CalculateActivationRangeQuantized): z + round(6 / s) in
 * float, half away from zero, at most 127. */
static int32_t relu6_max(float s, int32_t z, int32_t top) {
    float q = roundf(6.0f / s);
    return !(q < 2.0f * (float)top + 1.0f) ? top : z + (int32_t)q > top ? top : z + (int32_t)q;
}

tq_status tq_qmodel_convert(tq_qmodel *q, const char *spec, const tq_qlayer_src *src, int n_layers) {
    memset(q, 0, sizeof *q);
    if (n_layers < 1 || n_layers > TQ_INT8_MAX_LAYERS) TQ_FAIL(TQ_E_ARG, "convert: %d layers (1..%d)", n_layers, TQ_INT8_MAX_LAYERS);
    snprintf(q->spec, sizeof q->spec, "%s", spec);
    q->n_layers = n_layers;
    tq_status st = TQ_OK;
    for (int l = 0; l < n_layers && st == TQ_OK; l++) {
        const tq_qlayer_src *s = &src[l];
        tq_qlayer *L = &q->layer[l];
        /* the input's width is its producer's; a layer with weights sets its output's */
        int p = s->src[0] && s->src[0] != l ? s->src[0] - 1 : l - 1;
        int32_t in16 = p >= 0 && p < l ? (q->layer[p].act16 >> 1) & 1 : 0;
        int weights = TQ_S8_IN(TQ_S8_WEIGHTED, s->kind);
        int32_t out16 = weights ? s->out_bits == 16 : in16, top = out16 ? 32767 : 127;
        if (s->out_bits && s->out_bits != 8 && s->out_bits != 16) {
            st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "convert: layer %d (%s): %d-bit activations (8 or 16)", l,
                               tq_qlayer_kind_name(s->kind), s->out_bits);
            break;
        }
        *L = (tq_qlayer){.kind = s->kind, .relu = s->relu, .w_bits = s->w_bits ? s->w_bits : 8, .in_zp = s->in_zp, .out_zp = s->out_zp,
                         .act_min = s->relu ? s->out_zp : -top - 1, .act_max = s->relu == 2 ? relu6_max(s->out_scale, s->out_zp, top) : top,
                         .act16 = in16 | out16 << 1,
                         .in_scale = s->in_scale,
                         .out_scale = s->out_scale, .in_h = s->in_h, .in_w = s->in_w, .in_c = s->in_c, .out_h = s->out_h,
                         .out_w = s->out_w, .out_c = s->out_c, .k = s->k, .stride = s->stride, .pad = s->pad,
                         .src = {s->src[0], s->src[1]}, .kw = s->kw, .stride_w = s->stride_w, .pad_w = s->pad_w,
                         .in2_zp = s->in2_zp, .in2_c = s->in2_c, .in2_scale = s->in2_scale};
        /* one form for one network: the layer before is src 0, a square kernel has kw 0 */
        for (int j = 0; j < 2; j++)
            if (L->src[j] == l && l > 0) L->src[j] = 0;
        if (L->kw && L->kw == L->k && L->stride_w == L->stride && L->pad_w == L->pad) L->kw = L->stride_w = L->pad_w = 0;
        if (s->kind == TQ_S8_LINEAR)
            L->in_h = L->in_w = L->out_h = L->out_w = L->k = L->stride = 1, L->pad = 0, L->in_c = s->in, L->out_c = s->out;
        if ((st = check_layer(q, l, "convert")) != TQ_OK || (st = alloc_layer(L)) != TQ_OK) break;
        if (L->kind == TQ_S8_ADD) {
            add_multipliers(L, L->mult, L->shift);
            if ((st = check_channels(L, l, "convert")) != TQ_OK) break;
            continue;
        }
        if (L->kind == TQ_S8_MEAN) {
            tq_mean_multiplier(s->mean_form, L->in_scale, L->out_scale, L->in_h * L->in_w, &L->mult[0], &L->shift[0]);
            L->mult[1] = s->mean_form, L->shift[1] = 0;
            if ((st = check_channels(L, l, "convert")) != TQ_OK) break;
            continue;
        }
        if (L->kind == TQ_S8_SOFTMAX) {
            if (tq_softmax_multiplier(L->in_scale, &L->mult[0], &L->shift[0])) {
                st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "convert: layer %d (softmax): input scale %g is below 2^-26, where "
                                   "TFLite's int8 softmax has no multiplier", l, (double)L->in_scale);
                break;
            }
            if ((st = check_channels(L, l, "convert")) != TQ_OK) break;
            continue;
        }
        int32_t ch = tq_qlayer_channels(L), qmin, qmax;
        if (!ch) continue;
        if ((st = tq_qrange(s->w_bits, 1, &qmin, &qmax)) != TQ_OK) break;
        size_t per = tq_qlayer_weights(L) / (size_t)ch; /* weights per channel */
        for (int32_t o = 0; o < ch; o++) {
            float sw = s->w_scale[o];
            L->w_scale[o] = sw;
            for (size_t i = 0; i < per && st == TQ_OK; i++) {
                /* W is [channel][per] in every kind; the depthwise file layout is [per][channel] */
                size_t at = L->kind == TQ_S8_DEPTHWISE ? i * (size_t)ch + (size_t)o : (size_t)o * per + i;
                int32_t v = s->Wq ? s->Wq[(size_t)o * per + i] : tq_quantize_ref(s->W[(size_t)o * per + i], sw, 0, qmin, qmax);
                if (v < qmin || v > qmax)
                    st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "convert: layer %d: a weight of %d: %d-bit weights are %d..%d", l, v,
                                       s->w_bits ? s->w_bits : 8, qmin, qmax);
                else put_weight(L, at, v);
            }
            if (st != TQ_OK) break;
            /* the same expression as the bias fake quant (layers/qat.c), so both see one integer */
            float sb = s->in_scale * sw;
            double bq = s->bq ? (double)s->bq[o] : nearbyint((double)s->b[o] / (double)sb);
            double bmax = L->act16 ? 70368744177664.0 : 2147483647.0; /* 2^46 (int64, runtime/int8_infer.h) or int32 */
            if (!(bq <= bmax && bq >= -bmax - (L->act16 ? 0.0 : 1.0))) { /* (NaN too: a scale product that overflowed) */
                st = tq_error_set_(TQ_E_NUMERIC, __FILE__, __LINE__, "convert: layer %d bias %d overflows %s", l, o,
                                   L->act16 ? "2^46" : "int32");
                break;
            }
            if (L->act16) L->bias64[o] = (int64_t)bq;
            else L->bias[o] = (int32_t)bq;
            tq_quantize_multiplier((double)s->in_scale * (double)sw / (double)s->out_scale, &L->mult[o], &L->shift[o]);
        }
        if (st == TQ_OK) st = check_channels(L, l, "convert");
    }
    if (st != TQ_OK) {
        tq_qmodel_free(q);
        return st;
    }
    bind_view(q);
    return TQ_OK;
}

static const char MAGIC[4] = {'T', 'Q', 'I', '8'};

tq_status tq_qmodel_save(const tq_qmodel *q, const char *path) {
    tq_buf b;
    /* a chain of square kernels: version 3's bytes; a graph: 4; 16-bit activations: 5 */
    const int v5 = tq_qmodel_has_act16(q), v4 = v5 || !tq_qmodel_is_chain(q);
    tq_buf_frame_begin(&b, MAGIC, v5 ? 5 : v4 ? 4 : 3);
    tq_buf_u16(&b, (uint16_t)strlen(q->spec));
    tq_buf_put(&b, q->spec, strlen(q->spec));
    tq_buf_u32(&b, (uint32_t)q->n_layers);
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        const int32_t head[17] = {L->kind,   L->in_h,  L->in_w,  L->in_c,   L->out_h,
                                  L->out_w,  L->out_c, L->k,     L->stride, L->pad,
                                  L->relu,   L->w_bits, (int32_t)tq_qlayer_weight_bytes(L), L->in_zp, L->out_zp,
                                  L->act_min, L->act_max};
        for (int i = 0; i < 17; i++) tq_buf_u32(&b, (uint32_t)head[i]);
        tq_buf_f32(&b, L->in_scale);
        tq_buf_f32(&b, L->out_scale);
        if (v4) {
            const int32_t graph[7] = {L->src[0], L->src[1], L->kw, L->stride_w, L->pad_w, L->in2_zp, L->in2_c};
            for (int i = 0; i < 7; i++) tq_buf_u32(&b, (uint32_t)graph[i]);
            tq_buf_f32(&b, L->in2_scale);
        }
        if (v5) tq_buf_u32(&b, (uint32_t)L->act16);
        for (int i = 0, n = tq_qlayer_channels(L) ? 0 : tq_qlayer_requants(L); i < 2 * n; i++)
            tq_buf_u32(&b, (uint32_t)(i < n ? L->mult[i] : L->shift[i - n]));
        int32_t ch = tq_qlayer_channels(L);
        for (int o = 0; o < ch; o++) tq_buf_f32(&b, L->w_scale[o]);
        tq_buf_put(&b, L->w, tq_qlayer_weight_bytes(L));
        for (int o = 0; o < ch; o++)
            if (L->act16) { /* low word first */
                tq_buf_u32(&b, (uint32_t)(uint64_t)L->bias64[o]);
                tq_buf_u32(&b, (uint32_t)((uint64_t)L->bias64[o] >> 32));
            } else {
                tq_buf_u32(&b, (uint32_t)L->bias[o]);
            }
        for (int o = 0; o < ch; o++) tq_buf_u32(&b, (uint32_t)L->mult[o]);
        for (int o = 0; o < ch; o++) tq_buf_u32(&b, (uint32_t)L->shift[o]);
    }
    return tq_buf_frame_save(&b, path);
}

#define FAIL_AT(...)                                                   \
    do {                                                               \
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, __VA_ARGS__); \
        goto done;                                                     \
    } while (0)

/* A layer's header: version 3's fields, version 2's (no w_bits: 8), or version 1's (a linear
 * layer: in, out, relu). *w_bytes: the weight bytes the file says follow (earlier versions:
 * what the header implies). */
static void read_header(tq_reader *r, uint32_t version, tq_qlayer *L, uint32_t *w_bytes) {
    if (version == 1) {
        int32_t in = (int32_t)tq_rd_u32(r), out = (int32_t)tq_rd_u32(r);
        *L = (tq_qlayer){.kind = TQ_S8_LINEAR, .in_h = 1, .in_w = 1, .in_c = in, .out_h = 1, .out_w = 1, .out_c = out,
                         .k = 1, .stride = 1, .pad = 0};
    } else {
        int32_t *f[10] = {&L->kind, &L->in_h, &L->in_w, &L->in_c, &L->out_h, &L->out_w, &L->out_c, &L->k, &L->stride, &L->pad};
        for (int i = 0; i < 10; i++) *f[i] = (int32_t)tq_rd_u32(r);
    }
    L->relu = (int32_t)tq_rd_u32(r);
    L->w_bits = version >= 3 ? (int32_t)tq_rd_u32(r) : 8;
    *w_bytes = version >= 3 ? tq_rd_u32(r) : (uint32_t)-1;
    L->in_zp = (int32_t)tq_rd_u32(r);
    L->out_zp = (int32_t)tq_rd_u32(r);
    L->act_min = (int32_t)tq_rd_u32(r);
    L->act_max = (int32_t)tq_rd_u32(r);
    L->in_scale = tq_rd_f32(r);
    L->out_scale = tq_rd_f32(r);
    if (version >= 4) {
        int32_t *g[7] = {&L->src[0], &L->src[1], &L->kw, &L->stride_w, &L->pad_w, &L->in2_zp, &L->in2_c};
        for (int i = 0; i < 7; i++) *g[i] = (int32_t)tq_rd_u32(r);
        L->in2_scale = tq_rd_f32(r);
    }
    if (version >= 5) L->act16 = (int32_t)tq_rd_u32(r);
}

tq_status tq_qmodel_load(tq_qmodel *q, const char *path) {
    memset(q, 0, sizeof *q);
    unsigned char *data = NULL;
    tq_reader r;
    uint32_t version;
    tq_status st = tq_file_read_frame(path, (size_t)1 << 28, MAGIC, 1, TQ_TQM_FORMAT_VERSION, "integer model", &data, &r, &version);
    if (st != TQ_OK) goto done;
    uint16_t sl = tq_rd_u16(&r);
    const unsigned char *sp = tq_rd_bytes(&r, sl);
    if (!sp || sl >= sizeof q->spec) FAIL_AT("%s: bad model spec field", path);
    memcpy(q->spec, sp, sl);
    q->spec[sl] = '\0';
    uint32_t nl = tq_rd_u32(&r);
    if (!r.ok || nl < 1 || nl > TQ_INT8_MAX_LAYERS) FAIL_AT("%s: %u layers (1..%d)", path, nl, TQ_INT8_MAX_LAYERS);
    q->n_layers = (int32_t)nl;
    for (uint32_t l = 0; l < nl; l++) {
        tq_qlayer *L = &q->layer[l];
        uint32_t w_bytes;
        read_header(&r, version, L, &w_bytes);
        if (!r.ok) FAIL_AT("%s: layer %u: truncated header", path, l);
        if ((st = check_layer(q, (int)l, path)) != TQ_OK) goto done;
        size_t ch = (size_t)tq_qlayer_channels(L), nw = tq_qlayer_weight_bytes(L);
        if (version >= 3 && w_bytes != nw)
            FAIL_AT("%s: layer %u: %u bytes of weights, but %zu weights of %d bits take %zu", path, l, w_bytes,
                    tq_qlayer_weights(L), L->w_bits, nw);
        if (nw + 16 * ch > r.len - r.pos)
            FAIL_AT("%s: layer %u: %zu weights of %d bits (%zu bytes) do not fit the file", path, l, tq_qlayer_weights(L), L->w_bits, nw);
        if ((st = alloc_layer(L)) != TQ_OK) goto done;
        if (!tq_qlayer_channels(L) && tq_qlayer_requants(L)) { /* an add's 3 (M0, shift) pairs, a mean's 2, a softmax's 1 */
            const int n = tq_qlayer_requants(L);
            for (int i = 0; i < 2 * n; i++) *(i < n ? &L->mult[i] : &L->shift[i - n]) = (int32_t)tq_rd_u32(&r);
            if (!r.ok) FAIL_AT("%s: layer %u: truncated", path, l);
            if ((st = check_channels(L, (int)l, path)) != TQ_OK) goto done;
            continue;
        }
        if (!ch) continue;
        for (size_t o = 0; o < ch; o++) L->w_scale[o] = tq_rd_f32(&r);
        const unsigned char *w = tq_rd_bytes(&r, nw);
        if (!w) FAIL_AT("%s: layer %u: truncated weights", path, l);
        memcpy(L->w, w, nw);
        for (size_t o = 0; o < ch; o++)
            if (L->act16) {
                uint64_t lo = tq_rd_u32(&r), hi = tq_rd_u32(&r);
                L->bias64[o] = (int64_t)(lo | hi << 32);
            } else {
                L->bias[o] = (int32_t)tq_rd_u32(&r);
            }
        for (size_t o = 0; o < ch; o++) L->mult[o] = (int32_t)tq_rd_u32(&r);
        for (size_t o = 0; o < ch; o++) L->shift[o] = (int32_t)tq_rd_u32(&r);
        if (!r.ok) FAIL_AT("%s: layer %u: truncated", path, l);
        if ((st = check_channels(L, (int)l, path)) != TQ_OK) goto done;
    }
    if (r.pos != r.len) FAIL_AT("%s: %zu unexpected bytes after the last layer", path, r.len - r.pos);
    bind_view(q);
done:
    tq_free(data);
    if (st != TQ_OK) tq_qmodel_free(q);
    return st;
}

tq_status tq_qmodel_check_scales(const tq_qmodel *q, const char *format) {
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].act16)
            TQ_FAIL(TQ_E_FORMAT, "%s: layer %d (%s) has 16-bit activations, which the %s export does not write (int8 activations "
                    "only; export --c takes both)", format, l, tq_qlayer_kind_name(q->layer[l].kind), format);
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].kind == TQ_S8_ADD) {
            const tq_qlayer *L = &q->layer[l];
            int32_t M0[3], sh[3];
            add_multipliers(L, M0, sh);
            for (int j = 0; j < 3; j++) {
                if (M0[j] != L->mult[j] || sh[j] != L->shift[j])
                    TQ_FAIL(TQ_E_FORMAT, "%s: layer %d (add): multiplier %d is not the one its scales give (%s derives it from them)",
                            format, l, j, format);
            }
        }
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].kind == TQ_S8_SOFTMAX) {
            const tq_qlayer *L = &q->layer[l];
            int32_t M0, sh;
            if (tq_softmax_multiplier(L->in_scale, &M0, &sh) || M0 != L->mult[0] || sh != L->shift[0])
                TQ_FAIL(TQ_E_FORMAT, "%s: layer %d (softmax): its multiplier is not the one its input scale gives (%s derives it from "
                        "it)", format, l, format);
        }
    for (int l = 0; l < q->n_layers; l++)
        if (q->layer[l].kind == TQ_S8_MEAN) {
            const tq_qlayer *L = &q->layer[l];
            int32_t M0, sh;
            tq_mean_multiplier(L->mult[1], L->in_scale, L->out_scale, L->in_h * L->in_w, &M0, &sh);
            if (M0 != L->mult[0] || sh != L->shift[0] || (L->mult[1] == 2 && L->in_scale != L->out_scale))
                TQ_FAIL(TQ_E_FORMAT, "%s: layer %d (mean): its multiplier is not the one its scales give (%s derives it from them)",
                        format, l, format);
        }
    for (int l = 0; l < q->n_layers; l++)
        for (int32_t o = 0; o < tq_qlayer_channels(&q->layer[l]); o++) {
            int32_t M0, sh;
            tq_quantize_multiplier((double)q->layer[l].in_scale * (double)q->layer[l].w_scale[o] / (double)q->layer[l].out_scale, &M0, &sh);
            if (M0 != q->layer[l].mult[o] || sh != q->layer[l].shift[o])
                TQ_FAIL(TQ_E_FORMAT, "%s: layer %d channel %d: its multiplier is not the one its scales give (%s derives it from them)",
                        format, l, o, format);
        }
    return TQ_OK;
}

int tq_qmodel_takes_pixels(const tq_qmodel *q) {
    return q->n_layers > 0 && q->layer[0].in_scale == 1.0f / 255.0f && q->layer[0].in_zp == -128;
}

tq_status tq_qmodel_check_pixels(const tq_qmodel *q, const char *who) {
    const tq_qlayer *L0 = &q->layer[0];
    if (!tq_qmodel_takes_pixels(q))
        TQ_FAIL(TQ_E_ARG, "%s: model %s takes its input at scale %g and zero point %d, not pixels (p - 128 at 1/255): run it on its "
                          "inputs with tinyqat run", who, q->spec, (double)L0->in_scale, L0->in_zp);
    return TQ_OK;
}
