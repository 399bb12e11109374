/* status messages, the allocation counter and the RNG's reproducibility. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "src/alloc.h"
#include "src/rng.h"
#include "src/status.h"

static tq_status fail_with_file(const char *path) { TQ_FAIL(TQ_E_IO, "%s: cannot open", path); }

static void status_message_and_code(void **state) {
    (void)state;
    assert_int_equal(fail_with_file("x.idx"), TQ_E_IO);
    assert_string_equal(tq_last_error(), "x.idx: cannot open");
    assert_non_null(strstr(tq_last_error_where(), "test_base.c:"));
    assert_string_equal(tq_status_str(TQ_E_FORMAT), "bad file format");
    tq_error_clear();
    assert_string_equal(tq_last_error(), "");
}

/* Adding context to an error passes the last message back in: the old buffer must be read
 * before it is written (vsnprintf into its own argument was undefined behaviour and, with glibc,
 * repeated the prefix instead of keeping the message). */
static void error_can_wrap_the_last_error(void **state) {
    (void)state;
    assert_int_equal(fail_with_file("inner.bin"), TQ_E_IO);
    tq_status st = tq_error_set_(TQ_E_FORMAT, __FILE__, __LINE__, "%s: %s", "outer.tqf", tq_last_error());
    assert_int_equal(st, TQ_E_FORMAT);
    assert_string_equal(tq_last_error(), "outer.tqf: inner.bin: cannot open");
}

static void alloc_counts_live_bytes(void **state) {
    (void)state;
    size_t live0 = tq_alloc_live_bytes();
    uint64_t n0 = tq_alloc_count();
    float *a = tq_calloc(100, sizeof(float));
    assert_non_null(a);
    assert_true(((uintptr_t)a & 15) == 0);
    assert_int_equal(a[99], 0);
    assert_int_equal(tq_alloc_live_bytes(), live0 + 400);
    a = tq_realloc(a, 800);
    assert_int_equal(tq_alloc_live_bytes(), live0 + 800);
    tq_free(a);
    tq_free(NULL);
    assert_int_equal(tq_alloc_live_bytes(), live0);
    assert_int_equal(tq_alloc_count(), n0 + 2);
    assert_null(tq_calloc(SIZE_MAX / 2, 4)); /* n*size overflows */
    assert_null(tq_malloc(0));
}

static void rng_is_reproducible_and_uniform(void **state) {
    (void)state;
    tq_rng a, b;
    tq_rng_seed(&a, 42);
    tq_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(tq_rng_u64(&a) == tq_rng_u64(&b));
    tq_rng_seed(&b, 43);
    assert_true(tq_rng_u64(&a) != tq_rng_u64(&b));
    /* uniform mean ~ 0.5, normal mean ~ 0 var ~ 1, below() covers its range */
    double su = 0, sn = 0, sn2 = 0;
    int hist[7] = {0};
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        float u = tq_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        su += u;
        float z = tq_rng_normal(&a);
        sn += z;
        sn2 += (double)z * z;
        hist[tq_rng_below(&a, 7)]++;
    }
    assert_true(su / N > 0.497 && su / N < 0.503);
    assert_true(sn / N > -0.01 && sn / N < 0.01);
    assert_true(sn2 / N > 0.98 && sn2 / N < 1.02);
    for (int k = 0; k < 7; k++) assert_true(hist[k] > N / 7 - 1500 && hist[k] < N / 7 + 1500);
}

static void shuffle_is_a_permutation(void **state) {
    (void)state;
    tq_rng r;
    tq_rng_seed(&r, 1);
    uint32_t a[1000];
    for (uint32_t i = 0; i < 1000; i++) a[i] = i;
    tq_rng_shuffle_u32(&r, a, 1000);
    int seen[1000] = {0}, moved = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 900);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_message_and_code),
        cmocka_unit_test(error_can_wrap_the_last_error),
        cmocka_unit_test(alloc_counts_live_bytes),
        cmocka_unit_test(rng_is_reproducible_and_uniform),
        cmocka_unit_test(shuffle_is_a_permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
