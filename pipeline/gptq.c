/* GPTQ (Frantar et al., ICLR 2023) for the dense layers of a calibrated PTQ model:
 * docs/QUANTIZATION.md §4. Rounding each weight to its nearest grid point is what PTQ does;
 * GPTQ rounds a layer's weights one input column at a time and moves the columns not yet rounded
 * to cancel, on the calibration inputs, the error the rounded one made. With H = X^T X over the
 * layer's calibration inputs X (n x in) and U the upper Cholesky factor of H^-1 (H^-1 = U^T U):
 *
 *     for i = 0 .. in-1:   q = quant(W[:, i]);  e = (W[:, i] - q) / U[i][i]
 *                          W[:, j] -= e U[i][j]  for j > i;  W[:, i] = q
 *
 * which is the optimal brain surgeon's update for the squared error of X W^T, one column at a
 * time. The scales stay max|w| per channel (taken before), so the model file needs nothing new:
 * its weights are the rounded values q s, whose max|q| must stay qmax for the scale to come out
 * the same again; a channel where the updates shrank it gets its largest weight back at qmax. */
#include <math.h>
#include <string.h>

#include "pipeline/train.h"
#include "src/alloc.h"
#include "src/quant.h"

/* In place: the lower Cholesky factor of the symmetric positive definite A (n x n, row-major).
 * 0, or -1 when A is not positive definite. */
static int cholesky(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * n + k] * A[(size_t)j * n + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        A[(size_t)j * n + j] = d;
        for (int i = j + 1; i < n; i++) {
            double s = A[(size_t)i * n + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * n + k] * A[(size_t)j * n + k];
            A[(size_t)i * n + j] = s / d;
        }
        for (int k = j + 1; k < n; k++) A[(size_t)j * n + k] = 0.0;
    }
    return 0;
}

/* H (n x n, positive definite) -> U, the upper Cholesky factor of H^-1, in place (tmp: n x n). */
static int inverse_upper_factor(double *H, double *tmp, int n) {
    if (cholesky(H, n)) return -1; /* H = L L^T */
    /* tmp = L^-1 (lower), column by column by forward substitution */
    memset(tmp, 0, (size_t)n * n * sizeof(double));
    for (int c = 0; c < n; c++)
        for (int i = c; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (int k = c; k < i; k++) s -= H[(size_t)i * n + k] * tmp[(size_t)k * n + c];
            tmp[(size_t)i * n + c] = s / H[(size_t)i * n + i];
        }
    /* H = H^-1 = L^-T L^-1 */
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int k = i; k < n; k++) s += tmp[(size_t)k * n + i] * tmp[(size_t)k * n + j];
            H[(size_t)i * n + j] = H[(size_t)j * n + i] = s;
        }
    if (cholesky(H, n)) return -1; /* H^-1 = Lc Lc^T, and U = Lc^T */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) H[(size_t)i * n + j] = H[(size_t)j * n + i], H[(size_t)j * n + i] = 0.0;
    return 0;
}

/* One layer: W [out][in] with per-row scales s (or one), H its inputs' X^T X (destroyed). */
static tq_status gptq_layer(float *W, int out, int in, const tq_fq *fq, double *H, double *tmp, int l) {
    double mean_diag = 0;
    for (int i = 0; i < in; i++) mean_diag += H[(size_t)i * in + i];
    mean_diag /= in;
    for (int i = 0; i < in; i++) {
        if (H[(size_t)i * in + i] == 0.0) { /* an input that is always 0: its weights do nothing */
            H[(size_t)i * in + i] = 1.0;
            for (int o = 0; o < out; o++) W[(size_t)o * in + i] = 0.0f;
        }
        H[(size_t)i * in + i] += 0.01 * mean_diag; /* GPTQ's damping */
    }
    if (inverse_upper_factor(H, tmp, in)) TQ_FAIL(TQ_E_NUMERIC, "gptq: layer %d: the inputs' Hessian is singular", l);
    double *err = tmp; /* reused: out values */
    float *w0max = (float *)(tmp + out);
    int *jmax = (int *)(w0max + out);
    for (int o = 0; o < out; o++) { /* each row's largest weight, where its scale comes from */
        int j = 0;
        for (int i = 1; i < in; i++)
            if (fabsf(W[(size_t)o * in + i]) > fabsf(W[(size_t)o * in + j])) j = i;
        jmax[o] = j;
        w0max[o] = W[(size_t)o * in + j];
    }
    for (int i = 0; i < in; i++) {
        double d = H[(size_t)i * in + i];
        for (int o = 0; o < out; o++) {
            float s = fq->scale[fq->per_channel ? o : 0], w = W[(size_t)o * in + i];
            float q = (float)tq_quantize_ref(w, s, 0, fq->qmin, fq->qmax) * s;
            err[o] = ((double)w - (double)q) / d;
            W[(size_t)o * in + i] = q;
        }
        for (int o = 0; o < out; o++) {
            float *row = W + (size_t)o * in;
            for (int j = i + 1; j < in; j++) row[j] -= (float)(err[o] * H[(size_t)i * in + j]);
        }
    }
    for (int o = 0; o < out; o++) { /* keep max|q| = qmax, so that the scale comes out the same */
        float s = fq->scale[fq->per_channel ? o : 0], top = (float)fq->qmax * s, big = 0.0f;
        for (int i = 0; i < in; i++) big = fmaxf(big, fabsf(W[(size_t)o * in + i]));
        if (big < top && fq->per_channel) W[(size_t)o * in + jmax[o]] = w0max[o] < 0 ? -top : top;
    }
    return TQ_OK;
}

tq_status tq_gptq(tq_model *m, const tq_dataset *train, int n_batches, uint64_t seed) {
    TQ_TRY(tq_model_check_data(m, train));
    if (!m->qat) TQ_FAIL(TQ_E_ARG, "gptq: the model has no quantization state");
    /* no batches would leave H = 0, and every column's update divides by H's diagonal */
    if (n_batches < 1) TQ_FAIL(TQ_E_ARG, "gptq: %d calibration batches (at least 1)", n_batches);
    if (m->qat->cfg.w_mse || m->lsq) TQ_FAIL(TQ_E_ARG, "gptq: the weight scales must come from max|w|");
    const int D = tq_model_inputs(m), B = 64;
    int max_in = 1, max_out = 1;
    for (int l = 0; l < m->n_layers; l++) {
        const tq_conv_shape *cs = &TQ_DENSE(m, l).conv;
        max_in = cs->C > max_in ? cs->C : max_in;
        max_out = cs->OC > max_out ? cs->OC : max_out;
    }
    double *H = tq_malloc((size_t)max_in * max_in * sizeof(double));
    double *tmp = tq_malloc(((size_t)max_in * max_in + 2 * (size_t)max_out) * sizeof(double));
    uint8_t *px = tq_malloc((size_t)B * D);
    tq_net net;
    tq_status st = !H || !tmp || !px ? tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "gptq: out of memory") : TQ_OK;
    if (st == TQ_OK) st = tq_net_init(&net, m, B);
    else memset(&net, 0, sizeof net);
    for (int l = 0; l < m->n_layers && st == TQ_OK; l++) {
        /* layer l's input: the first operand of its matmul, the l-th on the tape (stages convolve) */
        tq_node *x = NULL;
        for (size_t k = 0, seen = 0; k < tq_graph_size(net.g) && !x; k++) {
            tq_node *n = tq_graph_node(net.g, k);
            if (n->op && !strcmp(n->op->name, "matmul_bt") && seen++ == (size_t)l) x = n->in[0];
        }
        const int in = TQ_DENSE(m, l).conv.C, out = TQ_DENSE(m, l).conv.OC;
        memset(H, 0, (size_t)in * in * sizeof(double));
        tq_rng rng; /* the calibration's batches (tq_calibrate draws them the same way) */
        tq_rng_seed(&rng, seed ^ 0xCA11B4A7Eull);
        for (int b = 0; b < n_batches && st == TQ_OK && x; b++) {
            for (int k = 0; k < B; k++)
                memcpy(px + (size_t)k * D, train->images + (size_t)tq_rng_below(&rng, train->n) * D, (size_t)D);
            if ((st = tq_net_set_batch(&net, m, px, NULL, B)) == TQ_OK) st = tq_graph_forward(net.g, TQ_RUN_EVAL);
            for (int k = 0; st == TQ_OK && k < B; k++) { /* H += x x^T (the lower half, mirrored below) */
                const float *xr = x->val + (size_t)k * in;
                for (int i = 0; i < in; i++) {
                    if (xr[i] == 0.0f) continue; /* after a ReLU, most are */
                    double xi = xr[i];
                    double *hr = H + (size_t)i * in;
                    for (int j = 0; j <= i; j++) hr[j] += xi * xr[j];
                }
            }
        }
        if (!x) st = tq_error_set_(TQ_E_ARG, __FILE__, __LINE__, "gptq: layer %d's input not found", l);
        if (st != TQ_OK) break;
        for (int i = 0; i < in; i++)
            for (int j = 0; j < i; j++) H[(size_t)j * in + i] = H[(size_t)i * in + j];
        /* the scales from the weights as they are (max|w|), fixed from here on */
        if ((st = tq_fq_update(&m->qat->wfq[m->n_stages + l], TQ_DENSE(m, l).W, out, in, 0)) != TQ_OK) break;
        st = gptq_layer(TQ_DENSE(m, l).W, out, in, &m->qat->wfq[m->n_stages + l], H, tmp, l);
    }
    tq_net_free(&net);
    tq_free(H);
    tq_free(tmp);
    tq_free(px);
    return st;
}
