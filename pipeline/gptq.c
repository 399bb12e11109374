/* GPTQ (Frantar et al., ICLR 2023) for the dense layers and convolutions of a calibrated PTQ model:
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
#include "src/ops.h"
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
    if (inverse_upper_factor(H, tmp, in)) TQ_FAIL(TQ_E_NUMERIC, "gptq: unit %d: the inputs' Hessian is singular", l + 1);
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

/* A convolution's input patches for B images of x (NHWC), one row of K = KH KW C values per output
 * position, in its weights' column order (ky, kx, c); padding reads 0, the value the integer
 * path's padding z_x stands for. cols: [B OH OW][K]. */
static void patches(const tq_conv_shape *cs, const float *x, int B, float *cols) {
    const size_t C = (size_t)cs->C, K = (size_t)cs->KH * cs->KW * C;
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < cs->OH; oy++)
            for (int ox = 0; ox < cs->OW; ox++, cols += K) {
                const float *img = x + (size_t)b * cs->H * cs->W * C;
                for (int ky = 0, k = 0; ky < cs->KH; ky++)
                    for (int kx = 0; kx < cs->KW; kx++, k++) {
                        const int iy = oy * cs->stride - cs->pad + ky, ix = ox * cs->stride_w - cs->pad_w + kx;
                        float *dst = cols + (size_t)k * C;
                        if (iy < 0 || iy >= cs->H || ix < 0 || ix >= cs->W) memset(dst, 0, C * sizeof(float));
                        else memcpy(dst, img + ((size_t)iy * cs->W + (size_t)ix) * C, C * sizeof(float));
                    }
            }
}

/* The units GPTQ rounds: a dense layer, or a convolution that is not depthwise (a depthwise
 * channel is one row of KH KW weights over its own input: it keeps PTQ's rounding). */
static int gptq_unit(const tq_unit *U) { return U->kind == TQ_UNIT_DENSE || (U->kind == TQ_UNIT_CONV && !U->conv.depthwise); }

tq_status tq_gptq(tq_model *m, const tq_dataset *train, int n_batches, uint64_t seed) {
    TQ_TRY(tq_model_check_data(m, train));
    if (!m->qat) TQ_FAIL(TQ_E_ARG, "gptq: the model has no quantization state");
    /* no batches would leave H = 0, and every column's update divides by H's diagonal */
    if (n_batches < 1) TQ_FAIL(TQ_E_ARG, "gptq: %d calibration batches (at least 1)", n_batches);
    if (m->qat->cfg.w_mse || m->lsq) TQ_FAIL(TQ_E_ARG, "gptq: the weight scales must come from max|w|");
    const int D = tq_model_inputs(m), B = 64;
    size_t max_k = 1, max_out = 1, max_cols = 1;
    for (int u = 0; u < m->n_units; u++) {
        const tq_unit *U = &m->unit[u];
        if (!gptq_unit(U)) continue;
        const size_t K = tq_unit_weights(U) / (size_t)U->conv.OC;
        max_k = K > max_k ? K : max_k;
        max_out = (size_t)U->conv.OC > max_out ? (size_t)U->conv.OC : max_out;
        if (U->kind == TQ_UNIT_CONV && (size_t)B * U->conv.OH * U->conv.OW * K > max_cols) max_cols = (size_t)B * U->conv.OH * U->conv.OW * K;
    }
    double *H = tq_malloc(max_k * max_k * sizeof(double));
    double *tmp = tq_malloc((max_k * max_k + 2 * max_out) * sizeof(double));
    float *cols = tq_malloc(max_cols * sizeof(float)), *hb = tq_malloc(max_k * max_k * sizeof(float));
    float *wf = tq_malloc(max_out * max_k * sizeof(float)), *fold = tq_malloc(max_out * sizeof(float));
    uint8_t *px = tq_malloc((size_t)B * D);
    tq_net net;
    tq_status st = !H || !tmp || !cols || !hb || !wf || !fold || !px ? tq_error_set_(TQ_E_NOMEM, __FILE__, __LINE__, "gptq: out of memory")
                                                                    : TQ_OK;
    if (st == TQ_OK) st = tq_net_init(&net, m, B);
    else memset(&net, 0, sizeof net);
    for (int u = 0; u < m->n_units && st == TQ_OK; u++) {
        tq_unit *U = &m->unit[u];
        if (!gptq_unit(U)) continue;
        const tq_conv_shape *cs = &U->conv;
        const int out = cs->OC, in = (int)(tq_unit_weights(U) / (size_t)out), conv = U->kind == TQ_UNIT_CONV;
        /* the unit's input, as the units before it (already rounded) give it */
        const tq_node *x = U->src[0] < 0 ? net.x : net.out[U->src[0]];
        memset(H, 0, (size_t)in * in * sizeof(double));
        tq_rng rng; /* the calibration's batches (tq_calibrate draws them the same way) */
        tq_rng_seed(&rng, seed ^ 0xCA11B4A7Eull);
        for (int b = 0; b < n_batches && st == TQ_OK; b++) {
            for (int k = 0; k < B; k++)
                memcpy(px + (size_t)k * D, train->images + (size_t)tq_rng_below(&rng, train->n) * D, (size_t)D);
            if ((st = tq_net_set_batch(&net, m, px, NULL, B)) == TQ_OK) st = tq_graph_forward(net.g, TQ_RUN_EVAL);
            if (st == TQ_OK && conv) { /* H += P^T P over the batch's patches: one SGEMM, summed in double */
                const int rows = B * cs->OH * cs->OW;
                patches(cs, x->val, B, cols);
                tq_sgemm(1, 0, in, in, rows, 1.0f, cols, in, cols, in, 0.0f, hb, in);
                for (size_t i = 0; i < (size_t)in * in; i++) H[i] += hb[i];
            }
            for (int k = 0; st == TQ_OK && !conv && k < B; k++) { /* H += x x^T (the lower half, mirrored below) */
                const float *xr = x->val + (size_t)k * in;
                for (int i = 0; i < in; i++) {
                    if (xr[i] == 0.0f) continue; /* after a ReLU, most are */
                    double xi = xr[i];
                    double *hr = H + (size_t)i * in;
                    for (int j = 0; j <= i; j++) hr[j] += xi * xr[j];
                }
            }
        }
        if (st != TQ_OK) break;
        for (int i = 0; i < in && !conv; i++)
            for (int j = 0; j < i; j++) H[(size_t)j * in + i] = H[(size_t)i * in + j];
        /* The weights the quantizer sees: with batch norm, W s_bn (layers/qat.h), row o scaled by
         * s_o; GPTQ rounds those, and W takes them back divided by s_o. The scales from the weights
         * as they are (max|w|), fixed from here on. */
        for (int o = 0; o < out; o++) fold[o] = U->bn ? tq_bn_fold_scale(U->gamma[o], U->running_var[o], U->bn_state.eps) : 1.0f;
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) wf[(size_t)o * in + i] = U->W[(size_t)o * in + i] * fold[o];
        if ((st = tq_fq_update(&m->qat->wfq[u], wf, out, in, 0)) != TQ_OK) break;
        if ((st = gptq_layer(wf, out, in, &m->qat->wfq[u], H, tmp, u)) != TQ_OK) break;
        for (int o = 0; o < out; o++) /* (gamma 0 folds any row to 0: that one stays as it is) */
            for (int i = 0; i < in && fold[o] != 0.0f; i++) U->W[(size_t)o * in + i] = wf[(size_t)o * in + i] / fold[o];
    }
    tq_net_free(&net);
    tq_free(H), tq_free(tmp), tq_free(cols), tq_free(hb), tq_free(wf), tq_free(fold);
    tq_free(px);
    return st;
}
