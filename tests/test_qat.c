/* QAT wiring (layers/qat.c): the int32 bias fake quant against hand-worked values and its
 * gradient, the add and average pool on the integer grid against the int8 kernels, and the quantization state through files: observers saved and loaded exactly, also
 * when two models' checkpoints are built before either is written. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "layers/model.h"
#include "src/alloc.h"
#include "src/qmodel.h"
#include "src/rng.h"

#include "tests/tq_test_tmpdir.h"

/* A 2 -> 2 layer with chosen weights and biases, quantized, its input range "observed". */
static void tiny_model(tq_model *m) {
    assert_int_equal(tq_model_init(m, "2-2"), TQ_OK);
    const float W[4] = {0.5f, -1.27f, 0.1f, 0.2f}, b[2] = {0.30002f, -0.001f};
    memcpy(TQ_DENSE(m, 0).W, W, sizeof W);
    memcpy(TQ_DENSE(m, 0).b, b, sizeof b);
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    assert_int_equal(tq_model_quantize(m, &qc), TQ_OK);
}

static tq_node *find(tq_net *net, const char *name) {
    for (size_t i = 0; i < tq_graph_size(net->g); i++)
        if (!strcmp(tq_graph_node(net->g, i)->name, name)) return tq_graph_node(net->g, i);
    return NULL;
}

/* By hand (docs/QUANTIZATION.md §7): the input scale of the first layer is 1/255; the weight
 * scales per channel are max|w|/127 = 1.27/127 = 0.01 and 0.2/127 = 0.0015748. So
 *   channel 0: s = 0.01/255 = 3.9215686e-5, b/s = 0.30002/3.9215686e-5 = 7650.51 -> 7651,
 *              b^ = 7651 * 3.9215686e-5 = 0.30003923
 *   channel 1: s = 0.0015748/255 = 6.1757e-6, b/s = -0.001/6.1757e-6 = -161.925 -> -162,
 *              b^ = -162 * 6.1756991e-6 = -0.0010004633
 * The gradient passes straight through: db = dy. */
static void bias_fake_quant_by_hand(void **state) {
    (void)state;
    tq_model m;
    tiny_model(&m);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, 1), TQ_OK);
    uint8_t px[2] = {10, 200};
    uint8_t y[1] = {1};
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, 1), TQ_OK);
    tq_node *bq = find(&net, "bias_quant");
    assert_non_null(bq);
    /* calibration: the bias passes unquantized */
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_CALIBRATE), TQ_OK);
    assert_true(bq->val[0] == TQ_DENSE(&m, 0).b[0] && bq->val[1] == TQ_DENSE(&m, 0).b[1]);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
    assert_float_equal(m.qat->wfq[0].scale[0], 0.01f, 1e-9f);
    assert_float_equal(m.qat->wfq[0].scale[1], 0.2f / 127.0f, 1e-9f);
    assert_float_equal(bq->val[0], 0.30003923f, 1e-8f);
    assert_float_equal(bq->val[1], -0.0010004633f, 1e-10f);
    assert_true(bq->val[0] != TQ_DENSE(&m, 0).b[0]); /* it did round */
    memset(m.grads, 0, m.n_params * sizeof(float));
    assert_int_equal(tq_graph_backward(net.g, net.loss), TQ_OK);
    for (int o = 0; o < 2; o++) assert_true(TQ_DENSE(&m, 0).db[o] == bq->grad[o] && bq->grad[o] != 0.0f);
    tq_net_free(&net);
    tq_model_free(&m);
}

/* A stage with batch norm takes no bias (beta is it): given one, the graph's status says so
 * instead of the bias being dropped. */
static void stage_refuses_a_bias_with_batch_norm(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x1-c2k3b-2"), TQ_OK);
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
    tq_unit *st = &m.unit[0];
    float x[36] = {0}, W[18] = {0}, b[2] = {0}, db[2], gm[2] = {1, 1}, bt[2] = {0};
    tq_graph *g = tq_graph_new();
    tq_node *xn = tq_leaf(g, "x", 1, 36, x, NULL), *Wn = tq_leaf(g, "W", 2, 9, W, NULL), *bn = tq_leaf(g, "b", 1, 2, b, db);
    tq_node *gn = tq_leaf(g, "gamma", 1, 2, gm, NULL), *btn = tq_leaf(g, "beta", 1, 2, bt, NULL);
    assert_null(tq_qat_stage(g, m.qat, 0, xn, Wn, bn, gn, btn, &st->bn_state, 0, &st->conv));
    assert_int_equal(tq_graph_status(g), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "a bias and batch norm"));
    tq_graph_free(g);
    /* without the bias it builds */
    g = tq_graph_new();
    xn = tq_leaf(g, "x", 1, 36, x, NULL), Wn = tq_leaf(g, "W", 2, 9, W, NULL);
    gn = tq_leaf(g, "gamma", 1, 2, gm, NULL), btn = tq_leaf(g, "beta", 1, 2, bt, NULL);
    assert_non_null(tq_qat_stage(g, m.qat, 0, xn, Wn, NULL, gn, btn, &st->bn_state, 0, &st->conv));
    assert_int_equal(tq_graph_status(g), TQ_OK);
    tq_graph_free(g);
    tq_model_free(&m);
}

static void observers_round_trip(void **state) {
    (void)state;
    tq_model a, b, a2;
    tiny_model(&a);
    tiny_model(&b);
    a.qat->aobs[0] = (tq_observer){.kind = TQ_OBS_EMA, .min = -0.75f, .max = 2.5f, .n_seen = 17, .frozen = 1, .momentum = 0.01f};
    b.qat->aobs[0] = (tq_observer){.kind = TQ_OBS_EMA, .min = -9.0f, .max = 9.0f, .n_seen = 3, .frozen = 0, .momentum = 0.01f};
    /* both checkpoints exist before either is written: each must hold its own observer state */
    tq_ckpt ca, cb;
    tq_ckpt_init(&ca);
    tq_ckpt_init(&cb);
    assert_int_equal(tq_model_to_ckpt(&a, &ca), TQ_OK);
    assert_int_equal(tq_model_to_ckpt(&b, &cb), TQ_OK);
    char pa[128], pb[128];
    snprintf(pa, sizeof pa, "%s/a.tqf", dir);
    snprintf(pb, sizeof pb, "%s/b.tqf", dir);
    assert_int_equal(tq_ckpt_save(&ca, pa), TQ_OK);
    assert_int_equal(tq_ckpt_save(&cb, pb), TQ_OK);
    tq_ckpt_free(&ca);
    tq_ckpt_free(&cb);
    assert_int_equal(tq_model_load(&a2, pa), TQ_OK);
    assert_non_null(a2.qat);
    const tq_observer *o = &a2.qat->aobs[0];
    assert_true(o->min == -0.75f && o->max == 2.5f && o->n_seen == 17 && o->frozen == 1);
    assert_int_equal(a2.qat->cfg.w_bits, 8);
    assert_int_equal(a2.qat->cfg.obs, TQ_OBS_EMA);
    /* the activation scale follows from the loaded range: (2.5 + 0.75) / 255 */
    assert_float_equal(a2.qat->afq[0].scale[0], 3.25f / 255.0f, 1e-7f);
    assert_memory_equal(a.params, a2.params, a.n_params * sizeof(float));
    tq_model_free(&a2);
    assert_int_equal(tq_model_load(&a2, pb), TQ_OK);
    assert_true(a2.qat->aobs[0].min == -9.0f && a2.qat->aobs[0].n_seen == 3 && a2.qat->aobs[0].frozen == 0);
    tq_model_free(&a2);
    tq_model_free(&a);
    tq_model_free(&b);
}

/* Every pair of integers (q_a, q_b) through the simulated add, against the int8 ADD kernel
 * (runtime/kernels_ref.c) on the same integers, for scales where the two roundings of TFLite's
 * ADD (each input to the common scale, then the sum to the output's) differ from rounding the
 * float sum once: the simulation must follow the kernel, not the real-number sum. With ReLU too. */
static void add_on_the_integer_grid(void **state) {
    (void)state;
    const float scales[3][3] = {{0.02f, 0.013f, 0.03f}, {0.05f, 0.05f, 0.07f}, {0.011f, 0.047f, 0.019f}};
    const int32_t zps[3][3] = {{-3, 17, -128}, {0, -128, 5}, {100, -20, -60}};
    enum { N = 256 * 256 };
    float *a = tq_malloc(N * sizeof(float)), *b = tq_malloc(N * sizeof(float));
    int8_t *qa = tq_malloc(N), *qb = tq_malloc(N), *qy = tq_malloc(N);
    assert_non_null(a), assert_non_null(b), assert_non_null(qa), assert_non_null(qb), assert_non_null(qy);
    long differs_from_one_rounding = 0;
    for (int t = 0; t < 3; t++)
        for (int relu = 0; relu < 2; relu++) {
            tq_qat_cfg cfg;
            tq_qat_cfg_defaults(&cfg);
            tq_qat *q;
            const int ch[4] = {1, 1, 1, 2}, from[4] = {-1, -1, 0, 2};
            assert_int_equal(tq_qat_new(&q, &cfg, 4, 3, ch, from), TQ_OK);
            for (int j = 0; j < 3; j++) {
                q->afq[j].scale[0] = scales[t][j], q->afq[j].zero_point[0] = zps[t][j];
                q->aobs[j].n_seen = 1; /* a range seen: the forward quantizes */
            }
            for (int i = 0; i < N; i++) {
                qa[i] = (int8_t)(i % 256 - 128), qb[i] = (int8_t)(i / 256 - 128);
                a[i] = (float)(qa[i] - zps[t][0]) * scales[t][0];
                b[i] = (float)(qb[i] - zps[t][1]) * scales[t][1];
            }
            tq_graph *g = tq_graph_new();
            tq_node *an = tq_leaf(g, "a", 1, N, a, NULL), *bn = tq_leaf(g, "b", 1, N, b, NULL);
            tq_node *y = tq_qat_add(g, q, 2, an, bn, 1, relu);
            assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
            int32_t M0[3], sh[3];
            tq_add_multipliers(scales[t][0], scales[t][1], scales[t][2], M0, sh);
            const tq_s8_layer L = {.in = N, .out = N, .mult = M0, .shift = sh, .in_zp = zps[t][0], .in2_zp = zps[t][1],
                                   .out_zp = zps[t][2], .act_min = relu ? zps[t][2] : -128, .act_max = 127, .kind = TQ_S8_ADD,
                                   .in_h = 1, .in_w = 1, .in_c = N, .out_h = 1, .out_w = 1, .out_c = N};
            tq_add_s8_ref(&L, qa, qb, qy);
            for (int i = 0; i < N; i++) {
                float v = y->val[i] / scales[t][2] + (float)zps[t][2];
                if (fabsf(v - nearbyintf(v)) > 1e-3f) fail_msg("scales %d: element %d is off the output's grid (%g)", t, i, v);
                if ((int)nearbyintf(v) != qy[i])
                    fail_msg("scales %d relu %d: %d + %d: simulation %d, int8 ADD %d", t, relu, qa[i], qb[i], (int)nearbyintf(v), qy[i]);
                float lo = relu ? (float)zps[t][2] : -128.0f, once = (float)zps[t][2] + nearbyintf((a[i] + b[i]) / scales[t][2]);
                once = once < lo ? lo : once > 127.0f ? 127.0f : once;
                differs_from_one_rounding += (int)once != qy[i];
            }
            tq_graph_free(g);
            tq_qat_free(q);
        }
    assert_true(differs_from_one_rounding > 0); /* the test can tell the two apart */
    tq_free(a), tq_free(b), tq_free(qa), tq_free(qb), tq_free(qy);
}

/* Inputs off any int8 grid (a damaged model's scales: fuzz_model found 8.3e13 / s cast to int,
 * which is undefined): each input's q - z saturates at +-255 as the int8 ADD's would, inf and NaN
 * included, and the output stays on the output's grid within [-128, 127]. The sanitizer builds
 * catch the cast. */
static void add_far_off_the_grid(void **state) {
    (void)state;
    tq_qat_cfg cfg;
    tq_qat_cfg_defaults(&cfg);
    tq_qat *q;
    const int ch[4] = {1, 1, 1, 2}, from[4] = {-1, -1, 0, 2};
    assert_int_equal(tq_qat_new(&q, &cfg, 4, 3, ch, from), TQ_OK);
    const float s[3] = {0.02f, 0.03f, 0.05f};
    for (int j = 0; j < 3; j++) q->afq[j].scale[0] = s[j], q->afq[j].zero_point[0] = 0, q->aobs[j].n_seen = 1;
    float a[6] = {8.3e13f, -8.3e13f, INFINITY, 1.0f, 3.0e38f, -INFINITY}, b[6] = {0.0f, 1.0f, 0.0f, -INFINITY, 3.0e38f, 0.5f};
    tq_graph *g = tq_graph_new();
    tq_node *an = tq_leaf(g, "a", 1, 6, a, NULL), *bn = tq_leaf(g, "b", 1, 6, b, NULL);
    tq_node *y = tq_qat_add(g, q, 2, an, bn, 1, 0);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    for (int i = 0; i < 6; i++) {
        if (y->val[i] != y->val[i]) continue; /* a NaN sum (inf - inf) is left for the loss to report */
        float v = y->val[i] / s[2];
        assert_true(fabsf(v - nearbyintf(v)) < 1e-3f && v >= -128.0f && v <= 127.0f);
    }
    /* saturated at q - z = +-255 (5.1 here), not wrapped: 102 and about -82 output steps */
    assert_true(y->val[0] > 100.0f * s[2] && y->val[1] < -80.0f * s[2]);
    tq_graph_free(g);
    tq_qat_free(q);
}

/* The average pool on the grid: window sums the int8 pool sees, rounded half away from zero as
 * its kernel does (a float average rounded to even differs at the halves, which the first
 * windows hold). */
static void avgpool_on_the_integer_grid(void **state) {
    (void)state;
    tq_qat_cfg cfg;
    tq_qat_cfg_defaults(&cfg);
    tq_qat *q;
    const int ch[2] = {4, 2};
    assert_int_equal(tq_qat_new(&q, &cfg, 2, 1, ch, NULL), TQ_OK);
    q->afq[0].scale[0] = 0.037f, q->afq[0].zero_point[0] = -7;
    q->aobs[0].n_seen = 1;
    enum { B = 600, C = 4 }; /* 2x2 windows of 4 channels: B images of 2x2x4 */
    float *x = tq_malloc(B * 16 * sizeof(float));
    int8_t *qx = tq_malloc(B * 16), qy[C];
    assert_non_null(x), assert_non_null(qx);
    tq_rng r;
    tq_rng_seed(&r, 4);
    for (int i = 0; i < B * 16; i++) qx[i] = (int8_t)((int)tq_rng_below(&r, 256) - 128);
    for (int i = 0; i < 4 * 16; i++) qx[i] = (int8_t)((i / 4) % 2 ? -126 - i / 32 : -127 + i / 32); /* sums of 2 mod 4 */
    for (int i = 0; i < B * 16; i++) x[i] = (float)(qx[i] + 7) * 0.037f;
    tq_pool_shape ps;
    assert_int_equal(tq_pool_shape_init(&ps, 2, 2, C, 2, 2, 1), TQ_OK);
    tq_graph *g = tq_graph_new();
    tq_node *y = tq_qat_avgpool(g, q, 0, tq_leaf(g, "x", B, 16, x, NULL), &ps);
    assert_int_equal(tq_graph_forward(g, TQ_RUN_EVAL), TQ_OK);
    const tq_s8_layer L = {.in = 16, .out = C, .in_zp = -7, .out_zp = -7, .act_min = -128, .act_max = 127, .kind = TQ_S8_AVGPOOL,
                           .in_h = 2, .in_w = 2, .in_c = C, .out_h = 1, .out_w = 1, .out_c = C, .k = 2, .stride = 2};
    int halves = 0;
    for (int b = 0; b < B; b++) {
        tq_avgpool_s8_ref(&L, qx + b * 16, qy);
        for (int c = 0; c < C; c++) {
            int got = (int)nearbyintf(y->val[b * C + c] / 0.037f) - 7, sum = 0;
            for (int p = 0; p < 4; p++) sum += qx[b * 16 + p * C + c];
            halves += (sum % 4 + 4) % 4 == 2;
            if (got != qy[c]) fail_msg("image %d channel %d: simulation %d, int8 pool %d", b, c, got, qy[c]);
        }
    }
    assert_true(halves >= 8);
    tq_graph_free(g);
    tq_qat_free(q);
    tq_free(x), tq_free(qx);
}


/* 16-bit activations in evaluation (docs/QUANTIZATION.md §19): the simulation's hidden int16
 * outputs are the integer layer's, every one, because they come from exact accumulators; the
 * float sums would have put some across a rounding tie (the test checks that it saw such cases,
 * so that it tests something). */
static void sixteen_bit_outputs_are_the_integer_layer(void **state) {
    (void)state;
    enum { B = 64, IN = 784, HID = 256 };
    tq_model m;
    assert_int_equal(tq_model_init(&m, "784-256r-256r-10"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 19);
    for (int i = 0; i < IN * HID; i++) TQ_DENSE(&m, 0).W[i] = tq_rng_uniform_in(&r, -0.05f, 0.05f);
    for (int i = 0; i < HID * HID; i++) TQ_DENSE(&m, 1).W[i] = tq_rng_uniform_in(&r, -0.1f, 0.1f);
    for (int i = 0; i < HID; i++) TQ_DENSE(&m, 0).b[i] = tq_rng_uniform_in(&r, -0.2f, 0.2f), TQ_DENSE(&m, 1).b[i] = tq_rng_uniform_in(&r, -0.2f, 0.2f);
    for (int i = 0; i < HID * 10; i++) TQ_DENSE(&m, 2).W[i] = tq_rng_uniform_in(&r, -0.1f, 0.1f);
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    qc.act_bits = 16;
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    static uint8_t px[B * IN], y[B];
    for (int i = 0; i < B * IN; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, B), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_CALIBRATE), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
    tq_node *h[2] = {NULL, NULL};
    for (size_t i = 0, k = 0; i < tq_graph_size(net.g) && k < 2; i++)
        if (!strcmp(tq_graph_node(net.g, i)->name, "fake_quant_exact")) h[k++] = tq_graph_node(net.g, i);
    assert_non_null(h[1]);
    tq_qmodel qm;
    assert_int_equal(tq_model_to_int8(&m, &qm), TQ_OK);
    assert_int_equal(qm.view[0].act16, 2);
    assert_int_equal(qm.view[1].act16, 3);
    int float_off = 0;
    for (int b = 0; b < B; b++) {
        int8_t x[IN];
        int16_t out[2][HID];
        for (int i = 0; i < IN; i++) x[i] = (int8_t)(px[b * IN + i] - 128);
        tq_layer_s16_ref(&qm.view[0], x, out[0], NULL);
        tq_layer_s16_ref(&qm.view[1], out[0], out[1], NULL);
        for (int l = 0; l < 2; l++) {
            const tq_s8_layer *L = &qm.view[l];
            const float s_y = qm.layer[l].out_scale, s_in = qm.layer[l].in_scale;
            const float *wsc = l ? m.qat->wfq[1].scale : m.qat->wfq[0].scale;
            for (int j = 0; j < HID; j++) {
                size_t k = (size_t)b * HID + (size_t)j;
                int32_t sim = (int32_t)lrintf(h[l]->val[k] / s_y);
                if (sim != out[l][j]) fail_msg("image %d layer %d output %d: simulation %d, integer layer %d", b, l, j, sim, out[l][j]);
                /* what the float sum would give: round(y / (s_in s_w)), requantized */
                double a = nearbyint((double)h[l]->in[0]->val[k] / (double)(s_in * wsc[j]));
                int64_t q = tq_requantize64_ref((int64_t)a, L->mult[j], L->shift[j]);
                q = q < 0 ? 0 : q > 32767 ? 32767 : q;
                float_off += q != out[l][j];
            }
        }
    }
    print_message("16-bit outputs: all %d equal the integer layers'; the float sums would have missed %d\n", 2 * B * HID, float_off);
    assert_true(float_off > 0);
    tq_qmodel_free(&qm);
    tq_net_free(&net);
    tq_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bias_fake_quant_by_hand),
        cmocka_unit_test(observers_round_trip),
        cmocka_unit_test(stage_refuses_a_bias_with_batch_norm),
        cmocka_unit_test(add_on_the_integer_grid), cmocka_unit_test(add_far_off_the_grid),
        cmocka_unit_test(avgpool_on_the_integer_grid),
        cmocka_unit_test(sixteen_bit_outputs_are_the_integer_layer),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
