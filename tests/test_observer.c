/* Observers against hand values; frozen and evaluation runs never move them. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "src/autograd.h"
#include "src/fake_quant.h"
#include "src/observer.h"

static void minmax_running(void **state) {
    (void)state;
    tq_observer o;
    tq_observer_init(&o, TQ_OBS_MINMAX);
    float a[3] = {0.5f, -0.25f, 1.0f}, b[2] = {3.0f, 0.0f}, c[2] = {-2.0f, 0.1f};
    assert_int_equal(tq_observer_observe(&o, a, 3), TQ_OK);
    assert_true(o.min == -0.25f && o.max == 1.0f);
    tq_observer_observe(&o, b, 2);
    tq_observer_observe(&o, c, 2);
    assert_true(o.min == -2.0f && o.max == 3.0f);
    /* qparams of [-2, 3]: s = 5/255, z = -128 - round(-2 / (5/255)) = -128 + 102 = -26 */
    tq_qparams p;
    assert_int_equal(tq_observer_qparams(&o, -128, 127, &p), TQ_OK);
    assert_float_equal(p.scale, 5.0f / 255.0f, 1e-9f);
    assert_int_equal(p.zero_point, -26);
    tq_observer_free(&o);
}

/* Moving average, constant 0.01: ranges [0,1], [0,2], [-1,3]:
 *   after 1: [0, 1]; after 2: max = 1 + 0.01 (2 - 1) = 1.01, min = 0;
 *   after 3: min = 0 + 0.01 (-1 - 0) = -0.01, max = 1.01 + 0.01 (3 - 1.01) = 1.0299 */
static void moving_average(void **state) {
    (void)state;
    tq_observer o;
    tq_observer_init(&o, TQ_OBS_EMA);
    float b1[2] = {0, 1}, b2[2] = {0, 2}, b3[2] = {-1, 3};
    tq_observer_observe(&o, b1, 2);
    assert_true(o.min == 0.0f && o.max == 1.0f);
    tq_observer_observe(&o, b2, 2);
    assert_float_equal(o.max, 1.01f, 1e-6f);
    assert_float_equal(o.min, 0.0f, 0.0f);
    tq_observer_observe(&o, b3, 2);
    assert_float_equal(o.min, -0.01f, 1e-6f);
    assert_float_equal(o.max, 1.0299f, 1e-6f);
    assert_int_equal(o.n_seen, 3);
    tq_observer_free(&o);
}

/* 10,000 values in [0, 1) plus one outlier at 1000: min-max stretches to 1000, the 99.99th
 * percentile stays near 1 (linear interpolation between order statistics). */
static void percentile_ignores_an_outlier(void **state) {
    (void)state;
    enum { N = 10001 };
    static float x[N];
    for (int i = 0; i < N - 1; i++) x[i] = (float)i / (N - 1);
    x[N - 1] = 1000.0f;
    tq_observer mm, pc;
    tq_observer_init(&mm, TQ_OBS_MINMAX);
    tq_observer_init(&pc, TQ_OBS_PERCENTILE);
    tq_observer_observe(&mm, x, N);
    tq_observer_observe(&pc, x, N);
    assert_float_equal(mm.max, 1000.0f, 0.0f);
    assert_true(pc.max < 1.01f && pc.max > 0.99f);
    assert_true(pc.min >= 0.0f && pc.min < 0.01f);
    tq_observer_free(&mm);
    tq_observer_free(&pc);
}

static void frozen_does_not_move_and_nan_is_refused(void **state) {
    (void)state;
    tq_observer o;
    tq_observer_init(&o, TQ_OBS_EMA);
    float a[2] = {-1, 1}, b[2] = {-50, 50}, bad[2] = {0, NAN};
    tq_observer_observe(&o, a, 2);
    o.frozen = 1;
    assert_int_equal(tq_observer_observe(&o, b, 2), TQ_OK);
    assert_true(o.min == -1.0f && o.max == 1.0f && o.n_seen == 1);
    o.frozen = 0;
    assert_int_equal(tq_observer_observe(&o, bad, 2), TQ_E_NUMERIC);
    assert_true(o.min == -1.0f && o.max == 1.0f);
    tq_observer empty;
    tq_observer_init(&empty, TQ_OBS_MINMAX);
    tq_qparams p;
    assert_int_equal(tq_observer_qparams(&empty, -128, 127, &p), TQ_E_ARG);
    tq_observer_free(&o);
}

/* Through the fake-quant op: a training run moves the observer, an evaluation run never does,
 * a calibration run moves it but leaves the values unquantized. */
static void only_training_and_calibration_move_it(void **state) {
    (void)state;
    tq_observer o;
    tq_observer_init(&o, TQ_OBS_MINMAX);
    tq_fq fq;
    tq_fq_init_act(&fq, &o);
    float x[4] = {-1.0f, 0.3f, 0.5f, 2.0f};
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", 1, 4, x, NULL);
    tq_node *y = tq_fake_quant(g, xn, &fq);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_CALIBRATE), TQ_OK);
    assert_true(o.min == -1.0f && o.max == 2.0f);
    for (int i = 0; i < 4; i++) assert_true(y->val[i] == x[i]); /* unquantized while calibrating */
    x[3] = 10.0f;
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    assert_true(o.max == 2.0f && o.n_seen == 1);                /* evaluation: untouched */
    assert_float_equal(y->val[3], 2.0f, 3.0f / 255.0f);          /* and 10 clips at the range's top */
    assert_int_equal(tq_graph_forward(g, TQ_RUN_TRAIN), TQ_OK);
    assert_true(o.max == 10.0f && o.n_seen == 2);
    tq_graph_free(g);
    tq_observer_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(minmax_running),
        cmocka_unit_test(moving_average),
        cmocka_unit_test(percentile_ignores_an_outlier),
        cmocka_unit_test(frozen_does_not_move_and_nan_is_refused),
        cmocka_unit_test(only_training_and_calibration_move_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
