#include "pipeline/int8.h"

#include <math.h>
#include <string.h>

#include "pipeline/train.h"
#include "src/alloc.h"

tq_status tq_int8_evaluate(const tq_qmodel *q, const tq_dataset *ds, tq_kernel k, float *acc, int8_t *logits, uint8_t *pred) {
    if (!q || !ds || !acc || !q->n_layers) TQ_FAIL(TQ_E_ARG, "int8 evaluate: a model, a dataset and acc are required");
    TQ_TRY(tq_qmodel_check_pixels(q, "int8 evaluate"));
    if (!ds->n) TQ_FAIL(TQ_E_FORMAT, "%s holds no images", ds->source);
    int nout = q->layer[q->n_layers - 1].out;
    const tq_qlayer *L0 = &q->layer[0];
    if (L0->kind != TQ_S8_LINEAR && ((int)ds->h != L0->in_h || (int)ds->w != L0->in_w || (int)ds->c != L0->in_c))
        TQ_FAIL(TQ_E_SHAPE, "integer model %s takes %dx%dx%d images, those of %s are %ux%ux%u", q->spec, L0->in_h, L0->in_w,
                L0->in_c, ds->source, ds->h, ds->w, ds->c);
    if (tq_dataset_pixels(ds) != (size_t)L0->in)
        TQ_FAIL(TQ_E_SHAPE, "integer model %s takes %d inputs, the images of %s have %zu values", q->spec, L0->in, ds->source,
                tq_dataset_pixels(ds));
    TQ_TRY(tq_dataset_check_labels(ds, nout));
    int8_t *lg = logits ? logits : tq_malloc((size_t)ds->n * (size_t)nout);
    uint8_t *pr = pred ? pred : tq_malloc(ds->n);
    tq_qfast *f = NULL;
    tq_status st = !lg || !pr ? tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "integer inference: out of memory") : TQ_OK;
    if (st == TQ_OK) st = tq_qfast_init(&f, q);
    if (st == TQ_OK) st = tq_qfast_run(f, ds->images, ds->n, lg, pr, k);
    if (st == TQ_OK) {
        long correct = 0;
        for (uint32_t i = 0; i < ds->n; i++) correct += pr[i] == ds->labels[i];
        *acc = (float)(100.0 * (double)correct / (double)ds->n);
    }
    tq_qfast_free(f);
    if (lg != logits) tq_free(lg);
    if (pr != pred) tq_free(pr);
    return st;
}

tq_status tq_int8_agreement(tq_model *sim, const tq_qmodel *q, const tq_dataset *ds, tq_agreement *a) {
    if (!sim || !q || !ds || !a || !q->n_layers) TQ_FAIL(TQ_E_ARG, "agreement: both models, a dataset and the result are required");
    TQ_TRY(tq_qmodel_check_pixels(q, "agreement"));
    memset(a, 0, sizeof *a);
    int nout = q->layer[q->n_layers - 1].out;
    if (!sim->qat || tq_model_classes(sim) != nout || tq_model_inputs(sim) != q->layer[0].in)
        TQ_FAIL(TQ_E_ARG, "model %s is not the quantized model of %s (%d -> %d)", sim->spec, q->spec, q->layer[0].in, nout);
    size_t n = (size_t)ds->n;
    int8_t *logits = tq_malloc(n * (size_t)nout);
    uint8_t *pred = tq_malloc(n);
    float *z = tq_malloc(n * (size_t)nout * sizeof(float));
    tq_status st = !logits || !pred || !z ? tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "agreement: out of memory") : TQ_OK;
    if (st == TQ_OK) st = tq_int8_evaluate(q, ds, TQ_KERNEL_AUTO, &a->int_acc, logits, pred);
    if (st == TQ_OK) st = tq_predict_logits(sim, ds, z);
    if (st == TQ_OK) {
        float s_out = sim->qat->afq[sim->qat->n_units - 1].scale[0];
        int32_t z_out = sim->qat->afq[sim->qat->n_units - 1].zero_point[0];
        long sim_correct = 0;
        for (size_t i = 0; i < n; i++) {
            const float *zi = z + i * (size_t)nout;
            int best = 0;
            for (int c = 0; c < nout; c++) {
                if (zi[c] > zi[best]) best = c;
                int d = (int)nearbyintf(zi[c] / s_out) + z_out - logits[i * (size_t)nout + (size_t)c];
                d = d < 0 ? -d : d;
                if (d > a->max_logit_diff) a->max_logit_diff = d;
            }
            a->disagreements += best != pred[i];
            sim_correct += best == ds->labels[i];
        }
        a->images = ds->n;
        a->sim_acc = (float)(100.0 * (double)sim_correct / (double)n);
    }
    tq_free(logits);
    tq_free(pred);
    tq_free(z);
    return st;
}
