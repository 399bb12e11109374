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

/* The model file's records are its format (docs/QUANTIZATION.md §8), whatever the code's layout:
 * unit by unit, a stage's as stages.S.*, a dense layer's as layers.L.*. A graph's file lists them
 * in that order, and a file written record by record loads each value into the unit that owns it. */
static void file_records_by_unit(void **state) {
    (void)state;
    tq_model m;
    /* units: conv with batch norm, conv with a bias, add (no records), two dense layers */
    assert_int_equal(tq_model_init(&m, "6x6x1-c2k3b@a-c2k1-+a-r-3r-2"), TQ_OK);
    assert_true(m.n_units == 5 && m.n_stages == 3 && m.n_layers == 2 && m.unit[3].kind == TQ_UNIT_DENSE && m.unit[3].src[0] == 2);
    static const struct {
        const char *name;
        uint32_t rows, cols;
    } want[] = {{"input_norm", 1, 2},         {"stages.0.weight", 2, 9},    {"stages.0.bn_weight", 1, 2}, {"stages.0.bn_bias", 1, 2},
                {"stages.0.running_mean", 1, 2}, {"stages.0.running_var", 1, 2}, {"stages.1.weight", 2, 2}, {"stages.1.bias", 1, 2},
                {"layers.0.weight", 3, 32},   {"layers.0.bias", 1, 3},      {"layers.1.weight", 2, 3},    {"layers.1.bias", 1, 2}};
    enum { N = sizeof want / sizeof want[0] };
    tq_ckpt c;
    tq_ckpt_init(&c);
    assert_int_equal(tq_model_to_ckpt(&m, &c), TQ_OK);
    assert_int_equal(c.n_tensors, N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(c.t[i].name, want[i].name);
        assert_true(c.t[i].rows == want[i].rows && c.t[i].cols == want[i].cols);
    }
    tq_ckpt_free(&c);
    /* by hand: record i's value j is 1000 i + j (a variance too: all positive) */
    tq_ckpt_init(&c);
    assert_int_equal(tq_ckpt_set_meta(&c, "format", "tinyqat-model"), TQ_OK);
    assert_int_equal(tq_ckpt_set_meta(&c, "spec", m.spec), TQ_OK);
    assert_int_equal(tq_ckpt_set_meta(&c, "kind", "fp32"), TQ_OK);
    float v[96];
    for (int i = 0; i < N; i++) {
        for (uint32_t j = 0; j < want[i].rows * want[i].cols; j++) v[j] = (float)(1000 * i + (int)j);
        if (i == 0) v[0] = 0.5f, v[1] = 2.0f; /* the normalization: a positive std */
        assert_int_equal(tq_ckpt_add_copy(&c, want[i].name, want[i].rows, want[i].cols, v), TQ_OK);
    }
    tq_model back;
    assert_int_equal(tq_model_from_ckpt(&back, &c, "by-hand.tqf"), TQ_OK);
    assert_true(back.in_mean == 0.5f && back.in_std == 2.0f);
    const tq_unit *u = back.unit;
    assert_true(u[0].W[17] == 1017.0f && u[0].gamma[1] == 2001.0f && u[0].beta[0] == 3000.0f && u[0].running_mean[1] == 4001.0f &&
                u[0].running_var[0] == 5000.0f && !u[0].b);
    assert_true(u[1].W[3] == 6003.0f && u[1].b[1] == 7001.0f && !u[2].W);
    assert_true(u[3].W[95] == 8095.0f && u[3].b[2] == 9002.0f && u[4].W[5] == 10005.0f && u[4].b[1] == 11001.0f);
    tq_model_free(&back);
    /* a record of the wrong shape is refused, naming it */
    tq_ckpt_free(&c);
    tq_ckpt_init(&c);
    assert_int_equal(tq_model_to_ckpt(&m, &c), TQ_OK);
    c.t[8].cols = 31; /* layers.0.weight */
    assert_int_equal(tq_model_from_ckpt(&back, &c, "short.tqf"), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "short.tqf: layers.0.weight is missing or does not match"));
    tq_ckpt_free(&c);
    tq_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_parsing),
        cmocka_unit_test(init_matches_pytorch_bounds),
        cmocka_unit_test(folding_input_norm_keeps_the_function),
        cmocka_unit_test(save_load_round_trip_is_byte_identical),
        cmocka_unit_test(file_records_by_unit),
        cmocka_unit_test(damaged_files_are_rejected),
        cmocka_unit_test(failed_save_leaves_old_file_intact),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
