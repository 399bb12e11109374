/* The TFLite writer (pipeline/tflite.c) read back by a FlatBuffers reader written here from the
 * format's rules (a root offset, tables with signed offsets to their vtables, vectors with a
 * length, offsets counted from the field): the operators and their codes and options, the
 * tensors' shapes, types, quantization and buffers, against the integer model written. Arm NN
 * running the files is tests/tflite_test.sh; this needs nothing installed. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pipeline/tflite.h"
#include "pipeline/tflite_import.h"
#include "src/alloc.h"
#include "src/fileio.h"
#include "src/qmodel.h"
#include "src/rng.h"

#include "tests/tq_test_tmpdir.h"

/* ---- a minimal FlatBuffers reader ---- */

static const uint8_t *B;
static size_t BN;

static uint32_t u32(size_t at) {
    assert_true(at + 4 <= BN);
    return (uint32_t)B[at] | (uint32_t)B[at + 1] << 8 | (uint32_t)B[at + 2] << 16 | (uint32_t)B[at + 3] << 24;
}
static uint16_t u16(size_t at) { return (uint16_t)(B[at] | B[at + 1] << 8); }
static size_t deref(size_t at) { return at + u32(at); } /* an offset field -> its object */

/* the position of field id of the table at t, or 0 when absent */
static size_t field(size_t t, int id) {
    size_t vt = t - (size_t)(int32_t)u32(t);
    uint16_t vlen = u16(vt);
    if (4 + 2 * (size_t)id >= vlen) return 0;
    uint16_t off = u16(vt + 4 + 2 * (size_t)id);
    return off ? t + off : 0;
}
static uint32_t field_u32(size_t t, int id, uint32_t def) { size_t f = field(t, id); return f ? u32(f) : def; }
static uint8_t field_u8(size_t t, int id) { size_t f = field(t, id); return f ? B[f] : 0; }
static size_t table_at(size_t t, int id) { size_t f = field(t, id); assert_true(f != 0); return deref(f); }
static uint32_t vec_len(size_t v) { return u32(v); }
static size_t vec_table(size_t v, uint32_t i) { return deref(v + 4 + 4 * (size_t)i); }
static int32_t vec_i32(size_t v, uint32_t i) { return (int32_t)u32(v + 4 + 4 * (size_t)i); }
static float vec_f32(size_t v, uint32_t i) {
    uint32_t x = u32(v + 4 + 4 * (size_t)i);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* 6x6x2 -> conv k3 p1 (SAME) to 3, ReLU -> depthwise k2 s2 (x2) -> max pool 3 -> flatten -> linear 4 */
static void make_cnn_in(tq_qmodel *q, float in_scale, int32_t in_zp) {
    static float Wc[3 * 9 * 2], Bc[3], Sc[3], Wd[6 * 4], Bd[6], Sd[6], Wl[4 * 6], Bl[4], Sl[4];
    tq_rng r;
    tq_rng_seed(&r, 81);
    for (size_t i = 0; i < sizeof Wc / sizeof Wc[0]; i++) Wc[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wd / sizeof Wd[0]; i++) Wd[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wl / sizeof Wl[0]; i++) Wl[i] = tq_rng_uniform_in(&r, -1, 1);
    for (int i = 0; i < 3; i++) Bc[i] = tq_rng_uniform_in(&r, -1, 1), Sc[i] = 0.01f * (float)(i + 1);
    for (int i = 0; i < 6; i++) Bd[i] = tq_rng_uniform_in(&r, -1, 1), Sd[i] = 0.02f;
    for (int i = 0; i < 4; i++) Bl[i] = tq_rng_uniform_in(&r, -1, 1), Sl[i] = 0.03f + 0.001f * (float)i;
    tq_qlayer_src src[5] = {
        {.relu = 1, .w_bits = 8, .W = Wc, .b = Bc, .w_scale = Sc, .in_scale = in_scale, .out_scale = 0.05f, .in_zp = in_zp,
         .out_zp = -128, .kind = TQ_S8_CONV, .in_h = 6, .in_w = 6, .in_c = 2, .out_h = 6, .out_w = 6, .out_c = 3, .k = 3,
         .stride = 1, .pad = 1},
        {.w_bits = 4, .W = Wd, .b = Bd, .w_scale = Sd, .in_scale = 0.05f, .out_scale = 0.07f, .in_zp = -128, .out_zp = 3,
         .kind = TQ_S8_DEPTHWISE, .in_h = 6, .in_w = 6, .in_c = 3, .out_h = 3, .out_w = 3, .out_c = 6, .k = 2, .stride = 2},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_MAXPOOL, .in_h = 3, .in_w = 3, .in_c = 6,
         .out_h = 1, .out_w = 1, .out_c = 6, .k = 3, .stride = 3},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 6,
         .out_h = 1, .out_w = 1, .out_c = 6, .k = 1, .stride = 1},
        {.in = 6, .out = 4, .relu = 1, .w_bits = 8, .W = Wl, .b = Bl, .w_scale = Sl, .in_scale = 0.07f, .out_scale = 0.1f, .in_zp = 3,
         .out_zp = -2},
    };
    assert_int_equal(tq_qmodel_convert(q, "6x6x2-c3k3p1r-d2k2s2-m3-4r", src, 5), TQ_OK);
}

static void make_cnn(tq_qmodel *q) { make_cnn_in(q, 1.0f / 255, -128); }

static void written_model_reads_back(void **state) {
    (void)state;
    tq_qmodel q;
    make_cnn(&q);
    char path[128];
    snprintf(path, sizeof path, "%s/m.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, path, 0), TQ_OK);
    unsigned char *data;
    size_t len;
    assert_int_equal(tq_file_read_all(path, 1 << 20, &data, &len), TQ_OK);
    B = data, BN = len;
    assert_memory_equal(B + 4, "TFL3", 4);
    size_t model = deref(0);
    assert_int_equal(field_u32(model, 0, 0), 3); /* schema version */
    size_t codes = table_at(model, 1), subgraphs = table_at(model, 2), buffers = table_at(model, 4);
    assert_int_equal(vec_len(subgraphs), 1);
    size_t sg = vec_table(subgraphs, 0), tensors = table_at(sg, 0), ops = table_at(sg, 3);
    /* conv (SAME: k3 p1 s1), depthwise, max pool, reshape, fully connected */
    const int want_code[5] = {3, 4, 17, 22, 9}, want_opt[5] = {1, 2, 5, 17, 8};
    assert_int_equal(vec_len(ops), 5);
    for (uint32_t i = 0; i < 5; i++) {
        size_t op = vec_table(ops, i);
        size_t code = vec_table(codes, field_u32(op, 0, 0));
        assert_int_equal(field_u8(code, 0), want_code[i]);
        assert_int_equal(field_u8(op, 3), want_opt[i]);
    }
    /* the conv's options: SAME, stride 1, RELU; the depthwise's: VALID, stride 2, multiplier 2 */
    size_t conv = vec_table(ops, 0), copt = table_at(conv, 4);
    assert_int_equal(field_u8(copt, 0), 0);
    assert_int_equal(field_u32(copt, 1, 0), 1);
    assert_int_equal(field_u8(copt, 3), 1);
    size_t dw = vec_table(ops, 1), dopt = table_at(dw, 4);
    assert_int_equal(field_u8(dopt, 0), 1);
    assert_int_equal(field_u32(dopt, 2, 0), 2);
    assert_int_equal(field_u32(dopt, 3, 0), 2);
    size_t pool = vec_table(ops, 2), popt = table_at(pool, 4);
    assert_int_equal(field_u32(popt, 3, 0), 3); /* filter_width */
    /* the tensors each operator names: shapes, types, quantization, and the weights' bytes */
    const uint32_t with_weights[3] = {0, 1, 4}; /* conv, depthwise, dense: operator i is layer i */
    for (int j = 0; j < 3; j++) {
        const uint32_t i = with_weights[j];
        const tq_qlayer *L = &q.layer[i];
        size_t op = vec_table(ops, i), in = table_at(op, 1);
        size_t wt = vec_table(tensors, (uint32_t)vec_i32(in, 1)), bt = vec_table(tensors, (uint32_t)vec_i32(in, 2));
        assert_int_equal(field_u8(wt, 1), 9); /* INT8 */
        assert_int_equal(field_u8(bt, 1), 2); /* INT32 */
        size_t shape = table_at(wt, 0);
        const int32_t want_shape[3][4] = {{3, 3, 3, 2}, {1, 2, 2, 6}, {4, 6, 0, 0}};
        const int32_t *ws = want_shape[j];
        assert_int_equal(vec_len(shape), i == 4 ? 2 : 4);
        for (uint32_t k = 0; k < vec_len(shape); k++) assert_int_equal(vec_i32(shape, k), ws[k]);
        size_t qp = table_at(wt, 4), scales = table_at(qp, 2);
        assert_int_equal(field_u32(qp, 6, 0), i == 1 ? 3 : 0); /* quantized dimension: 1HWO's is 3 */
        uint32_t nq = vec_len(scales);
        assert_true(nq == (uint32_t)L->out_c || (nq == 1 && i == 1)); /* the depthwise's scales are all equal: one */
        for (uint32_t k = 0; k < nq; k++) assert_true(vec_f32(scales, k) == L->w_scale[k]);
        /* the weights' buffer: every weight as its int8 value (4-bit ones unpacked) */
        size_t buf = vec_table(buffers, field_u32(wt, 2, 0)), bytes = table_at(buf, 0);
        assert_int_equal(vec_len(bytes), tq_qlayer_weights(L));
        assert_int_equal((bytes + 4) % 16, 0); /* the data 16-aligned, as the schema asks */
        for (size_t k = 0; k < tq_qlayer_weights(L); k++)
            assert_int_equal((int8_t)B[bytes + 4 + k], tq_s8_unpack(L->w, tq_qlayer_storage_bits(L->w_bits), k));
        size_t bbuf = vec_table(buffers, field_u32(bt, 2, 0)), bb = table_at(bbuf, 0);
        assert_int_equal(vec_len(bb), 4 * (size_t)L->out_c);
        assert_memory_equal(B + bb + 4, L->bias, 4 * (size_t)L->out_c);
        /* the output's scale and zero point */
        size_t out = vec_table(tensors, (uint32_t)vec_i32(table_at(op, 2), 0)), oq = table_at(out, 4);
        assert_true(vec_f32(table_at(oq, 2), 0) == L->out_scale);
        size_t zp = table_at(oq, 3);
        assert_int_equal((int64_t)((uint64_t)u32(zp + 4) | (uint64_t)u32(zp + 8) << 32), L->out_zp);
    }
    /* the subgraph's input is the first layer's int8 input at s = 1/255, z = -128 */
    size_t input = vec_table(tensors, (uint32_t)vec_i32(table_at(sg, 1), 0)), iq = table_at(input, 4);
    assert_true(vec_f32(table_at(iq, 2), 0) == 1.0f / 255);
    tq_free(data);
    /* the same model, the same bytes */
    char again[128];
    snprintf(again, sizeof again, "%s/again.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, again, 0), TQ_OK);
    assert_same_bytes(path, again);
    /* with a SOFTMAX: one more operator, on the logits, into int8 probabilities at 1/256, -128 */
    snprintf(again, sizeof again, "%s/softmax.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, again, 1), TQ_OK);
    assert_int_equal(tq_file_read_all(again, 1 << 20, &data, &len), TQ_OK);
    B = data, BN = len;
    model = deref(0);
    codes = table_at(model, 1);
    sg = vec_table(table_at(model, 2), 0), tensors = table_at(sg, 0), ops = table_at(sg, 3);
    assert_int_equal(vec_len(ops), 6);
    size_t sm = vec_table(ops, 5);
    assert_int_equal(field_u8(vec_table(codes, field_u32(sm, 0, 0)), 0), 25);
    assert_int_equal(field_u8(sm, 3), 9);
    assert_true(field_u32(table_at(sm, 4), 0, 0) == 0x3f800000u); /* beta 1.0f */
    assert_int_equal(vec_i32(table_at(sm, 1), 0), vec_i32(table_at(vec_table(ops, 4), 2), 0)); /* reads the logits */
    int32_t prob = vec_i32(table_at(sm, 2), 0);
    assert_int_equal(vec_i32(table_at(sg, 2), 0), prob); /* the subgraph's output */
    size_t pq = table_at(vec_table(tensors, (uint32_t)prob), 4);
    assert_true(vec_f32(table_at(pq, 2), 0) == 1.0f / 256);
    assert_int_equal((int32_t)u32(table_at(pq, 3) + 4), -128);
    {
        /* the fuzzer's find: the probabilities' shape emptied (its vector's length 0): refused
         * naming the SOFTMAX, not read at index -1 */
        tq_qmodel bad;
        unsigned char *cp = tq_malloc(len);
        memcpy(cp, data, len);
        const size_t shape = table_at(vec_table(tensors, (uint32_t)prob), 0);
        memset(cp + shape, 0, 4);
        assert_int_equal(tq_import_tflite_bytes(&bad, cp, len, "noshape.tflite", NULL), TQ_E_ARG);
        assert_non_null(strstr(tq_last_error(), "SOFTMAX"));
        tq_free(cp);
    }
    tq_free(data);
    /* a path that cannot be written: refused, nothing left */
    snprintf(path, sizeof path, "%s/no/m.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, path, 0), TQ_E_IO);
    assert_int_equal(tq_export_tflite(NULL, path, 0), TQ_E_ARG);
    /* a multiplier that is not the one the scales give: TFLite would compute another */
    q.layer[4].mult[0]++;
    snprintf(path, sizeof path, "%s/m2.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, path, 0), TQ_E_FORMAT);
    tq_qmodel_free(&q);
}

/* The importer reads the writer's files back into the same integer model: every layer's kind,
 * shape, weights, biases, multipliers, zero points and scales, a model whose input is not pixels
 * too (refused by the pixel paths, which would feed it p - 128); and damaged files (every prefix,
 * bytes changed at random) are refused, never read past. */
static void import_reads_the_export_back(void **state) {
    (void)state;
    tq_qmodel q, back;
    make_cnn_in(&q, 0.02f, 5); /* an input that is not pixels */
    char path[128];
    snprintf(path, sizeof path, "%s/rt.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, path, 1), TQ_OK); /* with a SOFTMAX, which the import computes too */
    tq_tflite_info info;
    assert_int_equal(tq_import_tflite(&back, path, &info), TQ_OK);
    assert_int_equal(info.softmax, 1);
    assert_int_equal(back.n_layers, q.n_layers + 1);
    {
        const tq_qlayer *sm = &back.layer[q.n_layers];
        int32_t M0, sh;
        assert_int_equal(tq_softmax_multiplier(q.layer[q.n_layers - 1].out_scale, &M0, &sh), 0);
        assert_true(sm->kind == TQ_S8_SOFTMAX && sm->mult[0] == M0 && sm->shift[0] == sh && sm->out_zp == -128 &&
                    sm->out_scale == 1.0f / 256 && sm->in == 4 && sm->in_zp == q.layer[q.n_layers - 1].out_zp);
        /* written again (the flag's SOFTMAX is the model's own now: not a second one), read again */
        char again[160];
        tq_qmodel twice;
        snprintf(again, sizeof again, "%s/rt2.tflite", dir);
        assert_int_equal(tq_export_tflite(&back, again, 1), TQ_OK);
        assert_int_equal(tq_import_tflite(&twice, again, &info), TQ_OK);
        assert_int_equal(twice.n_layers, back.n_layers);
        assert_true(twice.layer[q.n_layers].kind == TQ_S8_SOFTMAX && twice.layer[q.n_layers].mult[0] == M0);
        tq_qmodel_free(&twice);
    }
    for (int l = 0; l < q.n_layers; l++) {
        const tq_qlayer *a = &q.layer[l], *b = &back.layer[l];
        assert_int_equal(a->kind, b->kind);
        assert_true(a->in == b->in && a->out == b->out && a->relu == b->relu && a->k == b->k && a->stride == b->stride && a->pad == b->pad);
        assert_true(a->in_zp == b->in_zp && a->out_zp == b->out_zp && a->in_scale == b->in_scale && a->out_scale == b->out_scale);
        for (size_t i = 0; i < tq_qlayer_weights(a); i++)
            assert_int_equal(tq_s8_unpack(a->w, tq_qlayer_storage_bits(a->w_bits), i), tq_s8_unpack(b->w, 8, i));
        for (int32_t o = 0; o < tq_qlayer_channels(a); o++) {
            assert_int_equal(a->bias[o], b->bias[o]);
            assert_int_equal(a->mult[o], b->mult[o]);
            assert_int_equal(a->shift[o], b->shift[o]);
            assert_true(a->w_scale[o] == b->w_scale[o]);
        }
    }
    /* the same outputs from the runtime on random inputs */
    size_t sb = tq_int8_net_scratch_bytes(&q.net);
    void *scratch = tq_malloc(sb);
    tq_rng r;
    tq_rng_seed(&r, 4);
    for (int t = 0; t < 20; t++) {
        int8_t x[72], y1[4], y2[4], p1[4];
        for (int i = 0; i < 72; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        assert_int_equal(tq_int8_net_run(&q.net, x, y1, scratch, sb), TQ_INT8_OK);
        assert_int_equal(tq_int8_net_run(&back.net, x, y2, scratch, sb), TQ_INT8_OK);
        tq_softmax_s8_ref(&back.view[q.n_layers], y1, p1); /* the logits, then the softmax */
        assert_memory_equal(p1, y2, 4);
    }
    tq_free(scratch);
    /* its input is not pixels: the pixel paths refuse it, naming its quantization */
    assert_int_equal(tq_qmodel_check_pixels(&back, "infer"), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "zero point 5"));
    tq_qfast *f;
    assert_int_equal(tq_qfast_init(&f, &back), TQ_E_ARG);
    tq_qmodel_free(&back);
    /* damaged files */
    unsigned char *data;
    size_t len;
    assert_int_equal(tq_file_read_all(path, 1 << 20, &data, &len), TQ_OK);
    for (size_t n = 0; n < len; n += 7) {
        tq_status st = tq_import_tflite_bytes(&back, data, n, "cut.tflite", NULL);
        if (st == TQ_OK) tq_qmodel_free(&back);
        else assert_non_null(strstr(tq_last_error(), "cut.tflite"));
    }
    unsigned char *bent = tq_malloc(len);
    int refused = 0;
    for (int t = 0; t < 300; t++) {
        memcpy(bent, data, len);
        for (int k = 0; k < 3; k++) bent[tq_rng_below(&r, (uint32_t)len)] = (unsigned char)tq_rng_below(&r, 256);
        if (tq_import_tflite_bytes(&back, bent, len, "bent.tflite", NULL) == TQ_OK) tq_qmodel_free(&back);
        else refused++;
    }
    assert_true(refused > 0);
    assert_int_equal(tq_import_tflite_bytes(&back, data, 6, "short.tflite", NULL), TQ_E_FORMAT);
    /* a file whose scales multiply past float's range (the fuzzer's find): refused, not converted
     * into a bias of NaN (which would be undefined as an int32) */
    {
        float W1[2] = {1e30f, 0.0f}, b1[1] = {INFINITY}, s1[1] = {1e30f};
        tq_qlayer_src big = {.in = 2, .out = 1, .w_bits = 8, .W = W1, .b = b1, .w_scale = s1, .in_scale = 1e30f, .out_scale = 1.0f,
                             .in_zp = 0, .out_zp = 0};
        tq_qmodel bad;
        assert_int_equal(tq_qmodel_convert(&bad, "2-1", &big, 1), TQ_E_NUMERIC);
        /* an imported layer's integers are taken as they are, but a weight of -128 is outside
         * the narrow range every tinyqat kernel assumes */
        const int8_t wq[2] = {5, -128};
        const int32_t bq[1] = {7};
        float s2[1] = {0.1f};
        tq_qlayer_src imp = {.in = 2, .out = 1, .w_bits = 8, .w_scale = s2, .in_scale = 0.5f, .out_scale = 1.0f, .Wq = wq, .bq = bq};
        assert_int_equal(tq_qmodel_convert(&bad, "2-1", &imp, 1), TQ_E_ARG);
        assert_non_null(strstr(tq_last_error(), "-128"));
        const int8_t ok_w[2] = {5, -127};
        imp.Wq = ok_w;
        assert_int_equal(tq_qmodel_convert(&bad, "2-1", &imp, 1), TQ_OK);
        assert_int_equal(tq_s8_unpack(bad.layer[0].w, 8, 1), -127);
        assert_int_equal(bad.layer[0].bias[0], 7);
        tq_qmodel_free(&bad);
    }
    tq_free(bent);
    tq_free(data);
    tq_qmodel_free(&q);
}

/* A graph through TFLite and back: a stride-2 convolution whose SAME padding puts its odd column
 * and row after (0 before, 1 after), a 3x1 convolution, the add of the two (TFLite's ADD, a fused
 * ReLU6), a global average pool, the classifier. The import gives the same layers, integers and
 * multipliers (the add's derived from the three scales, as TFLite derives them), and the runtime
 * the same outputs. */
/* A first layer reading the network's input as both its inputs (a concat of the input with
 * itself): the exporter names the input tensor for both (there is no layer before it whose
 * output it could name), and the importer, which takes a concat of earlier layers' outputs
 * only, refuses the file naming the operator. */
static void input_read_twice_through_tflite(void **state) {
    (void)state;
    static float W[3 * 8], Bt[3], S[3] = {0.01f, 0.01f, 0.01f};
    for (int i = 0; i < 24; i++) W[i] = (float)((i * 7) % 11 - 5) / 5.0f;
    tq_qlayer_src src[3] = {
        {.in_scale = 0.02f, .in2_scale = 0.02f, .out_scale = 0.02f, .in_zp = 3, .in2_zp = 3, .out_zp = 3, .kind = TQ_S8_CONCAT,
         .in_h = 2, .in_w = 2, .in_c = 1, .out_h = 2, .out_w = 2, .out_c = 2, .k = 1, .stride = 1, .in2_c = 1},
        {.in_scale = 0.02f, .out_scale = 0.02f, .in_zp = 3, .out_zp = 3, .kind = TQ_S8_FLATTEN, .in_h = 2, .in_w = 2, .in_c = 2,
         .out_h = 1, .out_w = 1, .out_c = 8, .k = 1, .stride = 1},
        {.in = 8, .out = 3, .w_bits = 8, .W = W, .b = Bt, .w_scale = S, .in_scale = 0.02f, .out_scale = 0.05f, .in_zp = 3, .out_zp = 0},
    };
    tq_qmodel q, back;
    assert_int_equal(tq_qmodel_convert(&q, "twice", src, 3), TQ_OK);
    char path[128];
    snprintf(path, sizeof path, "%s/twice.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, path, 0), TQ_OK);
    assert_int_not_equal(tq_import_tflite(&back, path, NULL), TQ_OK);
    assert_non_null(strstr(tq_last_error(), "operator 0 (CONCATENATION, code 2)"));
    tq_qmodel_free(&q);
}

static void graph_through_tflite(void **state) {
    (void)state;
    static float W0[4 * 9 * 2], W1[4 * 3 * 4], Wl[3 * 4], Bs[4], S[4] = {0.01f, 0.02f, 0.01f, 0.03f};
    tq_rng r;
    tq_rng_seed(&r, 7);
    for (size_t i = 0; i < sizeof W0 / sizeof W0[0]; i++) W0[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof W1 / sizeof W1[0]; i++) W1[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wl / sizeof Wl[0]; i++) Wl[i] = tq_rng_uniform_in(&r, -0.03f, 0.03f);
    for (int i = 0; i < 4; i++) Bs[i] = tq_rng_uniform_in(&r, -0.05f, 0.05f);
    float Sl[3] = {0.03f / 127, 0.03f / 127, 0.03f / 127};
    tq_qlayer_src src[6] = {
        {.relu = 1, .w_bits = 8, .W = W0, .b = Bs, .w_scale = S, .in_scale = 0.02f, .out_scale = 0.05f, .in_zp = 3, .out_zp = -128,
         .kind = TQ_S8_CONV, .in_h = 6, .in_w = 6, .in_c = 2, .out_h = 3, .out_w = 3, .out_c = 4, .k = 3, .stride = 2, .pad = 0},
        {.w_bits = 8, .W = W1, .b = Bs, .w_scale = S, .in_scale = 0.05f, .out_scale = 0.04f, .in_zp = -128, .out_zp = 2,
         .kind = TQ_S8_CONV, .in_h = 3, .in_w = 3, .in_c = 4, .out_h = 3, .out_w = 3, .out_c = 4, .k = 3, .stride = 1, .pad = 1,
         .kw = 1, .stride_w = 1, .pad_w = 0},
        {.relu = 2, .in_scale = 0.04f, .in2_scale = 0.05f, .out_scale = 0.07f, .in_zp = 2, .in2_zp = -128, .out_zp = -128,
         .kind = TQ_S8_ADD, .in_h = 3, .in_w = 3, .in_c = 4, .out_h = 3, .out_w = 3, .out_c = 4, .k = 1, .stride = 1, .src = {2, 1}},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = -128, .out_zp = -128, .kind = TQ_S8_AVGPOOL, .in_h = 3, .in_w = 3, .in_c = 4,
         .out_h = 1, .out_w = 1, .out_c = 4, .k = 3, .stride = 1},
        {.in_scale = 0.07f, .out_scale = 0.07f, .in_zp = -128, .out_zp = -128, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = 4,
         .out_h = 1, .out_w = 1, .out_c = 4, .k = 1, .stride = 1},
        {.in = 4, .out = 3, .w_bits = 8, .W = Wl, .b = Bs, .w_scale = Sl, .in_scale = 0.07f, .out_scale = 0.05f, .in_zp = -128,
         .out_zp = 0},
    };
    tq_qmodel q, back;
    assert_int_equal(tq_qmodel_convert(&q, "graph", src, 6), TQ_OK);
    /* the add's ReLU6: from z_y = -128 to -128 + round(6 / 0.07) = -128 + 86 */
    assert_int_equal(q.layer[2].act_min, -128), assert_int_equal(q.layer[2].act_max, -42);
    char path[128];
    snprintf(path, sizeof path, "%s/graph.tflite", dir);
    assert_int_equal(tq_export_tflite(&q, path, 0), TQ_OK);
    assert_int_equal(tq_import_tflite(&back, path, NULL), TQ_OK);
    assert_int_equal(back.n_layers, 6);
    for (int l = 0; l < 6; l++) {
        const tq_qlayer *a = &q.layer[l], *b = &back.layer[l];
        assert_int_equal(a->kind, b->kind);
        assert_true(a->in == b->in && a->out == b->out && a->relu == b->relu && a->k == b->k && a->stride == b->stride && a->pad == b->pad);
        assert_true(a->out_h == b->out_h && a->out_w == b->out_w && a->kw == b->kw && a->stride_w == b->stride_w && a->pad_w == b->pad_w);
        assert_true(a->src[0] == b->src[0] && a->src[1] == b->src[1] && a->in2_zp == b->in2_zp && a->in2_scale == b->in2_scale);
        assert_true(a->act_min == b->act_min && a->act_max == b->act_max);
        for (size_t i = 0; i < tq_qlayer_weights(a); i++) assert_int_equal(tq_s8_unpack(a->w, 8, i), tq_s8_unpack(b->w, 8, i));
        for (int32_t o = 0; o < tq_qlayer_requants(a); o++) {
            assert_int_equal(a->mult[o], b->mult[o]);
            assert_int_equal(a->shift[o], b->shift[o]);
        }
    }
    size_t sb = tq_int8_net_scratch_bytes(&q.net);
    void *scratch = tq_malloc(sb);
    for (int t = 0; t < 20; t++) {
        int8_t x[72], y1[3], y2[3];
        for (int i = 0; i < 72; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
        assert_int_equal(tq_int8_net_run(&q.net, x, y1, scratch, sb), TQ_INT8_OK);
        assert_int_equal(tq_int8_net_run(&back.net, x, y2, scratch, sb), TQ_INT8_OK);
        assert_memory_equal(y1, y2, 3);
    }
    tq_free(scratch);
    tq_qmodel_free(&back);
    /* damaged graph files: refused naming the file, never read past */
    unsigned char *data;
    size_t len;
    assert_int_equal(tq_file_read_all(path, 1 << 20, &data, &len), TQ_OK);
    unsigned char *bent = tq_malloc(len);
    for (int t = 0; t < 300; t++) {
        memcpy(bent, data, len);
        for (int k = 0; k < 3; k++) bent[tq_rng_below(&r, (uint32_t)len)] = (unsigned char)tq_rng_below(&r, 256);
        if (tq_import_tflite_bytes(&back, bent, len, "bent.tflite", NULL) == TQ_OK) tq_qmodel_free(&back);
        else assert_non_null(strstr(tq_last_error(), "bent.tflite"));
    }
    tq_free(bent);
    tq_free(data);
    tq_qmodel_free(&q);
}

/* A MEAN over height and width in each of its three forms (keep_dims; not, at two scales; not, at
 * one) after a convolution, then a dense layer: written as TFLite's MEAN (its axes, keep_dims, a
 * [1][C] output without) and read back to the same layers and the same outputs. */
static void mean_through_tflite(void **state) {
    (void)state;
    static float W0[4 * 9 * 2], Wl[3 * 4], Bs[4], S[4] = {0.01f, 0.02f, 0.01f, 0.03f}, Sl[3] = {0.002f, 0.002f, 0.002f};
    tq_rng r;
    tq_rng_seed(&r, 12);
    for (size_t i = 0; i < sizeof W0 / sizeof W0[0]; i++) W0[i] = tq_rng_uniform_in(&r, -1, 1);
    for (size_t i = 0; i < sizeof Wl / sizeof Wl[0]; i++) Wl[i] = tq_rng_uniform_in(&r, -0.2f, 0.2f);
    for (int i = 0; i < 4; i++) Bs[i] = tq_rng_uniform_in(&r, -0.05f, 0.05f);
    for (int form = 0; form < 3; form++) {
        const float s_mean = form == 2 ? 0.05f : 0.03f;
        const int32_t z_mean = form == 2 ? -128 : -20;
        tq_qlayer_src src[4] = {
            {.relu = 1, .w_bits = 8, .W = W0, .b = Bs, .w_scale = S, .in_scale = 0.02f, .out_scale = 0.05f, .in_zp = 3, .out_zp = -128,
             .kind = TQ_S8_CONV, .in_h = 7, .in_w = 6, .in_c = 2, .out_h = 5, .out_w = 4, .out_c = 4, .k = 3, .stride = 1},
            {.in_scale = 0.05f, .out_scale = s_mean, .in_zp = -128, .out_zp = z_mean, .kind = TQ_S8_MEAN, .in_h = 5, .in_w = 4,
             .in_c = 4, .out_h = 1, .out_w = 1, .out_c = 4, .k = 1, .stride = 1, .mean_form = form},
            {.in_scale = s_mean, .out_scale = s_mean, .in_zp = z_mean, .out_zp = z_mean, .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1,
             .in_c = 4, .out_h = 1, .out_w = 1, .out_c = 4, .k = 1, .stride = 1},
            {.in = 4, .out = 3, .w_bits = 8, .W = Wl, .b = Bs, .w_scale = Sl, .in_scale = s_mean, .out_scale = 0.01f, .in_zp = z_mean,
             .out_zp = 0},
        };
        tq_qmodel q, back;
        assert_int_equal(tq_qmodel_convert(&q, "mean", src, 4), TQ_OK);
        assert_int_equal(q.layer[1].mult[1], form);
        char path[128];
        snprintf(path, sizeof path, "%s/mean%d.tflite", dir, form);
        assert_int_equal(tq_export_tflite(&q, path, 0), TQ_OK);
        assert_int_equal(tq_import_tflite(&back, path, NULL), TQ_OK);
        /* without keep_dims the MEAN's [1][C] needs no flatten: the dense layer reads it */
        assert_int_equal(back.n_layers, form == 0 ? 4 : 3);
        const tq_qlayer *a = &q.layer[1], *b = &back.layer[1];
        assert_int_equal(b->kind, TQ_S8_MEAN);
        assert_true(a->mult[0] == b->mult[0] && a->shift[0] == b->shift[0] && a->mult[1] == b->mult[1] && a->out_zp == b->out_zp);
        size_t sb = tq_int8_net_scratch_bytes(&q.net);
        void *scratch = tq_malloc(sb);
        for (int t = 0; t < 30; t++) {
            int8_t x[84], y1[3], y2[3];
            for (int i = 0; i < 84; i++) x[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
            assert_int_equal(tq_int8_net_run(&q.net, x, y1, scratch, sb), TQ_INT8_OK);
            assert_int_equal(tq_int8_net_run(&back.net, x, y2, scratch, sb), TQ_INT8_OK);
            assert_memory_equal(y1, y2, 3);
        }
        tq_free(scratch);
        tq_qmodel_free(&back);
        /* with a float interface: a QUANTIZE first and a DEQUANTIZE last, which the import leaves out */
        assert_int_equal(tq_export_tflite(&q, path, TQ_TFLITE_FLOAT_IO), TQ_OK);
        tq_tflite_info info;
        assert_int_equal(tq_import_tflite(&back, path, &info), TQ_OK);
        assert_true(info.float_in && info.float_out && info.operators == 6); /* QUANTIZE, 4 layers, DEQUANTIZE */
        assert_int_equal(back.n_layers, form == 0 ? 4 : 3);
        assert_true(back.layer[1].kind == TQ_S8_MEAN && back.layer[1].mult[0] == q.layer[1].mult[0]);
        tq_qmodel_free(&back);
        tq_qmodel_free(&q);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(written_model_reads_back), cmocka_unit_test(import_reads_the_export_back),
                                       cmocka_unit_test(input_read_twice_through_tflite), cmocka_unit_test(graph_through_tflite),
                                       cmocka_unit_test(mean_through_tflite)};
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
