/* The integer model file: round trip, truncation, corruption, and every field check (fields are
 * patched and the CRC recomputed, so the loader's own checks are what fails). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

#include "src/alloc.h"
#include "src/fileio.h"
#include "src/qmodel.h"
#include "src/rng.h"

static char dir[64], good[128], bad[128];
static unsigned char *img;
static size_t img_len;

static void make_model(tq_qmodel *q) {
    static float W0[6 * 4], B0[6], S0[6], W1[3 * 6], B1[3], S1[3];
    tq_rng r;
    tq_rng_seed(&r, 51);
    for (int i = 0; i < 24; i++) W0[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 18; i++) W1[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 6; i++) B0[i] = tq_rng_uniform_in(&r, -1, 1), S0[i] = 0.01f;
    for (int i = 0; i < 3; i++) B1[i] = tq_rng_uniform_in(&r, -1, 1), S1[i] = 0.01f;
    tq_qlayer_src src[2] = {{4, 6, 1, 8, W0, B0, S0, 1.0f / 255, 0.05f, -128, -128},
                            {6, 3, 0, 8, W1, B1, S1, 0.05f, 0.1f, -128, 5}};
    assert_int_equal(tq_qmodel_convert(q, "4-6r-3", src, 2), TQ_OK);
}

static int setup(void **state) {
    (void)state;
    strcpy(dir, "/tmp/tq_qmodel_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(good, sizeof good, "%s/good.tqm", dir);
    snprintf(bad, sizeof bad, "%s/bad.tqm", dir);
    tq_qmodel q;
    make_model(&q);
    if (tq_qmodel_save(&q, good) != TQ_OK) return -1;
    tq_qmodel_free(&q);
    return tq_file_read_all(good, 1 << 20, &img, &img_len) == TQ_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tq_free(img);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void round_trip_is_byte_identical(void **state) {
    (void)state;
    tq_qmodel q, q2;
    assert_int_equal(tq_qmodel_load(&q, good), TQ_OK);
    make_model(&q2);
    assert_string_equal(q.spec, "4-6r-3");
    for (int l = 0; l < 2; l++) {
        assert_memory_equal(q.layer[l].w, q2.layer[l].w, (size_t)q.layer[l].in * q.layer[l].out);
        assert_memory_equal(q.layer[l].bias, q2.layer[l].bias, (size_t)q.layer[l].out * 4);
        assert_memory_equal(q.layer[l].mult, q2.layer[l].mult, (size_t)q.layer[l].out * 4);
    }
    assert_int_equal(q.layer[0].act_min, -128); /* ReLU clamp = its zero point */
    assert_int_equal(q.layer[1].act_min, -128);
    assert_int_equal(tq_qmodel_save(&q, bad), TQ_OK);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    assert_int_equal(n, img_len);
    assert_memory_equal(d, img, n);
    tq_free(d);
    tq_qmodel_free(&q);
    tq_qmodel_free(&q2);
}

static void expect_load_fails(const unsigned char *d, size_t n, tq_status want, const char *needle) {
    assert_int_equal(tq_file_write_atomic(bad, d, n), TQ_OK);
    tq_qmodel q;
    tq_status st = tq_qmodel_load(&q, bad);
    if (st != want || !strstr(tq_last_error(), needle))
        fail_msg("want %d '%s', got %d: %s", want, needle, st, tq_last_error());
    assert_non_null(strstr(tq_last_error(), bad));
}

static void truncated_and_corrupted(void **state) {
    (void)state;
    /* shorter than magic + version + CRC: not a model at all; longer: the CRC no longer fits */
    for (size_t cut = 0; cut < img_len; cut += 7)
        expect_load_fails(img, cut, TQ_E_FORMAT, cut < 12 ? "bad magic" : "checksum mismatch");
    unsigned char *d = tq_malloc(img_len);
    for (size_t pos = 4; pos < img_len; pos += 11) {
        memcpy(d, img, img_len);
        d[pos] ^= 0x01;
        expect_load_fails(d, img_len, TQ_E_FORMAT, pos < 8 ? "version" : pos >= img_len - 4 ? "checksum" : "checksum");
    }
    memcpy(d, img, img_len);
    d[0] = 'X';
    expect_load_fails(d, img_len, TQ_E_FORMAT, "magic");
    tq_free(d);
    tq_qmodel q;
    assert_int_equal(tq_qmodel_load(&q, "/nonexistent/m.tqm"), TQ_E_IO);
}

/* Offsets in the file for 4-6r-3: magic 0, version 4, spec_len 8, spec 10..15, n_layers 16,
 * layer 0 header at 20: in 20, out 24, relu 28, in_zp 32, out_zp 36, act_min 40, act_max 44,
 * in_scale 48, out_scale 52, w_scale 56..79, w 80..103, bias 104..127, M0 128..151, shift 152..175;
 * layer 1 header at 176: in 176, out 180, ... in_zp 188. */
static void patch_u32(unsigned char *d, size_t off, uint32_t v) {
    d[off] = (unsigned char)v, d[off + 1] = (unsigned char)(v >> 8), d[off + 2] = (unsigned char)(v >> 16),
    d[off + 3] = (unsigned char)(v >> 24);
}
static void fix_crc(unsigned char *d, size_t n) { patch_u32(d, n - 4, (uint32_t)crc32(0L, d, (uInt)(n - 4))); }

static void every_field_is_checked(void **state) {
    (void)state;
    struct {
        size_t off;
        uint32_t val;
        const char *needle;
    } cases[] = {
        {4, 2, "version"},
        {16, 0, "layers"},
        {16, 99, "layers"},
        {24, 0x7fffffff, "shape"},      /* absurd output count */
        {20, 0, "shape"},               /* zero inputs */
        {28, 2, "relu"},
        {32, 200, "zero point"},
        {40, 200, "clamp"},             /* act_min outside int8 */
        {44, 300, "clamp"},
        {48, 0, "scales"},
        {80, 0x80, "-128"},             /* weight -128 */
        {128, 5, "multiplier"},         /* M0 below 2^30 */
        {152, 40, "multiplier"},        /* shift out of range */
        {176, 5, "does not follow"},    /* layer 1 inputs != layer 0 outputs */
        {188, 7, "does not follow"},    /* zero points disagree */
    };
    unsigned char *d = tq_malloc(img_len);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(d, img, img_len);
        if (cases[c].off == 80) d[80] = 0x80;
        else patch_u32(d, cases[c].off, cases[c].val);
        fix_crc(d, img_len);
        expect_load_fails(d, img_len, TQ_E_FORMAT, cases[c].needle);
    }
    /* trailing bytes */
    unsigned char *e = tq_malloc(img_len + 3);
    memcpy(e, img, img_len - 4);
    memset(e + img_len - 4, 0, 3);
    fix_crc(e, img_len + 3);
    expect_load_fails(e, img_len + 3, TQ_E_FORMAT, "unexpected bytes");
    tq_free(e);
    tq_free(d);
}

static void failed_save_keeps_the_old_file(void **state) {
    (void)state;
    tq_qmodel q;
    make_model(&q);
    char p[160];
    snprintf(p, sizeof p, "%s/missing/m.tqm", dir);
    assert_int_equal(tq_qmodel_save(&q, p), TQ_E_IO);
    assert_non_null(strstr(tq_last_error(), "missing"));
    tq_qmodel_free(&q);
    tq_qmodel_free(&q); /* idempotent */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_is_byte_identical),
        cmocka_unit_test(truncated_and_corrupted),
        cmocka_unit_test(every_field_is_checked),
        cmocka_unit_test(failed_save_keeps_the_old_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
