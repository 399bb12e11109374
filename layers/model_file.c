/* A model's file (.tqf, docs/QUANTIZATION.md §8): the spec, the input normalization, each unit's
 * parameters and running statistics, and a quantized model's configuration, observers and LSQ
 * scales, as named records of a checkpoint (src/checkpoint.h). */
#include "layers/model.h"

#include <stdio.h>
#include <string.h>

/* Unit u's parameter and buffer records, in file order, with their sizes and where they live. */
typedef struct {
    const char *what;
    float *data;
    uint32_t rows, cols;
} unit_record;
static int unit_records(const tq_unit *U, unit_record *r) {
    uint32_t OC = (uint32_t)U->conv.OC, K = (uint32_t)(tq_unit_weights(U) / OC);
    int n = 0;
    if (!U->W) return 0; /* an add or a concat: no parameters */
    r[n++] = (unit_record){"weight", U->W, OC, K};
    if (U->b) r[n++] = (unit_record){"bias", U->b, 1, OC};
    if (U->bn) {
        r[n++] = (unit_record){"bn_weight", U->gamma, 1, OC};
        r[n++] = (unit_record){"bn_bias", U->beta, 1, OC};
        r[n++] = (unit_record){"running_mean", U->running_mean, 1, OC};
        r[n++] = (unit_record){"running_var", U->running_var, 1, OC};
    }
    return n;
}

tq_status tq_model_to_ckpt(const tq_model *m, tq_ckpt *c) {
    const float norm[2] = {m->in_mean, m->in_std};
    TQ_TRY(tq_ckpt_set_meta(c, "format", "tinyqat-model"));
    TQ_TRY(tq_ckpt_set_meta(c, "spec", m->spec));
    TQ_TRY(tq_ckpt_set_meta(c, "kind", m->qat ? "quantized" : "fp32"));
    TQ_TRY(tq_ckpt_add_copy(c, "input_norm", 1, 2, norm));
    for (int u = 0; u < m->n_units; u++) {
        unit_record r[6];
        for (int k = 0, n = unit_records(&m->unit[u], r); k < n; k++) TQ_TRY(tq_ckpt_add(c, tq_unit_record(u, m->n_stages, r[k].what).s, r[k].rows, r[k].cols, r[k].data));
    }
    if (m->qat) TQ_TRY(tq_qat_save_state(m->qat, c));
    float *v = m->lsq;
    for (int u = 0; v && u < m->n_units; u++) { /* add_lsq_params's order */
        if (!m->unit[u].W) continue;
        int nw = m->qat->wfq[u].n_ch;
        TQ_TRY(tq_ckpt_add(c, tq_unit_record(u, m->n_stages, "w_log_scale").s, 1, (uint32_t)nw, v));
        v += nw;
        if (m->qat->afq[u].ring) continue; /* a concat's input: no learned activation scale */
        TQ_TRY(tq_ckpt_add(c, tq_unit_record(u, m->n_stages, "a_log_scale").s, 1, 1, v));
        v += 1;
    }
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
    float *v = m->lsq; /* LSQ: the learned scales replace the ones quantize started from */
    for (int u = 0; v && u < m->n_units; u++) {
        if (!m->unit[u].W) continue;
        for (int a = 0; a < 2 - (m->qat->afq[u].ring != NULL); a++) { /* the weight scales, then the activation's */
            int n = a ? 1 : m->qat->wfq[u].n_ch;
            tq_record_name name = tq_unit_record(u, m->n_stages, a ? "a_log_scale" : "w_log_scale");
            const tq_ckpt_tensor *t = tq_ckpt_find(c, name.s);
            if (!t || t->rows != 1 || t->cols != (uint32_t)n) TQ_FAIL(TQ_E_FORMAT, "%s: missing or bad %s (an LSQ model)", path, name.s);
            for (int i = 0; i < n; i++)
                if (!(t->data[i] > -80.0f && t->data[i] < 80.0f)) TQ_FAIL(TQ_E_FORMAT, "%s: %s[%d] is no log scale", path, name.s, i);
            memcpy(v, t->data, (size_t)n * sizeof(float));
            v += n;
        }
        TQ_TRY(tq_fq_update(&m->qat->afq[u], NULL, 0, 0, 0)); /* its scale: the learned one */
    }
    for (int u = m->n_stages; u < m->n_units; u++) /* the dense layers' weight scales from the loaded weights (or learned) */
        TQ_TRY(tq_fq_update(&m->qat->wfq[u], m->unit[u].W, m->unit[u].conv.OC, m->unit[u].conv.C, 0));
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
    for (int u = 0; u < m->n_units; u++) {
        unit_record r[6];
        for (int k = 0, n = unit_records(&m->unit[u], r); k < n; k++) {
            tq_record_name name = tq_unit_record(u, m->n_stages, r[k].what);
            const tq_ckpt_tensor *t = tq_ckpt_find(cp, name.s);
            if (!t || t->rows != r[k].rows || t->cols != r[k].cols) {
                st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: %s is missing or does not match spec %s", path, name.s, spec);
                goto done;
            }
            memcpy(r[k].data, t->data, (size_t)r[k].rows * r[k].cols * sizeof(float));
        }
        for (int c = 0; m->unit[u].bn && c < m->unit[u].conv.OC; c++)
            if (!(m->unit[u].running_var[c] >= 0.0f)) {
                st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: %s has a negative running variance", path, tq_unit_record(u, m->n_stages, "running_var").s);
                goto done;
            }
    }
    const char *kind = tq_ckpt_meta(cp, "kind");
    if (kind && !strcmp(kind, "quantized")) st = load_quant_state(m, cp, path);
done:
    if (st != TQ_OK) tq_model_free(m);
    return st;
}
