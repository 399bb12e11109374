/* Adam and SGD against values worked out by hand (the arithmetic is in the comments). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "optim/adam.h"
#include "optim/sgd.h"

static void adam_first_steps(void **state) {
    (void)state;
    tq_adam o;
    assert_int_equal(tq_adam_init(&o, 3, 0.1f), TQ_OK);
    float p[3] = {1.0f, 1.0f, 1.0f}, g[3] = {2.0f, -0.5f, 0.0f};
    /* Step 1: m = 0.1 g, v = 0.001 g^2; m/(1-0.9) = g, sqrt(v/(1-0.999)) = |g|:
     * p -= 0.1 * g / (|g| + 1e-8) = 0.1 sign(g); a zero gradient leaves p alone. */
    tq_adam_step(&o, p, g);
    assert_float_equal(p[0], 0.9f, 1e-6f);
    assert_float_equal(p[1], 1.1f, 1e-6f);
    assert_float_equal(p[2], 1.0f, 0.0f);
    /* Step 2 with g = 0 for p[0]: m = 0.9*0.2 = 0.18, m_hat = 0.18 / (1 - 0.81) = 0.947368;
     * v = 0.999*0.004 = 0.003996, v_hat = 0.003996 / (1 - 0.998001) = 1.998999, sqrt = 1.413859;
     * p -= 0.1 * 0.947368 / 1.413859 = 0.0670058  ->  0.9 - 0.0670058 = 0.8329942 */
    float g2[3] = {0.0f, 0.0f, 0.0f};
    tq_adam_step(&o, p, g2);
    assert_float_equal(p[0], 0.8329942f, 2e-6f);
    assert_int_equal(o.t, 2);
    tq_adam_free(&o);
}

static void adam_constant_gradient_moves_lr_per_step(void **state) {
    (void)state;
    /* With a constant g, m_hat = g and v_hat = g^2 at every step: each step moves lr. */
    tq_adam o;
    tq_adam_init(&o, 1, 0.01f);
    float p = 0.0f, g = 3.0f;
    for (int t = 0; t < 10; t++) tq_adam_step(&o, &p, &g);
    assert_float_equal(p, -0.1f, 1e-5f);
    tq_adam_free(&o);
}

static void adam_weight_decay_both_ways(void **state) {
    (void)state;
    /* L2 (Adam): g' = g + wd p = 0 + 0.5*2 = 1 -> first step moves lr*sign(1) = 0.1: p = 1.9.
     * Decoupled (AdamW): p *= 1 - lr*wd = 0.95 -> 1.9, and g = 0 moves nothing else: p = 1.9,
     * but with g = 1 AdamW gives 2*0.95 - 0.1 = 1.8 while Adam's L2 gives 2 - 0.1 = 1.9. */
    tq_adam a, w;
    tq_adam_init(&a, 1, 0.1f);
    tq_adam_init(&w, 1, 0.1f);
    a.weight_decay = w.weight_decay = 0.5f;
    w.decoupled = 1;
    float pa = 2.0f, pw = 2.0f, zero = 0.0f;
    tq_adam_step(&a, &pa, &zero);
    tq_adam_step(&w, &pw, &zero);
    assert_float_equal(pa, 1.9f, 1e-6f);
    assert_float_equal(pw, 1.9f, 1e-6f);
    pa = pw = 2.0f;
    a.t = w.t = 0;
    a.m[0] = a.v[0] = w.m[0] = w.v[0] = 0;
    float one = 1.0f;
    tq_adam_step(&a, &pa, &one);
    tq_adam_step(&w, &pw, &one);
    assert_float_equal(pa, 1.9f, 1e-6f);
    assert_float_equal(pw, 1.8f, 1e-6f);
    tq_adam_free(&a);
    tq_adam_free(&w);
}

static void sgd_momentum_and_nesterov(void **state) {
    (void)state;
    /* lr 0.1, momentum 0.9, g = 1 every step:
     * buf = 1, 1.9, 2.71  ->  p = -0.1, -0.29, -0.561 */
    tq_sgd o;
    assert_int_equal(tq_sgd_init(&o, 1, 0.1f, 0.9f), TQ_OK);
    float p = 0, g = 1;
    float want[3] = {-0.1f, -0.29f, -0.561f};
    for (int t = 0; t < 3; t++) {
        tq_sgd_step(&o, &p, &g);
        assert_float_equal(p, want[t], 1e-6f);
    }
    tq_sgd_free(&o);
    /* Nesterov: d = g + 0.9 buf: step 1 buf 1, d 1.9 -> -0.19; step 2 buf 1.9, d 2.71 -> -0.461 */
    tq_sgd_init(&o, 1, 0.1f, 0.9f);
    o.nesterov = 1;
    p = 0;
    tq_sgd_step(&o, &p, &g);
    assert_float_equal(p, -0.19f, 1e-6f);
    tq_sgd_step(&o, &p, &g);
    assert_float_equal(p, -0.461f, 1e-6f);
    tq_sgd_free(&o);
    /* plain SGD with weight decay: d = 1 + 0.5*2 = 2, p = 2 - 0.1*2 = 1.8 */
    tq_sgd_init(&o, 1, 0.1f, 0.0f);
    o.weight_decay = 0.5f;
    p = 2;
    tq_sgd_step(&o, &p, &g);
    assert_float_equal(p, 1.8f, 1e-6f);
    tq_sgd_free(&o);
}

/* A decay mask exempts the parameters it flags 0: they step as if weight decay were 0. */
static void decay_mask_exempts(void **state) {
    (void)state;
    const uint8_t mask[2] = {1, 0};
    /* SGD lr 0.1, wd 0.5, g = 1, p = 2: decayed 2 - 0.1 (1 + 1) = 1.8; exempt 2 - 0.1 = 1.9 */
    tq_sgd s;
    tq_sgd_init(&s, 2, 0.1f, 0.0f);
    s.weight_decay = 0.5f;
    s.decay_mask = mask;
    float p[2] = {2, 2}, g[2] = {1, 1};
    tq_sgd_step(&s, p, g);
    assert_float_equal(p[0], 1.8f, 1e-6f);
    assert_float_equal(p[1], 1.9f, 1e-6f);
    tq_sgd_free(&s);
    /* Adam's L2 with g = 0: decayed g' = 1 moves lr = 0.1 (1.9); exempt g' = 0 stays (2).
     * AdamW with g = 1: decayed 2 * 0.95 - 0.1 = 1.8; exempt 2 - 0.1 = 1.9. */
    for (int decoupled = 0; decoupled < 2; decoupled++) {
        tq_adam a;
        tq_adam_init(&a, 2, 0.1f);
        a.weight_decay = 0.5f;
        a.decoupled = decoupled;
        a.decay_mask = mask;
        float q[2] = {2, 2}, gq[2] = {(float)decoupled, (float)decoupled};
        tq_adam_step(&a, q, gq);
        assert_float_equal(q[0], decoupled ? 1.8f : 1.9f, 1e-6f);
        assert_float_equal(q[1], decoupled ? 1.9f : 2.0f, 1e-6f);
        tq_adam_free(&a);
    }
}

/* Both minimize f(p) = sum (p_i - c_i)^2, gradient 2 (p - c). */
static void both_minimize_a_quadratic(void **state) {
    (void)state;
    const float c[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    tq_adam a;
    tq_sgd s;
    tq_adam_init(&a, 4, 0.05f);
    tq_sgd_init(&s, 4, 0.05f, 0.9f);
    float pa[4] = {0}, ps[4] = {0}, g[4];
    for (int t = 0; t < 2000; t++) {
        for (int i = 0; i < 4; i++) g[i] = 2 * (pa[i] - c[i]);
        tq_adam_step(&a, pa, g);
        for (int i = 0; i < 4; i++) g[i] = 2 * (ps[i] - c[i]);
        tq_sgd_step(&s, ps, g);
    }
    for (int i = 0; i < 4; i++) {
        assert_float_equal(pa[i], c[i], 1e-3f);
        assert_float_equal(ps[i], c[i], 1e-4f);
    }
    tq_adam_free(&a);
    tq_sgd_free(&s);
}

static void bad_arguments(void **state) {
    (void)state;
    tq_adam a;
    tq_sgd s;
    assert_int_equal(tq_adam_init(&a, 0, 0.1f), TQ_E_ARG);
    assert_int_equal(tq_adam_init(&a, 4, 0.0f), TQ_E_ARG);
    assert_int_equal(tq_adam_init(&a, 4, NAN), TQ_E_ARG);
    assert_int_equal(tq_sgd_init(&s, 4, -1.0f, 0.9f), TQ_E_ARG);
    tq_adam_free(NULL);
    tq_sgd_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adam_first_steps),        cmocka_unit_test(adam_constant_gradient_moves_lr_per_step),
        cmocka_unit_test(adam_weight_decay_both_ways), cmocka_unit_test(sgd_momentum_and_nesterov), cmocka_unit_test(decay_mask_exempts),
        cmocka_unit_test(both_minimize_a_quadratic), cmocka_unit_test(bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
