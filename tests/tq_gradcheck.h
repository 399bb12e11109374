/* Gradient checks for the op tests: a weighted-sum loss L = sum(R .* y) with fixed random R, and
 * every gradient compared with central finite differences. */
#ifndef TQ_GRADCHECK_H
#define TQ_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/autograd.h"
#include "src/rng.h"

/* ---- test-only op: L = sum(R .* x), R fixed (ctx) ---- */
static tq_status wsum_shape(tq_node *n) {
    n->rows = n->cols = 1;
    return TQ_OK;
}
static void wsum_forward(tq_node *n, int training) {
    (void)training;
    const float *R = n->ctx;
    double s = 0;
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) s += (double)R[i] * n->in[0]->val[i];
    n->val[0] = (float)s;
}
static void wsum_backward(tq_node *n) {
    const float *R = n->ctx;
    if (!n->in[0]->grad) return;
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) n->in[0]->grad[i] += n->grad[0] * R[i];
}
static const tq_op op_wsum = {"wsum", wsum_shape, wsum_forward, wsum_backward, 0};

static inline void fill(tq_rng *r, float *a, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) a[i] = tq_rng_uniform_in(r, lo, hi);
}

/* Keep values away from ReLU's kink so a +-eps step never crosses it. */
static inline void fill_off_zero(tq_rng *r, float *a, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = tq_rng_uniform_in(r, 0.1f, 1.0f);
        a[i] = tq_rng_uniform(r) < 0.5f ? -v : v;
    }
}

/* Compare every parameter gradient with (L(p+eps) - L(p-eps)) / 2eps. Returns the largest
 * violation of |analytic - numeric| <= atol + rtol*|numeric| (<= 0 means all pass). */
static double gradcheck_mode(tq_graph *g, tq_node *loss, float *p, float *dp, size_t n, int mode) {
    const float eps = 1e-2f, atol = 2e-3f, rtol = 1e-2f;
    memset(dp, 0, n * sizeof(float));
    assert_int_equal(tq_graph_forward(g, mode), TQ_OK);
    assert_int_equal(tq_graph_backward(g, loss), TQ_OK);
    double worst = -1;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + eps;
        tq_graph_forward(g, mode);
        double lp = loss->val[0];
        p[i] = keep - eps;
        tq_graph_forward(g, mode);
        double lm = loss->val[0];
        p[i] = keep;
        double num = (lp - lm) / (2.0 * eps);
        double excess = fabs(dp[i] - num) - (atol + rtol * fabs(num));
        if (excess > worst) worst = excess;
        if (excess > 0) printf("  index %zu: analytic %.6f numeric %.6f\n", i, dp[i], num);
    }
    return worst;
}

/* in a training run (mode 1) */
static inline double gradcheck(tq_graph *g, tq_node *loss, float *p, float *dp, size_t n) {
    return gradcheck_mode(g, loss, p, dp, n, 1);
}

#endif
