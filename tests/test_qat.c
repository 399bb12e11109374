/* QAT wiring (layers/qat.c): the int32 bias fake quant against hand-worked values and its
 * gradient, and the quantization state through files: observers saved and loaded exactly, also
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

#include "tests/tq_test_tmpdir.h"

/* A 2 -> 2 layer with chosen weights and biases, quantized, its input range "observed". */
static void tiny_model(tq_model *m) {
    assert_int_equal(tq_model_init(m, "2-2"), TQ_OK);
    const float W[4] = {0.5f, -1.27f, 0.1f, 0.2f}, b[2] = {0.30002f, -0.001f};
    memcpy(m->W[0], W, sizeof W);
    memcpy(m->b[0], b, sizeof b);
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
    assert_true(bq->val[0] == m.b[0][0] && bq->val[1] == m.b[0][1]);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
    assert_float_equal(m.qat->wfq[0].scale[0], 0.01f, 1e-9f);
    assert_float_equal(m.qat->wfq[0].scale[1], 0.2f / 127.0f, 1e-9f);
    assert_float_equal(bq->val[0], 0.30003923f, 1e-8f);
    assert_float_equal(bq->val[1], -0.0010004633f, 1e-10f);
    assert_true(bq->val[0] != m.b[0][0]); /* it did round */
    memset(m.grads, 0, m.n_params * sizeof(float));
    assert_int_equal(tq_graph_backward(net.g, net.loss), TQ_OK);
    for (int o = 0; o < 2; o++) assert_true(m.db[0][o] == bq->grad[o] && bq->grad[o] != 0.0f);
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
    tq_stage *st = &m.stage[0];
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bias_fake_quant_by_hand),
        cmocka_unit_test(observers_round_trip),
        cmocka_unit_test(stage_refuses_a_bias_with_batch_norm),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
