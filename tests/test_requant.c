/* Requantization (docs/QUANTIZATION.md §5): multiplier and shift from a float, the double rounding
 * at ties, and the kernel against an independent derivation on many random inputs. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "runtime/int8_infer.h"
#include "src/qmodel.h"
#include "src/rng.h"

static void multiplier_hand_values(void **state) {
    (void)state;
    int32_t m, s;
    tq_quantize_multiplier(0.5, &m, &s);          /* 0.5 = 0.5 * 2^0: M0 = 2^30, shift 0 */
    assert_int_equal(m, 1 << 30);
    assert_int_equal(s, 0);
    tq_quantize_multiplier(0.75, &m, &s);         /* 0.75 * 2^31 = 1610612736 */
    assert_int_equal(m, 1610612736);
    assert_int_equal(s, 0);
    tq_quantize_multiplier(1.5, &m, &s);          /* 1.5 = 0.75 * 2^1 */
    assert_int_equal(m, 1610612736);
    assert_int_equal(s, 1);
    tq_quantize_multiplier(0.001, &m, &s);        /* 0.001 = 0.512 * 2^-9: round(0.512 * 2^31) = 1099511628 */
    assert_int_equal(m, 1099511628);
    assert_int_equal(s, -9);
    tq_quantize_multiplier(ldexp(1.0, -40), &m, &s); /* shift < -31: zero */
    assert_int_equal(m, 0);
    assert_int_equal(s, 0);
    /* M >= 2^30, +inf: the largest multiplier the kernels take (a shift above 30 would be UB in
     * the left shift); NaN and negatives: zero */
    const double huge[] = {ldexp(1.0, 30), 1e12, 1e300, INFINITY};
    for (int i = 0; i < 4; i++) {
        tq_quantize_multiplier(huge[i], &m, &s);
        assert_int_equal(m, INT32_MAX);
        assert_int_equal(s, 30);
    }
    tq_quantize_multiplier(ldexp(1.0, 30) * (1.0 - ldexp(1.0, -20)), &m, &s); /* just below: shift 30 */
    assert_int_equal(s, 30);
    assert_true(m >= (1 << 30) && m < INT32_MAX);
    tq_quantize_multiplier(NAN, &m, &s);
    assert_int_equal(m, 0);
    assert_int_equal(s, 0);
    tq_quantize_multiplier(-2.0, &m, &s);
    assert_int_equal(m, 0);
    /* q just below 1: q 2^31 rounds to 2^31 -> M0 = 2^30, shift + 1 */
    tq_quantize_multiplier(1.0 - ldexp(1.0, -40), &m, &s);
    assert_int_equal(m, 1 << 30);
    assert_int_equal(s, 1);
    /* always M0 in [2^30, 2^31 - 1] and M0 2^(shift-31) within 2^-31 relative of M */
    tq_rng r;
    tq_rng_seed(&r, 31);
    for (int i = 0; i < 10000; i++) {
        double M = exp(tq_rng_uniform_in(&r, -20.0f, 3.0f));
        tq_quantize_multiplier(M, &m, &s);
        assert_true(m >= (1 << 30));
        assert_true(fabs(ldexp((double)m, s - 31) - M) <= M * ldexp(1.0, -30));
    }
}

/* Hand-worked: M0 = 2^30 (0.5), so requant(acc, 2^30, shift) = acc * 2^(shift-1), rounded.
 *   shift 0:  acc 3 -> h = (3*2^30 + 2^30) / 2^31 = 2   (1.5 rounds half up in the high mul)
 *             acc -3 -> h = (-3*2^30 + 1 - 2^30) / 2^31 = -1.99.. -> -1   (truncation toward 0)
 *   shift -1: acc 6 -> h = 3, e = 1: 3/2 = 1.5 -> 2 (half away from zero)
 *             acc -6 -> h = -3, e = 1: -1.5 -> -2 (half away from zero)
 *             acc 5 -> h = (5*2^30 + 2^30)/2^31 = 3, e = 1 -> 2
 *   shift 2:  acc 5 -> a = 20, h = 10
 */
static void requant_hand_values(void **state) {
    (void)state;
    const int32_t half = 1 << 30;
    assert_int_equal(tq_requantize_ref(3, half, 0), 2);
    assert_int_equal(tq_requantize_ref(-3, half, 0), -1);
    assert_int_equal(tq_requantize_ref(6, half, -1), 2);
    assert_int_equal(tq_requantize_ref(-6, half, -1), -2);
    assert_int_equal(tq_requantize_ref(5, half, -1), 2);
    assert_int_equal(tq_requantize_ref(5, half, 2), 10);
    assert_int_equal(tq_requantize_ref(0, 1610612736, -5), 0);
    /* 1000 * 0.75 / 8 = 93.75 -> 94;  -1000 * 0.75 / 8 = -93.75 -> -94 */
    assert_int_equal(tq_requantize_ref(1000, 1610612736, -3), 94);
    assert_int_equal(tq_requantize_ref(-1000, 1610612736, -3), -94);
    /* acc = -1 at M0 = 2^30: the high product is 0 (P = 0), though acc < 0 */
    for (int32_t sh = -31; sh <= 0; sh++) assert_int_equal(tq_requantize_ref(-1, half, sh), 0);
    assert_int_equal(tq_requantize_ref(-1, half + 1, 0), -1);
    /* exact halves after the high product: h = 2^(e-1) (+/-) rounds away from zero */
    assert_int_equal(tq_requantize_ref(4, half, -2), 1);   /* h = 2, e = 2: 0.5 -> 1 */
    assert_int_equal(tq_requantize_ref(-4, half, -2), -1); /* h = -2: -0.5 -> -1 */
    assert_int_equal(tq_requantize_ref(-3, half, -2), 0);  /* h = -1 (-1.5 rounded up): -0.25 -> 0 */
    /* the saturating corner and a saturating left shift */
    assert_int_equal(tq_requantize_ref(INT32_MIN, INT32_MIN, 0), INT32_MAX);
    assert_int_equal(tq_requantize_ref(INT32_MAX, 1 << 30, 3), tq_requantize_ref(INT32_MAX, 1 << 30, 0));
}

/* An independent derivation in exact integer arithmetic (floor division, no bit tricks):
 *   high mul = floor((a M0 + 2^30) / 2^31)     gemmlowp's nudge-and-truncate is round half up
 *   divide by 2^e, ties away from zero = sign(h) floor((|h| + 2^(e-1)) / 2^e) */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int32_t requant_independent(int32_t acc, int32_t M0, int32_t shift) {
    int64_t a = (int64_t)acc * ((int64_t)1 << (shift > 0 ? shift : 0)); /* a multiply: << of a negative is UB */
    if (a > INT32_MAX) a = INT32_MAX;
    if (a < INT32_MIN) a = INT32_MIN;
    int64_t h = floor_div(a * M0 + ((int64_t)1 << 30), (int64_t)1 << 31);
    int e = shift < 0 ? -shift : 0;
    if (e == 0) return (int32_t)h;
    int64_t mag = h < 0 ? -h : h, r = (mag + ((int64_t)1 << (e - 1))) >> e;
    return (int32_t)(h < 0 ? -r : r);
}

static void requant_matches_independent_derivation(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 32);
    long single_differs = 0, n = 0;
    for (int i = 0; i < 400000; i++) {
        int32_t acc = (int32_t)(tq_rng_u64(&r) >> 32) >> (int)tq_rng_below(&r, 24); /* many magnitudes */
        /* the kernels' M0 in [2^30, 2^31 - 1]; every 8th anything from 0 (a mean's go down to 1), every
         * 16th negative (tq_requantize_ref's own path); every 4th input small, where halves and the
         * sign of the high product's rounding meet */
        int32_t M0 = i % 8 == 3 ? (int32_t)(tq_rng_u64(&r) >> 33) : (1 << 30) + (int32_t)tq_rng_below(&r, 1u << 30);
        if (i % 16 == 7) M0 = -1 - (int32_t)(tq_rng_u64(&r) >> 33);
        if (i % 4 == 1) acc = (int32_t)tq_rng_below(&r, 4097) - 2048;
        int32_t shift = (int32_t)tq_rng_below(&r, 33) - 31; /* -31 .. 1 */
        int32_t got = tq_requantize_ref(acc, M0, shift), want = requant_independent(acc, M0, shift);
        if (got != want) fail_msg("acc %d M0 %d shift %d: got %d want %d", acc, M0, shift, got, want);
        /* single rounding, (acc M0 + 2^(30-shift)) >> (31-shift): counted, never used */
        if (shift <= 0) {
            int64_t one = ((int64_t)acc * M0 + ((int64_t)1 << (30 - shift))) >> (31 - shift);
            single_differs += one != got;
            n++;
        }
    }
    print_message("single rounding differs from double rounding in %ld of %ld cases (%.2f%%)\n", single_differs, n,
                  100.0 * single_differs / n);
    assert_true(single_differs > 0); /* the two are not interchangeable */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(multiplier_hand_values),
        cmocka_unit_test(requant_hand_values),
        cmocka_unit_test(requant_matches_independent_derivation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
