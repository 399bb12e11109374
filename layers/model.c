/* A model's list of units (layers/model.h): its parameters, the input normalization's fold, the
 * quantization state it wires (QAT, PTQ, LSQ), its integer model, and the graph that trains or
 * evaluates it. The spec grammar is layers/spec.c; the file, layers/model_file.c. */
#include "layers/model.h"

#include <math.h>
#include <string.h>

#include "layers/add.h"
#include "layers/linear.h"
#include "layers/relu.h"
#include "src/alloc.h"

int tq_model_is_graph(const tq_model *m) {
    for (int s = 0; s < m->n_stages; s++)
        if (m->unit[s].kind != TQ_UNIT_CONV || m->unit[s].src[0] != s - 1) return 1;
    return 0;
}

/* Floats of unit u's weights, of its parameters (W, then b or gamma and beta) and of its buffers
 * (the running statistics). An add or a concat has none. */
size_t tq_unit_weights(const tq_unit *u) {
    if (u->kind != TQ_UNIT_CONV && u->kind != TQ_UNIT_DENSE) return 0;
    return (size_t)u->conv.OC * u->conv.KH * u->conv.KW * (u->conv.depthwise ? 1 : u->conv.C);
}
static size_t unit_params(const tq_unit *u) { return tq_unit_weights(u) ? tq_unit_weights(u) + (size_t)u->conv.OC * (u->bn ? 2 : 1) : 0; }
static size_t unit_buffers(const tq_unit *u) { return u->bn ? 2 * (size_t)u->conv.OC : 0; }

tq_status tq_model_init(tq_model *m, const char *spec) {
    memset(m, 0, sizeof *m);
    TQ_TRY(tq_model_parse_spec(m, spec));
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
    size_t n = 0, nb = 0;
    for (int u = 0; u < m->n_units; u++) n += unit_params(&m->unit[u]), nb += unit_buffers(&m->unit[u]);
    if (n > ((size_t)1 << 26)) TQ_FAIL(TQ_E_ARG, "model spec '%s': %zu parameters, more than the 67,108,864 tinyqat allows", spec, n);
    m->n_params = n;
    m->n_buffers = nb;
    m->params = tq_calloc(n, sizeof(float));
    m->grads = tq_calloc(n, sizeof(float));
    m->buffers = nb ? tq_calloc(nb, sizeof(float)) : NULL;
    if (!m->params || !m->grads || (nb && !m->buffers)) {
        tq_model_free(m);
        TQ_FAIL(TQ_E_NOMEM, "model %s: cannot allocate %zu parameters", spec, n);
    }
    /* Carve the views in unit order, W then b (or gamma, beta), in both blocks at the same offsets:
     * the stages' first, then W0 b0 W1 b1 ... (a dense-only model's block is what it was before
     * stages existed). */
    size_t off = 0, boff = 0;
    for (int i = 0; i < m->n_units; i++) {
        tq_unit *u = &m->unit[i];
        size_t OC = (size_t)u->conv.OC;
        if (!tq_unit_weights(u)) continue;
        u->W = m->params + off, u->dW = m->grads + off;
        off += tq_unit_weights(u);
        if (u->bn) {
            u->gamma = m->params + off, u->dgamma = m->grads + off;
            u->beta = m->params + off + OC, u->dbeta = m->grads + off + OC;
            off += 2 * OC;
            u->running_mean = m->buffers + boff, u->running_var = m->buffers + boff + OC;
            boff += 2 * OC;
            tq_bn_init(&u->bn_state, (int)OC, u->running_mean, u->running_var);
        } else {
            u->b = m->params + off, u->db = m->grads + off;
            off += OC;
        }
    }
    return TQ_OK;
}

void tq_model_init_params(tq_model *m, tq_rng *rng) {
    for (int u = 0; u < m->n_units; u++) { /* PyTorch's Conv2d, Linear and BatchNorm2d defaults (a dense layer's are its 1 x 1 conv's) */
        tq_unit *st = &m->unit[u];
        if (!st->W) continue;
        tq_conv_init(st->W, st->b, &st->conv, rng);
        for (int c = 0; st->bn && c < st->conv.OC; c++) st->gamma[c] = 1.0f, st->beta[c] = 0.0f;
        if (st->bn) tq_bn_init(&st->bn_state, st->conv.OC, st->running_mean, st->running_var);
    }
}

void tq_model_decay_mask(const tq_model *m, uint8_t *mask) {
    memset(mask, 0, m->n_params);
    for (int u = 0; u < m->n_units; u++)
        if (m->unit[u].W) memset(mask + (m->unit[u].W - m->params), 1, tq_unit_weights(&m->unit[u]));
}

void tq_model_free(tq_model *m) {
    if (!m) return;
    tq_free(m->params);
    tq_free(m->grads);
    tq_free(m->buffers);
    tq_qat_free(m->qat);
    memset(m, 0, sizeof *m);
}

tq_status tq_model_clone(tq_model *dst, const tq_model *src) {
    TQ_TRY(tq_model_init(dst, src->spec));
    memcpy(dst->params, src->params, dst->n_params * sizeof(float)); /* not src's learned scales (LSQ) */
    if (src->n_buffers) memcpy(dst->buffers, src->buffers, src->n_buffers * sizeof(float));
    dst->in_mean = src->in_mean;
    dst->in_std = src->in_std;
    return TQ_OK;
}

void tq_model_freeze_bn(tq_model *m, int frozen) {
    for (int s = 0; s < m->n_stages; s++) m->unit[s].bn_state.frozen = frozen;
}

/* conv((p/255 - mean) / std) = conv_{W/std}(p/255) - shift, shift[o] = (mean/std) sum W[o]: the
 * shift moves into the bias (b - shift) or, ahead of a batch norm, into its running mean
 * (rm + shift), exact wherever no padding is read. */
static void fold_into_unit(tq_unit *st, float mean, float std) {
    size_t K = tq_unit_weights(st) / (size_t)st->conv.OC;
    float inv = 1.0f / std, k = mean / std;
    for (int o = 0; o < st->conv.OC; o++) {
        float *w = st->W + (size_t)o * K;
        double sum = 0;
        for (size_t i = 0; i < K; i++) sum += w[i];
        if (st->bn) st->running_mean[o] += (float)(k * sum);
        else st->b[o] -= (float)(k * sum);
        for (size_t i = 0; i < K; i++) w[i] *= inv;
    }
}

void tq_model_fold_input_norm(tq_model *m) {
    fold_into_unit(&m->unit[0], m->in_mean, m->in_std);
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
}

void tq_model_input(const tq_model *m, const uint8_t *pixels, size_t n, float *x) {
    /* 256 possible inputs: a table makes the per-batch conversion one lookup per pixel.
     * p / 255.0f is the exact value the integer path's (q + 128) * (1/255) stands for. */
    float lut[256];
    for (int p = 0; p < 256; p++) lut[p] = ((float)p / 255.0f - m->in_mean) / m->in_std;
    size_t total = n * (size_t)m->in_h * (size_t)m->in_w * (size_t)m->in_c;
    for (size_t i = 0; i < total; i++) x[i] = lut[pixels[i]];
}

/* A unit's weights and bias as the integer model holds them: with batch norm, folded exactly as
 * the fake quant saw them (layers/batchnorm.c's float expressions: s = gamma * (1 / sqrtf(var + eps))),
 * and the bias the evaluation's batch norm adds, beta - s mean. W: [OC][K], b: [OC]. */
static void unit_folded(const tq_unit *st, float *W, float *b) {
    size_t OC = (size_t)st->conv.OC, K = tq_unit_weights(st) / OC;
    for (size_t c = 0; c < OC; c++) {
        float sc = 1.0f, bias = st->b ? st->b[c] : 0.0f;
        if (st->bn) {
            sc = tq_bn_fold_scale(st->gamma[c], st->running_var[c], st->bn_state.eps);
            bias = st->beta[c] - sc * st->running_mean[c];
        }
        for (size_t k = 0; k < K; k++) W[c * K + k] = st->W[c * K + k] * sc;
        b[c] = bias;
    }
}

/* ---- the kinds of unit ----
 * What each kind of unit is, in one place: its graph (float, or as QAT simulates it), its integer
 * layer and that layer's bytes. The spec grammar reads each kind's token (layers/spec.c), the
 * quantization state wires each (layers/qat.h) and the integer kernels are the runtime's
 * (runtime/int8_infer.h); a new kind is a row here and its functions. */

/* What the converter knows of a unit's integer layer before its kind fills it in: each input's
 * integer layer (src = layer + 1), scale and zero point; the output's scale and zero point; the
 * buffers a weighted kind puts its folded weights and per-channel values in (and moves past). */
typedef struct {
    int from[2];
    float s_in[2], s_out;
    int32_t z_in[2], z_out;
    float *ch, *w;
} int8_ctx;

typedef struct {
    const char *name;    /* "an add": in messages */
    int inputs;          /* 1 or 2 */
    int act16;           /* 16-bit activations on its sides (TFLite's 16x8 kinds) */
    tq_node *(*graph)(tq_graph *g, tq_model *m, int u, tq_node *a, tq_node *b);
    tq_status (*int8)(tq_model *m, int u, int8_ctx *c, tq_qlayer_src *L);
    size_t (*int8_bytes)(const tq_unit *U, int w_bits); /* its integer layer's bytes, its weights at w_bits */
} unit_kind;

/* A convolution with its batch norm and ReLU, or a dense layer and its ReLU. */
static tq_node *weighted_graph(tq_graph *g, tq_model *m, int u, tq_node *h, tq_node *unused) {
    (void)unused;
    tq_unit *st = &m->unit[u];
    int OC = st->conv.OC, K = (int)(tq_unit_weights(st) / (size_t)OC);
    tq_node *W = tq_leaf(g, "W", OC, K, st->W, st->dW);
    tq_node *b = st->b ? tq_leaf(g, "b", 1, OC, st->b, st->db) : NULL;
    if (st->kind == TQ_UNIT_DENSE) {
        if (m->qat) return tq_qat_layer(g, m->qat, u, h, W, b, st->relu); /* fake-quant W (and b), linear, ReLU, fake-quant output */
        h = tq_linear(g, h, W, b);
        return st->relu ? tq_relu(g, h) : h;
    }
    tq_node *gm = st->bn ? tq_leaf(g, "gamma", 1, OC, st->gamma, st->dgamma) : NULL;
    tq_node *bt = st->bn ? tq_leaf(g, "beta", 1, OC, st->beta, st->dbeta) : NULL;
    if (m->qat) return tq_qat_stage(g, m->qat, u, h, W, b, gm, bt, st->bn ? &st->bn_state : NULL, st->relu, &st->conv);
    h = tq_conv2d(g, h, W, b, &st->conv);
    if (st->bn && st->relu == 1) return tq_batchnorm_relu(g, h, gm, bt, &st->bn_state);
    if (st->bn) h = tq_batchnorm(g, h, gm, bt, &st->bn_state);
    return tq_activation(g, h, st->relu);
}

/* Weights folded (batch norm) and quantized as the fake quant saw them; a dense layer reads the
 * layer before it, or the flatten, so it needs no image shape. */
static tq_status weighted_int8(tq_model *m, int u, int8_ctx *c, tq_qlayer_src *L) {
    const tq_unit *S = &m->unit[u];
    const tq_conv_shape *cs = &S->conv;
    tq_qat *Q = m->qat;
    int OC = cs->OC, K = (int)(tq_unit_weights(S) / (size_t)OC);
    float *bias = c->ch + OC;
    unit_folded(S, c->w, bias);
    TQ_TRY(tq_fq_update(&Q->wfq[u], c->w, OC, K, 0));
    for (int o = 0; o < OC; o++) c->ch[o] = Q->wfq[u].scale[Q->wfq[u].per_channel ? o : 0];
    *L = (tq_qlayer_src){.in = cs->H * cs->W * cs->C, .out = cs->OH * cs->OW * OC, .relu = S->relu, .w_bits = tq_qat_cfg_bits(&Q->cfg, u),
                         .W = c->w, .b = bias, .w_scale = c->ch, .in_scale = c->s_in[0], .out_scale = c->s_out, .in_zp = c->z_in[0],
                         .out_zp = c->z_out, .out_bits = Q->afq[u].bits};
    if (S->kind == TQ_UNIT_CONV) {
        L->kind = cs->depthwise ? TQ_S8_DEPTHWISE : TQ_S8_CONV;
        L->in_h = cs->H, L->in_w = cs->W, L->in_c = cs->C, L->out_h = cs->OH, L->out_w = cs->OW, L->out_c = OC;
        L->k = cs->KH, L->stride = cs->stride, L->pad = cs->pad, L->kw = cs->KW, L->stride_w = cs->stride_w, L->pad_w = cs->pad_w;
        L->src[0] = c->from[0];
    }
    c->ch += 2 * OC;
    c->w += tq_unit_weights(S);
    return TQ_OK;
}

/* The weights packed (src/qmodel.h), the int32 bias, M0 and shift per channel, zero points and clamp. */
static size_t weighted_bytes(const tq_unit *U, int w_bits) {
    return (tq_unit_weights(U) * (size_t)tq_qlayer_storage_bits(w_bits) + 7) / 8 + (size_t)U->conv.OC * (4 + 8) + 4 * 4;
}

/* A residual add; quantized, the int8 ADD's arithmetic (layers/qat.h). */
static tq_node *add_graph(tq_graph *g, tq_model *m, int u, tq_node *a, tq_node *b) {
    const tq_unit *st = &m->unit[u];
    if (m->qat) return tq_qat_add(g, m->qat, u, a, b, st->src[1], st->relu);
    return tq_activation(g, tq_add(g, a, b), st->relu);
}

static tq_status add_int8(tq_model *m, int u, int8_ctx *c, tq_qlayer_src *L) {
    const tq_unit *S = &m->unit[u];
    const tq_conv_shape *cs = &S->conv;
    *L = (tq_qlayer_src){.relu = S->relu, .in_scale = c->s_in[0], .in2_scale = c->s_in[1], .out_scale = c->s_out, .in_zp = c->z_in[0],
                         .in2_zp = c->z_in[1], .out_zp = c->z_out, .kind = TQ_S8_ADD, .in_h = cs->H, .in_w = cs->W, .in_c = cs->C,
                         .out_h = cs->H, .out_w = cs->W, .out_c = cs->C, .k = 1, .stride = 1, .src = {c->from[0], c->from[1]}};
    return TQ_OK;
}

static size_t add_bytes(const tq_unit *U, int w_bits) {
    (void)U, (void)w_bits;
    return 3 * 8 + 4 * 4; /* three M0/shift pairs, zero points */
}

/* A channel concat; quantized, its inputs share its grid (tq_qat_share_concat), so the join copies. */
static tq_node *concat_graph(tq_graph *g, tq_model *m, int u, tq_node *a, tq_node *b) {
    return tq_concat(g, a, b, &m->unit[u].cat);
}

static tq_status concat_int8(tq_model *m, int u, int8_ctx *c, tq_qlayer_src *L) {
    const tq_unit *S = &m->unit[u];
    const tq_conv_shape *cs = &S->conv;
    *L = (tq_qlayer_src){.in_scale = c->s_out, .in2_scale = c->s_out, .out_scale = c->s_out, .in_zp = c->z_out, .in2_zp = c->z_out,
                         .out_zp = c->z_out, .kind = TQ_S8_CONCAT, .in_h = cs->H, .in_w = cs->W, .in_c = S->cat.c[0],
                         .in2_c = S->cat.c[1], .out_h = cs->H, .out_w = cs->W, .out_c = cs->OC, .k = 1, .stride = 1,
                         .src = {c->from[0], c->from[1]}};
    return TQ_OK;
}

static size_t concat_bytes(const tq_unit *U, int w_bits) {
    (void)U, (void)w_bits;
    return 4 * 4; /* zero points and the second input's channels */
}

static const unit_kind KINDS[] = {
    [TQ_UNIT_CONV] = {"a convolution", 1, 1, weighted_graph, weighted_int8, weighted_bytes},
    [TQ_UNIT_ADD] = {"an add", 2, 0, add_graph, add_int8, add_bytes},
    [TQ_UNIT_CONCAT] = {"a concat", 2, 0, concat_graph, concat_int8, concat_bytes},
    [TQ_UNIT_DENSE] = {"a dense layer", 1, 1, weighted_graph, weighted_int8, weighted_bytes},
};

/* ---- quantization ---- */

static tq_status add_lsq_params(tq_model *m);

tq_status tq_model_quantize(tq_model *m, const tq_qat_cfg *cfg) {
    if (m->qat) TQ_FAIL(TQ_E_ARG, "model %s is already quantized", m->spec);
    if (m->n_stages && m->unit[0].conv.pad && (m->in_mean != 0.0f || m->in_std != 1.0f))
        TQ_FAIL(TQ_E_ARG, "model %s: the first convolution pads its input, so the input normalization cannot be folded into it "
                          "exactly; train it with --no-norm to quantize it", m->spec);
    const int units = m->n_units;
    int oc[TQ_MAX_UNITS], src[TQ_MAX_UNITS];
    for (int u = 0; u < units; u++) oc[u] = m->unit[u].conv.OC, src[u] = m->unit[u].src[0];
    for (int u = 0; u < units; u++) { /* (the int16 ADD is not TFLite's int8 one: not there yet) */
        const tq_unit *S = &m->unit[u];
        const unit_kind *k = &KINDS[S->kind];
        int wide = !k->act16 && tq_qat_cfg_act_bits(cfg, u, units) == 16;
        for (int j = 0; j < k->inputs && !k->act16; j++) wide |= S->src[j] >= 0 && tq_qat_cfg_act_bits(cfg, S->src[j], units) == 16;
        if (wide)
            TQ_FAIL(TQ_E_ARG, "model %s: stage %d is %s: 16-bit activations are for convolutions, pools and dense layers; keep it and "
                              "the stages it reads at 8 bits (--act-bits per layer)", m->spec, u + 1, k->name);
    }
    /* LSQ's set-up can fail after the fold: the parameters are kept to put back, so that a failure
     * leaves the float model as it was (and a retry is possible) */
    const float mean = m->in_mean, sd = m->in_std;
    float *saved = cfg->ste == TQ_STE_LSQ ? tq_malloc(m->n_params * sizeof(float)) : NULL;
    if (cfg->ste == TQ_STE_LSQ && !saved) TQ_FAIL(TQ_E_NOMEM, "model %s: out of memory", m->spec);
    if (saved) memcpy(saved, m->params, m->n_params * sizeof(float));
    tq_status st = tq_qat_new(&m->qat, cfg, units, m->n_stages, oc, src);
    for (int s = 0; s < m->n_stages && st == TQ_OK; s++)
        if (m->unit[s].kind == TQ_UNIT_CONCAT && (st = tq_qat_share_concat(m->qat, s, m->unit[s].src[0], m->unit[s].src[1])) != TQ_OK) {
            tq_error_set_(st, __FILE__, __LINE__, "model %s: %s", m->spec, tq_last_error());
            tq_qat_free(m->qat);
            m->qat = NULL;
        }
    if (st == TQ_OK && (m->in_mean != 0.0f || m->in_std != 1.0f)) tq_model_fold_input_norm(m);
    if (st == TQ_OK && saved && (st = add_lsq_params(m)) != TQ_OK) {
        memcpy(m->params, saved, m->n_params * sizeof(float)); /* add_lsq_params fails before it grows the block */
        m->in_mean = mean, m->in_std = sd;
        tq_qat_free(m->qat);
        m->qat = NULL;
    }
    tq_free(saved);
    return st;
}

/* LSQ (docs/QUANTIZATION.md §3): every unit's weight scales and its output's activation scale
 * become parameters, appended to the parameter block as log s so that the optimizer, the
 * gradient checks and checkpoints treat them as any other parameter. The weight scales start
 * where PTQ's rule puts them (max|w|, or the MSE clip); an activation scale where its observer
 * puts it on the first training batch (the fake quant sets it then). The blocks are reallocated
 * and every view moved with them. Order: per unit with weights, the weight scales then the
 * activation scale. A residual add learns none: its output's scale stays its observer's; nor
 * do a concat and its inputs: their one scale follows their observers (tq_qat_share_concat). */
static tq_status add_lsq_params(tq_model *m) {
    tq_qat *Q = m->qat;
    size_t n = 0, wmax = 1, ocmax = 1;
    for (int u = 0; u < m->n_units; u++) /* (an add learns nothing: its output scale is its observer's) */
        if (m->unit[u].W) {
            n += (size_t)Q->wfq[u].n_ch + !Q->afq[u].ring;
            wmax = tq_unit_weights(&m->unit[u]) > wmax ? tq_unit_weights(&m->unit[u]) : wmax;
            ocmax = (size_t)m->unit[u].conv.OC > ocmax ? (size_t)m->unit[u].conv.OC : ocmax;
        }
    float *p = tq_calloc(m->n_params + n, sizeof(float)), *gr = tq_calloc(m->n_params + n, sizeof(float));
    float *wf = tq_malloc(wmax * sizeof(float)), *bf = tq_malloc(ocmax * sizeof(float));
    if (!p || !gr || !wf || !bf) {
        tq_free(p), tq_free(gr), tq_free(wf), tq_free(bf);
        TQ_FAIL(TQ_E_NOMEM, "model %s: cannot allocate the learned scales", m->spec);
    }
    memcpy(p, m->params, m->n_params * sizeof(float));
#define MOVE(v, from, to) ((v) = (v) ? (to) + ((v) - (from)) : NULL)
    for (int u = 0; u < m->n_units; u++) {
        tq_unit *st = &m->unit[u];
        MOVE(st->W, m->params, p), MOVE(st->b, m->params, p), MOVE(st->gamma, m->params, p), MOVE(st->beta, m->params, p);
        MOVE(st->dW, m->grads, gr), MOVE(st->db, m->grads, gr), MOVE(st->dgamma, m->grads, gr), MOVE(st->dbeta, m->grads, gr);
    }
#undef MOVE
    tq_free(m->params);
    tq_free(m->grads);
    m->params = p, m->grads = gr;
    m->lsq = p + m->n_params, m->n_lsq = n;
    m->n_params += n;
    float *v = m->lsq;
    for (int u = 0; u < m->n_units; u++) {
        size_t OC = (size_t)m->unit[u].conv.OC;
        if (!m->unit[u].W) continue;
        unit_folded(&m->unit[u], wf, bf);
        (void)tq_fq_update(&Q->wfq[u], wf, (int)OC, (int)(tq_unit_weights(&m->unit[u]) / OC), 0);
        for (int c = 0; c < Q->wfq[u].n_ch; c++) v[c] = logf(Q->wfq[u].scale[c]);
        Q->wfq[u].learned = v, Q->wfq[u].learned_grad = gr + (v - p), Q->wfq[u].lsq_log = 1;
        v += Q->wfq[u].n_ch;
        if (Q->afq[u].ring) continue; /* a concat's input: the scale it shares is its observers' */
        Q->afq[u].learned = v, Q->afq[u].learned_grad = gr + (v - p), Q->afq[u].lsq_log = 1;
        v += 1;
    }
    tq_free(wf);
    tq_free(bf);
    return TQ_OK;
}

tq_status tq_model_to_int8(tq_model *m, tq_qmodel *q) {
    if (!m || !q) TQ_FAIL(TQ_E_ARG, "to_int8: a model and an output are required");
    tq_qat *Q = m->qat;
    if (!Q) TQ_FAIL(TQ_E_ARG, "model %s is not quantized: run ptq or qat first", m->spec);
    if (!Q->cfg.quant_bias)
        TQ_FAIL(TQ_E_ARG, "model %s keeps a float bias (--no-bias-quant): the integer path needs an int32 bias", m->spec);
    for (int u = 0; u < m->n_units; u++) /* (a concat's quantizer reads its inputs' observers) */
        if (Q->afq[u].obs->n_seen == 0) TQ_FAIL(TQ_E_ARG, "unit %d's activation range was never observed: calibrate first", u + 1);
    size_t n_ch = 0, n_w = 0;
    for (int u = 0; u < m->n_units; u++) n_ch += 2 * (size_t)m->unit[u].conv.OC, n_w += tq_unit_weights(&m->unit[u]);
    /* every unit's per-channel weight scales and folded biases, the folded weights */
    float *chan = tq_malloc(n_ch * sizeof(float)), *wf = tq_malloc((n_w ? n_w : 1) * sizeof(float));
    if (!chan || !wf) {
        tq_free(chan);
        tq_free(wf);
        TQ_FAIL(TQ_E_NOMEM, "convert: out of memory");
    }
    tq_qlayer_src src[TQ_INT8_MAX_LAYERS];
    int n = 0, last[TQ_MAX_UNITS]; /* the integer layer that holds unit u's output */
    tq_status st = TQ_OK;
    float *ch = chan, *w = wf;
    for (int u = 0; u < m->n_units && st == TQ_OK; u++) {
        const tq_unit *S = &m->unit[u];
        int need = 1 + (S->pool != 0) + (u == m->n_stages - 1);
        if (n + need > TQ_INT8_MAX_LAYERS) {
            st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "convert: more than %d integer layers", TQ_INT8_MAX_LAYERS);
            break;
        }
        /* each input: the integer layer of the unit it reads (src = layer + 1), its scale and zero point */
        int8_ctx c = {.from = {0, 0}, .s_in = {TQ_INPUT_SCALE, TQ_INPUT_SCALE}, .z_in = {TQ_INPUT_ZERO_POINT, TQ_INPUT_ZERO_POINT}, .ch = ch, .w = w};
        for (int j = 0; j < KINDS[S->kind].inputs; j++) {
            int r = S->src[j];
            if (r < 0 && n > 0) {
                st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__,
                                   "convert: unit %d reads the model's input, which the integer runtime gives only its first layer", u + 1);
                break;
            }
            if (r >= 0) c.from[j] = last[r] + 1, c.s_in[j] = Q->afq[r].scale[0], c.z_in[j] = Q->afq[r].zero_point[0];
        }
        if (st != TQ_OK || (st = tq_fq_update(&Q->afq[u], NULL, 0, 0, 0)) != TQ_OK) break;
        c.s_out = Q->afq[u].scale[0], c.z_out = Q->afq[u].zero_point[0];
        if ((st = KINDS[S->kind].int8(m, u, &c, &src[n++])) != TQ_OK) break;
        ch = c.ch, w = c.w;
        const float out_scale = c.s_out;
        const int32_t out_zp = c.z_out;
        if (S->pool) { /* on the unit's quantized output: the same scale and zero point */
            const tq_pool_shape *ps = &S->pool_shape;
            src[n++] = (tq_qlayer_src){.in_scale = out_scale, .out_scale = out_scale, .in_zp = out_zp, .out_zp = out_zp,
                                       .kind = ps->avg ? TQ_S8_AVGPOOL : TQ_S8_MAXPOOL, .in_h = ps->H, .in_w = ps->W,
                                       .in_c = ps->C, .out_h = ps->OH, .out_w = ps->OW, .out_c = ps->C, .k = ps->K, .kw = ps->KW, .stride_w = ps->stride,
                                       .stride = ps->stride};
        }
        last[u] = n - 1;
        if (u == m->n_stages - 1) /* NHWC flattens to the dense layers' input order as it is */
            src[n++] = (tq_qlayer_src){.in_scale = out_scale, .out_scale = out_scale, .in_zp = out_zp, .out_zp = out_zp,
                                       .kind = TQ_S8_FLATTEN, .in_h = S->out_h, .in_w = S->out_w, .in_c = S->out_c,
                                       .out_h = 1, .out_w = 1, .out_c = S->out_h * S->out_w * S->out_c, .k = 1, .stride = 1};
    }
    if (st == TQ_OK) st = tq_qmodel_convert(q, m->spec, src, n);
    tq_free(chan);
    tq_free(wf);
    return st;
}

size_t tq_model_float_bytes(const tq_model *m) { return m->n_params * sizeof(float); }

size_t tq_model_int8_bytes(const tq_model *m) {
    int bits[TQ_QAT_MAX_UNITS];
    for (int u = 0; u < m->n_units; u++) bits[u] = m->qat ? tq_qat_cfg_bits(&m->qat->cfg, u) : 8;
    size_t n = tq_model_int8_bytes_with(m, bits);
    /* a layer with a 16-bit side keeps int64 biases: 4 more bytes a channel */
    for (int u = 0; m->qat && u < m->n_units; u++)
        if (m->unit[u].W && m->qat->bq[u].wide) n += 4 * (size_t)m->unit[u].conv.OC;
    return n;
}

size_t tq_model_int8_bytes_with(const tq_model *m, const int *unit_bits) {
    size_t n = 0;
    for (int u = 0; u < m->n_units; u++) n += KINDS[m->unit[u].kind].int8_bytes(&m->unit[u], unit_bits[u]);
    return n;
}

/* Unit u's dropout of pct percent after h (evaluation passes h through). */
static tq_node *net_dropout(tq_net *net, tq_node *h, int u, int pct) {
    net->drop[u] = (tq_dropout_cfg){.rate = (float)pct / 100.0f, .unit = (uint32_t)u, .run = net->run};
    return tq_dropout(net->g, h, &net->drop[u]);
}

tq_status tq_net_init(tq_net *net, tq_model *m, int max_batch) {
    memset(net, 0, sizeof *net);
    if (max_batch < 1) TQ_FAIL(TQ_E_ARG, "batch size %d: must be at least 1", max_batch);
    net->max_batch = max_batch;
    net->xbuf = tq_calloc((size_t)max_batch * (size_t)(m->in_h * m->in_w * m->in_c), sizeof(float));
    net->no_labels = tq_calloc((size_t)max_batch, sizeof(uint8_t));
    net->labels.y = net->no_labels;
    net->g = tq_graph_new();
    if (!net->xbuf || !net->no_labels || !net->g) {
        tq_net_free(net);
        TQ_FAIL(TQ_E_NOMEM, "cannot allocate the graph for batch %d", max_batch);
    }
    tq_graph *g = net->g;
    tq_node *h = net->x = tq_leaf(g, "x", max_batch, m->in_h * m->in_w * m->in_c, net->xbuf, NULL);
    for (int u = 0; u < m->n_units; u++) {
        tq_unit *st = &m->unit[u];
        tq_node *in[2] = {NULL, NULL};
        for (int j = 0; j < KINDS[st->kind].inputs; j++) in[j] = st->src[j] < 0 ? net->x : net->out[st->src[j]];
        h = KINDS[st->kind].graph(g, m, u, in[0], in[1]);
        if (st->pool) h = m->qat ? tq_qat_avgpool(g, m->qat, u, h, &st->pool_shape) : tq_pool2d(g, h, &st->pool_shape);
        if (st->drop) h = net_dropout(net, h, u, st->drop);
        net->out[u] = h;
    }
    net->logits = h;
    net->loss = tq_softmax_xent(g, h, &net->labels);
    tq_status st = tq_graph_status(g);
    if (st != TQ_OK) tq_net_free(net);
    return st;
}

void tq_net_free(tq_net *net) {
    if (!net) return;
    tq_graph_free(net->g);
    tq_free(net->xbuf);
    tq_free(net->no_labels);
    memset(net, 0, sizeof *net);
}

tq_status tq_net_set_batch(tq_net *net, const tq_model *m, const uint8_t *pixels, const uint8_t *labels, int n) {
    if (n < 1 || n > net->max_batch) TQ_FAIL(TQ_E_ARG, "batch of %d images: the net was built for 1..%d", n, net->max_batch);
    tq_model_input(m, pixels, (size_t)n, net->xbuf);
    TQ_TRY(tq_leaf_set_rows(net->x, n, net->xbuf));
    net->labels.y = labels ? labels : net->no_labels;
    return TQ_OK;
}
