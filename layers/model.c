#include "layers/model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/linear.h"
#include "layers/qat.h"
#include "layers/relu.h"
#include "src/alloc.h"
#include "src/checkpoint.h"

static tq_status parse_spec(tq_model *m, const char *spec) {
    if (!spec || !*spec) TQ_FAIL(TQ_E_ARG, "model spec is empty (want e.g. 784-100r-100r-10)");
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
    m->in_mean = TQ_MNIST_MEAN;
    m->in_std = TQ_MNIST_STD;
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
    if (m->qat) TQ_TRY(tq_qat_save_state(m, c));
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
    if (kind && !strcmp(kind, "quantized")) st = tq_qat_load_state(m, cp, path);
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
            h = tq_qat_apply_layer(g, m, l, h, W, b); /* fake-quant W (and b), linear, ReLU, fake-quant output */
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
