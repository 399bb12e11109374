/* The fast host kernel for the integer path: the same integers as tq_linear_s8_ref, computed
 * with AVX-512 VNNI where the CPU has it.
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds groups of four products into int32
 * lanes exactly (no int16 saturation, unlike vpmaddubsw). So activations are kept unsigned,
 * xu = x + 128, and the zero point moves into the bias:
 *     sum_i W[o][i] (x[i] - z_x) = sum_i W[o][i] xu[i] - (z_x + 128) sum_i W[o][i]
 * Rows are padded with zero weights to whole steps; padding adds nothing. 4- and 2-bit weights
 * stay packed, and are unpacked in registers as they are used (pack_steps). */
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/parallel.h"
#include "src/qmodel.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TQ_HAVE_VNNI_KERNEL 1
#endif

#define TQ_FAST_BATCH 16

typedef struct {
    int in, in_pad, out, groups, in4;
    int groups8, in2;   /* AVX2 layout: groups of 8 channels, pairs of inputs */
    int cbits, per;     /* the weights' container (8, 4 or 2 bits) and the steps a block holds, 8 / cbits */
    int blocks4, blocks2; /* blocks of steps: the VNNI layouts' ceil(in4 / per), the AVX2 one's ceil(in2 / per) */
    int8_t *wa;         /* AVX2 [groups8][blocks2][16]: a step is 8 channels x 2 inputs, lane j of group g output 8g + j */
    int32_t *bias8;     /* [groups8*8] effective bias for the AVX2 layout */
    int8_t *wt;         /* VNNI [groups][blocks4][64]: a step is 16 channels x 4 inputs, lane j of group g output 16g + j */
    int8_t *wt2;        /* at most 8 outputs: [blocks4][64], lanes j and 8 + j both output j (two rows a vector) */
    int32_t bias2[16], mult2[16], shift2[16];
    int32_t *bias;      /* [groups*16] effective bias, zero point folded in, 0 past `out` */
    int32_t *mult, *shift; /* [groups*16], padded with a valid multiplier */
    int32_t out_zp, act_min, act_max;
    int left_shift;     /* some channel has shift > 0: use the scalar requantization */
} fast_layer;

struct tq_qfast {
    const tq_qmodel *q;
    int n_layers, max_pad, vnni, avx2, act16; /* act16: some layer has 16-bit activations */
    int dense;          /* a chain of linear layers only: the batched path */
    uint8_t fast[TQ_INT8_MAX_LAYERS]; /* layer l runs on the AVX2 / VNNI kernels (linear, conv, square max pool, flatten) */
    /* a CNN's or graph's per-slice work, one block: the input image, each layer's output (a
     * flatten's is its input's), the windows, the AVX2 pairs, and for the layers the reference
     * kernels run, their inputs and output as int8 and their patch */
    uint8_t *buf[TQ_SLICES];
    size_t off[TQ_INT8_MAX_LAYERS + 1]; /* in buf: layer l's output; off[n_layers] the input image */
    size_t cols_off, pairs_off, s8_off[3], patch_off, buf_bytes, s8_bytes;
    int32_t *pairs;     /* AVX2: one image's activations as u16 pairs, [max_pad / 2] */
    fast_layer L[TQ_INT8_MAX_LAYERS];
    uint8_t *act[2];    /* [TQ_FAST_BATCH][max_pad] unsigned activations */
    void *scratch[TQ_SLICES]; /* for the reference path, one per slice of the images */
    size_t scratch_bytes;
};

static int pad64(int n) { return (n + 63) / 64 * 64; }

/* The bytes of a layer's second input (an add's or a concat's; an image of in2_c channels for a concat). */
static size_t in2_bytes(const tq_qlayer *Q) {
    return (size_t)Q->in_h * Q->in_w * (Q->kind == TQ_S8_CONCAT ? Q->in2_c : Q->in_c);
}

/* tq_requantize_ref held to [-256, 256], which changes no clamped output: a left shift saturates
 * near +-2^31, where adding the zero point would overflow int32. */
__attribute__((unused)) static int32_t sat_requant(int32_t acc, int32_t M0, int32_t shift) {
    int32_t r = tq_requantize_ref(acc, M0, shift);
    return r < -256 ? -256 : r > 256 ? 256 : r;
}

void tq_qfast_free(tq_qfast *f) {
    if (!f) return;
    for (int l = 0; l < f->n_layers; l++) {
        tq_free(f->L[l].wt);
        tq_free(f->L[l].wt2);
        tq_free(f->L[l].wa);
        tq_free(f->L[l].bias8);
        tq_free(f->L[l].bias);
        tq_free(f->L[l].mult);
        tq_free(f->L[l].shift);
    }
    tq_free(f->pairs);
    tq_free(f->act[0]);
    tq_free(f->act[1]);
    for (int t = 0; t < TQ_SLICES; t++) tq_free(f->scratch[t]), tq_free(f->buf[t]);
    tq_free(f);
}

static int8_t weight(const tq_s8_layer *V, size_t i) { return (int8_t)tq_s8_unpack(V->w, V->w_bits, i); }

/* Packed weights stay packed in the kernels' layouts. A kernel consumes its weights in steps (a
 * vector's worth: 64 bytes for VNNI, 16 for AVX2), ordered as it reads them; with c-bit weights,
 * per = 8 / c consecutive steps share one block: byte b of step s is field s % per (low bits
 * first, as the file packs) of byte b of block s / per. The kernel loads a block once and takes
 * each step out of it with a shift, a mask and a table lookup that sign-extends the field
 * (unpack512, unpack128). `src` holds the steps one weight per byte; `dst` is zeroed. */
static void pack_steps(int8_t *dst, const int8_t *src, size_t n_steps, size_t step, int cbits) {
    const size_t per = 8 / (size_t)cbits;
    const unsigned mask = (1u << cbits) - 1;
    for (size_t s = 0; s < n_steps; s++)
        for (size_t b = 0; b < step; b++) {
            uint8_t *d = (uint8_t *)dst + s / per * step + b;
            *d = (uint8_t)(*d | ((unsigned)(uint8_t)src[s * step + b] & mask) << (cbits * (int)(s % per)));
        }
}

/* A layout of n_steps steps laid out one weight per byte in `tmp`, packed into a new buffer. */
static int8_t *packed_layout(const int8_t *tmp, size_t n_steps, size_t step, int cbits) {
    size_t per = 8 / (size_t)cbits;
    int8_t *w = tq_calloc(n_steps / per * step, 1); /* n_steps is a whole number of blocks */
    if (w) pack_steps(w, tmp, n_steps, step, cbits);
    return w;
}

tq_status tq_qfast_init(tq_qfast **out, const tq_qmodel *q) {
    *out = NULL;
    TQ_TRY(tq_qmodel_check_pixels(q, "fast kernel"));
    tq_qfast *f = tq_calloc(1, sizeof *f);
    if (!f) TQ_FAIL(TQ_E_NOMEM, "fast kernel: out of memory");
    f->q = q;
    /* the vector kernels take int8 activations: a model with 16-bit ones runs the reference kernels */
    f->act16 = tq_qmodel_has_act16(q);
    f->dense = tq_qmodel_is_chain(q) && !f->act16;
    for (int l = 0; l < q->n_layers; l++) f->dense &= q->layer[l].kind == TQ_S8_LINEAR;
    f->scratch_bytes = tq_int8_net_predict_scratch_bytes(&q->net);
    for (int t = 0; t < TQ_SLICES; t++)
        if (!(f->scratch[t] = tq_malloc(f->scratch_bytes + 1))) { /* + 1: a model may need none */
            tq_qfast_free(f);
            TQ_FAIL(TQ_E_NOMEM, "fast kernel: out of memory");
        }
    /* per layer: the kinds the vector kernels cover (a conv of any k x kw, a max pool of a square
     * window, a depthwise of one filter per channel and int8 weights); the others (average pool,
     * add, concat, mean, softmax) run the reference kernels in their place */
    size_t cols_bytes = 0;
    f->n_layers = q->n_layers;
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *Q = &q->layer[l];
        fast_layer *L = &f->L[l];
        f->fast[l] = !f->act16 && (Q->kind == TQ_S8_LINEAR || Q->kind == TQ_S8_FLATTEN ||
                     Q->kind == TQ_S8_CONV || (Q->kind == TQ_S8_MAXPOOL && !Q->kw) ||
                     (Q->kind == TQ_S8_DEPTHWISE && Q->out_c == Q->in_c && q->view[l].w_bits == 8));
        if (!f->fast[l] || (Q->kind != TQ_S8_LINEAR && Q->kind != TQ_S8_CONV)) continue;
        /* a convolution is a linear layer over each window: out_c rows of k*kw*in_c weights */
        L->in = Q->kind == TQ_S8_CONV ? Q->k * tq_qlayer_kw(Q) * Q->in_c : Q->in;
        L->in_pad = pad64(L->in);
        L->out = Q->out_c;
        L->groups = (L->out + 15) / 16;
        L->in4 = (L->in + 3) / 4;
        L->out_zp = Q->out_zp;
        L->act_min = Q->act_min;
        L->act_max = Q->act_max;
        size_t n16 = (size_t)L->groups * 16;
        L->groups8 = (L->out + 7) / 8;
        L->in2 = (L->in + 1) / 2;
        L->cbits = q->view[l].w_bits == 4 || q->view[l].w_bits == 2 ? q->view[l].w_bits : 8;
        L->per = 8 / L->cbits;
        L->blocks4 = (L->in4 + L->per - 1) / L->per;
        L->blocks2 = (L->in2 + L->per - 1) / L->per;
        const size_t steps4 = (size_t)L->blocks4 * L->per, steps2 = (size_t)L->blocks2 * L->per;
        /* the layouts one weight per byte first, then packed */
        int8_t *t16 = tq_calloc((size_t)L->groups8 * steps2 * 16, 1), *t = tq_calloc(n16 * steps4 * 4, 1);
        int8_t *t2 = L->out <= 8 ? tq_calloc(steps4 * 64, 1) : NULL;
        L->bias8 = tq_calloc((size_t)L->groups8 * 8, sizeof(int32_t));
        L->bias = tq_calloc(n16, sizeof(int32_t));
        L->mult = tq_calloc(n16, sizeof(int32_t));
        L->shift = tq_calloc(n16, sizeof(int32_t));
        if (t16 && t && (t2 || L->out > 8) && L->bias8 && L->bias && L->mult && L->shift) {
            for (int o = 0; o < L->out; o++) {
                int32_t sum = 0;
                for (int i = 0; i < L->in; i++) {
                    int8_t w = weight(&q->view[l], (size_t)o * L->in + i);
                    sum += w;
                    t16[(((size_t)(o / 8) * steps2 + (size_t)(i / 2)) * 8 + (size_t)(o % 8)) * 2 + (size_t)(i % 2)] = w;
                    t[(((size_t)(o / 16) * steps4 + (size_t)(i / 4)) * 16 + (size_t)(o % 16)) * 4 + (size_t)(i % 4)] = w;
                    for (int j = o; t2 && j < 16; j += 8) t2[((size_t)(i / 4) * 16 + (size_t)j) * 4 + (size_t)(i % 4)] = w;
                }
                L->bias[o] = Q->bias[o] - (Q->in_zp + 128) * sum;
                L->mult[o] = Q->mult[o];
                L->shift[o] = Q->shift[o];
                if (Q->shift[o] > 0) L->left_shift = 1;
                L->bias8[o] = L->bias[o];
            }
            L->wa = packed_layout(t16, (size_t)L->groups8 * steps2, 16, L->cbits);
            L->wt = packed_layout(t, (size_t)L->groups * steps4, 64, L->cbits);
            if (t2) L->wt2 = packed_layout(t2, steps4, 64, L->cbits);
        }
        tq_free(t16), tq_free(t), tq_free(t2);
        if (!L->wa || !L->wt || (L->out <= 8 && !L->wt2) || !L->bias8 || !L->bias || !L->mult || !L->shift) {
            f->n_layers = l + 1;
            tq_qfast_free(f);
            TQ_FAIL(TQ_E_NOMEM, "fast kernel: out of memory");
        }
        for (size_t o = (size_t)L->out; o < n16; o++) L->mult[o] = 1 << 30; /* padding lanes: harmless */
        for (int j = 0; j < 16; j++) {
            int o = j % 8;
            L->bias2[j] = o < L->out ? L->bias[o] : 0;
            L->mult2[j] = o < L->out ? L->mult[o] : 1 << 30;
            L->shift2[j] = o < L->out ? L->shift[o] : 0;
        }
        if (L->in_pad > f->max_pad) f->max_pad = L->in_pad;
        if (pad64(L->out) > f->max_pad) f->max_pad = pad64(L->out);
        if (Q->kind == TQ_S8_CONV) {
            size_t cols = (size_t)Q->out_h * (size_t)Q->out_w * (size_t)L->in4 * 4;
            cols_bytes = cols > cols_bytes ? cols : cols_bytes;
        }
    }
    /* the slices' blocks; each part + 64 (a row is read in whole groups of 4 bytes, the padding
     * weights 0; a window is copied 8 bytes at a time) and in whole cache lines, so that the
     * pairs stay aligned */
#define PART(n) (((size_t)(n) + 64 + 63) / 64 * 64)
    size_t at = 0, patch = 0;
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *Q = &q->layer[l];
        int p = tq_qmodel_producer(q, l, 0);
        if (Q->kind == TQ_S8_FLATTEN) {
            f->off[l] = p < 0 ? SIZE_MAX : f->off[p]; /* (the input's place is set below) */
            continue;
        }
        f->off[l] = at, at += PART(Q->out);
        if (!f->fast[l]) {
            size_t in2 = in2_bytes(Q);
            size_t need = (size_t)Q->in > in2 ? (size_t)Q->in : in2;
            need = PART((size_t)Q->out > need ? (size_t)Q->out : need);
            f->s8_bytes = need > f->s8_bytes ? need : f->s8_bytes;
            size_t pb = tq_s8_layer_scratch_bytes(&q->view[l]);
            patch = pb > patch ? pb : patch;
        }
    }
    f->off[q->n_layers] = at, at += PART(q->layer[0].in);
    for (int l = 0; l < q->n_layers; l++)
        if (f->off[l] == SIZE_MAX) f->off[l] = f->off[q->n_layers];
    f->cols_off = at, at += PART(cols_bytes);
    f->pairs_off = at, at += PART(((size_t)f->max_pad / 2 + 1) * sizeof(int32_t));
    for (int j = 0; j < 3; j++) f->s8_off[j] = at, at += f->s8_bytes;
    f->patch_off = at, at += PART(patch);
    f->buf_bytes = at;
#undef PART
    if (f->act16) { /* the reference path alone: its scratch is all it needs */
        *out = f;
        return TQ_OK;
    }
    if (!f->dense)
        for (int t = 0; t < TQ_SLICES; t++)
            if (!(f->buf[t] = tq_calloc(1, f->buf_bytes))) {
                tq_qfast_free(f);
                TQ_FAIL(TQ_E_NOMEM, "fast kernel: out of memory");
            }
    f->act[0] = tq_calloc((size_t)TQ_FAST_BATCH * f->max_pad, 1);
    f->act[1] = tq_calloc((size_t)TQ_FAST_BATCH * f->max_pad, 1);
    f->pairs = tq_calloc((size_t)f->max_pad / 2 + 1, sizeof(int32_t));
    if (!f->act[0] || !f->act[1] || !f->pairs) {
        tq_qfast_free(f);
        TQ_FAIL(TQ_E_NOMEM, "fast kernel: out of memory");
    }
#ifdef TQ_HAVE_VNNI_KERNEL
    __builtin_cpu_init();
    f->vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    f->avx2 = __builtin_cpu_supports("avx2");
    if (f->act16) f->vnni = f->avx2 = 0;
#endif
    *out = f;
    return TQ_OK;
}

tq_kernel tq_qfast_best(const tq_qfast *f) { return f->vnni ? TQ_KERNEL_VNNI : f->avx2 ? TQ_KERNEL_AVX2 : TQ_KERNEL_REF; }

const char *tq_kernel_name(tq_kernel k) {
    return k == TQ_KERNEL_VNNI ? "AVX-512 VNNI" : k == TQ_KERNEL_AVX2 ? "AVX2" : k == TQ_KERNEL_REF ? "portable reference" : "auto";
}

int tq_kernel_parse(const char *s) {
    static const char *names[] = {"auto", "ref", "avx2", "vnni"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

#ifdef TQ_HAVE_VNNI_KERNEL
#define TQ_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

/* tq_requantize_ref on 16 lanes, for shift <= 0 (M0 >= 2^30 > 0, so the saturating case
 * a == M0 == INT32_MIN cannot occur):
 *   h = (a M0 + nudge) / 2^31 truncated toward zero, nudge = 2^30 or 1 - 2^30 by the sign
 *   out = (h >> e) + ((h & mask) > (mask >> 1) + (h < 0)) */
TQ_VNNI static inline __m512i requant16(__m512i a, __m512i m0, __m512i e) {
    /* 64-bit products of the even and the odd lanes */
    __m512i pe = _mm512_mul_epi32(a, m0);
    __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(m0, 32));
    const __m512i pos = _mm512_set1_epi64((int64_t)1 << 30), neg = _mm512_set1_epi64(1 - ((int64_t)1 << 30));
    const __m512i zero = _mm512_setzero_si512(), bias31 = _mm512_set1_epi64(((int64_t)1 << 31) - 1);
    __mmask8 ne = _mm512_cmplt_epi64_mask(pe, zero), no = _mm512_cmplt_epi64_mask(po, zero);
    pe = _mm512_add_epi64(pe, _mm512_mask_blend_epi64(ne, pos, neg));
    po = _mm512_add_epi64(po, _mm512_mask_blend_epi64(no, pos, neg));
    /* division by 2^31 toward zero: add 2^31 - 1 first when negative, then shift arithmetically */
    ne = _mm512_cmplt_epi64_mask(pe, zero);
    no = _mm512_cmplt_epi64_mask(po, zero);
    pe = _mm512_srai_epi64(_mm512_mask_add_epi64(pe, ne, pe, bias31), 31);
    po = _mm512_srai_epi64(_mm512_mask_add_epi64(po, no, po, bias31), 31);
    /* back to 32-bit lanes: even results in the low halves, odd ones shifted up */
    __m512i h = _mm512_mask_blend_epi32((__mmask16)0xAAAA, pe, _mm512_slli_epi64(po, 32));
    __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(_mm512_set1_epi32(1), e), _mm512_set1_epi32(1));
    __m512i rem = _mm512_and_si512(h, mask);
    __m512i thr = _mm512_add_epi32(_mm512_srai_epi32(mask, 1),
                                   _mm512_maskz_set1_epi32(_mm512_cmplt_epi32_mask(h, _mm512_setzero_si512()), 1));
    __m512i q = _mm512_srav_epi32(h, e);
    return _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, thr), q, _mm512_set1_epi32(1));
}

/* Step f of a block of packed weights (see pack_steps) as int8: field f shifted down (a 16-bit
 * shift: the bits it brings in from the next byte are masked off), masked, and sign-extended by a
 * table lookup (vpshufb: the field value indexes a 16-byte table of its signed values). With
 * cbits a constant the kernels below compile once per width. */
static const int8_t sign4[16] = {0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1};
static const int8_t sign2[16] = {0, 1, -2, -1};

TQ_VNNI static inline __attribute__((always_inline)) __m512i unpack512(__m512i blk, int f, int cbits) {
    if (cbits == 8) return blk;
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(cbits == 4 ? sign4 : sign2)));
    const __m512i field = _mm512_and_si512(_mm512_srli_epi16(blk, (unsigned)(cbits * f)), _mm512_set1_epi8((char)((1 << cbits) - 1)));
    return _mm512_shuffle_epi8(lut, field);
}

/* One layer for nb images: x [nb][x_stride] unsigned (x + 128) -> y [nb][y_stride] unsigned, or
 * int8 logits [nb][out] for the last layer. Each 32-bit lane accumulates one output channel:
 * broadcast four input bytes, multiply by the four matching weights of 16 channels. Four images
 * share every weight load (and every unpacking of packed weights). Rows are read in whole blocks
 * of steps: up to 4 * (per - 1) bytes past a row's last group, against weights 0. */
TQ_VNNI static inline __attribute__((always_inline)) void layer_vnni_bits(const fast_layer *L, const uint8_t *x, int x_stride, int nb,
                                                                          uint8_t *y, int y_stride, int8_t *logits, const int cbits) {
    const int per = 8 / cbits;
    const __m512i zp = _mm512_set1_epi32(L->out_zp), lo = _mm512_set1_epi32(L->act_min), hi = _mm512_set1_epi32(L->act_max);
    const __m512i u8off = _mm512_set1_epi32(128), zero = _mm512_setzero_si512();
    for (int g = 0; g < L->groups; g++) {
        const int8_t *wg = L->wt + (size_t)g * L->blocks4 * 64;
        const __m512i bias = _mm512_loadu_si512((const void *)(L->bias + 16 * g));
        const __m512i m0 = _mm512_loadu_si512((const void *)(L->mult + 16 * g));
        const __m512i e = _mm512_max_epi32(zero, _mm512_sub_epi32(zero, _mm512_loadu_si512((const void *)(L->shift + 16 * g))));
        int valid = L->out - 16 * g < 16 ? L->out - 16 * g : 16;
        __mmask16 vmask = (__mmask16)((1u << valid) - 1);
        for (int b0 = 0; b0 < nb; b0 += 4) {
            int nk = nb - b0 < 4 ? nb - b0 : 4;
            __m512i acc[4] = {bias, bias, bias, bias};
            const uint8_t *xb = x + (size_t)b0 * x_stride;
            if (nk == 4) { /* the usual case, unrolled over the four images */
                for (int kb = 0; kb < L->blocks4; kb++) {
                    const __m512i blk = _mm512_loadu_si512((const void *)(wg + 64 * kb));
                    for (int f = 0; f < per; f++) {
                        const __m512i w = unpack512(blk, f, cbits);
                        const uint8_t *xk = xb + 4 * (kb * per + f);
                        int32_t v0, v1, v2, v3;
                        memcpy(&v0, xk, 4);
                        memcpy(&v1, xk + x_stride, 4);
                        memcpy(&v2, xk + 2 * x_stride, 4);
                        memcpy(&v3, xk + 3 * x_stride, 4);
                        acc[0] = _mm512_dpbusd_epi32(acc[0], _mm512_set1_epi32(v0), w);
                        acc[1] = _mm512_dpbusd_epi32(acc[1], _mm512_set1_epi32(v1), w);
                        acc[2] = _mm512_dpbusd_epi32(acc[2], _mm512_set1_epi32(v2), w);
                        acc[3] = _mm512_dpbusd_epi32(acc[3], _mm512_set1_epi32(v3), w);
                    }
                }
            } else {
                for (int kb = 0; kb < L->blocks4; kb++) {
                    const __m512i blk = _mm512_loadu_si512((const void *)(wg + 64 * kb));
                    for (int f = 0; f < per; f++) {
                        const __m512i w = unpack512(blk, f, cbits);
                        for (int j = 0; j < nk; j++) {
                            int32_t v;
                            memcpy(&v, xb + (size_t)j * x_stride + 4 * (kb * per + f), 4);
                            acc[j] = _mm512_dpbusd_epi32(acc[j], _mm512_set1_epi32(v), w);
                        }
                    }
                }
            }
            for (int j = 0; j < nk; j++) {
                __m512i v;
                if (L->left_shift) { /* rare (M > 1): the scalar reference, lane by lane */
                    int32_t a[16], r[16];
                    _mm512_storeu_si512((void *)a, acc[j]);
                    for (int t = 0; t < 16; t++) r[t] = sat_requant(a[t], L->mult[16 * g + t], L->shift[16 * g + t]);
                    v = _mm512_loadu_si512((const void *)r);
                } else {
                    v = requant16(acc[j], m0, e);
                }
                v = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zp), lo), hi);
                if (logits)
                    _mm512_mask_cvtepi32_storeu_epi8(logits + (size_t)(b0 + j) * L->out + 16 * g, vmask, v);
                else
                    _mm512_mask_cvtepi32_storeu_epi8(y + (size_t)(b0 + j) * y_stride + 16 * g, vmask, _mm512_add_epi32(v, u8off));
            }
        }
    }
}

TQ_VNNI static void layer_vnni(const fast_layer *L, const uint8_t *x, int x_stride, int nb, uint8_t *y, int y_stride,
                               int8_t *logits) {
    if (L->cbits == 4) layer_vnni_bits(L, x, x_stride, nb, y, y_stride, logits, 4);
    else if (L->cbits == 2) layer_vnni_bits(L, x, x_stride, nb, y, y_stride, logits, 2);
    else layer_vnni_bits(L, x, x_stride, nb, y, y_stride, logits, 8);
}

/* A layer of at most 8 outputs over many rows (a first convolution's windows): lanes 0-7 take row
 * r and lanes 8-15 row r + 1 (wt2 holds the weights twice), so one requantization serves two rows
 * instead of leaving half the lanes idle. The same integers as layer_vnni. */
TQ_VNNI static inline __attribute__((always_inline)) void layer_vnni_pairs_bits(const fast_layer *L, const uint8_t *x, int x_stride,
                                                                                int nb, uint8_t *y, int y_stride, const int cbits) {
    const int per = 8 / cbits;
    const __m512i zp = _mm512_set1_epi32(L->out_zp), lo = _mm512_set1_epi32(L->act_min), hi = _mm512_set1_epi32(L->act_max);
    const __m512i u8off = _mm512_set1_epi32(128), zero = _mm512_setzero_si512();
    const __m512i bias = _mm512_loadu_si512((const void *)L->bias2), m0 = _mm512_loadu_si512((const void *)L->mult2);
    const __m512i e = _mm512_max_epi32(zero, _mm512_sub_epi32(zero, _mm512_loadu_si512((const void *)L->shift2)));
    const __mmask16 low = (__mmask16)((1u << L->out) - 1);
    for (int r0 = 0; r0 < nb; r0 += 8) {
        int np = (nb - r0 + 1) / 2 < 4 ? (nb - r0 + 1) / 2 : 4;
        __m512i acc[4] = {bias, bias, bias, bias};
        if (r0 + 8 <= nb) { /* the usual case: four whole pairs of rows, unrolled */
            const uint8_t *xr = x + (size_t)r0 * x_stride;
            for (int kb = 0; kb < L->blocks4; kb++) {
                const __m512i blk = _mm512_loadu_si512((const void *)(L->wt2 + 64 * kb));
                for (int f = 0; f < per; f++) {
                    const __m512i w = unpack512(blk, f, cbits);
                    const uint8_t *xk = xr + 4 * (kb * per + f);
                    for (int j = 0; j < 4; j++) {
                        int32_t va, vb;
                        memcpy(&va, xk + (size_t)(2 * j) * x_stride, 4);
                        memcpy(&vb, xk + (size_t)(2 * j + 1) * x_stride, 4);
                        acc[j] = _mm512_dpbusd_epi32(acc[j], _mm512_inserti64x4(_mm512_set1_epi32(va), _mm256_set1_epi32(vb), 1), w);
                    }
                }
            }
        } else {
            for (int kb = 0; kb < L->blocks4; kb++) {
                const __m512i blk = _mm512_loadu_si512((const void *)(L->wt2 + 64 * kb));
                for (int f = 0; f < per; f++) {
                    const __m512i w = unpack512(blk, f, cbits);
                    const int k = kb * per + f;
                    for (int j = 0; j < np; j++) {
                        int ra = r0 + 2 * j, rb = ra + 1 < nb ? ra + 1 : ra;
                        int32_t va, vb;
                        memcpy(&va, x + (size_t)ra * x_stride + 4 * k, 4);
                        memcpy(&vb, x + (size_t)rb * x_stride + 4 * k, 4);
                        __m512i xv = _mm512_inserti64x4(_mm512_set1_epi32(va), _mm256_set1_epi32(vb), 1);
                        acc[j] = _mm512_dpbusd_epi32(acc[j], xv, w);
                    }
                }
            }
        }
        for (int j = 0; j < np; j++) {
            __m512i v;
            if (L->left_shift) {
                int32_t a[16], r[16];
                _mm512_storeu_si512((void *)a, acc[j]);
                for (int t = 0; t < 16; t++) r[t] = sat_requant(a[t], L->mult2[t], L->shift2[t]);
                v = _mm512_loadu_si512((const void *)r);
            } else {
                v = requant16(acc[j], m0, e);
            }
            v = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(v, zp), lo), hi), u8off);
            int ra = r0 + 2 * j;
            _mm512_mask_cvtepi32_storeu_epi8(y + (size_t)ra * y_stride, low, v);
            if (ra + 1 < nb)
                _mm256_mask_cvtepi32_storeu_epi8(y + (size_t)(ra + 1) * y_stride, (__mmask8)low, _mm512_extracti64x4_epi64(v, 1));
        }
    }
}

TQ_VNNI static void layer_vnni_pairs(const fast_layer *L, const uint8_t *x, int x_stride, int nb, uint8_t *y, int y_stride) {
    if (L->cbits == 4) layer_vnni_pairs_bits(L, x, x_stride, nb, y, y_stride, 4);
    else if (L->cbits == 2) layer_vnni_pairs_bits(L, x, x_stride, nb, y, y_stride, 2);
    else layer_vnni_pairs_bits(L, x, x_stride, nb, y, y_stride, 8);
}

#define TQ_AVX2 __attribute__((target("avx2")))

/* unpack512 on 16 bytes, the AVX2 kernel's step (8 channels x 2 inputs) */
TQ_AVX2 static inline __attribute__((always_inline)) __m128i unpack128(__m128i blk, int f, int cbits) {
    if (cbits == 8) return blk;
    const __m128i lut = _mm_loadu_si128((const __m128i *)(const void *)(cbits == 4 ? sign4 : sign2));
    return _mm_shuffle_epi8(lut, _mm_and_si128(_mm_srli_epi16(blk, cbits * f), _mm_set1_epi8((char)((1 << cbits) - 1))));
}

/* AVX2: vpmaddwd multiplies int16 pairs and adds each pair into an int32 lane, exactly. Lane j of
 * group g accumulates output 8g + j; the activations (unsigned, x + 128) go in as one int32 per
 * pair of inputs, broadcast; the weights are kept as bytes and widened to int16 per step. The
 * requantization is the scalar reference, per output. */
TQ_AVX2 static inline __attribute__((always_inline)) void layer_avx2_bits(const fast_layer *L, const uint8_t *x, int nb, int x_stride,
                                                                          int32_t *pairs, uint8_t *y, int y_stride, int8_t *logits,
                                                                          const int cbits) {
    const int per = 8 / cbits, steps = L->blocks2 * per;
    for (int b = 0; b < nb; b++) {
        const uint8_t *xb = x + (size_t)b * x_stride;
        for (int k = 0; k < steps; k++)
            pairs[k] = (int32_t)(2 * k < L->in ? xb[2 * k] : 0) | (int32_t)(2 * k + 1 < L->in ? xb[2 * k + 1] : 0) << 16;
        for (int g = 0; g < L->groups8; g++) {
            const int8_t *wg = L->wa + (size_t)g * L->blocks2 * 16;
            __m256i acc = _mm256_loadu_si256((const __m256i *)(const void *)(L->bias8 + 8 * g));
            for (int kb = 0; kb < L->blocks2; kb++) {
                const __m128i blk = _mm_loadu_si128((const __m128i *)(const void *)(wg + 16 * kb));
                for (int f = 0; f < per; f++) {
                    const __m256i w = _mm256_cvtepi8_epi16(unpack128(blk, f, cbits));
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_set1_epi32(pairs[kb * per + f]), w));
                }
            }
            int32_t a[8];
            _mm256_storeu_si256((__m256i *)(void *)a, acc);
            for (int j = 0; j < 8 && 8 * g + j < L->out; j++) {
                int o = 8 * g + j;
                int32_t v = sat_requant(a[j], L->mult[o], L->shift[o]) + L->out_zp;
                v = v < L->act_min ? L->act_min : v > L->act_max ? L->act_max : v;
                if (logits) logits[(size_t)b * L->out + o] = (int8_t)v;
                else y[(size_t)b * y_stride + o] = (uint8_t)(v + 128);
            }
        }
    }
}

TQ_AVX2 static void layer_avx2(const fast_layer *L, const uint8_t *x, int nb, int x_stride, int32_t *pairs, uint8_t *y,
                               int y_stride, int8_t *logits) {
    if (L->cbits == 4) layer_avx2_bits(L, x, nb, x_stride, pairs, y, y_stride, logits, 4);
    else if (L->cbits == 2) layer_avx2_bits(L, x, nb, x_stride, pairs, y, y_stride, logits, 2);
    else layer_avx2_bits(L, x, nb, x_stride, pairs, y, y_stride, logits, 8);
}
#endif

/* ---- convolutional networks on the AVX2 / VNNI kernels ----
 * Activations stay unsigned (x + 128) from layer to layer. A convolution gathers every output
 * position's window into one row of `cols` (k*k*in_c bytes, padded positions holding z_x + 128,
 * the row rounded up to a whole group of 4: the padding weights are 0), then runs the dense
 * kernel over the rows, one row per position: its output rows are the NHWC output. A max pool of
 * x + 128 is the max pool of x, plus 128. */
/* n bytes from src to dst, 8 at a time: may write up to 7 bytes past dst + n (the caller's rows
 * follow, and are written after) and read up to 7 past src + n when src_end allows. */
static inline void copy_run(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *src_end) {
    if (src + (n + 7) / 8 * 8 > src_end) {
        memcpy(dst, src, n);
        return;
    }
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        memcpy(dst + i, &v, 8);
    }
}

/* The 0..3 bytes that complete a window's last group of 4 (one store: what it writes past them is
 * the next window's, written later, or the buffer's slack). */
static inline void zero_tail(uint8_t *p) {
    const uint32_t z = 0;
    memcpy(p, &z, 4);
}

/* k x kw windows (rows of k runs of kw * C bytes). */
static void windows_u8(const tq_qlayer *Q, const uint8_t *x, uint8_t *cols, size_t stride) {
    const int C = Q->in_c, k = Q->k, kw = tq_qlayer_kw(Q), sw = tq_qlayer_stride_w(Q), pw = tq_qlayer_pad_w(Q);
    const uint8_t pad = (uint8_t)(Q->in_zp + 128), *x_end = x + (size_t)Q->in;
    const size_t run = (size_t)kw * C, K = run * k;
    for (int oy = 0; oy < Q->out_h; oy++)
        for (int ox = 0; ox < Q->out_w; ox++) {
            uint8_t *row = cols + ((size_t)oy * (size_t)Q->out_w + (size_t)ox) * stride, *start = row;
            const int ix0 = ox * sw - pw, iy0 = oy * Q->stride - Q->pad;
            const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = Q->in_w - ix0 < kw ? Q->in_w - ix0 : kw;
            const size_t last = ((size_t)(iy0 + k - 1) * Q->in_w + (size_t)ix0) * C + (run + 7) / 8 * 8;
            if (kx0 == 0 && kx1 == kw && iy0 >= 0 && iy0 + k <= Q->in_h && last <= (size_t)Q->in) {
                const uint8_t *src = x + ((size_t)iy0 * Q->in_w + (size_t)ix0) * C;
                /* the window is inside the image (the usual case): k runs of kw*C bytes, 8 at a time */
                const size_t step = (size_t)Q->in_w * C;
                if (run <= 8) /* a one-channel image's short rows: one load and one store each */
                    for (int ky = 0; ky < k; ky++, row += run, src += step) {
                        uint64_t v;
                        memcpy(&v, src, 8);
                        memcpy(row, &v, 8);
                    }
                else
                    for (int ky = 0; ky < k; ky++, row += run, src += step)
                        for (size_t i = 0; i < run; i += 8) {
                            uint64_t v;
                            memcpy(&v, src + i, 8);
                            memcpy(row + i, &v, 8);
                        }
                zero_tail(start + K);
                continue;
            }
            for (int ky = 0; ky < k; ky++, row += run) {
                int iy = oy * Q->stride - Q->pad + ky;
                if (iy < 0 || iy >= Q->in_h || kx0 >= kx1) {
                    memset(row, pad, run);
                    continue;
                }
                if (kx0) memset(row, pad, (size_t)kx0 * C);
                copy_run(row + (size_t)kx0 * C, x + ((size_t)iy * Q->in_w + (size_t)(ix0 + kx0)) * C, (size_t)(kx1 - kx0) * C, x_end);
                if (kx1 < kw) memset(row + (size_t)kx1 * C, pad, (size_t)(kw - kx1) * C);
            }
            zero_tail(start + K); /* the last group's rest (weights 0), after any overshoot */
        }
}

/* The windows of a one-channel, unpadded, stride-1 convolution whose windows end within 3 bytes
 * of their row's last group (DigitsCNN's first: 5 runs of 5 bytes in a row of 28), built one
 * kernel row at a time for a whole output row: each run one 8-byte copy, whose overshoot lands on
 * the window's next run, written after it; the last run masked to its length, which also writes
 * the zeros that complete the group. */
static int windows_one_channel_ok(const tq_qlayer *Q, size_t stride) {
    return Q->in_c == 1 && Q->pad == 0 && Q->stride == 1 && Q->k <= 8 && (size_t)(Q->k - 1) * Q->k + 8 <= stride && !Q->kw;
}

static void windows_one_channel(const tq_qlayer *Q, const uint8_t *x, uint8_t *cols, size_t stride) {
    const int k = Q->k, W = Q->in_w, OW = Q->out_w;
    const uint8_t *x_end = x + (size_t)Q->in;
    const uint64_t mask = k >= 8 ? ~(uint64_t)0 : (((uint64_t)1 << (8 * k)) - 1);
    for (int oy = 0; oy < Q->out_h; oy++) {
        uint8_t *base = cols + (size_t)oy * (size_t)OW * stride;
        for (int ky = 0; ky < k; ky++) {
            const uint8_t *src = x + (size_t)(oy + ky) * (size_t)W;
            uint8_t *dst = base + (size_t)ky * (size_t)k;
            for (int ox = 0; ox < OW; ox++, dst += stride) {
                uint64_t v = 0;
                if (src + ox + 8 <= x_end) memcpy(&v, src + ox, 8);
                else memcpy(&v, src + ox, (size_t)k); /* the image's last bytes */
                if (ky == k - 1) v &= mask;
                memcpy(dst, &v, 8);
            }
        }
    }
}

#ifdef __SSE2__
/* n (1..16) bytes as a vector and back; 16 and 8, the usual channel counts, in one instruction */
static inline __m128i load_n(const uint8_t *p, int n) {
    if (n == 16) return _mm_loadu_si128((const __m128i *)(const void *)p);
    if (n == 8) return _mm_loadl_epi64((const __m128i *)(const void *)p);
    uint8_t t[16] = {0};
    memcpy(t, p, (size_t)n);
    return _mm_loadu_si128((const __m128i *)(const void *)t);
}
static inline void store_n(uint8_t *p, __m128i v, int n) {
    if (n == 16) _mm_storeu_si128((__m128i *)(void *)p, v);
    else if (n == 8) _mm_storel_epi64((__m128i *)(void *)p, v);
    else {
        uint8_t t[16];
        _mm_storeu_si128((__m128i *)(void *)t, v);
        memcpy(p, t, (size_t)n);
    }
}
#endif

/* The max of each window, 16 channels at a time in a register (a max kept in memory would wait
 * on its own store at every element). */
static void maxpool_u8(const tq_qlayer *Q, const uint8_t *x, uint8_t *y) {
    const int C = Q->in_c, k = Q->k, lo = Q->act_min + 128, hi = Q->act_max + 128;
    for (int oy = 0; oy < Q->out_h; oy++)
        for (int ox = 0; ox < Q->out_w; ox++) {
            uint8_t *out = y + ((size_t)oy * Q->out_w + (size_t)ox) * C;
            const uint8_t *win = x + ((size_t)(oy * Q->stride) * Q->in_w + (size_t)(ox * Q->stride)) * C;
            for (int c = 0; c < C; c += 16) {
                int n = C - c < 16 ? C - c : 16;
#ifdef __SSE2__
                __m128i m = _mm_set1_epi8((char)lo);
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) m = _mm_max_epu8(m, load_n(win + ((size_t)ky * Q->in_w + (size_t)kx) * C + c, n));
                store_n(out + c, _mm_min_epu8(m, _mm_set1_epi8((char)hi)), n);
#else
                uint8_t m[16];
                for (int i = 0; i < n; i++) m[i] = (uint8_t)lo;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const uint8_t *v = win + ((size_t)ky * Q->in_w + (size_t)kx) * C + c;
                        for (int i = 0; i < n; i++) m[i] = v[i] > m[i] ? v[i] : m[i];
                    }
                for (int i = 0; i < n; i++) out[c + i] = m[i] < hi ? m[i] : (uint8_t)hi;
#endif
            }
        }
}

#ifdef TQ_HAVE_VNNI_KERNEL
/* A depthwise layer of one filter per channel, 8 channels a vector: acc = b + sum over the taps
 * inside the image of w (x - z) (x + 128 in the buffer, so x - z = u - (z + 128); a tap in the
 * padding holds z, which adds nothing, so it is skipped, as the reference skips it), in int32
 * lanes, exact; then each output requantized as the reference does. */
TQ_AVX2 static void depthwise_u8(const tq_qlayer *Q, const tq_s8_layer *V, const uint8_t *x, uint8_t *y) {
    const int C = Q->in_c, H = Q->in_h, W = Q->in_w, K = Q->k, KW = tq_qlayer_kw(Q), S = Q->stride, SW = tq_qlayer_stride_w(Q);
    const int P = Q->pad, PW = tq_qlayer_pad_w(Q);
    const __m256i zu = _mm256_set1_epi32(Q->in_zp + 128);
    for (int oy = 0; oy < Q->out_h; oy++)
        for (int ox = 0; ox < Q->out_w; ox++) {
            const int iy0 = oy * S - P, ix0 = ox * SW - PW;
            const int ky0 = iy0 < 0 ? -iy0 : 0, ky1 = H - iy0 < K ? H - iy0 : K, kx0 = ix0 < 0 ? -ix0 : 0, kx1 = W - ix0 < KW ? W - ix0 : KW;
            uint8_t *out = y + ((size_t)oy * Q->out_w + (size_t)ox) * C;
            for (int c = 0; c < C; c += 8) {
                const int n = C - c < 8 ? C - c : 8;
                int32_t acc[8];
                __m256i a;
                if (n == 8) {
                    a = _mm256_loadu_si256((const __m256i *)(const void *)(V->bias + c));
                } else {
                    int32_t b[8] = {0};
                    memcpy(b, V->bias + c, (size_t)n * sizeof(int32_t));
                    a = _mm256_loadu_si256((const __m256i *)(const void *)b);
                }
                for (int ky = ky0; ky < ky1; ky++)
                    for (int kx = kx0; kx < kx1; kx++) {
                        const uint8_t *px = x + (((size_t)(iy0 + ky) * W + (size_t)(ix0 + kx)) * C + (size_t)c);
                        const int8_t *pw = V->w + ((size_t)(ky * KW + kx) * C + (size_t)c);
                        int64_t xb = 0, wb = 0;
                        memcpy(&xb, px, (size_t)n), memcpy(&wb, pw, (size_t)n);
                        __m256i xv = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(xb)), zu);
                        __m256i wv = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(wb));
                        a = _mm256_add_epi32(a, _mm256_mullo_epi32(xv, wv));
                    }
                _mm256_storeu_si256((__m256i *)(void *)acc, a);
                for (int i = 0; i < n; i++) {
                    int32_t v = sat_requant(acc[i], V->mult[c + i], V->shift[c + i]) + Q->out_zp;
                    v = v < Q->act_min ? Q->act_min : v > Q->act_max ? Q->act_max : v;
                    out[c + i] = (uint8_t)(v + 128);
                }
            }
        }
}
#endif

typedef struct {
    tq_qfast *f;
    const uint8_t *pixels;
    size_t n;
    int8_t *logits;
    tq_kernel k;
} cnn_job;

/* x + 128 <-> x: one bit */
static void flip(uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i] ^ 0x80;
}

/* A CNN or a graph, one image at a time, layer by layer: each layer's output in its own place
 * (unsigned, x + 128); a layer the vector kernels cover runs on them, any other on its reference
 * kernel, its inputs and output flipped to int8 and back. */
static void cnn_slice(void *ctx, int t) {
    cnn_job *j = ctx;
    tq_qfast *f = j->f;
    const tq_qmodel *q = f->q;
    uint8_t *base = f->buf[t], *cols = base + f->cols_off;
    int32_t *pairs = (int32_t *)(void *)(base + f->pairs_off);
    int8_t *sx = (int8_t *)base + f->s8_off[0], *sx2 = (int8_t *)base + f->s8_off[1], *sy = (int8_t *)base + f->s8_off[2];
    int8_t *patch = (int8_t *)base + f->patch_off;
    const int n_layers = q->n_layers;
    size_t in0 = (size_t)q->layer[0].in, nout = (size_t)q->layer[n_layers - 1].out, b, e;
    tq_slice(j->n, t, TQ_SLICES, &b, &e);
    for (size_t i = b; i < e; i++) {
        memcpy(base + f->off[n_layers], j->pixels + i * in0, in0); /* q + 128 = p; a copy: kernels read past its end */
        for (int l = 0; l < n_layers; l++) {
            const tq_qlayer *Q = &q->layer[l];
            if (Q->kind == TQ_S8_FLATTEN) continue; /* it moves nothing: its place is its input's */
            const int p = tq_qmodel_producer(q, l, 0), p2 = tq_qmodel_producer(q, l, 1);
            const uint8_t *x = base + f->off[p < 0 ? n_layers : p];
            uint8_t *y = base + f->off[l];
            int8_t *lg = l == n_layers - 1 ? j->logits + i * nout : NULL;
            if (!f->fast[l]) {
                const int two = TQ_S8_IN(TQ_S8_BINARY, Q->kind);
                flip((uint8_t *)sx, x, (size_t)Q->in);
                if (two)
                    flip((uint8_t *)sx2, base + f->off[p2 < 0 ? n_layers : p2], in2_bytes(Q));
                tq_s8_layer_run(&q->view[l], sx, two ? sx2 : NULL, lg ? lg : sy, patch);
                if (!lg) flip(y, (const uint8_t *)sy, (size_t)Q->out);
            } else if (Q->kind == TQ_S8_MAXPOOL) {
                maxpool_u8(Q, x, y);
                if (lg) flip((uint8_t *)lg, y, (size_t)Q->out);
            } else if (Q->kind == TQ_S8_DEPTHWISE) {
#ifdef TQ_HAVE_VNNI_KERNEL
                depthwise_u8(Q, &q->view[l], x, y);
#endif
                if (lg) flip((uint8_t *)lg, y, (size_t)Q->out);
            } else {
                const fast_layer *L = &f->L[l];
                int rows = 1, stride = L->in4 * 4;
                const uint8_t *in = x;
                if (Q->kind == TQ_S8_CONV) {
                    if (windows_one_channel_ok(Q, (size_t)stride)) windows_one_channel(Q, x, cols, (size_t)stride);
                    else windows_u8(Q, x, cols, (size_t)stride);
                    rows = Q->out_h * Q->out_w;
                    in = cols;
                }
#ifdef TQ_HAVE_VNNI_KERNEL
                if (j->k == TQ_KERNEL_VNNI && L->wt2 && !lg && rows > 1) layer_vnni_pairs(L, in, stride, rows, y, L->out);
                else if (j->k == TQ_KERNEL_VNNI) layer_vnni(L, in, stride, rows, y, L->out, lg);
                else layer_avx2(L, in, rows, stride, pairs, y, L->out, lg);
#else
                (void)in, (void)rows, (void)pairs;
#endif
            }
        }
    }
}

/* The reference path: the images in TQ_SLICES slices on the pool, each with its own scratch. */
typedef struct {
    tq_qfast *f;
    const uint8_t *pixels;
    size_t n;
    int8_t *logits;
} ref_job;

static void ref_slice(void *ctx, int t) {
    ref_job *j = ctx;
    const tq_qmodel *q = j->f->q;
    size_t in0 = (size_t)q->layer[0].in, nout = (size_t)q->layer[q->n_layers - 1].out, b, e;
    tq_slice(j->n, t, TQ_SLICES, &b, &e);
    for (size_t i = b; i < e; i++)
        tq_int8_net_predict_u8(&q->net, j->pixels + i * in0, j->logits + i * nout, j->f->scratch[t], j->f->scratch_bytes);
}

tq_status tq_qfast_run(tq_qfast *f, const uint8_t *pixels, size_t n, int8_t *logits, uint8_t *pred, tq_kernel k) {
    const int in0 = f->q->layer[0].in, nout = f->q->layer[f->q->n_layers - 1].out;
    if (k == TQ_KERNEL_AUTO) k = tq_qfast_best(f);
    if ((k == TQ_KERNEL_VNNI && !f->vnni) || (k == TQ_KERNEL_AVX2 && !f->avx2))
        TQ_FAIL(TQ_E_ARG, f->act16 ? "the %s kernel takes int8 activations only, and this model has 16-bit ones" : "this CPU cannot run the %s kernel",
                tq_kernel_name(k));
    if (k == TQ_KERNEL_REF) {
        ref_job j = {f, pixels, n, logits};
        tq_parallel_for(TQ_SLICES, ref_slice, &j);
    } else if (!f->dense) {
        cnn_job j = {f, pixels, n, logits, k};
        tq_parallel_for(TQ_SLICES, cnn_slice, &j);
    }
    for (size_t s = 0; s < n; s += TQ_FAST_BATCH) {
        int nb = (int)(n - s < TQ_FAST_BATCH ? n - s : TQ_FAST_BATCH);
        int8_t *lg = logits + s * (size_t)nout;
#ifdef TQ_HAVE_VNNI_KERNEL
        if (k != TQ_KERNEL_REF && f->dense) {
            /* layer 0's unsigned input is the raw pixel itself: q + 128 = p */
            for (int b = 0; b < nb; b++) memcpy(f->act[0] + (size_t)b * f->max_pad, pixels + (s + (size_t)b) * in0, (size_t)in0);
            int cur = 0;
            for (int l = 0; l < f->n_layers; l++) {
                int8_t *out = l == f->n_layers - 1 ? lg : NULL;
                if (k == TQ_KERNEL_VNNI)
                    layer_vnni(&f->L[l], f->act[cur], f->max_pad, nb, f->act[cur ^ 1], f->max_pad, out);
                else
                    layer_avx2(&f->L[l], f->act[cur], nb, f->max_pad, f->pairs, f->act[cur ^ 1], f->max_pad, out);
                cur ^= 1;
            }
        }
#endif
        for (int b = 0; b < nb; b++) {
            const int8_t *z = lg + (size_t)b * nout;
            int best = 0;
            for (int c = 1; c < nout; c++)
                if (z[c] > z[best]) best = c;
            pred[s + (size_t)b] = (uint8_t)best;
        }
    }
    return TQ_OK;
}
