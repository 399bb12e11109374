/* Weight widths per layer for a flash budget: see pipeline/budget.h. */
#include "pipeline/budget.h"

#include <math.h>
#include <string.h>

#include "pipeline/train.h"
#include "src/alloc.h"

const int tq_budget_widths[TQ_BUDGET_N_WIDTHS] = {2, 3, 4, 6, 8};

/* Mean cross-entropy of model m over the first n images of ds. */
static tq_status loss_on(tq_model *m, const tq_dataset *ds, uint32_t n, double *loss) {
    tq_dataset sub = *ds; /* a view of the first n (read only, never freed) */
    sub.n = n < ds->n ? n : ds->n;
    const int C = tq_model_classes(m);
    float *z = tq_malloc((size_t)sub.n * (size_t)C * sizeof(float));
    if (!z) TQ_FAIL(TQ_E_NOMEM, "budget: out of memory");
    tq_status st = tq_predict_logits(m, &sub, z);
    double sum = 0.0;
    for (uint32_t i = 0; st == TQ_OK && i < sub.n; i++) {
        const float *row = z + (size_t)i * (size_t)C;
        double mx = row[0], e = 0.0;
        for (int c = 1; c < C; c++) mx = row[c] > mx ? row[c] : mx;
        for (int c = 0; c < C; c++) e += exp((double)row[c] - mx);
        sum += mx + log(e) - (double)row[ds->labels[i]];
    }
    tq_free(z);
    *loss = sum / (double)(sub.n ? sub.n : 1);
    return st;
}

/* The PTQ model with these widths, its loss. */
static tq_status loss_with(const tq_model *fp, const tq_qat_cfg *base, const int *bits, int units, const tq_dataset *train, int batches,
                           uint64_t seed, double *loss) {
    tq_qat_cfg cfg = *base;
    for (int u = 0; u < TQ_QAT_MAX_UNITS; u++) cfg.unit_bits[u] = u < units ? bits[u] : 0;
    tq_model q;
    TQ_TRY(tq_ptq(&q, fp, &cfg, train, batches, seed));
    tq_status st = loss_on(&q, train, (uint32_t)batches * 64u, loss);
    tq_model_free(&q);
    return st;
}

static double cost(const tq_budget *r, const int *k) {
    double c = 0.0;
    for (int u = 0; u < r->units; u++) c += r->delta[u][k[u]];
    return c;
}

static size_t bytes_of(const tq_model *m, const int *k, int units) {
    int bits[TQ_QAT_MAX_UNITS] = {0};
    for (int u = 0; u < units; u++) bits[u] = tq_budget_widths[k[u]];
    return tq_model_int8_bytes_with(m, bits);
}

tq_status tq_budget_choose(const tq_model *fp, const tq_qat_cfg *base, const tq_dataset *train, size_t budget, int calib_batches,
                           uint64_t seed, tq_budget *r) {
    if (!fp || !base || !train || !r) TQ_FAIL(TQ_E_ARG, "budget: the model, the configuration, the data and the result are required");
    if (fp->qat) TQ_FAIL(TQ_E_ARG, "budget: model %s is already quantized (give the float model)", fp->spec);
    if (calib_batches < 1) TQ_FAIL(TQ_E_ARG, "budget: at least one calibration batch is needed");
    memset(r, 0, sizeof *r);
    const int U = fp->n_units, N = TQ_BUDGET_N_WIDTHS;
    r->units = U;
    int k[TQ_QAT_MAX_UNITS] = {0}, best[TQ_QAT_MAX_UNITS] = {0};
    for (int u = 0; u < U; u++) k[u] = 0;
    r->smallest = bytes_of(fp, k, U);
    if (r->smallest > budget)
        TQ_FAIL(TQ_E_ARG, "budget: %zu bytes is too small for model %s: with every layer at 2 bits it takes %zu", budget, fp->spec,
                r->smallest);
    for (int w = N - 1; w >= 0 && !r->uniform_bits; w--) {
        for (int u = 0; u < U; u++) k[u] = w;
        if (bytes_of(fp, k, U) <= budget) r->uniform_bits = tq_budget_widths[w], r->uniform_bytes = bytes_of(fp, k, U);
    }
    /* sensitivities: each unit alone at each width, the rest at 8 bits */
    int bits[TQ_QAT_MAX_UNITS] = {0};
    for (int u = 0; u < U; u++) bits[u] = 8;
    TQ_TRY(loss_with(fp, base, bits, U, train, calib_batches, seed, &r->loss8));
    for (int u = 0; u < U; u++)
        for (int w = 0; w < N - 1 && tq_model_unit_has_weights(fp, u); w++) { /* an add's width changes nothing */
            double l;
            bits[u] = tq_budget_widths[w];
            TQ_TRY(loss_with(fp, base, bits, U, train, calib_batches, seed, &l));
            r->delta[u][w] = l - r->loss8;
            bits[u] = 8;
        }
    /* the least summed increase that fits: every assignment up to 7 units, else greedy steps down */
    double best_cost = INFINITY;
    size_t best_bytes = 0;
    if (U <= 7) {
        long total = 1;
        for (int u = 0; u < U; u++) total *= N;
        for (long i = 0; i < total; i++) {
            long v = i;
            for (int u = 0; u < U; u++) k[u] = (int)(v % N), v /= N;
            size_t b = bytes_of(fp, k, U);
            double c = cost(r, k);
            if (b <= budget && (c < best_cost || (c == best_cost && b > best_bytes))) {
                best_cost = c, best_bytes = b;
                memcpy(best, k, sizeof best);
            }
        }
    } else {
        for (int u = 0; u < U; u++) best[u] = N - 1;
        while (bytes_of(fp, best, U) > budget) {
            int bu = -1, bw = -1;
            double bratio = INFINITY;
            size_t now = bytes_of(fp, best, U);
            for (int u = 0; u < U; u++)
                for (int w = 0; w < best[u]; w++) {
                    int save = best[u];
                    best[u] = w;
                    size_t b = bytes_of(fp, best, U);
                    double ratio = (r->delta[u][w] - r->delta[u][save]) / (double)(now - b);
                    best[u] = save;
                    if (b < now && ratio < bratio) bratio = ratio, bu = u, bw = w;
                }
            best[bu] = bw; /* always found: the smallest model fits */
        }
    }
    for (int u = 0; u < U; u++) r->bits[u] = tq_budget_widths[best[u]];
    r->bytes = bytes_of(fp, best, U);
    return TQ_OK;
}
