/* Quantization math against hand-worked values (docs/QUANTIZATION.md §1, §2, §9). The float32
 * arithmetic is spelled out in comments; where float32 and exact arithmetic differ, it says so. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "src/quant.h"
#include "src/rng.h"

static void ranges(void **state) {
    (void)state;
    int32_t lo, hi;
    assert_int_equal(tq_qrange(8, 1, &lo, &hi), TQ_OK);
    assert_true(lo == -127 && hi == 127);
    assert_int_equal(tq_qrange(8, 0, &lo, &hi), TQ_OK);
    assert_true(lo == -128 && hi == 127);
    assert_int_equal(tq_qrange(4, 1, &lo, &hi), TQ_OK);
    assert_true(lo == -7 && hi == 7);
    assert_int_equal(tq_qrange(2, 1, &lo, &hi), TQ_OK);
    assert_true(lo == -1 && hi == 1);
    assert_int_equal(tq_qrange(1, 1, &lo, &hi), TQ_E_ARG);
    assert_int_equal(tq_qrange(9, 1, &lo, &hi), TQ_E_ARG);
}

/* [-1, 1] into int8 [-128, 127], affine:
 *   s = (1 - (-1)) / 255 = 0.00784313772 (float32)
 *   lo/s = -1 / 0.00784313772 = -127.499992 in float32 (exactly -127.5 in real arithmetic)
 *   z = -128 - round(-127.499992) = -128 + 127 = -1
 *   q(-1) = -1 + round(-1 * 127.499992) = -128;  q(1) = -1 + 127 = 126;  q(0.3) = -1 + 38 = 37 */
static void affine_minus_one_to_one(void **state) {
    (void)state;
    tq_qparams p;
    assert_int_equal(tq_qparams_affine(-1.0f, 1.0f, -128, 127, &p), TQ_OK);
    assert_float_equal(p.scale, 2.0f / 255.0f, 0.0f);
    assert_int_equal(p.zero_point, -1);
    assert_int_equal(tq_quantize_ref(-1.0f, p.scale, p.zero_point, -128, 127), -128);
    assert_int_equal(tq_quantize_ref(1.0f, p.scale, p.zero_point, -128, 127), 126);
    assert_int_equal(tq_quantize_ref(0.0f, p.scale, p.zero_point, -128, 127), -1); /* 0 maps to z exactly */
    assert_int_equal(tq_quantize_ref(0.3f, p.scale, p.zero_point, -128, 127), 37);
    assert_float_equal(tq_dequantize_ref(37, p.scale, p.zero_point), 38 * (2.0f / 255.0f), 0.0f);
    assert_float_equal(tq_fake_quant_ref(0.0f, &p), 0.0f, 0.0f);
    /* the range always includes 0: [0.5, 2] behaves as [0, 2], z = -128 */
    assert_int_equal(tq_qparams_affine(0.5f, 2.0f, -128, 127, &p), TQ_OK);
    assert_int_equal(p.zero_point, -128);
    assert_float_equal(p.scale, 2.0f / 255.0f, 0.0f);
}

/* Symmetric narrow: s = max(|-1|, |1|) / 127 = 0.00787401572, z = 0, 1/s = 127.0 exactly:
 *   q(1) = 127, q(-1) = -127 (never -128), q(0.5) = round(63.5) = 64 (tie to even),
 *   q(0.25) = round(31.75) = 32, q(-0.3) = round(-38.1) = -38 */
static void symmetric_minus_one_to_one(void **state) {
    (void)state;
    tq_qparams p;
    assert_int_equal(tq_qparams_symmetric(-1.0f, 1.0f, 127, &p), TQ_OK);
    assert_float_equal(p.scale, 1.0f / 127.0f, 0.0f);
    assert_int_equal(p.zero_point, 0);
    assert_true(p.qmin == -127 && p.qmax == 127);
    int32_t want[5] = {127, -127, 64, 32, -38};
    float x[5] = {1.0f, -1.0f, 0.5f, 0.25f, -0.3f};
    for (int i = 0; i < 5; i++) assert_int_equal(tq_quantize_ref(x[i], p.scale, 0, -127, 127), want[i]);
    assert_int_equal(tq_quantize_ref(-5.0f, p.scale, 0, -127, 127), -127); /* clamped, not -128 */
}

static void round_half_to_even(void **state) {
    (void)state;
    /* s = 1: x/s = 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0, -0.5 -> 0, 1.5 -> 2 */
    float x[6] = {2.5f, 3.5f, -2.5f, 0.5f, -0.5f, 1.5f};
    int32_t want[6] = {2, 4, -2, 0, 0, 2};
    for (int i = 0; i < 6; i++) assert_int_equal(tq_quantize_ref(x[i], 1.0f, 0, -128, 127), want[i]);
    /* the zero point is added after rounding: z = 1, 2.5 -> 1 + 2 = 3 (not round(3.5) = 4) */
    assert_int_equal(tq_quantize_ref(2.5f, 1.0f, 1, -128, 127), 3);
}

/* docs/QUANTIZATION.md §9: the seed's z = round(-min/s) is right only for unsigned ranges. For
 * [-1, 1] into [-128, 127] it gives round(127.5) = 128 in exact arithmetic (127.499992 -> 127
 * in float32), clamped to 127 either way: every positive value then saturates at q = 127,
 * which dequantizes to 0, and the error reaches 1.0. The right z keeps it under s/2. */
static void signed_zero_point_pitfall(void **state) {
    (void)state;
    float s = 2.0f / 255.0f;
    int32_t bad_z = tq_zero_point_naive(-1.0f, s, -128, 127);
    assert_int_equal(bad_z, 127);
    tq_qparams bad = {s, bad_z, -128, 127}, good;
    assert_int_equal(tq_qparams_affine(-1.0f, 1.0f, -128, 127, &good), TQ_OK);
    float x[201];
    for (int i = 0; i <= 200; i++) x[i] = -1.0f + 0.01f * (float)i;
    for (int i = 0; i <= 200; i++)
        if (x[i] > 0.005f) assert_int_equal(tq_quantize_ref(x[i], s, bad_z, -128, 127), 127); /* saturated */
    double mse_bad, max_bad, mse_good, max_good;
    tq_quant_error(x, 201, &bad, &mse_bad, &max_bad);
    tq_quant_error(x, 201, &good, &mse_good, &max_good);
    assert_true(max_bad > 0.99);
    assert_true(max_good <= s / 2 + 1e-6);
    assert_true(mse_good < 1e-4 && mse_bad > 0.1);
}

/* 8-bit symmetric on a uniform tensor over [-127, 127]: s = 1, the error is uniform on
 * [-1/2, 1/2], MSE ~ s^2/12 = 0.0833 (the seed's 202 and 57.8 came from ^ being XOR). */
static void mse_of_uniform_is_s2_over_12(void **state) {
    (void)state;
    enum { N = 200000 };
    static float x[N];
    tq_rng r;
    tq_rng_seed(&r, 11);
    for (int i = 0; i < N; i++) x[i] = tq_rng_uniform_in(&r, -127.0f, 127.0f);
    tq_qparams p = {1.0f, 0, -127, 127};
    double mse, mx;
    tq_quant_error(x, N, &p, &mse, &mx);
    assert_true(fabs(mse - 1.0 / 12.0) < 0.002);
    assert_true(mx <= 0.5 + 1e-6);
}

/* A matrix whose first row is 100x larger: one per-tensor scale wastes the small rows' levels,
 * per-channel scales do not. */
static void per_channel_beats_per_tensor(void **state) {
    (void)state;
    enum { R = 4, C = 64 };
    float W[R * C], spc[R], spt[R];
    tq_rng r;
    tq_rng_seed(&r, 12);
    for (int i = 0; i < R * C; i++) W[i] = tq_rng_uniform_in(&r, -1, 1) * (i < C ? 100.0f : 1.0f);
    assert_int_equal(tq_weight_scales(W, R, C, 8, 1, spc), TQ_OK);
    assert_int_equal(tq_weight_scales(W, R, C, 8, 0, spt), TQ_OK);
    for (int i = 1; i < R; i++) {
        assert_float_equal(spt[i], spt[0], 0.0f);     /* one scale for all */
        assert_true(spc[i] < spt[i] / 50.0f);          /* the small rows get their own */
    }
    double e_pc = 0, e_pt = 0;
    for (int i = C; i < R * C; i++) {
        int row = i / C;
        tq_qparams a = {spc[row], 0, -127, 127}, b = {spt[row], 0, -127, 127};
        e_pc += fabs(W[i] - tq_fake_quant_ref(W[i], &a));
        e_pt += fabs(W[i] - tq_fake_quant_ref(W[i], &b));
    }
    print_message("per-channel error %g, per-tensor %g\n", e_pc, e_pt);
    assert_true(e_pc * 20 < e_pt);
    /* NaN weights are an error, not a NaN scale */
    W[5] = NAN;
    assert_int_equal(tq_weight_scales(W, R, C, 8, 1, spc), TQ_E_NUMERIC);
}

static void degenerate_and_bad_ranges(void **state) {
    (void)state;
    tq_qparams p;
    assert_int_equal(tq_qparams_affine(0.0f, 0.0f, -128, 127, &p), TQ_OK); /* all zeros */
    assert_float_equal(p.scale, FLT_EPSILON, 0.0f);
    assert_int_equal(p.zero_point, -128);
    assert_int_equal(tq_qparams_affine(NAN, 1.0f, -128, 127, &p), TQ_E_NUMERIC);
    assert_int_equal(tq_qparams_symmetric(-INFINITY, 1.0f, 127, &p), TQ_E_NUMERIC);
    /* huge inputs clamp instead of overflowing the int conversion */
    assert_int_equal(tq_quantize_ref(1e30f, 1e-3f, 0, -128, 127), 127);
    assert_int_equal(tq_quantize_ref(-1e30f, 1e-3f, 5, -128, 127), -128);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranges),
        cmocka_unit_test(affine_minus_one_to_one),
        cmocka_unit_test(symmetric_minus_one_to_one),
        cmocka_unit_test(round_half_to_even),
        cmocka_unit_test(signed_zero_point_pitfall),
        cmocka_unit_test(mse_of_uniform_is_s2_over_12),
        cmocka_unit_test(per_channel_beats_per_tensor),
        cmocka_unit_test(degenerate_and_bad_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
