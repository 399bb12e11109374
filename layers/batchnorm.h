/* Batch normalization over channels, and the per-channel scale QAT folds it with
 * (docs/QUANTIZATION.md §10).
 *
 * x is [B][S*C]: column j belongs to channel j % C (NHWC images: S = H*W positions; a dense
 * layer's output: S = 1). With N = B*S values per channel:
 *
 *   training   mean_c, var_c of the batch (var biased, over N); y = gamma (x - mean) / sqrt(var + eps) + beta
 *              running_mean += momentum (mean - running_mean)
 *              running_var  += momentum (var * N/(N-1) - running_var)          (PyTorch's rule)
 *              backward, with xh = (x - mean) / sqrt(var + eps):
 *              dx = gamma / sqrt(var + eps) / N (N dy - sum dy - xh sum(dy xh)),
 *              dgamma += sum(dy xh), dbeta += sum(dy)
 *   evaluation, or frozen statistics: the running mean and var stand in for the batch's, which
 *              are then constants: dx = dy gamma / sqrt(running_var + eps). With round_bias set,
 *              y = s x + round(beta - s mean) instead (s = gamma / sqrt(running_var + eps)): the
 *              same function up to the bias rounding, whose gradient passes straight through, so
 *              the backward is unchanged.
 * momentum 0.1 and eps 1e-5 as PyTorch's defaults. Both modes compute y as a x + b per channel
 * (a = gamma / sqrt(var + eps), b = beta - a mean), the folded form the integer model holds.
 * Nothing per value is cached: backward recomputes xh from x (and, for tq_batchnorm_relu, the
 * ReLU's mask from a x + b), cheaper than writing and reading back tensors larger than a cache.
 * The mean and variance come from one pass of sums of (x - running_mean) and its square, in
 * double, per batch slice, added up in slice order: the same bytes for any thread count.
 *
 * The fold (PyTorch 1.13's ConvBn2d): s[c] = gamma[c] / sqrt(running_var[c] + eps). QAT computes
 * conv(x, fake_quant(W * s)) / s, then the batch norm above, so the weights the quantizer sees
 * are the folded ones the integer model will hold, while training still normalizes with batch
 * statistics; the gradient reaches gamma through s as well. */
#ifndef TQ_BATCHNORM_H
#define TQ_BATCHNORM_H

#include "../src/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int C;
    float momentum, eps;                /* 0.1, 1e-5 */
    float *running_mean, *running_var;  /* [C]: the caller's buffers (the model's) */
    int frozen;                         /* 1: use and keep the running statistics while training */
    int batch_stats;                    /* set by forward: 1 when it normalized with the batch's */
    /* Set by QAT on a folded stage (may be NULL): rounds each channel's folded bias
     * beta - s * running_mean to the int32 grid the integer model stores it on (in place; `mode`
     * is the run's, see src/fake_quant.h). With the running statistics the batch norm then
     * outputs s x + that bias, the folded layer exactly as the integer path computes it. */
    void (*round_bias)(const void *ctx, float *bias, int C, int mode);
    const void *round_bias_ctx;
} tq_bn;

/* running mean 0, var 1, momentum 0.1, eps 1e-5, not frozen (the buffers are the caller's) */
void tq_bn_init(tq_bn *bn, int C, float *running_mean, float *running_var);

/* x:[B][S*C], gamma and beta [1][C] -> [B][S*C] */
tq_node *tq_batchnorm(tq_graph *g, tq_node *x, tq_node *gamma, tq_node *beta, tq_bn *bn);
/* The same followed by a ReLU, in one op: max(0, batchnorm(x)), one pass over the data each way
 * instead of two. */
tq_node *tq_batchnorm_relu(tq_graph *g, tq_node *x, tq_node *gamma, tq_node *beta, tq_bn *bn);

/* The fold's two halves, with s[c] = gamma[c] / sqrt(running_var[c] + eps):
 * W' = W * s with row c of W [OC][K] being channel c, and y' = y / s with column j of y [B][S*C]
 * being channel j % C. Gradients reach W (or y) and gamma. */
/* The fold's scale of one channel, gamma / sqrt(var + eps), as one float expression that the
 * fold, the converter and the exact accumulators of 16-bit layers share (so they agree to the
 * bit); below 1e-12 in size it is 1e-12 with gamma's sign (a channel BN zeroes anyway), so that
 * W s / s = W. */
float tq_bn_fold_scale(float gamma, float var, float eps);

tq_node *tq_bn_fold_weights(tq_graph *g, tq_node *W, tq_node *gamma, tq_bn *bn);
tq_node *tq_bn_unfold_output(tq_graph *g, tq_node *y, tq_node *gamma, tq_bn *bn);

#ifdef __cplusplus
}
#endif
#endif
