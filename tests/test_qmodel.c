/* The integer model file: round trip (dense and convolutional), version 1 files, truncation,
 * corruption, and every field check (fields are patched and the CRC recomputed, so the loader's
 * own checks are what fails). */
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
/* make_cnn's parameters: random weights and biases in [-1, 1], weight scales 0.01, 0.02, 0.03 */
typedef struct {
    float Wc[3 * 9 * 2], Bc[3], Sc[3], Wd[6 * 4], Bd[6], Sd[6], Wl[4 * 6], Bl[4], Sl[4];
} cnn_params;

static void random_cnn_params(cnn_params *p, uint64_t seed) {
    tq_rng r;
    tq_rng_seed(&r, seed);
    for (size_t i = 0; i < sizeof p->Wc / sizeof p->Wc[0]; i++) p->Wc[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof p->Wd / sizeof p->Wd[0]; i++) p->Wd[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof p->Wl / sizeof p->Wl[0]; i++) p->Wl[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 3; i++) p->Bc[i] = tq_rng_uniform_in(&r, -1, 1), p->Sc[i] = 0.01f;
    for (int i = 0; i < 6; i++) p->Bd[i] = tq_rng_uniform_in(&r, -1, 1), p->Sd[i] = 0.02f;
    for (int i = 0; i < 4; i++) p->Bl[i] = tq_rng_uniform_in(&r, -1, 1), p->Sl[i] = 0.03f;
}

static void make_cnn(tq_qmodel *q) {
    static cnn_params P;
    random_cnn_params(&P, 52);
    float *Wc = P.Wc, *Bc = P.Bc, *Sc = P.Sc, *Wd = P.Wd, *Bd = P.Bd, *Sd = P.Sd, *Wl = P.Wl, *Bl = P.Bl, *Sl = P.Sl;
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
 * each record is 17 u32 and 2 f32, then (with weights) 16 bytes per channel and the weights. */
static size_t layer_at(const tq_qmodel *q, int l) {
    size_t off = 4 + 4 + 2 + strlen(q->spec) + 4;
    for (int i = 0; i < l; i++)
        off += 76 + 16 * (size_t)tq_qlayer_channels(&q->layer[i]) + tq_qlayer_weight_bytes(&q->layer[i]);
    return off;
}

/* One linear layer 1 x n of the given weights (scale 1) at `bits`. */
static void make_row(tq_qmodel *q, const float *W, int n, int bits) {
    static const float b[1] = {0}, sw[1] = {1};
    tq_qlayer_src src[1] = {{.in = n, .out = 1, .w_bits = bits, .W = W, .b = b, .w_scale = sw, .in_scale = 1, .out_scale = 1}};
    if (tq_qmodel_convert(q, "row", src, 1) != TQ_OK) fail_msg("%s", tq_last_error());
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

/* q saved, loaded and saved again gives the same bytes */
static void saves_as_itself(const tq_qmodel *q) {
    assert_int_equal(tq_qmodel_save(q, bad), TQ_OK);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    tq_qmodel q2;
    assert_int_equal(tq_qmodel_load(&q2, bad), TQ_OK);
    assert_memory_equal(q2.layer[0].w, q->layer[0].w, tq_qlayer_weight_bytes(&q->layer[0]));
    saves_as(&q2, d, n);
    tq_qmodel_free(&q2);
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
        /* (version 3 becomes 2, a version that loads: the checksum catches it) */
        expect_load_fails(d, img_len, TQ_E_FORMAT, "checksum");
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
 * pad 56, relu 60, w_bits 64, w_bytes 68, in_zp 72, out_zp 76, act_min 80, act_max 84, in_scale 88,
 * out_scale 92, w_scale 96..119, w 120..143, bias 144..167, M0 168..191, shift 192..215; layer 1 at
 * 216: in_c 228, in_zp 268. (A record's field f is at its start + 4 f.) */
static void patch_u32(unsigned char *d, size_t off, uint32_t v) {
    d[off] = (unsigned char)v, d[off + 1] = (unsigned char)(v >> 8), d[off + 2] = (unsigned char)(v >> 16),
    d[off + 3] = (unsigned char)(v >> 24);
}
static void fix_crc(unsigned char *d, size_t n) { patch_u32(d, n - 4, (uint32_t)crc32(0L, d, (uInt)(n - 4))); }

/* A copy of the file file[n] with the u32 at off set to v (or, with byte, the byte at off), its
 * CRC made right again, is refused with a message containing needle. */
static void expect_patch_fails(const unsigned char *file, size_t n, size_t off, uint32_t v, int byte, const char *needle) {
    unsigned char *d = tq_malloc(n);
    memcpy(d, file, n);
    if (byte) d[off] = (unsigned char)v;
    else patch_u32(d, off, v);
    fix_crc(d, n);
    expect_load_fails(d, n, TQ_E_FORMAT, needle);
    tq_free(d);
}

static void every_field_is_checked(void **state) {
    (void)state;
    struct {
        size_t off;
        uint32_t val;
        const char *needle;
    } cases[] = {
        {4, 6, "versions 1 to 5"},
        {4, 0, "versions 1 to 5"},
        {16, 0, "layers"},
        {16, 99, "layers"},
        {44, 0x7fffffff, "shape"},      /* absurd output count */
        {32, 0, "shape"},               /* zero inputs */
        {20, 10, "unknown kind"},
        {24, 2, "not flat"},            /* a linear layer on a 2x1x4 image */
        {48, 3, "shape fields"},        /* a linear layer's kernel is 1 */
        {60, 3, "relu"},                /* 0, 1 ReLU, 2 ReLU6 */
        {64, 9, "9-bit weights"},
        {64, 1, "1-bit weights"},
        {64, 4, "24 bytes of weights, but 24 weights of 4 bits take 12"}, /* packed size != declared width */
        {68, 25, "25 bytes of weights, but 24 weights of 8 bits take 24"},
        {72, 200, "zero point"},
        {80, 200, "clamp"},             /* act_min outside int8 */
        {84, 300, "clamp"},
        {88, 0, "scales"},
        {120, 0x80, "weight 0 is -128, outside the 8-bit range [-127, 127]"},
        {168, 5, "multiplier"},         /* M0 below 2^30 */
        {192, 40, "multiplier"},        /* shift out of range */
        {144, 0x7ffffff0, "overflow the int32 accumulator"}, /* bias 0 without headroom */
        {144, 0x80000001, "overflow the int32 accumulator"},
        {228, 5, "does not follow"},    /* layer 1 inputs != layer 0 outputs */
        {268, 7, "does not follow"},    /* zero points disagree */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) /* off 120: the first weight byte */
        expect_patch_fails(img, img_len, cases[c].off, cases[c].val, cases[c].off == 120, cases[c].needle);
    /* trailing bytes */
    unsigned char *e = tq_malloc(img_len + 3);
    memcpy(e, img, img_len - 4);
    memset(e + img_len - 4, 0, 3);
    fix_crc(e, img_len + 3);
    expect_load_fails(e, img_len + 3, TQ_E_FORMAT, "unexpected bytes");
    tq_free(e);
}

/* The converter keeps to the accumulator bound: a bias that fits int32 but not beside its weights
 * (2^31 - 256 - 510 * sum |w|) is refused, one just inside it converts. */
static void convert_keeps_accumulator_headroom(void **state) {
    (void)state;
    float W[2] = {1.0f, -1.0f}, S[1] = {1.0f / 127}, B[1];
    tq_qlayer_src src = {.in = 2, .out = 1, .w_bits = 8, .W = W, .b = B, .w_scale = S, .in_scale = 1.0f,
                         .out_scale = 1.0f, .in_zp = 0, .out_zp = 0};
    const double step = 1.0 / 127; /* s_in s_w: the bias's integer step */
    tq_qmodel q;
    B[0] = (float)((double)(TQ_S8_ACC_MAX - 510 * 254 - 100000) * step); /* float: within 128 of that */
    assert_int_equal(tq_qmodel_convert(&q, "t", &src, 1), TQ_OK);
    tq_qmodel_free(&q);
    B[0] = (float)((double)(TQ_S8_ACC_MAX - 1000) * step);
    assert_int_equal(tq_qmodel_convert(&q, "t", &src, 1), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "overflow the int32 accumulator"));
    B[0] = -B[0];
    assert_int_equal(tq_qmodel_convert(&q, "t", &src, 1), TQ_E_FORMAT);
}

/* A multiplier of 2^30 or more (or +inf, from a scale that overflowed) becomes the largest one the
 * kernels take, 2^31 - 1 at shift 30, so conversion succeeds and the outputs saturate as M's would. */
static void huge_multiplier_saturates(void **state) {
    (void)state;
    float W[2] = {1.0f, -1.0f}, S[1] = {1.0f / 127}, B[1] = {0.0f};
    tq_qlayer_src src = {.in = 2, .out = 1, .w_bits = 8, .W = W, .b = B, .w_scale = S, .in_scale = 1.0f,
                         .out_scale = 1e-30f, .in_zp = 0, .out_zp = 100};
    tq_qmodel q;
    assert_int_equal(tq_qmodel_convert(&q, "t", &src, 1), TQ_OK);
    assert_int_equal(q.layer[0].mult[0], INT32_MAX);
    assert_int_equal(q.layer[0].shift[0], 30);
    /* acc = 127 (x0 - x1): +1 -> 127, -1 -> -128, 0 -> z_y */
    int8_t x[3][2] = {{1, 0}, {0, 1}, {5, 5}}, y;
    const int8_t want[3] = {127, -128, 100};
    for (int i = 0; i < 3; i++) {
        tq_linear_s8_ref(&q.view[0], x[i], &y);
        assert_int_equal(y, want[i]);
    }
    tq_qmodel_free(&q);
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

/* A residual graph through the converter: conv (0), a 3x1 conv padded 1x0 (1), the add of 1 and 0
 * (2), global average pool (3), flatten, linear. The add's multipliers worked by hand; saved as
 * version 4 and loaded back to the same bytes and the same logits; a chain still saves as 3. */
/* A layer reading the network's input twice reads it as what it is: a concat of a 1-channel
 * input with itself as 2 more channels would read past it (the runtime's twin check, fuzz_api's find). */
static void input_read_twice(void **state) {
    (void)state;
    tq_qlayer_src c = {.w_bits = 8, .in_scale = 0.5f, .in2_scale = 0.5f, .out_scale = 0.5f, .in_zp = -128, .in2_zp = -128,
                       .out_zp = -128, .kind = TQ_S8_CONCAT, .in_h = 2, .in_w = 2, .in_c = 1, .out_h = 2, .out_w = 2, .out_c = 2,
                       .k = 1, .stride = 1, .in2_c = 1};
    tq_qmodel q;
    assert_int_equal(tq_qmodel_convert(&q, "twice", &c, 1), TQ_OK);
    tq_qmodel_free(&q);
    c.in2_c = 2, c.out_c = 3;
    assert_int_equal(tq_qmodel_convert(&q, "twice", &c, 1), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "second input is the network's"));
}

static void graph_round_trip(void **state) {
    (void)state;
    static float W0[3 * 9 * 2], W1[3 * 3 * 3], Wl[2 * 3], B[3], S[3] = {0.01f, 0.01f, 0.01f};
    tq_rng r;
    tq_rng_seed(&r, 53);
    for (size_t i = 0; i < sizeof W0 / sizeof W0[0]; i++) W0[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof W1 / sizeof W1[0]; i++) W1[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wl / sizeof Wl[0]; i++) Wl[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 3; i++) B[i] = tq_rng_uniform_in(&r, -0.1f, 0.1f);
    tq_qlayer_src src[6] = {
        {.relu = 1, .w_bits = 8, .W = W0, .b = B, .w_scale = S, .in_scale = 1.0f / 255, .out_scale = 0.03125f, .in_zp = -128,
         .out_zp = -128, .kind = TQ_S8_CONV, .in_h = 4, .in_w = 4, .in_c = 2, .out_h = 4, .out_w = 4, .out_c = 3, .k = 3,
         .stride = 1, .pad = 1},
        {.w_bits = 8, .W = W1, .b = B, .w_scale = S, .in_scale = 0.03125f, .out_scale = 0.015625f, .in_zp = -128, .out_zp = 1,
         .kind = TQ_S8_CONV, .in_h = 4, .in_w = 4, .in_c = 3, .out_h = 4, .out_w = 4, .out_c = 3, .k = 3, .stride = 1, .pad = 1,
         .kw = 1, .stride_w = 1, .pad_w = 0},
        {.relu = 1, .in_scale = 0.015625f, .in2_scale = 0.03125f, .out_scale = 0.0625f, .in_zp = 1, .in2_zp = -128, .out_zp = -7,
         .kind = TQ_S8_ADD, .in_h = 4, .in_w = 4, .in_c = 3, .out_h = 4, .out_w = 4, .out_c = 3, .k = 1, .stride = 1, .src = {2, 1}},
        {.in_scale = 0.0625f, .out_scale = 0.0625f, .in_zp = -7, .out_zp = -7, .kind = TQ_S8_AVGPOOL, .in_h = 4, .in_w = 4, .in_c = 3,
         .out_h = 1, .out_w = 1, .out_c = 3, .k = 4, .stride = 1},
        {.in_scale = 0.0625f, .out_scale = 0.0625f, .in_zp = -7, .out_zp = -7, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 3,
         .out_h = 1, .out_w = 1, .out_c = 3, .k = 1, .stride = 1},
        {.in = 3, .out = 2, .w_bits = 8, .W = Wl, .b = B, .w_scale = S, .in_scale = 0.0625f, .out_scale = 0.1f, .in_zp = -7, .out_zp = 0},
    };
    tq_qmodel q, q2;
    assert_int_equal(tq_qmodel_convert(&q, "graph", src, 6), TQ_OK);
    assert_false(tq_qmodel_is_chain(&q));
    /* twice the larger input scale, 2^-4: the inputs 1/4 and 1/2 of it, the output 2^-4 / (2^20 2^-4) = 2^-20 */
    const tq_qlayer *A = &q.layer[2];
    assert_int_equal(A->mult[0], 1 << 30), assert_int_equal(A->shift[0], -1);
    assert_int_equal(A->mult[1], 1 << 30), assert_int_equal(A->shift[1], 0);
    assert_int_equal(A->mult[2], 1 << 30), assert_int_equal(A->shift[2], -19);
    assert_int_equal(A->act_min, -7);
    assert_int_equal(tq_qlayer_weights(&q.layer[1]), 3 * 3 * 1 * 3);
    assert_int_equal(tq_qmodel_macs(&q), 16 * 54 + 16 * 27 + 6);
    assert_int_equal(tq_qmodel_save(&q, bad), TQ_OK);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    assert_int_equal(d[4], 4); /* format version 4 */
    assert_int_equal(tq_qmodel_load(&q2, bad), TQ_OK);
    /* the add's first input, the layer before it, in the one form: src 0 */
    assert_int_equal(q2.layer[2].src[0], 0), assert_int_equal(q2.layer[2].src[1], 1);
    assert_int_equal(q2.layer[1].kw, 1);
    uint8_t px[32];
    int8_t y[2], y2[2];
    static int8_t scratch[4096];
    for (int i = 0; i < 32; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    assert_true(tq_int8_net_predict_u8(&q.net, px, y, scratch, sizeof scratch) >= 0);
    assert_true(tq_int8_net_predict_u8(&q2.net, px, y2, scratch, sizeof scratch) >= 0);
    assert_memory_equal(y, y2, 2);
    saves_as_itself(&q);
    /* a record whose input comes from a later layer, and one whose output nobody reads */
    /* layer 2's record: after the 19-byte head ("TQI8", version, "graph", the count), layer 0
     * (108 bytes of fields, 3 channels x 16 bytes, 54 weights) and layer 1 (the same, 27 weights);
     * its src[0] after its 17 u32 and 2 f32 */
    const size_t rec2 = 19 + (108 + 48 + 54) + (108 + 48 + 27), at2 = rec2 + 76;
    assert_int_equal(d[at2], 0), assert_int_equal(d[at2 + 4], 1);
    patch_u32(d, at2, 5);
    fix_crc(d, n);
    expect_load_fails(d, n, TQ_E_FORMAT, "not an earlier layer");
    patch_u32(d, at2, 0x80000000u); /* (the fuzzer's find: the message's arithmetic must not overflow) */
    fix_crc(d, n);
    expect_load_fails(d, n, TQ_E_FORMAT, "not an earlier layer");
    patch_u32(d, at2, 0);
    patch_u32(d, rec2 + 108 + 12, 1); /* the add's first input shifted left: its sum could leave int32 */
    fix_crc(d, n);
    expect_load_fails(d, n, TQ_E_FORMAT, "shifts left");
    patch_u32(d, rec2 + 108 + 12, (uint32_t)-1);
    patch_u32(d, at2, 1); /* 0 + 0 (with layer 0's zero point): layer 1 is read by nobody */
    patch_u32(d, rec2 + 4 * 13, (uint32_t)-128);
    fix_crc(d, n);
    expect_load_fails(d, n, TQ_E_FORMAT, "read by no layer");
    tq_free(d);
    tq_qmodel_free(&q2);
    /* a chain of square kernels saves as version 3, as before */
    make_cnn(&q2);
    assert_true(tq_qmodel_is_chain(&q2));
    assert_int_equal(tq_qmodel_save(&q2, bad), TQ_OK);
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    assert_int_equal(d[4], 3);
    tq_free(d);
    tq_qmodel_free(&q2);
    tq_qmodel_free(&q);
}

/* A softmax's record (its head, then one M0 and one shift) cut anywhere, the CRC made right again
 * so the loader reads that far: refused as truncated, naming the layer, never read past. */
static void softmax_record_truncated(void **state) {
    (void)state;
    static const float W[3 * 4] = {0.5f, -0.25f, 0.125f, 1, -1, 0.5f, 0.25f, -0.5f, 0.75f, 0.1f, -0.2f, 0.3f}, B[3] = {0.1f, 0, -0.1f},
                       S[3] = {0.01f, 0.01f, 0.01f};
    tq_qlayer_src src[2] = {
        {.in = 4, .out = 3, .w_bits = 8, .W = W, .b = B, .w_scale = S, .in_scale = 1.0f / 255, .out_scale = 0.05f, .in_zp = -128, .out_zp = 3},
        {.in_scale = 0.05f, .out_scale = 1.0f / 256, .in_zp = 3, .out_zp = -128, .kind = TQ_S8_SOFTMAX, .in_h = 1, .in_w = 1, .in_c = 3,
         .out_h = 1, .out_w = 1, .out_c = 3, .k = 1, .stride = 1},
    };
    tq_qmodel q;
    assert_int_equal(tq_qmodel_convert(&q, "softmax", src, 2), TQ_OK);
    assert_int_equal(tq_qmodel_save(&q, bad), TQ_OK);
    tq_qmodel_free(&q);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    /* the head ("TQI8", version, the spec, the count), the linear layer's record (108 bytes of
     * fields, then per channel a scale, 4 weights, a bias, M0 and shift), then the softmax's: 108
     * bytes of fields and 8 of multiplier, then the CRC */
    const size_t head = 4 + 4 + 2 + strlen("softmax") + 4, rec1 = head + 108 + 3 * (4 + 4 + 4 + 4 + 4);
    assert_int_equal(n, rec1 + 108 + 8 + 4);
    unsigned char *c = tq_malloc(n);
    for (size_t cut = rec1; cut < n - 4; cut++) {
        memcpy(c, d, cut);
        fix_crc(c, cut + 4);
        expect_load_fails(c, cut + 4, TQ_E_FORMAT, "layer 1: truncated");
    }
    tq_free(c);
    tq_free(d);
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

/* Packing worked by hand: two's-complement fields, the first weight in the lowest bits. */
static void packing_by_hand(void **state) {
    (void)state;
    tq_qmodel q;
    /* 4 bits: 1 -> 0x1, -2 -> 0xE, 7 -> 0x7, -7 -> 0x9, 3 -> 0x3 (high nibble of the last byte 0) */
    const float w4[5] = {1, -2, 7, -7, 3};
    make_row(&q, w4, 5, 4);
    const int8_t want4[3] = {(int8_t)0xE1, (int8_t)0x97, 0x03};
    assert_int_equal(tq_qlayer_weight_bytes(&q.layer[0]), 3);
    assert_memory_equal(q.layer[0].w, want4, 3);
    assert_int_equal(q.view[0].w_bits, 4);
    for (int i = 0; i < 5; i++) assert_int_equal(tq_s8_unpack(q.layer[0].w, 4, (size_t)i), (int)w4[i]);
    saves_as_itself(&q);
    tq_qmodel_free(&q);
    /* 2 bits: 1 -> 01, -1 -> 11, 0 -> 00, 1 -> 01 | -1 -> 11 */
    const float w2[5] = {1, -1, 0, 1, -1};
    make_row(&q, w2, 5, 2);
    const int8_t want2[2] = {0x4D, 0x03};
    assert_memory_equal(q.layer[0].w, want2, 2);
    for (int i = 0; i < 5; i++) assert_int_equal(tq_s8_unpack(q.layer[0].w, 2, (size_t)i), (int)w2[i]);
    saves_as_itself(&q);
    tq_qmodel_free(&q);
    /* 3 bits: the 4-bit container, values in [-3, 3] (4 clips to 3) */
    const float w3[3] = {4, -3, 1};
    make_row(&q, w3, 3, 3);
    const int8_t want3[2] = {(int8_t)0xD3, 0x01};
    assert_int_equal(q.layer[0].w_bits, 3);
    assert_memory_equal(q.layer[0].w, want3, 2);
    saves_as_itself(&q);
    tq_qmodel_free(&q);
}

/* A packed file's weights against their declared width. */
static void packed_fields_are_checked(void **state) {
    (void)state;
    tq_qmodel q;
    const float w4[5] = {1, -2, 7, -7, 3};
    make_row(&q, w4, 5, 4);
    assert_int_equal(tq_qmodel_save(&q, bad), TQ_OK);
    const size_t at = layer_at(&q, 0), w = at + 76 + 4; /* after the record and one weight scale */
    tq_qmodel_free(&q);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    struct {
        size_t off;
        int byte;     /* patch one byte (else the u32 field) */
        uint32_t val;
        const char *needle;
    } cases[] = {
        {w, 1, 0x81, "weight 1 is -8, outside the 4-bit range [-7, 7]"}, /* 0x81: 1, then -8 */
        {w + 2, 1, 0x13, "unused bits of the last weight byte"},
        {at + 4 * 11, 0, 3, "weight 2 is 7, outside the 3-bit range [-3, 3]"},
        {at + 4 * 11, 0, 2, "3 bytes of weights, but 5 weights of 2 bits take 2"},
        {at + 4 * 11, 0, 8, "3 bytes of weights, but 5 weights of 8 bits take 5"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        expect_patch_fails(d, n, cases[c].off, cases[c].val, cases[c].byte, cases[c].needle);
    tq_free(d);
}

static void cnn_fields_are_checked(void **state) {
    (void)state;
    tq_qmodel q;
    make_cnn(&q);
    const size_t c0 = layer_at(&q, 0), c1 = layer_at(&q, 1), p2 = layer_at(&q, 2), f3 = layer_at(&q, 3), l4 = layer_at(&q, 4);
    tq_qmodel_free(&q);
    /* field f of a record is at its start + 4 f: kind 0, in_h 1, in_w 2, in_c 3, out_h 4, out_w 5,
     * out_c 6, k 7, stride 8, pad 9, relu 10, w_bits 11, w_bytes 12, in_zp 13, out_zp 14 */
    struct {
        size_t off;
        uint32_t val;
        const char *needle;
    } cases[] = {
        {c0 + 4 * 7, 10, "do not fit"},         /* a 10x10 kernel on a 6x6 input padded by 1 (2 below) */
        {c0 + 4 * 8, 0, "do not fit"},          /* stride 0 */
        {c0 + 4 * 9, 3, "do not fit"},          /* padding as large as the kernel */
        {c0 + 4 * 9, (uint32_t)-1, "do not fit"},
        {c0 + 4 * 7, 0x80000000u, "do not fit"}, /* k = INT32_MIN: checked before k - 1 is formed */
        {c0 + 4 * 4, 5, "kernel gives 6x6"},    /* output height inconsistent */
        {c1 + 4 * 6, 7, "7 output channels from 3"}, /* depthwise: not a multiple */
        {c1 + 4 * 1, 7, "does not follow"},     /* input height != the conv's output's */
        {p2 + 4 * 9, 1, "do not fit"},          /* a pool with padding */
        {p2 + 4 * 14, 4, "zero points 3 in, 4 out"},
        {p2 + 4 * 6, 5, "5 output channels from 6"},
        {p2 + 4 * 10, 1, "relu"},               /* a pool has no ReLU */
        {f3 + 4 * 6, 5, "shape fields"},        /* flatten: 1x1x6 is 6 values */
        {l4 + 4 * 3, 5, "does not follow"},
        {c0 + 4 * 0, 5, "shape fields"},        /* the conv record read as a flatten */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        expect_patch_fails(cimg, cimg_len, cases[c].off, cases[c].val, 0, cases[c].needle);
    /* a window of 8 x 8 x 65536 values (4 MiB of scratch) on a 6 x 6 image padded by 1 */
    unsigned char *d = tq_malloc(cimg_len);
    memcpy(d, cimg, cimg_len);
    patch_u32(d, c0 + 4 * 3, 65536);
    patch_u32(d, c0 + 4 * 7, 8);
    fix_crc(d, cimg_len);
    expect_load_fails(d, cimg_len, TQ_E_FORMAT, "too much scratch");
    tq_free(d);
}

/* q (dense layers) written to `bad` field by field as format version 1 (in, out, relu, then the
 * fields from in_zp on) or 2 (today's records without w_bits and w_bytes). */
static void write_old_version(const tq_qmodel *q, int version) {
    tq_buf b;
    tq_buf_frame_begin(&b, "TQI8", (uint32_t)version);
    tq_buf_u16(&b, (uint16_t)strlen(q->spec));
    tq_buf_put(&b, q->spec, strlen(q->spec));
    tq_buf_u32(&b, (uint32_t)q->n_layers);
    for (int l = 0; l < q->n_layers; l++) {
        const tq_qlayer *L = &q->layer[l];
        const int32_t v1[7] = {L->in, L->out, L->relu, L->in_zp, L->out_zp, L->act_min, L->act_max};
        const int32_t v2[15] = {L->kind, L->in_h,   L->in_w, L->in_c,  L->out_h,  L->out_w,  L->out_c, L->k,
                                L->stride, L->pad, L->relu, L->in_zp, L->out_zp, L->act_min, L->act_max};
        for (int i = 0; i < (version == 1 ? 7 : 15); i++) tq_buf_u32(&b, (uint32_t)(version == 1 ? v1[i] : v2[i]));
        tq_buf_f32(&b, L->in_scale);
        tq_buf_f32(&b, L->out_scale);
        for (int o = 0; o < L->out; o++) tq_buf_f32(&b, L->w_scale[o]);
        tq_buf_put(&b, L->w, (size_t)L->out * (size_t)L->in);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->bias[o]);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->mult[o]);
        for (int o = 0; o < L->out; o++) tq_buf_u32(&b, (uint32_t)L->shift[o]);
    }
    assert_int_equal(tq_buf_frame_save(&b, bad), TQ_OK);
}

/* Versions 1 and 2 load as the same model, and save again as today's bytes. */
static void older_versions_load(void **state) {
    (void)state;
    tq_qmodel q, old;
    make_model(&q);
    for (int version = 1; version <= 2; version++) {
        write_old_version(&q, version);
        assert_int_equal(tq_qmodel_load(&old, bad), TQ_OK);
        assert_int_equal(old.n_layers, 2);
        for (int l = 0; l < 2; l++) {
            assert_int_equal(old.layer[l].kind, TQ_S8_LINEAR);
            assert_int_equal(old.layer[l].w_bits, 8);
            assert_int_equal(old.layer[l].in, q.layer[l].in);
            assert_int_equal(old.layer[l].out_c, q.layer[l].out);
            assert_memory_equal(old.layer[l].w, q.layer[l].w, (size_t)q.layer[l].in * q.layer[l].out);
            assert_memory_equal(old.layer[l].shift, q.layer[l].shift, (size_t)q.layer[l].out * 4);
        }
        saves_as(&old, img, img_len); /* byte for byte what the converter's model saves */
        tq_qmodel_free(&old);
    }
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

/* A save removes the temporaries a killed writer of the same file left (its process gone), and
 * leaves those of a live process and of other files. */
static void save_clears_stale_temporaries(void **state) {
    (void)state;
    tq_qmodel q;
    make_model(&q);
    char m[160], dead[200], live[200], other[200];
    snprintf(m, sizeof m, "%s/s.tqm", dir);
    snprintf(dead, sizeof dead, "%s.tmp.999999999", m);      /* no such process */
    snprintf(live, sizeof live, "%s.tmp.%ld", m, (long)getppid()); /* alive: the test runner */
    snprintf(other, sizeof other, "%s/t.tqm.tmp.999999999", dir);
    const char *made[3] = {dead, live, other};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(made[i], "wb");
        assert_non_null(f);
        fputs("half a model", f);
        fclose(f);
    }
    assert_int_equal(tq_qmodel_save(&q, m), TQ_OK);
    assert_int_not_equal(access(dead, F_OK), 0);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    unlink(live), unlink(other), unlink(m);
    tq_qmodel_free(&q);
}


/* make_cnn's layers with 16-bit activations (§19): the convolution goes int8 -> int16, the
 * depthwise int16 -> int16, the pools and flatten keep int16, the dense layer takes int16 to int8
 * logits; int64 biases at s_in s_w, the flags, format version 5, and what is refused. */
static void sixteen_bit_round_trip(void **state) {
    (void)state;
    static cnn_params P;
    random_cnn_params(&P, 53);
    float *Wc = P.Wc, *Bc = P.Bc, *Sc = P.Sc, *Wd = P.Wd, *Bd = P.Bd, *Sd = P.Sd, *Wl = P.Wl, *Bl = P.Bl, *Sl = P.Sl;
    const float s1 = 5e-4f, s2 = 3e-4f;
    tq_qlayer_src src[5] = {
        {.relu = 2, .w_bits = 8, .W = Wc, .b = Bc, .w_scale = Sc, .in_scale = 1.0f / 255, .out_scale = s1, .in_zp = -128,
         .out_zp = 0, .kind = TQ_S8_CONV, .in_h = 6, .in_w = 6, .in_c = 2, .out_h = 6, .out_w = 6, .out_c = 3, .k = 3,
         .stride = 1, .pad = 1, .out_bits = 16},
        {.w_bits = 4, .W = Wd, .b = Bd, .w_scale = Sd, .in_scale = s1, .out_scale = s2, .in_zp = 0, .out_zp = 0,
         .kind = TQ_S8_DEPTHWISE, .in_h = 6, .in_w = 6, .in_c = 3, .out_h = 3, .out_w = 3, .out_c = 6, .k = 2, .stride = 2, .out_bits = 16},
        {.in_scale = s2, .out_scale = s2, .kind = TQ_S8_MAXPOOL, .in_h = 3, .in_w = 3, .in_c = 6, .out_h = 1, .out_w = 1, .out_c = 6,
         .k = 3, .stride = 3},
        {.in_scale = s2, .out_scale = s2, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 6, .out_h = 1, .out_w = 1, .out_c = 6,
         .k = 1, .stride = 1},
        {.in = 6, .out = 4, .w_bits = 8, .W = Wl, .b = Bl, .w_scale = Sl, .in_scale = s2, .out_scale = 0.1f, .in_zp = 0, .out_zp = -2},
    };
    tq_qmodel q;
    assert_int_equal(tq_qmodel_convert(&q, "6x6x2-c3k3p1r6-d2k2s2-m3-4", src, 5), TQ_OK);
    const int flags[5] = {2, 3, 3, 3, 1};
    for (int l = 0; l < 5; l++) assert_int_equal(q.layer[l].act16, flags[l]);
    assert_true(tq_qmodel_has_act16(&q));
    /* ReLU6 at s = 5e-4: the clamp is [0, round(6 / 5e-4)] = [0, 12000]; the depthwise's int16 range */
    assert_int_equal(q.layer[0].act_min, 0);
    assert_int_equal(q.layer[0].act_max, 12000);
    assert_int_equal(q.layer[1].act_min, -32768);
    assert_int_equal(q.layer[1].act_max, 32767);
    assert_int_equal(q.layer[4].act_min, -128);
    /* int64 biases at s_in s_w: Bl[o] / (3e-4 * 0.03), rounded half even as the bias fake quant */
    for (int o = 0; o < 4; o++) assert_true(q.layer[4].bias64[o] == (int64_t)nearbyint((double)Bl[o] / (double)(s2 * 0.03f)));
    assert_null(q.layer[4].bias);
    assert_int_equal(tq_qmodel_save(&q, bad), TQ_OK);
    unsigned char *d;
    size_t n;
    assert_int_equal(tq_file_read_all(bad, 1 << 20, &d, &n), TQ_OK);
    assert_int_equal(d[4], 5); /* format version 5 */
    tq_qmodel q2;
    assert_int_equal(tq_qmodel_load(&q2, bad), TQ_OK);
    for (int l = 0; l < 5; l++) assert_int_equal(q2.layer[l].act16, flags[l]);
    assert_memory_equal(q2.layer[1].bias64, q.layer[1].bias64, 6 * sizeof(int64_t));
    saves_as(&q2, d, n);
    assert_int_equal(tq_int8_net_check(&q2.net), TQ_INT8_OK);
    /* what the formats that keep only scales cannot hold */
    assert_int_equal(tq_qmodel_check_scales(&q2, "tflite"), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "16-bit activations"));
    tq_free(d);
    tq_qmodel_free(&q2);
    tq_qmodel_free(&q);
    /* refused: the logits at 16 bits, a width other than 8 and 16, an int16 side with a zero point */
    src[4].out_bits = 16, src[4].out_zp = 0;
    assert_int_equal(tq_qmodel_convert(&q, "x", src, 5), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "logits) is int8"));
    src[4].out_bits = 0, src[4].out_zp = -2, src[1].out_bits = 12;
    assert_int_equal(tq_qmodel_convert(&q, "x", src, 5), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "12-bit activations"));
    src[1].out_bits = 16, src[1].out_zp = 4, src[2].in_zp = src[2].out_zp = src[3].in_zp = src[3].out_zp = src[4].in_zp = 4;
    assert_int_equal(tq_qmodel_convert(&q, "x", src, 5), TQ_E_FORMAT);
    assert_non_null(strstr(tq_last_error(), "zero point"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(save_clears_stale_temporaries),
        cmocka_unit_test(input_read_twice),
        cmocka_unit_test(graph_round_trip),
        cmocka_unit_test(softmax_record_truncated),
        cmocka_unit_test(sixteen_bit_round_trip),
        cmocka_unit_test(round_trip_is_byte_identical),
        cmocka_unit_test(truncated_and_corrupted),
        cmocka_unit_test(every_field_is_checked),
        cmocka_unit_test(convert_keeps_accumulator_headroom),
        cmocka_unit_test(huge_multiplier_saturates),
        cmocka_unit_test(cnn_round_trip),
        cmocka_unit_test(depthwise_layout_by_hand),
        cmocka_unit_test(cnn_fields_are_checked),
        cmocka_unit_test(older_versions_load),
        cmocka_unit_test(packing_by_hand),
        cmocka_unit_test(packed_fields_are_checked),
        cmocka_unit_test(failed_save_keeps_the_old_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
