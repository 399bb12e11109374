/* The engine and every op's backward against central finite differences.
 *
 * To check an op f with a non-scalar output, the test reduces it with a fixed random weighting,
 * L = sum_ij R_ij f(x)_ij, so dL/df = R is dense and every output element's gradient path is
 * exercised (a plain mean would hide a transposition: all its weights are equal). That
 * reduction is a tq_op written here in a dozen lines, which is also how a new op is added. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "layers/dropout.h"
#include "layers/loss.h"
#include "layers/relu.h"
#include "src/alloc.h"
#include "src/autograd.h"
#include "src/fake_quant.h"
#include "src/ops.h"
#include "src/rng.h"

#include "tests/tq_gradcheck.h"

static void matmul_bias_grads(void **state) {
    (void)state;
    enum { B = 3, K = 5, O = 4 };
    tq_rng r;
    tq_rng_seed(&r, 1);
    float x[B * K], W[O * K], b[O], R[B * O], dx[B * K], dW[O * K], db[O];
    fill(&r, x, B * K, -1, 1);
    fill(&r, W, O * K, -1, 1);
    fill(&r, b, O, -1, 1);
    fill(&r, R, B * O, -1, 1);
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", B, K, x, dx);
    tq_node *Wn = tq_leaf(g, "W", O, K, W, dW);
    tq_node *bn = tq_leaf(g, "b", 1, O, b, db);
    tq_node *y = tq_add_bias(g, tq_matmul_bt(g, xn, Wn), bn);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    assert_int_equal(tq_graph_status(g), TQ_OK);
    assert_int_equal(y->rows, B);
    assert_int_equal(y->cols, O);
    /* forward against the double-precision triple loop */
    tq_graph_forward(g, 0);
    float yref[B * O];
    tq_matmul_bt_ref(yref, x, W, B, K, O);
    for (int i = 0; i < B * O; i++) assert_float_equal(y->val[i], yref[i] + b[i % O], 1e-5f);
    assert_true(gradcheck(g, L, x, dx, B * K) <= 0);
    assert_true(gradcheck(g, L, W, dW, O * K) <= 0);
    assert_true(gradcheck(g, L, b, db, O) <= 0);
    tq_graph_free(g);
}

static void relu_grads(void **state) {
    (void)state;
    enum { N = 24 };
    tq_rng r;
    tq_rng_seed(&r, 2);
    float x[N], dx[N], R[N];
    fill_off_zero(&r, x, N);
    fill(&r, R, N, -1, 1);
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", 4, 6, x, dx);
    tq_node *y = tq_relu(g, xn);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    tq_graph_forward(g, 0);
    for (int i = 0; i < N; i++) assert_true(y->val[i] == (x[i] > 0 ? x[i] : 0));
    assert_true(gradcheck(g, L, x, dx, N) <= 0);
    /* the mask: negative inputs get exactly zero gradient */
    for (int i = 0; i < N; i++)
        if (x[i] < 0) assert_true(dx[i] == 0.0f);
    tq_graph_free(g);
}

/* ReLU6: the clamp by hand on values around both kinks (none within the finite difference's
 * step of 0 or 6), its gradient against finite differences, exactly zero outside (0, 6). */
static void relu6_grads(void **state) {
    (void)state;
    enum { N = 24 };
    tq_rng r;
    tq_rng_seed(&r, 3);
    float x[N], dx[N], R[N];
    for (int i = 0; i < N; i++) {
        float v = tq_rng_uniform_in(&r, -3.0f, 9.0f);
        x[i] = fabsf(v) < 0.05f || fabsf(v - 6.0f) < 0.05f ? v + 0.3f : v;
    }
    fill(&r, R, N, -1, 1);
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", 4, 6, x, dx);
    tq_node *y = tq_relu6(g, xn);
    tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
    tq_graph_forward(g, 0);
    int below = 0, above = 0;
    for (int i = 0; i < N; i++) {
        assert_true(y->val[i] == (x[i] < 0 ? 0.0f : x[i] > 6 ? 6.0f : x[i]));
        below += x[i] < 0, above += x[i] > 6;
    }
    assert_true(below > 0 && above > 0);
    assert_true(gradcheck(g, L, x, dx, N) <= 0);
    for (int i = 0; i < N; i++)
        if (x[i] < 0 || x[i] > 6) assert_true(dx[i] == 0.0f);
    tq_graph_free(g);
}

/* Dropout: in training each value is dropped (0) or kept and scaled by 1/keep, about `rate` of
 * them dropped; the mask repeats at one step (so finite differences check the gradient) and
 * changes with the step, the seed and the layer; evaluation and calibration pass x through. */
static void dropout_masks_and_grads(void **state) {
    (void)state;
    enum { R = 50, C = 80, N = R * C };
    tq_rng r;
    tq_rng_seed(&r, 4);
    float *x = tq_malloc(N * sizeof(float)), *dx = tq_calloc(N, sizeof(float)), *Rw = tq_malloc(N * sizeof(float)),
          *first = tq_malloc(N * sizeof(float));
    fill_off_zero(&r, x, N);
    fill(&r, Rw, N, -1, 1);
    uint64_t run[2] = {7, 100};
    tq_dropout_cfg cfg = {.rate = 0.3f, .unit = 2, .run = run};
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", R, C, x, dx);
    tq_node *y = tq_dropout(g, xn, &cfg);
    tq_node *L = tq_graph_apply(g, &op_wsum, Rw, 1, &y);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    int dropped = 0;
    for (int i = 0; i < N; i++) {
        assert_true(y->val[i] == 0.0f || y->val[i] == x[i] * (1.0f / 0.7f));
        dropped += y->val[i] == 0.0f;
    }
    /* binomial(4000, 0.3): mean 1200, sd 29 */
    assert_true(dropped > 1200 - 5 * 29 && dropped < 1200 + 5 * 29);
    memcpy(first, y->val, N * sizeof(float));
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    assert_memory_equal(first, y->val, N * sizeof(float));
    for (int k = 0; k < 3; k++) { /* another step, seed, layer */
        uint64_t keep_run[2] = {run[0], run[1]};
        uint32_t keep_unit = cfg.unit;
        if (k == 0) run[1]++;
        else if (k == 1) run[0]++;
        else cfg.unit++;
        assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
        int same = 0;
        for (int i = 0; i < N; i++) same += (y->val[i] == 0.0f) == (first[i] == 0.0f);
        assert_true(same < N - 500); /* independent masks agree on about 58% */
        run[0] = keep_run[0], run[1] = keep_run[1], cfg.unit = keep_unit;
    }
    assert_true(gradcheck_mode(g, L, x, dx, 40, TQ_RUN_TRAIN) <= 0);
    for (int i = 0; i < 40; i++) assert_true(y->val[i] != 0.0f || dx[i] == 0.0f);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    assert_memory_equal(y->val, x, N * sizeof(float));
    assert_int_equal(tq_graph_forward(g, TQ_RUN_CALIBRATE), TQ_OK);
    assert_memory_equal(y->val, x, N * sizeof(float));
    tq_graph_free(g);
    /* after a ReLU, dropout writes the ReLU's gradient instead of adding to it */
    g = tq_graph_new();
    xn = tq_leaf(g, "x", R, C, x, dx);
    tq_node *h = tq_relu(g, xn);
    y = tq_dropout(g, h, &cfg);
    L = tq_graph_apply(g, &op_wsum, Rw, 1, &y);
    assert_true(h->flags & TQ_NODE_GRAD_ASSIGN);
    assert_true(gradcheck_mode(g, L, x, dx, 40, TQ_RUN_TRAIN) <= 0);
    tq_graph_free(g);
    tq_free(x), tq_free(dx), tq_free(Rw), tq_free(first);
}

/* A node whose only consumer can assign its gradient (ReLU) is marked and not zeroed; a second
 * consumer takes the mark away, and both add. Either way the gradient is right, and stays right
 * over repeated backward passes (an assigned one does not pile up, a zeroed one restarts). */
static void gradient_assigned_by_an_only_consumer(void **state) {
    (void)state;
    enum { B = 3, K = 4, O = 5 };
    tq_rng r;
    tq_rng_seed(&r, 8);
    float x[B * K], W[O * K], dW[O * K], R[B * O], R2[B * O];
    fill(&r, x, B * K, -1, 1);
    fill(&r, W, O * K, -1, 1);
    fill(&r, R, B * O, -1, 1);
    fill(&r, R2, B * O, -1, 1);
    for (int consumers = 1; consumers <= 2; consumers++) {
        tq_graph *g = tq_graph_new();
        tq_node *h = tq_matmul_bt(g, tq_leaf(g, "x", B, K, x, NULL), tq_leaf(g, "W", O, K, W, dW));
        tq_node *y = tq_relu(g, h);
        assert_true(TQ_GRAD_ASSIGNED(h));
        tq_node *L = tq_graph_apply(g, &op_wsum, R, 1, &y);
        if (consumers == 2) {
            /* a second ReLU of h feeds the loss; the first branch's backward (run later, being
             * earlier on the tape) adds zeros: had it kept the mark, it would wipe the gradient */
            tq_node *y2 = tq_relu(g, h);
            assert_false(TQ_GRAD_ASSIGNED(h));
            L = tq_graph_apply(g, &op_wsum, R2, 1, &y2);
        }
        assert_int_equal(tq_graph_status(g), TQ_OK);
        for (int pass = 0; pass < 3; pass++) { /* the same gradient every pass: nothing piles up */
            assert_int_equal(tq_graph_forward(g, 1), TQ_OK);
            assert_int_equal(tq_graph_backward(g, L), TQ_OK);
            for (int i = 0; i < B * O; i++)
                assert_float_equal(h->grad[i], h->val[i] > 0 ? (consumers == 2 ? R2[i] : R[i]) : 0.0f, 0);
        }
        tq_graph_free(g);
    }
}

static void xent_value_and_grads(void **state) {
    (void)state;
    enum { B = 4, C = 5 };
    tq_rng r;
    tq_rng_seed(&r, 3);
    float z[B * C], dz[B * C];
    fill(&r, z, B * C, -3, 3);
    uint8_t y[B] = {0, 4, 2, 2};
    tq_labels lab = {y};
    tq_graph *g = tq_graph_new();
    tq_node *zn = tq_leaf(g, "z", B, C, z, dz);
    tq_node *L = tq_softmax_xent(g, zn, &lab);
    tq_graph_forward(g, 0);
    double want = 0; /* the textbook formula in double */
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += exp(z[b * C + k]);
        want += -(z[b * C + y[b]] - log(s));
    }
    assert_float_equal(L->val[0], want / B, 1e-5);
    assert_true(gradcheck(g, L, z, dz, B * C) <= 0);
    /* each row's gradient sums to zero (softmax minus one-hot) */
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += dz[b * C + k];
        assert_true(fabs(s) < 1e-6);
    }
    /* stable for huge logits: no inf/nan */
    z[0] = 1e4f;
    z[1] = -1e4f;
    tq_graph_forward(g, 0);
    assert_true(isfinite(L->val[0]));
    tq_graph_free(g);
}

static void mean_grads(void **state) {
    (void)state;
    float x[6] = {1, 2, 3, 4, 5, 6}, dx[6];
    tq_graph *g = tq_graph_new();
    tq_node *L = tq_mean(g, tq_leaf(g, "x", 2, 3, x, dx));
    tq_graph_forward(g, 0);
    assert_float_equal(L->val[0], 3.5f, 1e-6f);
    assert_true(gradcheck(g, L, x, dx, 6) <= 0);
    tq_graph_free(g);
}

/* A two-layer MLP end to end: the chain rule across ops, through a ReLU, into a loss. */
static void mlp_grads(void **state) {
    (void)state;
    enum { B = 5, I = 6, H = 7, C = 3 };
    tq_rng r;
    tq_rng_seed(&r, 4);
    float x[B * I], W1[H * I], b1[H], W2[C * H], b2[C];
    float dW1[H * I], db1[H], dW2[C * H], db2[C];
    fill(&r, x, B * I, -1, 1);
    fill(&r, W1, H * I, -1, 1);
    fill(&r, b1, H, -0.5f, 0.5f);
    fill(&r, W2, C * H, -1, 1);
    fill(&r, b2, C, -0.5f, 0.5f);
    uint8_t y[B] = {0, 1, 2, 1, 0};
    tq_labels lab = {y};
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", B, I, x, NULL);
    tq_node *h = tq_relu(g, tq_add_bias(g, tq_matmul_bt(g, xn, tq_leaf(g, "W1", H, I, W1, dW1)),
                                        tq_leaf(g, "b1", 1, H, b1, db1)));
    tq_node *z = tq_add_bias(g, tq_matmul_bt(g, h, tq_leaf(g, "W2", C, H, W2, dW2)), tq_leaf(g, "b2", 1, C, b2, db2));
    tq_node *L = tq_softmax_xent(g, z, &lab);
    assert_int_equal(tq_graph_status(g), TQ_OK);
    assert_null(xn->grad); /* the input needs no gradient: none is allocated or computed */
    /* keep hidden pre-activations off the kink: check they are */
    tq_graph_forward(g, 1);
    for (int i = 0; i < B * H; i++) assert_true(fabsf(h->in[0]->val[i]) > 0.02f);
    assert_true(gradcheck(g, L, W1, dW1, H * I) <= 0);
    assert_true(gradcheck(g, L, b1, db1, H) <= 0);
    assert_true(gradcheck(g, L, W2, dW2, C * H) <= 0);
    assert_true(gradcheck(g, L, b2, db2, C) <= 0);
    tq_graph_free(g);
}

static void params_accumulate_across_backward(void **state) {
    (void)state;
    float x[2] = {1, 2}, W[2] = {3, 4}, dW[2] = {0, 0};
    tq_graph *g = tq_graph_new();
    tq_node *L = tq_mean(g, tq_matmul_bt(g, tq_leaf(g, "x", 1, 2, x, NULL), tq_leaf(g, "W", 1, 2, W, dW)));
    tq_graph_forward(g, 1);
    tq_graph_backward(g, L);
    tq_graph_backward(g, L); /* twice: dL/dW = x, accumulated to 2x */
    assert_float_equal(dW[0], 2.0f, 1e-6f);
    assert_float_equal(dW[1], 4.0f, 1e-6f);
    tq_graph_free(g);
}

static void shape_errors_are_reported(void **state) {
    (void)state;
    float x[6] = {0}, W[8] = {0};
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_matmul_bt(g, tq_leaf(g, "x", 2, 3, x, NULL), tq_leaf(g, "W", 2, 4, W, NULL));
    assert_null(y);
    assert_int_equal(tq_graph_status(g), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "matmul"));
    assert_null(tq_relu(g, y)); /* later builders pass the failure on, no crash */
    assert_int_equal(tq_graph_forward(g, 0), TQ_E_SHAPE);
    tq_graph_free(g);
    /* backward on a non-scalar */
    g = tq_graph_new();
    tq_node *r = tq_relu(g, tq_leaf(g, "x", 2, 3, x, W));
    assert_int_equal(tq_graph_backward(g, r), TQ_E_SHAPE);
    tq_graph_free(g);
}

/* After the first step at the largest batch, steps allocate nothing; a smaller batch reuses the
 * buffers; everything the graph allocated is freed. */
static void steady_state_allocates_nothing(void **state) {
    (void)state;
    size_t live0 = tq_alloc_live_bytes();
    enum { B = 8, I = 10, O = 3 };
    float x[B * I], W[O * I], dW[O * I], b[O], db[O];
    tq_rng r;
    tq_rng_seed(&r, 5);
    fill(&r, x, B * I, -1, 1);
    fill(&r, W, O * I, -1, 1);
    fill(&r, b, O, -1, 1);
    uint8_t y[B] = {0, 1, 2, 0, 1, 2, 0, 1};
    tq_labels lab = {y};
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", B, I, x, NULL);
    tq_node *L = tq_softmax_xent(
        g, tq_add_bias(g, tq_relu(g, tq_matmul_bt(g, xn, tq_leaf(g, "W", O, I, W, dW))), tq_leaf(g, "b", 1, O, b, db)), &lab);
    tq_graph_forward(g, 1);
    tq_graph_backward(g, L);
    uint64_t n0 = tq_alloc_count();
    for (int step = 0; step < 5; step++) {
        assert_int_equal(tq_leaf_set_rows(xn, step % 2 ? B : 3, x), TQ_OK);
        assert_int_equal(tq_graph_forward(g, 1), TQ_OK);
        assert_int_equal(tq_graph_backward(g, L), TQ_OK);
        assert_int_equal(L->in[0]->rows, step % 2 ? B : 3);
    }
    assert_int_equal(tq_alloc_count(), n0);
    /* The caller's x holds B rows: more would read past it, so the leaf refuses (and keeps its
     * last good shape); a graph-owned leaf refuses likewise. */
    assert_int_equal(tq_leaf_set_rows(xn, B + 1, x), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "do not fit"));
    assert_int_equal(tq_leaf_set_rows(xn, 0, x), TQ_E_ARG);
    assert_int_equal(xn->rows, 3); /* the last accepted shape (step 4 set 3 rows) */
    tq_node *owned = tq_leaf(g, "h", 2, 3, NULL, NULL);
    assert_int_equal(tq_leaf_set_rows(owned, 3, NULL), TQ_E_ARG);
    assert_int_equal(tq_leaf_set_rows(owned, 1, NULL), TQ_OK);
    tq_graph_free(g);
    assert_int_equal(tq_alloc_live_bytes(), live0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matmul_bias_grads),
        cmocka_unit_test(relu_grads),
        cmocka_unit_test(relu6_grads),
        cmocka_unit_test(dropout_masks_and_grads),
        cmocka_unit_test(gradient_assigned_by_an_only_consumer),
        cmocka_unit_test(xent_value_and_grads),
        cmocka_unit_test(mean_grads),
        cmocka_unit_test(mlp_grads),
        cmocka_unit_test(params_accumulate_across_backward),
        cmocka_unit_test(shape_errors_are_reported),
        cmocka_unit_test(steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
