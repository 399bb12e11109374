/* ste_demo: what fake quantization does to values and to gradients, on nine numbers.
 *
 * Forward, a 3-bit quantizer with s = 0.5, z = 0 and integers [-4, 3]:
 *     u = z + round(x / s),  q = clamp(u, -4, 3),  x^ = (q - z) s
 * x^ is a staircase in x. Its true derivative is 0 between the steps (and undefined on them),
 * so training through it would learn nothing: every weight gets gradient 0. The
 * straight-through estimator (STE) pretends the staircase was the identity in backward:
 *     clipped STE (PyTorch's, tinyqat's default): dL/dx = dL/dx^ where -4 <= u <= 3, else 0
 *     plain STE: dL/dx = dL/dx^ everywhere (it keeps pushing values the clamp will cut anyway)
 *     LSQ also learns s:  dL/ds = dL/dx^ g (round(x/s) - x/s) inside, g (qmin - z) below,
 *                         g (qmax - z) above,  g = 1 / sqrt(numel * qmax)
 * Every number below comes from the library's fake-quant op run through the autograd engine,
 * with the upstream gradient dL/dx^ = 1 for every element (L = sum of x^). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/autograd.h"
#include "src/fake_quant.h"
#include "src/ops.h"

enum { N = 9 };

static tq_status sum_shape(tq_node *n) {
    n->rows = n->cols = 1;
    return TQ_OK;
}
static void sum_forward(tq_node *n, int mode) {
    (void)mode;
    double s = 0;
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) s += n->in[0]->val[i];
    n->val[0] = (float)s;
}
static void sum_backward(tq_node *n) {
    for (size_t i = 0; i < tq_node_numel(n->in[0]); i++) n->in[0]->grad[i] += n->grad[0];
}
static const tq_op op_sum = {"sum", sum_shape, sum_forward, sum_backward, 0};

/* x^ for one x through a fresh graph (used by the finite differences) */
static float fq_value(float x, tq_fq *fq) {
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_fake_quant(g, tq_leaf(g, "x", 1, 1, &x, NULL), fq);
    tq_graph_forward(g, TQ_RUN_EVAL);
    float v = y->val[0];
    tq_graph_free(g);
    return v;
}

/* Run the op on x with STE `ste`; dx gets dL/dx, *ds dL/ds (LSQ only). */
static void run(const float *x, float *xhat, float *dx, float *ds, tq_ste ste) {
    static tq_observer obs;
    static tq_fq fq;
    tq_observer_init(&obs, TQ_OBS_MINMAX);
    tq_fq_init_act(&fq, &obs);
    fq.qmin = -4, fq.qmax = 3, fq.bits = 3;
    /* a frozen observer that has seen [-2, 1.5]: s = 3.5 / 7 = 0.5, z = -4 - round(-2 / 0.5) = 0 */
    obs.min = -2.0f, obs.max = 1.5f, obs.n_seen = 1, obs.frozen = 1;
    fq.scale[0] = 0.5f, fq.zero_point[0] = 0;
    fq.ste = ste;
    float xs[N], s[1] = {0.5f}, sgrad[1] = {0};
    memcpy(xs, x, sizeof xs);
    memset(dx, 0, N * sizeof(float));
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", 1, N, xs, dx);
    tq_node *y = ste == TQ_STE_LSQ ? tq_fake_quant_lsq(g, xn, tq_leaf(g, "s", 1, 1, s, sgrad), &fq) : tq_fake_quant(g, xn, &fq);
    tq_node *L = tq_graph_apply(g, &op_sum, NULL, 1, &y);
    tq_graph_forward(g, TQ_RUN_TRAIN);
    tq_graph_backward(g, L);
    memcpy(xhat, y->val, sizeof xs);
    if (ds) *ds = sgrad[0];
    tq_graph_free(g);
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: tq_ste_demo\nPrints a 3-bit fake quantizer's forward and backward on nine values: the staircase,\n"
               "its true derivative, a finite-difference estimate, the clipped and plain STE, and LSQ's scale gradient.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "tq_ste_demo: takes no arguments (see --help)\n");
        return 2;
    }
    /* nine values: inside, on a rounding tie, near and past both ends of the range */
    const float x[N] = {-2.6f, -2.25f, -1.3f, -0.25f, 0.1f, 0.74f, 1.6f, 1.76f, 2.9f};
    float xhat[N], d_clip[N], d_plain[N], d_lsq[N], ds;
    run(x, xhat, d_clip, NULL, TQ_STE_CLIPPED);
    run(x, xhat, d_plain, NULL, TQ_STE_PLAIN);
    run(x, xhat, d_lsq, &ds, TQ_STE_LSQ);

    printf("3-bit fake quant, s = 0.5, z = 0, integers [-4, 3]: the grid is -2.0, -1.5, ..., 1.5\n");
    printf("(the clipped STE passes gradients for x in [(qmin - z - 1/2) s, (qmax - z + 1/2) s] = [-2.25, 1.75])\n\n");
    printf("%8s %5s %5s %8s %8s | %10s %12s | %11s %9s %10s\n", "x", "u", "q", "x^", "x^-x", "true d/dx", "finite diff",
           "clipped STE", "plain STE", "LSQ ds_i");
    static tq_observer obs;
    static tq_fq fq;
    tq_observer_init(&obs, TQ_OBS_MINMAX);
    tq_fq_init_act(&fq, &obs);
    fq.qmin = -4, fq.qmax = 3, fq.scale[0] = 0.5f, obs.min = -2.0f, obs.max = 1.5f, obs.n_seen = 1, obs.frozen = 1;
    double g = 1.0 / sqrt((double)N * 3.0), ds_sum = 0;
    int mismatches = 0;
    for (int i = 0; i < N; i++) {
        float u = nearbyintf(x[i] * 2.0f) + 0.0f, q = fminf(fmaxf(u, -4.0f), 3.0f); /* + 0: no "-0" */
        /* central difference with a step well below the grid spacing: 0 unless a step lies between */
        const float h = 1e-3f;
        float fd = (fq_value(x[i] + h, &fq) - fq_value(x[i] - h, &fq)) / (2 * h);
        double v = x[i] / 0.5, dsi = u < -4 ? g * -4 : u > 3 ? g * 3 : g * (nearbyint(v) - v);
        /* the rules written out here must give what the library's op gave */
        float mask = (u >= -4 && u <= 3) ? 1.0f : 0.0f;
        mismatches += d_clip[i] != mask || d_plain[i] != 1.0f || d_lsq[i] != mask || xhat[i] != q * 0.5f;
        ds_sum += dsi;
        printf("%8.3f %5.0f %5.0f %8.3f %8.3f | %10s %12.3f | %11.0f %9.0f %10.4f\n", (double)x[i], (double)u, (double)q,
               (double)xhat[i], (double)(xhat[i] - x[i]), fabsf(fd) > 0 ? "undefined" : "0", (double)fd,
               (double)d_clip[i], (double)d_plain[i], dsi);
    }
    printf("\nLSQ: dL/ds = %.4f from the op, %.4f as the sum of the last column (g = 1/sqrt(%d * 3) = %.4f)\n", (double)ds,
           ds_sum, N, g);
    mismatches += fabs(ds - ds_sum) > 1e-5;
    printf("The finite difference sees only the staircase: zero, or a spike where a step falls inside +-h.\n");
    printf("The STE column is what training uses instead: the clipped one stops pushing -2.6 and 1.76 and 2.9,\n");
    printf("which the clamp holds at -2.0 and 1.5 whatever happens to them.\n");
    if (mismatches) fprintf(stderr, "tq_ste_demo: %d value(s) differ from the library's op\n", mismatches);
    return mismatches != 0;
}
