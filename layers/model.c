#include "layers/model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/linear.h"
#include "layers/relu.h"
#include "src/alloc.h"

static const struct {
    const char *name, *spec;
} PRESETS[] = {
    {"digitsnet", "in-100r-100r-out"},
    {"article", "in-100-100-outr"},
};

tq_status tq_model_spec_resolve(const char *spec, int inputs, int classes, char *out, size_t cap) {
    if (!spec || !*spec) TQ_FAIL(TQ_E_ARG, "model spec is empty (want a preset such as digitsnet, or e.g. in-100r-100r-out)");
    const char *given = spec;
    for (size_t i = 0; i < sizeof PRESETS / sizeof PRESETS[0]; i++)
        if (!strcmp(spec, PRESETS[i].name)) spec = PRESETS[i].spec;
    size_t o = 0;
    int first_w = -1, last_w = -1;
    for (const char *p = spec; *p;) {
        const char *dash = strchr(p, '-');
        size_t len = dash ? (size_t)(dash - p) : strlen(p);
        int is_in = len >= 2 && !strncmp(p, "in", 2), is_out = len >= 3 && !strncmp(p, "out", 3);
        char num[16] = "";
        size_t skip = 0;
        if (is_in || is_out) {
            int v = is_in ? inputs : classes;
            v = v < 0 ? 1 : v; /* tq_model_spec_check: any size will do */
            if (is_in && p != spec) TQ_FAIL(TQ_E_ARG, "model spec '%s': 'in' can only be the first width", given);
            if (is_out && dash) TQ_FAIL(TQ_E_ARG, "model spec '%s': 'out' can only be the last width", given);
            if (v <= 0) TQ_FAIL(TQ_E_ARG, "model spec '%s' says '%s' but the data's size is not known here", given, is_in ? "in" : "out");
            snprintf(num, sizeof num, "%d", v);
            skip = is_in ? 2 : 3;
        }
        int n = snprintf(out + o, o < cap ? cap - o : 0, "%s%s%.*s", o ? "-" : "", num, (int)(len - skip), p + skip);
        if (n < 0 || o + (size_t)n >= cap) TQ_FAIL(TQ_E_ARG, "model spec '%s' is too long", given);
        long w = strtol(out + o + (o ? 1 : 0), NULL, 10);
        if (first_w < 0) first_w = (int)w;
        last_w = (int)w;
        o += (size_t)n;
        p += len + (dash ? 1 : 0);
        if (dash && !*p) TQ_FAIL(TQ_E_ARG, "model spec '%s' ends with '-'", given);
    }
    if (inputs > 0 && first_w != inputs)
        TQ_FAIL(TQ_E_SHAPE, "model %s takes %d inputs, but the images have %d values (start the spec with 'in')", given, first_w,
                inputs);
    if (classes > 0 && last_w != classes)
        TQ_FAIL(TQ_E_SHAPE, "model %s gives %d outputs, but the data has %d classes (end the spec with 'out')", given, last_w,
                classes);
    return TQ_OK;
}

static tq_status parse_spec(tq_model *m, const char *spec);

tq_status tq_model_spec_check(const char *spec) {
    char r[128];
    tq_model tmp;
    memset(&tmp, 0, sizeof tmp);
    TQ_TRY(tq_model_spec_resolve(spec, -1, -1, r, sizeof r));
    tq_status st = parse_spec(&tmp, r);
    if (st != TQ_OK) { /* say it of the spec as given, not of its stand-in numbers */
        const char *why = strstr(tq_last_error(), "': ");
        return tq_error_set_(st, __FILE__, __LINE__, "model spec '%s': %s", spec, why ? why + 3 : tq_last_error());
    }
    return TQ_OK;
}

static tq_status parse_spec(tq_model *m, const char *spec) {
    if (!spec || !*spec) TQ_FAIL(TQ_E_ARG, "model spec is empty (want a preset such as digitsnet, or e.g. in-100r-100r-out)");
    if (strlen(spec) >= sizeof m->spec) TQ_FAIL(TQ_E_ARG, "model spec '%s' is too long", spec);
    int n = 0;
    const char *p = spec;
    for (;;) {
        if (!isdigit((unsigned char)*p)) TQ_FAIL(TQ_E_ARG, "model spec '%s': expected a width at '%s'", spec, p);
        char *end;
        long w = strtol(p, &end, 10);
        if (w < 1 || w > 65536) TQ_FAIL(TQ_E_ARG, "model spec '%s': width %ld out of range 1..65536", spec, w);
        if (n > TQ_MAX_LAYERS) TQ_FAIL(TQ_E_ARG, "model spec '%s': more than %d layers", spec, TQ_MAX_LAYERS);
        m->dims[n] = (int)w;
        p = end;
        if (*p == 'r') {
            if (n == 0) TQ_FAIL(TQ_E_ARG, "model spec '%s': a ReLU needs a layer before it", spec);
            m->relu[n - 1] = 1;
            p++;
        }
        n++;
        if (*p == '\0') break;
        if (*p != '-') TQ_FAIL(TQ_E_ARG, "model spec '%s': unexpected '%c'", spec, *p);
        p++;
    }
    if (n < 2) TQ_FAIL(TQ_E_ARG, "model spec '%s': needs an input and at least one layer", spec);
    m->n_layers = n - 1;
    strcpy(m->spec, spec);
    return TQ_OK;
}

tq_status tq_model_init(tq_model *m, const char *spec) {
    memset(m, 0, sizeof *m);
    TQ_TRY(parse_spec(m, spec));
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
    size_t n = 0;
    for (int l = 0; l < m->n_layers; l++) n += (size_t)m->dims[l + 1] * (m->dims[l] + 1);
    if (n > ((size_t)1 << 26)) TQ_FAIL(TQ_E_ARG, "model spec '%s': %zu parameters, more than the 67,108,864 tinyqat allows", spec, n);
    m->n_params = n;
    m->params = tq_calloc(n, sizeof(float));
    m->grads = tq_calloc(n, sizeof(float));
    if (!m->params || !m->grads) {
        tq_model_free(m);
        TQ_FAIL(TQ_E_NOMEM, "model %s: cannot allocate %zu parameters", spec, n);
    }
    /* Carve the views: W0 b0 W1 b1 ... in both blocks, same offsets. */
    size_t off = 0;
    for (int l = 0; l < m->n_layers; l++) {
        size_t nw = (size_t)m->dims[l + 1] * m->dims[l];
        m->W[l] = m->params + off;
        m->dW[l] = m->grads + off;
        off += nw;
        m->b[l] = m->params + off;
        m->db[l] = m->grads + off;
        off += (size_t)m->dims[l + 1];
    }
    return TQ_OK;
}

void tq_model_init_params(tq_model *m, tq_rng *rng) {
    for (int l = 0; l < m->n_layers; l++) tq_linear_init(m->W[l], m->b[l], m->dims[l], m->dims[l + 1], rng);
}

void tq_model_free(tq_model *m) {
    if (!m) return;
    tq_free(m->params);
    tq_free(m->grads);
    tq_qat_free(m->qat);
    memset(m, 0, sizeof *m);
}

tq_status tq_model_clone(tq_model *dst, const tq_model *src) {
    TQ_TRY(tq_model_init(dst, src->spec));
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
    dst->in_mean = src->in_mean;
    dst->in_std = src->in_std;
    return TQ_OK;
}

void tq_model_fold_input_norm(tq_model *m) {
    int in = m->dims[0], out = m->dims[1];
    float inv = 1.0f / m->in_std, shift = m->in_mean / m->in_std;
    for (int o = 0; o < out; o++) {
        double rowsum = 0;
        for (int i = 0; i < in; i++) rowsum += m->W[0][o * in + i];
        m->b[0][o] -= (float)(shift * rowsum);
        for (int i = 0; i < in; i++) m->W[0][o * in + i] *= inv;
    }
    m->in_mean = 0.0f;
    m->in_std = 1.0f;
}

void tq_model_input(const tq_model *m, const uint8_t *pixels, size_t n, float *x) {
    /* 256 possible inputs: a table makes the per-batch conversion one lookup per pixel.
     * p / 255.0f is the exact value the integer path's (q + 128) * (1/255) stands for. */
    float lut[256];
    for (int p = 0; p < 256; p++) lut[p] = ((float)p / 255.0f - m->in_mean) / m->in_std;
    size_t total = n * (size_t)m->dims[0];
    for (size_t i = 0; i < total; i++) x[i] = lut[pixels[i]];
}

/* ---- quantization ---- */

tq_status tq_model_quantize(tq_model *m, const tq_qat_cfg *cfg) {
    if (m->qat) TQ_FAIL(TQ_E_ARG, "model %s is already quantized", m->spec);
    TQ_TRY(tq_qat_new(&m->qat, cfg, m->n_layers, m->dims + 1));
    if (m->in_mean != 0.0f || m->in_std != 1.0f) tq_model_fold_input_norm(m);
    return TQ_OK;
}

tq_status tq_model_to_int8(tq_model *m, tq_qmodel *q) {
    tq_qat *Q = m->qat;
    if (!Q) TQ_FAIL(TQ_E_ARG, "model %s is not quantized: run ptq or qat first", m->spec);
    if (!Q->cfg.quant_bias)
        TQ_FAIL(TQ_E_ARG, "model %s keeps a float bias (--no-bias-quant): the integer path needs an int32 bias", m->spec);
    size_t n_ch = 0;
    for (int l = 0; l < m->n_layers; l++) n_ch += (size_t)m->dims[l + 1];
    float *wscale = tq_malloc(n_ch * sizeof(float)); /* every layer's per-channel weight scales */
    if (!wscale) TQ_FAIL(TQ_E_NOMEM, "convert: out of memory");
    tq_qlayer_src src[TQ_MAX_LAYERS];
    tq_status st = TQ_OK;
    float *ws = wscale;
    for (int l = 0; l < m->n_layers && st == TQ_OK; l++) {
        if (Q->aobs[l].n_seen == 0) {
            st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "layer %d's activation range was never observed: calibrate first", l);
            break;
        }
        /* weight scales from the weights as they are now, as the next forward would compute */
        if ((st = tq_fq_update(&Q->wfq[l], m->W[l], m->dims[l + 1], m->dims[l], 0)) != TQ_OK) break;
        if ((st = tq_fq_update(&Q->afq[l], NULL, 0, 0, 0)) != TQ_OK) break;
        for (int o = 0; o < m->dims[l + 1]; o++) ws[o] = Q->wfq[l].scale[Q->wfq[l].per_channel ? o : 0];
        src[l] = (tq_qlayer_src){.in = m->dims[l], .out = m->dims[l + 1], .relu = m->relu[l], .w_bits = Q->cfg.w_bits,
                                 .W = m->W[l], .b = m->b[l], .w_scale = ws,
                                 .in_scale = l ? Q->afq[l - 1].scale[0] : TQ_INPUT_SCALE,
                                 .in_zp = l ? Q->afq[l - 1].zero_point[0] : TQ_INPUT_ZERO_POINT,
                                 .out_scale = Q->afq[l].scale[0], .out_zp = Q->afq[l].zero_point[0]};
        ws += m->dims[l + 1];
    }
    if (st == TQ_OK) st = tq_qmodel_convert(q, m->spec, src, m->n_layers);
    tq_free(wscale);
    return st;
}

size_t tq_model_float_bytes(const tq_model *m) { return m->n_params * sizeof(float); }

size_t tq_model_int8_bytes(const tq_model *m) {
    size_t n = 0;
    for (int l = 0; l < m->n_layers; l++) {
        size_t out = (size_t)m->dims[l + 1];
        n += out * (size_t)m->dims[l]; /* int8 weights */
        n += out * 4;                  /* int32 bias */
        n += out * 8;                  /* int32 M0 and shift per channel */
        n += 4 * 4;                    /* zero points in/out and the clamp */
    }
    return n;
}

/* ---- files ---- */

tq_status tq_model_to_ckpt(const tq_model *m, tq_ckpt *c) {
    char names[TQ_MAX_LAYERS][2][48]; /* tq_ckpt_add copies names */
    const float norm[2] = {m->in_mean, m->in_std};
    TQ_TRY(tq_ckpt_set_meta(c, "format", "tinyqat-model"));
    TQ_TRY(tq_ckpt_set_meta(c, "spec", m->spec));
    TQ_TRY(tq_ckpt_set_meta(c, "kind", m->qat ? "quantized" : "fp32"));
    TQ_TRY(tq_ckpt_add_copy(c, "input_norm", 1, 2, norm));
    for (int l = 0; l < m->n_layers; l++) {
        snprintf(names[l][0], sizeof names[l][0], "layers.%d.weight", l);
        snprintf(names[l][1], sizeof names[l][1], "layers.%d.bias", l);
        TQ_TRY(tq_ckpt_add(c, names[l][0], (uint32_t)m->dims[l + 1], (uint32_t)m->dims[l], m->W[l]));
        TQ_TRY(tq_ckpt_add(c, names[l][1], 1, (uint32_t)m->dims[l + 1], m->b[l]));
    }
    if (m->qat) TQ_TRY(tq_qat_save_state(m->qat, c));
    return TQ_OK;
}

tq_status tq_model_save(const tq_model *m, const char *path) {
    tq_ckpt c;
    tq_ckpt_init(&c);
    tq_status st = tq_model_to_ckpt(m, &c);
    if (st == TQ_OK) st = tq_ckpt_save(&c, path);
    tq_ckpt_free(&c);
    return st;
}

tq_status tq_model_load(tq_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    tq_ckpt c;
    TQ_TRY(tq_ckpt_load(&c, path));
    tq_status st = tq_model_from_ckpt(m, &c, path);
    tq_ckpt_free(&c);
    return st;
}

static tq_status load_quant_state(tq_model *m, const tq_ckpt *c, const char *path) {
    tq_qat_cfg cfg;
    TQ_TRY(tq_qat_cfg_load(&cfg, c, path));
    if (m->in_mean != 0.0f || m->in_std != 1.0f)
        TQ_FAIL(TQ_E_FORMAT, "%s: quantized model whose input normalization is not folded", path);
    tq_status s = tq_model_quantize(m, &cfg);
    if (s != TQ_OK) return tq_error_set_(s, __FILE__, __LINE__, "%s: %s", path, tq_last_error());
    TQ_TRY(tq_qat_load_observers(m->qat, c, path));
    for (int l = 0; l < m->n_layers; l++) /* weight scales from the loaded weights */
        TQ_TRY(tq_fq_update(&m->qat->wfq[l], m->W[l], m->dims[l + 1], m->dims[l], 0));
    return TQ_OK;
}

tq_status tq_model_from_ckpt(tq_model *m, const tq_ckpt *cp, const char *path) {
    memset(m, 0, sizeof *m);
    tq_status st = TQ_OK;
    const char *fmt = tq_ckpt_meta(cp, "format"), *spec = tq_ckpt_meta(cp, "spec");
    const tq_ckpt_tensor *norm = tq_ckpt_find(cp, "input_norm");
    if (!fmt || strcmp(fmt, "tinyqat-model") || !spec) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: not a tinyqat model (no format/spec)", path);
        goto done;
    }
    if ((st = tq_model_init(m, spec)) != TQ_OK) {
        st = tq_error_set_(st, __FILE__, __LINE__, "%s: %s", path, tq_last_error());
        goto done;
    }
    if (!norm || norm->rows != 1 || norm->cols != 2 || !(norm->data[1] > 0)) {
        st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: missing or bad input_norm", path);
        goto done;
    }
    m->in_mean = norm->data[0];
    m->in_std = norm->data[1];
    for (int l = 0; l < m->n_layers; l++) {
        char wn[48], bn[48];
        snprintf(wn, sizeof wn, "layers.%d.weight", l);
        snprintf(bn, sizeof bn, "layers.%d.bias", l);
        const tq_ckpt_tensor *w = tq_ckpt_find(cp, wn), *b = tq_ckpt_find(cp, bn);
        if (!w || !b || w->rows != (uint32_t)m->dims[l + 1] || w->cols != (uint32_t)m->dims[l] || b->rows != 1 ||
            b->cols != (uint32_t)m->dims[l + 1]) {
            st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: layer %d's tensors are missing or do not match spec %s",
                               path, l, spec);
            goto done;
        }
        memcpy(m->W[l], w->data, (size_t)w->rows * w->cols * sizeof(float));
        memcpy(m->b[l], b->data, (size_t)b->cols * sizeof(float));
    }
    const char *kind = tq_ckpt_meta(cp, "kind");
    if (kind && !strcmp(kind, "quantized")) st = load_quant_state(m, cp, path);
done:
    if (st != TQ_OK) tq_model_free(m);
    return st;
}

/* ---- the graph ---- */

tq_status tq_net_init(tq_net *net, tq_model *m, int max_batch) {
    memset(net, 0, sizeof *net);
    if (max_batch < 1) TQ_FAIL(TQ_E_ARG, "batch size %d: must be at least 1", max_batch);
    net->max_batch = max_batch;
    net->xbuf = tq_calloc((size_t)max_batch * m->dims[0], sizeof(float));
    net->no_labels = tq_calloc((size_t)max_batch, sizeof(int32_t));
    net->labels.y = net->no_labels;
    net->g = tq_graph_new();
    if (!net->xbuf || !net->no_labels || !net->g) {
        tq_net_free(net);
        TQ_FAIL(TQ_E_NOMEM, "cannot allocate the graph for batch %d", max_batch);
    }
    tq_graph *g = net->g;
    tq_node *h = net->x = tq_leaf(g, "x", max_batch, m->dims[0], net->xbuf, NULL);
    static const char *wname[TQ_MAX_LAYERS] = {"W0", "W1", "W2", "W3", "W4", "W5", "W6", "W7"};
    static const char *bname[TQ_MAX_LAYERS] = {"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"};
    for (int l = 0; l < m->n_layers; l++) {
        tq_node *W = tq_leaf(g, wname[l], m->dims[l + 1], m->dims[l], m->W[l], m->dW[l]);
        tq_node *b = tq_leaf(g, bname[l], 1, m->dims[l + 1], m->b[l], m->db[l]);
        if (m->qat) {
            h = tq_qat_layer(g, m->qat, l, h, W, b, m->relu[l]); /* fake-quant W (and b), linear, ReLU, fake-quant output */
        } else {
            h = tq_linear(g, h, W, b);
            if (m->relu[l]) h = tq_relu(g, h);
        }
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

tq_status tq_net_set_batch(tq_net *net, const tq_model *m, const uint8_t *pixels, const int32_t *labels, int n) {
    if (n < 1 || n > net->max_batch) TQ_FAIL(TQ_E_ARG, "batch of %d images: the net was built for 1..%d", n, net->max_batch);
    tq_model_input(m, pixels, (size_t)n, net->xbuf);
    TQ_TRY(tq_leaf_set_rows(net->x, n, net->xbuf));
    net->labels.y = labels ? labels : net->no_labels;
    return TQ_OK;
}
