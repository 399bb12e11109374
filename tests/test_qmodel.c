/* The integer model file: round trip (dense and convolutional), version 1 files, truncation,
 * corruption, and every field check (fields are patched and the CRC recomputed, so the loader's
 * own checks are what fails). */
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

static char dir[64], good[128], bad[128], cnn[128];
static unsigned char *img, *cimg;
static size_t img_len, cimg_len;

static void make_model(tq_qmodel *q) {
    static float W0[6 * 4], B0[6], S0[6], W1[3 * 6], B1[3], S1[3];
    tq_rng r;
    tq_rng_seed(&r, 51);
    for (int i = 0; i < 24; i++) W0[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 18; i++) W1[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 6; i++) B0[i] = tq_rng_uniform_in(&r, -1, 1), S0[i] = 0.01f;
    for (int i = 0; i < 3; i++) B1[i] = tq_rng_uniform_in(&r, -1, 1), S1[i] = 0.01f;
    tq_qlayer_src src[2] = {{.in = 4, .out = 6, .relu = 1, .w_bits = 8, .W = W0, .b = B0, .w_scale = S0, .in_scale = 1.0f / 255,
                             .out_scale = 0.05f, .in_zp = -128, .out_zp = -128},
                            {.in = 6, .out = 3, .relu = 0, .w_bits = 8, .W = W1, .b = B1, .w_scale = S1, .in_scale = 0.05f,
                             .out_scale = 0.1f, .in_zp = -128, .out_zp = 5}};
    assert_int_equal(tq_qmodel_convert(q, "4-6r-3", src, 2), TQ_OK);
}

/* 6x6x2 -> conv k3 s1 p1 to 3 channels, ReLU -> depthwise k2 s2 (x2) -> max pool 3 -> flatten ->
 * linear 6 -> 4 */
static void make_cnn(tq_qmodel *q) {
    static float Wc[3 * 9 * 2], Bc[3], Sc[3], Wd[6 * 4], Bd[6], Sd[6], Wl[4 * 6], Bl[4], Sl[4];
    tq_rng r;
    tq_rng_seed(&r, 52);
    for (size_t i = 0; i < sizeof Wc / sizeof Wc[0]; i++) Wc[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wd / sizeof Wd[0]; i++) Wd[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wl / sizeof Wl[0]; i++) Wl[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 3; i++) Bc[i] = tq_rng_uniform_in(&r, -1, 1), Sc[i] = 0.01f;
    for (int i = 0; i < 6; i++) Bd[i] = tq_rng_uniform_in(&r, -1, 1), Sd[i] = 0.02f;
    for (int i = 0; i < 4; i++) Bl[i] = tq_rng_uniform_in(&r, -1, 1), Sl[i] = 0.03f;
    tq_qlayer_src src[5] = {
        {.relu = 1, .w_bits = 8, .W = Wc, .b = Bc, .w_scale = Sc, .in_scale = 1.0f / 255, .out_scale = 0.05f, .in_zp = -128,
         .out_zp = -128, .kind = TQ_S8_CONV, .in_h = 6, .in_w = 6, .in_c = 2, .out_h = 6, .out_w = 6, .out_c = 3, .k = 3,
         .stride = 1, .pad = 1},
        {.w_bits = 8, .W = Wd, .b = Bd, .w_scale = Sd, .in_scale = 0.05f, .out_scale = 0.07f, .in_zp = -128, .out_zp = 3,
         .kind = TQ_S8_DEPTHWISE, .in_h = 6, .in_w = 6, .in_c = 3, .out_h = 3, .out_w = 3, .out_c = 6, .k = 2, .stride = 2},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_MAXPOOL, .in_h = 3, .in_w = 3, .in_c = 6,
         .out_h = 1, .out_w = 1, .out_c = 6, .k = 3, .stride = 3},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 6,
         .out_h = 1, .out_w = 1, .out_c = 6, .k = 1, .stride = 1},
        {.in = 6, .out = 4, .w_bits = 8, .W = Wl, .b = Bl, .w_scale = Sl, .in_scale = 0.07f, .out_scale = 0.1f, .in_zp = 3,
         .out_zp = -2},
    };
    assert_int_equal(tq_qmodel_convert(q, "6x6x2-c3k3p1r-d2k2s2-m3-4", src, 5), TQ_OK);
}

/* Where layer l's record starts in a saved file: after magic, version, spec and the layer count,
 * each record is 15 u32 and 2 f32, then (with weights) 16 bytes per channel and the weights. */
static size_t layer_at(const tq_qmodel *q, int l) {
    size_t off = 4 + 4 + 2 + strlen(q->spec) + 4;
    for (int i = 0; i < l; i++)
        off += 68 + 16 * (size_t)tq_qlayer_channels(&q->layer[i]) + tq_qlayer_weights(&q->layer[i]);
    return off;
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
    snprintf(cnn, sizeof cnn, "%s/cnn.tqm", dir);
    make_cnn(&q);
    if (tq_qmodel_save(&q, cnn) != TQ_OK) return -1;
    tq_qmodel_free(&q);
    if (tq_file_read_all(cnn, 1 << 20, &cimg, &cimg_len) != TQ_OK) return -1;
    return tq_file_read_all(good, 1 << 20, &img, &img_len) == TQ_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    tq_free(img);
    tq_free(cimg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* q saved to `bad` is byte for byte `want` */
static void saves_as(const tq_qmodel *q, const unsigned char *want, size_t want_len) {
    assert_int_equal(tq_qmodel_save(q, bad), TQ_OK);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    assert_int_equal(n, want_len);
    assert_memory_equal(d, want, n);
    tq_free(d);
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
    saves_as(&q, img, img_len);
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
 * layer 0 at 20: kind 20, in_h 24, in_w 28, in_c 32, out_h 36, out_w 40, out_c 44, k 48, stride 52,
 * pad 56, relu 60, in_zp 64, out_zp 68, act_min 72, act_max 76, in_scale 80, out_scale 84,
 * w_scale 88..111, w 112..135, bias 136..159, M0 160..183, shift 184..207; layer 1 at 208: in_c 220,
 * in_zp 252. (A record's field f is at its start + 4 f.) */
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
        {4, 3, "versions 1 to 2"},
        {4, 0, "versions 1 to 2"},
        {16, 0, "layers"},
        {16, 99, "layers"},
        {44, 0x7fffffff, "shape"},      /* absurd output count */
        {32, 0, "shape"},               /* zero inputs */
        {20, 9, "unknown kind"},
        {24, 2, "not flat"},            /* a linear layer on a 2x1x4 image */
        {48, 3, "shape fields"},        /* a linear layer's kernel is 1 */
        {60, 2, "relu"},
        {64, 200, "zero point"},
        {72, 200, "clamp"},             /* act_min outside int8 */
        {76, 300, "clamp"},
        {80, 0, "scales"},
        {112, 0x80, "-128"},            /* weight -128 */
        {160, 5, "multiplier"},         /* M0 below 2^30 */
        {184, 40, "multiplier"},        /* shift out of range */
        {220, 5, "does not follow"},    /* layer 1 inputs != layer 0 outputs */
        {252, 7, "does not follow"},    /* zero points disagree */
    };
    unsigned char *d = tq_malloc(img_len);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(d, img, img_len);
        if (cases[c].off == 112) d[112] = 0x80;
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

static void cnn_round_trip(void **state) {
    (void)state;
    tq_qmodel q, q2;
    assert_int_equal(tq_qmodel_load(&q, cnn), TQ_OK);
    make_cnn(&q2);
    assert_int_equal(q.n_layers, 5);
    const int kinds[5] = {TQ_S8_CONV, TQ_S8_DEPTHWISE, TQ_S8_MAXPOOL, TQ_S8_FLATTEN, TQ_S8_LINEAR};
    const int outs[5] = {108, 54, 6, 6, 4};
    for (int l = 0; l < 5; l++) {
        assert_int_equal(q.layer[l].kind, kinds[l]);
        assert_int_equal(q.layer[l].out, outs[l]);
        assert_int_equal(q.net.layer[l].out, outs[l]);
        assert_memory_equal(q.layer[l].w, q2.layer[l].w, tq_qlayer_weights(&q.layer[l]));
    }
    assert_int_equal(tq_qlayer_weights(&q.layer[0]), 3 * 3 * 3 * 2); /* OHWI */
    assert_int_equal(tq_qlayer_weights(&q.layer[1]), 2 * 2 * 6);     /* 1HWO */
    /* multiply-adds: 6*6 positions x 54 + 3*3 x 24 + 24 */
    assert_int_equal(tq_qmodel_macs(&q), 36 * 54 + 9 * 24 + 24);
    /* the depthwise filter is stored [k][k][channel]: weight (ky, kx) of channel o from [o][ky*k + kx] */
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 4; i++)
            assert_int_equal(q.layer[1].w[i * 6 + o], q2.layer[1].w[i * 6 + o]);
    saves_as(&q, cimg, cimg_len);
    tq_qmodel_free(&q);
    tq_qmodel_free(&q2);
}

/* The converter quantizes the depthwise filter in place of its transpose: a hand-made filter. */
static void depthwise_layout_by_hand(void **state) {
    (void)state;
    /* 1 input channel, multiplier 2, k 2: W [2][4] = channel 0: 1 2 3 4, channel 1: -1 -2 -3 -4 (scale 1) */
    const float W[8] = {1, 2, 3, 4, -1, -2, -3, -4}, b[2] = {0, 0}, sw[2] = {1, 1};
    tq_qlayer_src src[1] = {
        {.w_bits = 8, .W = W, .b = b, .w_scale = sw, .in_scale = 1, .out_scale = 1, .in_zp = 0, .out_zp = 0,
         .kind = TQ_S8_DEPTHWISE, .in_h = 2, .in_w = 2, .in_c = 1, .out_h = 1, .out_w = 1, .out_c = 2, .k = 2, .stride = 1},
    };
    tq_qmodel q;
    if (tq_qmodel_convert(&q, "t", src, 1) != TQ_OK) fail_msg("%s", tq_last_error());
    const int8_t want[8] = {1, -1, 2, -2, 3, -3, 4, -4}; /* [ky][kx][o] */
    assert_memory_equal(q.layer[0].w, want, 8);
    tq_qmodel_free(&q);
}

static void cnn_fields_are_checked(void **state) {
    (void)state;
    tq_qmodel q;
    make_cnn(&q);
    const size_t c0 = layer_at(&q, 0), c1 = layer_at(&q, 1), p2 = layer_at(&q, 2), f3 = layer_at(&q, 3), l4 = layer_at(&q, 4);
    tq_qmodel_free(&q);
    /* field f of a record is at its start + 4 f: kind 0, in_h 1, in_w 2, in_c 3, out_h 4, out_w 5,
     * out_c 6, k 7, stride 8, pad 9, relu 10, in_zp 11, out_zp 12 */
    struct {
        size_t off;
        uint32_t val;
        const char *needle;
    } cases[] = {
        {c0 + 4 * 7, 9, "do not fit"},          /* a 9x9 kernel on a 6x6 input padded by 1 */
        {c0 + 4 * 8, 0, "do not fit"},          /* stride 0 */
        {c0 + 4 * 9, 3, "do not fit"},          /* padding as large as the kernel */
        {c0 + 4 * 9, (uint32_t)-1, "do not fit"},
        {c0 + 4 * 4, 5, "kernel gives 6x6"},    /* output height inconsistent */
        {c1 + 4 * 6, 7, "7 output channels from 3"}, /* depthwise: not a multiple */
        {c1 + 4 * 1, 7, "does not follow"},     /* input height != the conv's output's */
        {p2 + 4 * 9, 1, "do not fit"},          /* a pool with padding */
        {p2 + 4 * 12, 4, "zero points 3 in, 4 out"},
        {p2 + 4 * 6, 5, "5 output channels from 6"},
        {p2 + 4 * 10, 1, "relu"},               /* a pool has no ReLU */
        {f3 + 4 * 6, 5, "shape fields"},        /* flatten: 1x1x6 is 6 values */
        {l4 + 4 * 3, 5, "does not follow"},
        {c0 + 4 * 0, 5, "shape fields"},        /* the conv record read as a flatten */
    };
    unsigned char *d = tq_malloc(cimg_len);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(d, cimg, cimg_len);
        patch_u32(d, cases[c].off, cases[c].val);
        fix_crc(d, cimg_len);
        expect_load_fails(d, cimg_len, TQ_E_FORMAT, cases[c].needle);
    }
    /* a window of 8 x 8 x 65536 values (4 MiB of scratch) on a 6 x 6 image padded by 1 */
    memcpy(d, cimg, cimg_len);
    patch_u32(d, c0 + 4 * 3, 65536);
    patch_u32(d, c0 + 4 * 7, 8);
    fix_crc(d, cimg_len);
    expect_load_fails(d, cimg_len, TQ_E_FORMAT, "too much scratch");
    tq_free(d);
}

/* Version 1 (dense layers: in, out, relu, then the fields from in_zp on), written here field by
 * field, loads as the same model. */
static void version_1_files_load(void **state) {
    (void)state;
    tq_qmodel q, v1;
    make_model(&q);
    tq_buf b;
    tq_buf_frame_begin(&b, "TQI8", 1);
    tq_buf_u16(&b, (uint16_t)strlen(q.spec));
    tq_buf_put(&b, q.spec, strlen(q.spec));
    tq_buf_u32(&b, (uint32_t)q.n_layers);
    for (int l = 0; l < q.n_layers; l++) {
        const tq_qlayer *L = &q.layer[l];
        const int32_t f[7] = {L->in, L->out, L->relu, L->in_zp, L->out_zp, L->act_min, L->act_max};
        for (int i = 0; i < 7; i++) tq_buf_u32(&b, (uint32_t)f[i]);
        tq_buf_f32(&b, L->in_scale);
        tq_buf_f32(&b, L->out_scale);
        for (int o = 0; o < L->out; o++) tq_buf_f32(&b, L->w_scale[o]);
        tq_buf_put(&b, L->w, (size_t)L->out * (size_t)L->in);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->bias[o]);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->mult[o]);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->shift[o]);
    }
    assert_int_equal(tq_buf_frame_save(&b, bad), TQ_OK);
    assert_int_equal(tq_qmodel_load(&v1, bad), TQ_OK);
    assert_int_equal(v1.n_layers, 2);
    for (int l = 0; l < 2; l++) {
        assert_int_equal(v1.layer[l].kind, TQ_S8_LINEAR);
        assert_int_equal(v1.layer[l].in, q.layer[l].in);
        assert_int_equal(v1.layer[l].out_c, q.layer[l].out);
        assert_memory_equal(v1.layer[l].w, q.layer[l].w, (size_t)q.layer[l].in * q.layer[l].out);
        assert_memory_equal(v1.layer[l].shift, q.layer[l].shift, (size_t)q.layer[l].out * 4);
    }
    /* saved again, it is today's format, byte for byte what the converter's model saves */
    saves_as(&v1, img, img_len);
    tq_qmodel_free(&v1);
    tq_qmodel_free(&q);
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
        cmocka_unit_test(cnn_round_trip),
        cmocka_unit_test(depthwise_layout_by_hand),
        cmocka_unit_test(cnn_fields_are_checked),
        cmocka_unit_test(version_1_files_load),
        cmocka_unit_test(failed_save_keeps_the_old_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
