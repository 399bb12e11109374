/* Model spec parsing, parameter layout, input-normalization folding, and the model file:
 * round trip, determinism, and rejection of damaged files. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "layers/model.h"
#include "src/alloc.h"
#include "src/fileio.h"

#include "tests/tq_test_tmpdir.h"

static void spec_parsing(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "784-100r-100r-10"), TQ_OK);
    assert_int_equal(m.n_layers, 3);
    assert_int_equal(TQ_DENSE(&m, 0).conv.C, 784);
    assert_int_equal(TQ_DENSE(&m, 2).conv.OC, 10);
    assert_true(TQ_DENSE(&m, 0).relu && TQ_DENSE(&m, 1).relu && !TQ_DENSE(&m, 2).relu);
    assert_int_equal(m.n_params, 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10);
    /* views carved in order W0 b0 W1 b1 W2 b2 */
    assert_ptr_equal(TQ_DENSE(&m, 0).b, TQ_DENSE(&m, 0).W + 78400);
    assert_ptr_equal(TQ_DENSE(&m, 1).W, TQ_DENSE(&m, 0).b + 100);
    assert_ptr_equal(TQ_DENSE(&m, 2).db + 10, m.grads + m.n_params);
    tq_model_free(&m);
    assert_int_equal(tq_model_init(&m, "784-100-100-10r"), TQ_OK); /* the article's variant */
    assert_true(!TQ_DENSE(&m, 0).relu && !TQ_DENSE(&m, 1).relu && TQ_DENSE(&m, 2).relu);
    tq_model_free(&m);
    /* dropout after a dense layer and after stages (a pool's or an add's too): no parameters */
    assert_int_equal(tq_model_init(&m, "784-100r-drop20-100r-drop5-10"), TQ_OK);
    assert_true(TQ_DENSE(&m, 0).drop == 20 && TQ_DENSE(&m, 1).drop == 5 && !TQ_DENSE(&m, 2).drop && m.n_layers == 3);
    assert_int_equal(m.n_params, 784 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10);
    tq_model_free(&m);
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3p1br@a-drop10-c4k3p1b-+a-r-m2-drop30-10"), TQ_OK);
    assert_true(m.unit[0].drop == 10 && !m.unit[1].drop && m.unit[2].drop == 30 && m.n_stages == 3);
    tq_model_free(&m);
    const char *bad[] = {"", "784", "784-", "784r-10", "784-0-10", "784-x-10", "784--10", "784-10rr",
                         "784-100-10-drop20" /* the logits */, "784-drop20-10", "784-100-drop0-10", "784-100-drop91-10",
                         "784-100-drop20x-10", "8x8x1-c4k3-drop10-drop10-10", "8x8x1-drop10-c4k3-10",
                         "1-2-3-4-5-6-7-8-9-10", "784-99999999-10", "65536-65536-10" /* 4.3e9 parameters */,
                         "4096x4097x1-10", "83333333388x8x888880888" /* (found by fuzz_cli: h w c overflowed a long) */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tq_model_init(&m, bad[i]), TQ_E_ARG);
        assert_non_null(strstr(tq_last_error(), "spec"));
    }
    /* padding beyond kernel - 1 (windows of padding alone, which the integer path refuses): the
     * spec fuzz_cli once found overflowing (131073 x 131073 x 4096 values) and a plain one */
    assert_int_equal(tq_model_init(&m, "1x1x1-c4096k1p65536-10"), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "padding 65536 needs a kernel larger"));
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3p99-10"), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "padding 99"));
    /* strides of their own and SAME: 49x10, k10x4 s2 same -> 25x5 (4/5 rows, 1/1 columns), then
     * 3x3 stride 1 down, 2 across, padded 1 -> 25x3; refused: a stride of 0 across, `same` with
     * explicit padding, a stride beyond 64 */
    assert_int_equal(tq_model_init(&m, "49x10x1-c8k10x4s2samebr-c4k3s1x2p1-10"), TQ_OK);
    assert_true(m.unit[0].out_h == 25 && m.unit[0].out_w == 5 && m.unit[0].conv.pad == 4 && m.unit[0].conv.pad_b == 5);
    assert_true(m.unit[1].out_h == 25 && m.unit[1].out_w == 3 && m.unit[1].conv.stride == 1 && m.unit[1].conv.stride_w == 2);
    tq_model_free(&m);
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3s2x0-10"), TQ_E_ARG);
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3s2samep1-10"), TQ_E_ARG);
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3s1x65-10"), TQ_E_SHAPE);
    /* a stage whose output would not fit: 4159 x 4159 x 4096 values */
    assert_int_equal(tq_model_init(&m, "4096x4096x1-c4096k64p63-10"), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "more than tinyqat takes"));
}

static void init_matches_pytorch_bounds(void **state) {
    (void)state;
    tq_model m;
    tq_rng r;
    tq_rng_seed(&r, 0);
    assert_int_equal(tq_model_init(&m, "784-100r-10"), TQ_OK);
    tq_model_init_params(&m, &r);
    float bound0 = 1.0f / sqrtf(784.0f), bound1 = 0.1f, mx = 0;
    double mean = 0;
    for (int i = 0; i < 78400; i++) {
        assert_true(fabsf(TQ_DENSE(&m, 0).W[i]) <= bound0);
        mx = fmaxf(mx, fabsf(TQ_DENSE(&m, 0).W[i]));
        mean += TQ_DENSE(&m, 0).W[i];
    }
    assert_true(mx > 0.99f * bound0); /* uses the whole range */
    assert_true(fabs(mean / 78400) < 0.01 * bound0 * 10);
    for (int i = 0; i < 10; i++) assert_true(fabsf(TQ_DENSE(&m, 1).b[i]) <= bound1);
    tq_model_free(&m);
}

static void run_logits(tq_model *m, const uint8_t *px, int n, float *out) {
    tq_net net;
    assert_int_equal(tq_net_init(&net, m, n), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, m, px, NULL, n), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, 0), TQ_OK);
    /* a batch above the capacity the net was built for is refused, not written past the buffer */
    assert_int_equal(tq_net_set_batch(&net, m, px, NULL, n + 1), TQ_E_ARG);
    assert_int_equal(tq_net_set_batch(&net, m, px, NULL, 0), TQ_E_ARG);
    memcpy(out, net.logits->val, (size_t)n * tq_model_classes(m) * sizeof(float));
    tq_net_free(&net);
}

static void folding_input_norm_keeps_the_function(void **state) {
    (void)state;
    tq_model m;
    tq_rng r;
    tq_rng_seed(&r, 3);
    assert_int_equal(tq_model_init(&m, "784-32r-10"), TQ_OK);
    tq_model_init_params(&m, &r);
    assert_true(m.in_mean == 0.0f && m.in_std == 1.0f); /* a new model does not normalize until told */
    m.in_mean = 0.1307f;
    m.in_std = 0.3081f;
    uint8_t px[4 * 784];
    for (int i = 0; i < 4 * 784; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    float a[40], b[40];
    run_logits(&m, px, 4, a);
    tq_model_fold_input_norm(&m);
    assert_true(m.in_mean == 0.0f && m.in_std == 1.0f);
    run_logits(&m, px, 4, b);
    for (int i = 0; i < 40; i++) assert_float_equal(a[i], b[i], 1e-4f * (1 + fabsf(a[i])));
    tq_model_free(&m);
}

static void save_load_round_trip_is_byte_identical(void **state) {
    (void)state;
    tq_model m, m2;
    tq_rng r;
    tq_rng_seed(&r, 7);
    assert_int_equal(tq_model_init(&m, "784-16r-10"), TQ_OK);
    tq_model_init_params(&m, &r);
    m.in_mean = 0.25f;
    m.in_std = 0.5f;
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/a.tqf", dir);
    snprintf(p2, sizeof p2, "%s/b.tqf", dir);
    assert_int_equal(tq_model_save(&m, p1), TQ_OK);
    assert_int_equal(tq_model_load(&m2, p1), TQ_OK);
    assert_string_equal(m2.spec, "784-16r-10");
    assert_memory_equal(m.params, m2.params, m.n_params * sizeof(float));
    assert_true(m2.in_mean == m.in_mean && m2.in_std == m.in_std);
    assert_int_equal(tq_model_save(&m2, p2), TQ_OK);
    assert_same_bytes(p1, p2);
    tq_model_free(&m);
    tq_model_free(&m2);
}

static void damaged_files_are_rejected(void **state) {
    (void)state;
    tq_model m, m2;
    tq_rng r;
    tq_rng_seed(&r, 8);
    assert_int_equal(tq_model_init(&m, "784-8r-10"), TQ_OK);
    tq_model_init_params(&m, &r);
    char good[128], bad[128];
    snprintf(good, sizeof good, "%s/good.tqf", dir);
    snprintf(bad, sizeof bad, "%s/bad.tqf", dir);
    assert_int_equal(tq_model_save(&m, good), TQ_OK);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(good, 1 << 24, &d, &n), TQ_OK);
    /* truncated at many points: header, metadata, tensor headers, data, CRC */
    size_t cuts[] = {0, 3, 7, 11, 20, 40, 80, n / 2, n - 5, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(tq_file_write_atomic(bad, d, cuts[i]), TQ_OK);
        tq_status st = tq_model_load(&m2, bad);
        assert_true(st == TQ_E_FORMAT);
        assert_non_null(strstr(tq_last_error(), bad));
    }
    /* one flipped bit anywhere: the CRC catches it */
    for (size_t pos = 4; pos < n; pos += n / 17) {
        d[pos] ^= 0x10;
        assert_int_equal(tq_file_write_atomic(bad, d, n), TQ_OK);
        assert_int_equal(tq_model_load(&m2, bad), TQ_E_FORMAT);
        d[pos] ^= 0x10;
    }
    assert_non_null(strstr(tq_last_error(), "checksum"));
    /* missing file */
    assert_int_equal(tq_model_load(&m2, "/nonexistent/x.tqf"), TQ_E_IO);
    assert_non_null(strstr(tq_last_error(), "/nonexistent/x.tqf"));
    tq_free(d);
    /* NaN weights are refused on load */
    TQ_DENSE(&m, 0).W[5] = NAN;
    assert_int_equal(tq_model_save(&m, bad), TQ_OK);
    assert_int_equal(tq_model_load(&m2, bad), TQ_E_NUMERIC);
    assert_non_null(strstr(tq_last_error(), "NaN"));
    tq_model_free(&m);
}

static void failed_save_leaves_old_file_intact(void **state) {
    (void)state;
    tq_model m;
    tq_rng r;
    tq_rng_seed(&r, 9);
    assert_int_equal(tq_model_init(&m, "784-8r-10"), TQ_OK);
    tq_model_init_params(&m, &r);
    char p[128];
    snprintf(p, sizeof p, "%s/nodir/m.tqf", dir);
    assert_int_equal(tq_model_save(&m, p), TQ_E_IO);
    assert_non_null(strstr(tq_last_error(), "nodir"));
    /* no temporary file is left behind in the target's folder on success either */
    snprintf(p, sizeof p, "%s/keep.tqf", dir);
    assert_int_equal(tq_model_save(&m, p), TQ_OK);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep tmp)\"", dir);
    assert_int_equal(system(cmd), 0);
    tq_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_parsing),
        cmocka_unit_test(init_matches_pytorch_bounds),
        cmocka_unit_test(folding_input_norm_keeps_the_function),
        cmocka_unit_test(save_load_round_trip_is_byte_identical),
        cmocka_unit_test(damaged_files_are_rejected),
        cmocka_unit_test(failed_save_leaves_old_file_intact),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
