/* Convolutional models (layers/model.c with feature stages): the spec grammar and presets, shape
 * errors that name the stage, the model's forward against the reference ops composed by hand, a
 * whole-model gradient check, files with batch-norm statistics, normalization folding, and QAT. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "layers/model.h"
#include "src/alloc.h"
#include "src/fileio.h"

#include "tests/tq_gradcheck.h"
#include "tests/tq_test_tmpdir.h"

static void digitscnn_preset(void **state) {
    (void)state;
    const int mnist[3] = {28, 28, 1};
    char r[128];
    assert_int_equal(tq_model_spec_resolve("digitscnn", mnist, 10, r, sizeof r), TQ_OK);
    assert_string_equal(r, "28x28x1-c8k5br-m2-c16k5br-m2-10");
    tq_model m;
    assert_int_equal(tq_model_init(&m, r), TQ_OK);
    assert_int_equal(m.n_stages, 2);
    assert_int_equal(m.unit[0].out_h, 12); /* 28 -conv5-> 24 -pool2-> 12 */
    assert_int_equal(m.unit[1].out_h, 4);  /* 12 -conv5-> 8 -pool2-> 4 */
    assert_int_equal(TQ_DENSE(&m, 0).conv.C, 256);       /* 4 x 4 x 16 */
    /* conv 8*25 + BN 16, conv 16*200 + BN 32, dense 256*10 + 10 */
    assert_int_equal(m.n_params, 200 + 16 + 3200 + 32 + 2570);
    assert_int_equal(m.n_buffers, 2 * 8 + 2 * 16);
    assert_int_equal(tq_model_inputs(&m), 784);
    /* weight decay falls on the kernels and the dense matrix only: the block is laid out
     * W0 [200] gamma0 beta0 [16] W1 [3200] gamma1 beta1 [32] W [2560] b [10] */
    uint8_t mask[6018];
    memset(mask, 7, sizeof mask);
    tq_model_decay_mask(&m, mask);
    const size_t runs[][3] = {{0, 200, 1}, {200, 216, 0}, {216, 3416, 1}, {3416, 3448, 0}, {3448, 6008, 1}, {6008, 6018, 0}};
    for (int k = 0; k < 6; k++)
        for (size_t i = runs[k][0]; i < runs[k][1]; i++) assert_int_equal(mask[i], runs[k][2]);
    assert_ptr_equal(m.unit[1].gamma, m.params + 3416);
    tq_model_free(&m);
    /* a dense-only spec still resolves `in` to a number (its files stay what they were) */
    assert_int_equal(tq_model_spec_resolve("digitsnet", mnist, 10, r, sizeof r), TQ_OK);
    assert_string_equal(r, "784-100r-100r-10");
    /* an image spec must match the data's image */
    const int fashion_rgb[3] = {28, 28, 3};
    assert_int_equal(tq_model_spec_resolve("28x28x1-c8k5-10", fashion_rgb, 10, r, sizeof r), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "takes 28x28x1 images, but the data's are 28x28x3"));
}

static void bad_specs_name_the_stage(void **state) {
    (void)state;
    tq_model m;
    struct {
        const char *spec, *needle;
    } cases[] = {
        {"5x5x1-c8k7-10", "stage 1: convolution: a 7x7 kernel does not fit a 5x5 image"},
        {"8x8x1-c4k5-m8-10", "stage 1: pool: a 8x8 window does not fit a 4x4 image"},
        {"12x12x1-c4k3-m2-c4k5-m2-c8k3-10", "stage 2: pool: a 2x2 window does not fit a 1x1 image"}, /* 12-10-5-1 */
        {"12x12x1-c4k3-m2-c4k4-c8k3-10", "stage 3: convolution: a 3x3 kernel does not fit a 2x2 image"},
        {"784-c8k5-10", "needs an image input"},
        {"28x28x1-c8k5-m2", "needs at least one dense layer"},
        {"28x28x1-m2-10", "a pool must follow"},
        {"28x28x1-c8k5-m2-m2-10", "a pool must follow"},
        /* graphs */
        {"28x28x1-c4k3@x-c4k3-+y-10", "'+y' names no earlier output"},
        {"28x28x1-c4k3@x-c8k3-+x-10", "+x adds 26x26x4 to 24x24x8"},
        {"28x28x1-c4k3@x-c4k3@x-10", "the name 'x' is given twice"},
        {"28x28x1-c4k3@x-c4k3-~x-10", "a ~ went back"},
        {"28x28x1-c4k3@x-c4k3-~x-c4k3-10", "stage 2's output is read by nothing"},
        {"28x28x1-c4k3@Xy-10", "bad name 'Xy'"},
        {"28x28x1-c4k3@x-c4k3p1-~x-r-10", "a ReLU must follow the stage it acts on"},
        {"28x28x1-r-10", "a ReLU must follow"},
        {"28x28x1-c4k3r-r-10", "has its ReLU or pool already"},
        {"28x28x1-c4k3s2-g2-10", "expected a width at 'g2"}, /* g takes no size */
        {"28x28x1-c4k3-~x-10", "'~x' names no earlier output"},
        {"28x28x1-c4k3@x-~x@y-10", "a ~ goes back to a name"},
        {"28x28x1-c8-10", "want cNkK"},
        {"28x28x1-c8k5q-10", "unexpected 'q'"},
        {"28x28x1-100-c8k5-10", "comes before the dense layers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tq_status st = tq_model_init(&m, cases[i].spec);
        if (st == TQ_OK || !strstr(tq_last_error(), cases[i].needle))
            fail_msg("%s: got %d '%s', want '%s'", cases[i].spec, st, tq_last_error(), cases[i].needle);
    }
}

/* The model's logits against conv2d_ref + batch norm (running statistics) + ReLU + max pool +
 * dense, written out here, for a 6x6x2 image: c3k3p1br-m2 then a depthwise d2k2s1 stage, dense 4. */
static void forward_matches_composition(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1br-m2-d2k2-4"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 4);
    tq_model_init_params(&m, &r);
    tq_unit *s0 = &m.unit[0], *s1 = &m.unit[1];
    for (int c = 0; c < 3; c++) { /* statistics and affine away from the identity */
        s0->running_mean[c] = 0.1f * (float)c - 0.05f;
        s0->running_var[c] = 0.5f + 0.3f * (float)c;
        s0->gamma[c] = 0.8f + 0.2f * (float)c;
        s0->beta[c] = 0.1f - 0.1f * (float)c;
    }
    enum { B = 2 };
    uint8_t px[B * 72];
    for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    m.in_mean = 0.25f;
    m.in_std = 0.5f;
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, NULL, B), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, 0), TQ_OK);
    /* by hand */
    float x[B * 72], c0[B * 6 * 6 * 3], p0[B * 3 * 3 * 3], c1[B * 2 * 2 * 6], z[B * 4];
    for (int i = 0; i < B * 72; i++) x[i] = ((float)px[i] / 255.0f - 0.25f) / 0.5f;
    tq_conv2d_ref(c0, x, s0->W, NULL, B, &s0->conv);
    for (int i = 0; i < B * 36 * 3; i++) {
        int c = i % 3;
        float v = s0->gamma[c] * (c0[i] - s0->running_mean[c]) / sqrtf(s0->running_var[c] + 1e-5f) + s0->beta[c];
        c0[i] = v > 0 ? v : 0;
    }
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < 3; oy++)
            for (int ox = 0; ox < 3; ox++)
                for (int c = 0; c < 3; c++) {
                    float mx = -INFINITY;
                    for (int ky = 0; ky < 2; ky++)
                        for (int kx = 0; kx < 2; kx++) mx = fmaxf(mx, c0[((b * 6 + oy * 2 + ky) * 6 + ox * 2 + kx) * 3 + c]);
                    p0[((b * 3 + oy) * 3 + ox) * 3 + c] = mx;
                }
    tq_conv2d_ref(c1, p0, s1->W, s1->b, B, &s1->conv);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < 4; o++) {
            double acc = TQ_DENSE(&m, 0).b[o];
            for (int i = 0; i < 24; i++) acc += (double)TQ_DENSE(&m, 0).W[o * 24 + i] * c1[b * 24 + i];
            z[b * 4 + o] = (float)acc;
        }
    for (int i = 0; i < B * 4; i++) assert_float_equal(net.logits->val[i], z[i], 1e-4f);
    tq_net_free(&net);
    tq_model_free(&m);
}

/* MLPerf Tiny's ResNet-8 as the preset writes it: its shapes, parameters and MACs by hand. */
static void resnet8_preset(void **state) {
    (void)state;
    const int cifar[3] = {32, 32, 3};
    char r[TQ_SPEC_MAX];
    assert_int_equal(tq_model_spec_resolve("resnet8", cifar, 10, r, sizeof r), TQ_OK);
    tq_model m;
    assert_int_equal(tq_model_init(&m, r), TQ_OK);
    assert_true(tq_model_is_graph(&m));
    /* conv; block 1: conv conv add; blocks 2, 3: conv conv shortcut add */
    assert_int_equal(m.n_stages, 12);
    const int kind[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, src0[12] = {-1, 0, 1, 2, 3, 4, 3, 6, 7, 8, 7, 10},
              src1[12] = {-1, -1, -1, 0, -1, -1, -1, 5, -1, -1, -1, 9};
    for (int s = 0; s < 12; s++) {
        assert_int_equal(m.unit[s].kind, kind[s]);
        assert_int_equal(m.unit[s].src[0], src0[s]);
        if (kind[s]) assert_int_equal(m.unit[s].src[1], src1[s]);
    }
    assert_int_equal(m.unit[11].pool, 2); /* the global average pool: 8x8 -> 1x1 */
    assert_int_equal(m.unit[11].out_h, 1);
    assert_int_equal(TQ_DENSE(&m, 0).conv.C, 64);
    /* MACs: convolutions OH OW OC K, the dense layer: MLPerf's 12,501,632 */
    uint64_t macs = (uint64_t)TQ_DENSE(&m, 0).conv.C * (uint64_t)TQ_DENSE(&m, 0).conv.OC;
    for (int s = 0; s < m.n_stages; s++) {
        const tq_conv_shape *c = &m.unit[s].conv;
        if (m.unit[s].kind == TQ_UNIT_CONV) macs += (uint64_t)c->OH * c->OW * c->OC * c->KH * c->KW * c->C;
    }
    assert_int_equal(macs, 12501632);
    /* parameters: 3x3 convolutions with batch norm (no bias), 1x1 shortcuts with a bias, dense;
     * MLPerf's Keras model counts 78,666 with its running statistics (480) and the biases its
     * convolutions keep before batch norm (240) */
    size_t want = (27 * 16 + 32) + 2 * (144 * 16 + 32) + (144 * 32 + 64) + (288 * 32 + 64) + (16 * 32 + 32) + (288 * 64 + 128) +
                  (576 * 64 + 128) + (32 * 64 + 64) + (64 * 10 + 10);
    assert_int_equal(m.n_params, want);
    assert_int_equal(m.n_params + m.n_buffers + 240, 78666);
    tq_model_free(&m);
}

static uint64_t model_macs(const tq_model *m) {
    uint64_t macs = 0;
    for (int s = 0; s < m->n_stages; s++) {
        const tq_conv_shape *c = &m->unit[s].conv;
        if (m->unit[s].kind == TQ_UNIT_CONV) macs += (uint64_t)c->OH * c->OW * c->OC * c->KH * c->KW * (c->depthwise ? 1 : c->C);
    }
    for (int l = 0; l < m->n_layers; l++) macs += (uint64_t)TQ_DENSE(m, l).conv.C * (uint64_t)TQ_DENSE(m, l).conv.OC;
    return macs;
}

/* The integer model qm of quantized model m on n images px: each logit is the simulation's (sim,
 * [n][outputs], fake-quantized: q = round(x / s) + z of the last layer's output quantizer). */
static void assert_integer_logits(const tq_model *m, const tq_qmodel *qm, const uint8_t *px, int n, const float *sim) {
    const int D = tq_model_inputs(m), O = tq_model_classes(m);
    size_t sb = tq_int8_net_predict_scratch_bytes(&qm->net);
    int8_t *scratch = tq_malloc(sb), *logits = tq_malloc((size_t)O);
    const tq_fq *fo = &m->qat->afq[m->qat->n_units - 1];
    for (int i = 0; i < n; i++) {
        tq_int8_net_predict_u8(&qm->net, px + (size_t)D * i, logits, scratch, sb);
        for (int k = 0; k < O; k++) {
            int want = (int)nearbyintf(sim[i * O + k] / fo->scale[0]) + fo->zero_point[0];
            if (logits[k] != want) fail_msg("%s: image %d logit %d: integer %d, simulation %d", m->spec, i, k, logits[k], want);
        }
    }
    tq_free(scratch), tq_free(logits);
}

/* Quantize model m (PTQ defaults), let a training pass's observers see B random images, and
 * compare the integer model's logits with the simulation's on them: equal, logit by logit. */
static void integer_equals_simulation_cfg(tq_model *m, tq_qmodel *qm, uint64_t seed, const tq_qat_cfg *qc) {
    tq_rng r;
    tq_rng_seed(&r, seed);
    tq_model_init_params(m, &r);
    assert_int_equal(tq_model_quantize(m, qc), TQ_OK);
    enum { B = 16 };
    const int D = tq_model_inputs(m);
    uint8_t *px = tq_malloc((size_t)B * D);
    for (int i = 0; i < B * D; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    tq_net net;
    assert_int_equal(tq_net_init(&net, m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, m, px, NULL, B), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
    assert_int_equal(tq_model_to_int8(m, qm), TQ_OK);
    assert_integer_logits(m, qm, px, B, net.logits->val);
    tq_free(px);
    tq_net_free(&net);
}

static void integer_equals_simulation(tq_model *m, tq_qmodel *qm, uint64_t seed) {
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    integer_equals_simulation_cfg(m, qm, seed, &qc);
}

/* A K x L kernel padded per axis, ReLU6 and depthwise through QAT and conversion: the integer
 * layers keep the kernel's columns and padding and ReLU6's clamp, and their logits are the
 * simulation's. */
static void quantized_kxl_relu6(void **state) {
    (void)state;
    tq_model m;
    tq_qmodel qm;
    assert_int_equal(tq_model_init(&m, "9x7x2-c4k5x3s2p2x1br6-d1k3p1br6-c4k1br-m2-3"), TQ_OK);
    assert_true(m.unit[0].conv.OH == 5 && m.unit[0].conv.OW == 4);
    integer_equals_simulation(&m, &qm, 11);
    const tq_qlayer *L = &qm.layer[0];
    assert_true(L->k == 5 && L->kw == 3 && L->pad == 2 && L->pad_w == 1 && L->stride == 2 && L->stride_w == 2);
    assert_int_equal(L->relu, 2);
    /* ReLU6's top: z + round(6 / s), at most 127 */
    long top = L->out_zp + lroundf(6.0f / L->out_scale);
    assert_int_equal(L->act_max, top > 127 ? 127 : top);
    assert_int_equal(qm.layer[1].relu, 2);
    assert_int_equal(qm.layer[2].relu, 1);
    tq_qmodel_free(&qm);
    tq_model_free(&m);
    /* a global average pool of a non-square image (5x3): one 5x3 window in the integer model too */
    assert_int_equal(tq_model_init(&m, "9x5x1-c4k5x3s2p2x1br-d1k3p1br6-g-3"), TQ_OK);
    integer_equals_simulation(&m, &qm, 13);
    assert_true(qm.layer[2].kind == TQ_S8_AVGPOOL && qm.layer[2].k == 5 && qm.layer[2].kw == 3 && qm.layer[2].out_h == 1 &&
                qm.layer[2].out_w == 1);
    tq_qmodel_free(&qm);
    tq_model_free(&m);
    /* LSQ on a graph: the convolutions and the dense layer learn their scales, the add keeps its
     * observer's; the file holds them all, and the integer model still follows the simulation */
    {
        assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1br@a-c3k3p1b-+a-r-g-4"), TQ_OK);
        tq_rng r;
        tq_rng_seed(&r, 14);
        tq_model_init_params(&m, &r);
        size_t before = m.n_params;
        tq_qat_cfg qc;
        tq_qat_cfg_defaults(&qc);
        qc.ste = TQ_STE_LSQ;
        assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
        assert_int_equal(m.n_lsq, (3 + 1) + (3 + 1) + (4 + 1)); /* two convolutions' and the dense layer's */
        assert_int_equal(m.n_params, before + m.n_lsq);
        enum { B = 8 };
        uint8_t px[B * 72];
        for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
        tq_net net;
        assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
        assert_int_equal(tq_net_set_batch(&net, &m, px, NULL, B), TQ_OK);
        assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
        assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
        float sim[B * 4];
        memcpy(sim, net.logits->val, sizeof sim);
        tq_net_free(&net);
        char p1[128];
        snprintf(p1, sizeof p1, "%s/glsq.tqf", dir);
        assert_int_equal(tq_model_save(&m, p1), TQ_OK);
        tq_model m2;
        assert_int_equal(tq_model_load(&m2, p1), TQ_OK);
        assert_int_equal(m2.n_lsq, m.n_lsq);
        assert_memory_equal(m2.params, m.params, m.n_params * sizeof(float));
        assert_int_equal(tq_net_init(&net, &m2, B), TQ_OK);
        assert_int_equal(tq_net_set_batch(&net, &m2, px, NULL, B), TQ_OK);
        assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
        assert_memory_equal(net.logits->val, sim, sizeof sim);
        tq_net_free(&net);
        assert_int_equal(tq_model_to_int8(&m2, &qm), TQ_OK);
        assert_integer_logits(&m2, &qm, px, B, sim);
        tq_qmodel_free(&qm);
        tq_model_free(&m2);
        tq_model_free(&m);
    }
    /* and the residual graph with global pool, a second time through the same check */
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1br6@a-c3k3p1b@m-~a-c3k1-+m-r-g-4"), TQ_OK);
    integer_equals_simulation(&m, &qm, 12);
    tq_qmodel_free(&qm);
    tq_model_free(&m);
}

/* MLPerf Tiny's DS-CNN and MobileNet v1 0.25 on MNIST's 28x28: their layers, shapes and MACs
 * worked out by hand. */
static void dscnn_and_mobilenet_presets(void **state) {
    (void)state;
    const int mnist[3] = {28, 28, 1};
    char r[TQ_SPEC_MAX];
    tq_model m;
    assert_int_equal(tq_model_spec_resolve("dscnn", mnist, 10, r, sizeof r), TQ_OK);
    assert_int_equal(tq_model_init(&m, r), TQ_OK);
    assert_false(tq_model_is_graph(&m));
    assert_int_equal(m.n_stages, 9);
    const tq_conv_shape *c0 = &m.unit[0].conv; /* 10x4, stride 2, padded 4 and 1: 14x14x64 */
    assert_true(c0->KH == 10 && c0->KW == 4 && c0->stride == 2 && c0->pad == 4 && c0->pad_w == 1);
    assert_true(c0->OH == 14 && c0->OW == 14 && c0->OC == 64);
    for (int s = 1; s < 9; s++) {
        const tq_conv_shape *c = &m.unit[s].conv;
        assert_int_equal(c->depthwise, s % 2);
        assert_int_equal(c->KH, s % 2 ? 3 : 1);
        assert_true(c->OH == 14 && c->OW == 14 && c->OC == 64 && m.unit[s].bn && m.unit[s].relu == 1);
    }
    assert_true(m.unit[8].pool == 2 && m.unit[8].out_h == 1 && TQ_DENSE(&m, 0).conv.C == 64);
    /* conv 14*14*64*40, four blocks of a 3x3 depthwise and a 64 -> 64 pointwise, dense 64*10 */
    assert_int_equal(model_macs(&m), 14 * 14 * 64 * 40 + 4 * (14 * 14 * 64 * 9 + 14 * 14 * 64 * 64) + 64 * 10);
    tq_model_free(&m);
    /* on keyword spotting's 49x10 features: 24x5 (TFLite's SAME would pad one more row below: 25x5),
     * the global pool over all 120 positions */
    assert_int_equal(tq_model_spec_resolve("dscnn", (const int[3]){49, 10, 1}, 12, r, sizeof r), TQ_OK);
    assert_int_equal(tq_model_init(&m, r), TQ_OK);
    assert_true(m.unit[0].conv.OH == 24 && m.unit[0].conv.OW == 5 && m.unit[8].pool_shape.K == 24 && m.unit[8].pool_shape.KW == 5);
    assert_int_equal(model_macs(&m), 24 * 5 * 64 * 40 + 4 * (24 * 5 * 64 * 9 + 24 * 5 * 64 * 64) + 64 * 12);
    tq_model_free(&m);

    assert_int_equal(tq_model_spec_resolve("mobilenet", mnist, 10, r, sizeof r), TQ_OK);
    assert_int_equal(tq_model_init(&m, r), TQ_OK);
    assert_int_equal(m.n_stages, 27);
    int dw = 0;
    for (int s = 0; s < 27; s++) dw += m.unit[s].conv.depthwise, assert_int_equal(m.unit[s].relu, 2); /* ReLU6 */
    assert_int_equal(dw, 13);
    /* channels 8 (stride 2: 14x14), then the blocks' pointwise outputs; stride 2 in blocks 2, 4, 6 and 12 */
    const int pw[13] = {16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256}, side[13] = {14, 7, 7, 4, 4, 2, 2, 2, 2, 2, 2, 1, 1};
    uint64_t want = 14 * 14 * 8 * 9;
    int ch = 8;
    for (int b = 0; b < 13; b++) {
        const tq_unit *d = &m.unit[1 + 2 * b], *p = &m.unit[2 + 2 * b];
        assert_true(d->conv.depthwise && d->conv.OH == side[b] && p->conv.OC == pw[b] && p->conv.KH == 1);
        want += (uint64_t)side[b] * side[b] * ch * 9 + (uint64_t)side[b] * side[b] * ch * pw[b];
        ch = pw[b];
    }
    want += 256 * 10;
    assert_int_equal(model_macs(&m), want);
    assert_int_equal(want, 751984);
    /* its file: a spec of some 300 characters and 27 stages' tensors (135) fit, and come back */
    assert_true(strlen(m.spec) > 255);
    char path[128];
    snprintf(path, sizeof path, "%s/mobilenet.tqf", dir);
    assert_int_equal(tq_model_save(&m, path), TQ_OK);
    tq_model m2;
    assert_int_equal(tq_model_load(&m2, path), TQ_OK);
    assert_string_equal(m2.spec, m.spec);
    assert_int_equal(m2.n_params, m.n_params);
    assert_memory_equal(m2.params, m.params, m.n_params * sizeof(float));
    tq_model_free(&m2);
    tq_model_free(&m);
    /* the spec grammar's new parts refused when malformed */
    const char *bad[] = {"8x8x1-c4k3x-2", "8x8x1-c4k3x0-2", "8x8x1-c4k3p1x-2", "8x8x1-c4k3x9-2", "8x8x1-c4k3p1x3-2", "8x8x1-c4k3r7-2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (tq_model_init(&m, bad[i]) == TQ_OK) fail_msg("spec %s was taken", bad[i]);
}

/* Channel concat (^NAME): the join by hand, position by position (the current stage's channels,
 * then NAME's), its gradients against finite differences, and the shapes it refuses. */
static void concat_forward_gradients(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1b@a-c2k1b-^a-c4k3p1-g-4"), TQ_OK);
    assert_true(m.unit[2].kind == TQ_UNIT_CONCAT && m.unit[2].src[0] == 1 && m.unit[2].src[1] == 0);
    assert_true(m.unit[2].out_c == 5 && m.unit[3].conv.C == 5 && tq_model_is_graph(&m));
    assert_false(tq_model_unit_has_weights(&m, 2));
    tq_rng r;
    tq_rng_seed(&r, 4);
    tq_model_init_params(&m, &r);
    enum { B = 3 };
    uint8_t px[B * 72], y[B] = {1, 0, 3};
    for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, B), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
    for (int p = 0; p < B * 36; p++)
        for (int c = 0; c < 5; c++) {
            float want = c < 2 ? net.out[1]->val[p * 2 + c] : net.out[0]->val[p * 3 + c - 2];
            if (net.out[2]->val[p * 5 + c] != want) fail_msg("position %d channel %d: %g, want %g", p, c, net.out[2]->val[p * 5 + c], want);
        }
    /* a's output reaches the loss twice (through the 1x1 stage and the join): both gradients add */
    assert_true(gradcheck(net.g, net.loss, m.params, m.grads, m.n_params) <= 0);
    tq_net_free(&net);
    tq_model_free(&m);
    const char *bad[] = {"6x6x2-c3k3p1b@a-c2k3s2-^a-4",  /* 2x2 against 6x6 */
                         "6x6x2-c3k3p1b@a-c2k1-^a-r-4",  /* a ReLU on a concat */
                         "6x6x2-c3k3p1b@a-c2k1-^b-4",    /* no such name */
                         "6x6x2-c3k3p1b@a-c2k1-^a@x-4"}; /* (taken: a concat may be named) */
    for (size_t i = 0; i < 3; i++)
        if (tq_model_init(&m, bad[i]) == TQ_OK) fail_msg("spec %s was taken", bad[i]);
    assert_int_equal(tq_model_init(&m, bad[0]), TQ_E_SHAPE);
    assert_non_null(strstr(tq_last_error(), "^a joins"));
    assert_int_equal(tq_model_init(&m, bad[3]), TQ_OK);
    tq_model_free(&m);
}

/* Quantized concats: their inputs (a convolution, a pool, an add, another concat) share one scale
 * and zero point, which the integer concat copies, so the integer model's logits are the
 * simulation's; with LSQ too, and through a file. */
static void quantized_concat(void **state) {
    (void)state;
    tq_model m;
    tq_qmodel qm;
    /* a pooled stage and a ReLU6 stage joined, then a 1x1 and an average pool */
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3p1br-m2@a-c3k3p1br6-^a-c4k1br-a2-5"), TQ_OK);
    integer_equals_simulation(&m, &qm, 21);
    const tq_fq *f = m.qat->afq;
    assert_true(f[0].scale[0] == f[1].scale[0] && f[1].scale[0] == f[2].scale[0]);
    assert_true(f[0].zero_point[0] == f[1].zero_point[0] && f[1].zero_point[0] == f[2].zero_point[0]);
    /* the shared range is the union: wider than either input's alone */
    const tq_observer *o = m.qat->aobs;
    float lo = fminf(o[0].min, o[1].min), hi = fmaxf(o[0].max, o[1].max);
    assert_true(o[0].min != o[1].min || o[0].max != o[1].max);
    tq_qparams want;
    assert_int_equal(tq_qparams_affine(lo, hi, -128, 127, &want), TQ_OK);
    assert_true(f[2].scale[0] == want.scale && f[2].zero_point[0] == want.zero_point);
    int cat = -1;
    for (int l = 0; l < qm.n_layers; l++)
        if (qm.layer[l].kind == TQ_S8_CONCAT) cat = l;
    assert_true(cat >= 0 && qm.layer[cat].in_c == 3 && qm.layer[cat].in2_c == 4 && qm.layer[cat].out_scale == f[2].scale[0]);
    tq_qmodel_free(&qm);
    tq_model_free(&m);
    /* an add's output and a branch joined, then that concat joined again (Inception's many-way join):
     * every quantizer of the group on one grid; then the same with LSQ, then through a file */
    const char *spec = "8x8x1-c4k3p1br@a-c4k3p1b-+a-r@s-~a-c2k1br@t-^s@u-~a-c3k3p1br-^u-g-3";
    assert_int_equal(tq_model_init(&m, spec), TQ_OK);
    integer_equals_simulation(&m, &qm, 22);
    f = m.qat->afq;
    for (int s = 2; s < 6; s++) /* the add, the 1x1, the first concat, the 3x3: the last concat's group */
        if (f[s].scale[0] != f[6].scale[0]) fail_msg("stage %d's scale %g, the concat's %g", s + 1, f[s].scale[0], f[6].scale[0]);
    assert_true(f[0].scale[0] != f[6].scale[0]); /* a is no concat's input: its own */
    tq_qmodel_free(&qm);
    tq_model_free(&m);
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    qc.ste = TQ_STE_LSQ;
    assert_int_equal(tq_model_init(&m, spec), TQ_OK);
    integer_equals_simulation_cfg(&m, &qm, 23, &qc);
    /* learned scales: every unit's weights', and the outputs of the three units outside the group
     * (a, the add's 3x3 input, the dense layer) */
    assert_int_equal(m.n_lsq, (4 + 1) + (4 + 1) + 2 + 3 + (3 + 1));
    tq_qmodel_free(&qm);
    uint8_t px[4 * 64];
    for (int i = 0; i < 4 * 64; i++) px[i] = (uint8_t)(i * 53 + 7);
    float sim[4 * 3];
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, 4), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, NULL, 4), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
    memcpy(sim, net.logits->val, sizeof sim);
    tq_net_free(&net);
    char p1[128];
    snprintf(p1, sizeof p1, "%s/cat.tqf", dir);
    assert_int_equal(tq_model_save(&m, p1), TQ_OK);
    tq_model m2;
    assert_int_equal(tq_model_load(&m2, p1), TQ_OK);
    assert_int_equal(m2.n_lsq, m.n_lsq);
    assert_memory_equal(m2.params, m.params, m.n_params * sizeof(float)); /* the learned scales among them */
    for (int s = 0; s < m.n_stages; s++) assert_true(m2.qat->afq[s].scale[0] == m.qat->afq[s].scale[0]);
    assert_int_equal(tq_model_to_int8(&m2, &qm), TQ_OK);
    assert_int_equal(tq_net_init(&net, &m2, 4), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m2, px, NULL, 4), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
    assert_memory_equal(net.logits->val, sim, sizeof sim);
    assert_integer_logits(&m2, &qm, px, 4, net.logits->val);
    tq_net_free(&net);
    tq_qmodel_free(&qm);
    tq_model_free(&m2);
    tq_model_free(&m);
    /* 16-bit activations refuse a concat, naming it */
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3p1br-m2@a-c3k3p1br6-^a-c4k1br-a2-5"), TQ_OK);
    tq_qat_cfg_defaults(&qc);
    qc.act_bits = 16;
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "is a concat"));
    tq_model_free(&m);
}

/* A residual block's stages in the graph: the add's output is the ReLU of its two inputs' sum,
 * element by element, and a branch (~) reads the named output, not the stage before. */
static void residual_forward(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1br@a-c3k3p1b@m-~a-c3k1-+m-r-g-4"), TQ_OK);
    assert_int_equal(m.unit[2].src[0], 0); /* the 1x1 branch reads a, not m */
    tq_rng r;
    tq_rng_seed(&r, 6);
    tq_model_init_params(&m, &r);
    enum { B = 2 };
    uint8_t px[B * 72];
    for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, NULL, B), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, 0), TQ_OK);
    /* the branch by hand from a's output */
    float br[B * 36 * 3], sum[B * 36 * 3];
    tq_conv2d_ref(br, net.out[0]->val, m.unit[2].W, m.unit[2].b, B, &m.unit[2].conv);
    for (int i = 0; i < B * 36 * 3; i++) assert_float_equal(net.out[2]->val[i], br[i], 1e-5f);
    /* the add and its ReLU, then the global average pool */
    for (int i = 0; i < B * 36 * 3; i++) sum[i] = fmaxf(br[i] + net.out[1]->val[i], 0.0f);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3; c++) {
            double mean = 0;
            for (int p = 0; p < 36; p++) mean += sum[(b * 36 + p) * 3 + c] / 36.0;
            assert_float_equal(net.out[3]->val[b * 3 + c], (float)mean, 1e-5f);
        }
    tq_net_free(&net);
    tq_model_free(&m);
}

static tq_node *find_node(tq_graph *g, const char *name) {
    for (size_t i = 0; i < tq_graph_size(g); i++)
        if (!strcmp(tq_graph_node(g, i)->name, name)) return tq_graph_node(g, i);
    return NULL;
}

/* a quantized tensor's integers: x = (q - z) s */
static void to_int8(const float *x, size_t n, const tq_fq *fq, int8_t *q) {
    for (size_t i = 0; i < n; i++) q[i] = (int8_t)((int32_t)nearbyintf(x[i] / fq->scale[0]) + fq->zero_point[0]);
}

/* A residual graph quantized: the simulation's add and global average pool compute what the
 * int8 kernels compute on the same integers (runtime/kernels_ref.c, the independent reference),
 * training passes the add's gradient to both inputs through the clipped STE, and the integer
 * model's logits are the simulation's, image by image. */
static void quantized_graph(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1br@a-c3k3p1b@m-~a-c3k1-+m-r-g-4"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 6);
    tq_model_init_params(&m, &r);
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
    enum { B = 8, N = B * 36 * 3 };
    uint8_t px[B * 72], y[B];
    for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    for (int i = 0; i < B; i++) y[i] = (uint8_t)(i % 4);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, B), TQ_OK);
    /* training: the observers see the batch, and the gradient reaches both inputs of the add where
     * the ReLU passes and the float sum lies inside the output's range */
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
    assert_int_equal(tq_graph_backward(net.g, net.loss), TQ_OK);
    tq_node *add = find_node(net.g, "quantized_add");
    assert_non_null(add);
    const tq_fq *fy = &m.qat->afq[3];
    int passed = 0, stopped = 0;
    for (int i = 0; i < N; i++) {
        float sum = add->in[0]->val[i] + add->in[1]->val[i], u = (float)fy->zero_point[0] + nearbyintf(sum / fy->scale[0]);
        int pass = sum > 0.0f && u >= -128.0f && u <= 127.0f;
        passed += pass, stopped += !pass;
        assert_float_equal(add->in[0]->grad[i], pass ? add->grad[i] : 0.0f, 1e-9f);
        assert_float_equal(add->in[1]->grad[i], pass ? add->grad[i] : 0.0f, 1e-9f);
    }
    assert_true(passed > 0 && stopped > 0);
    /* evaluation, and the integer model: conv, conv, conv, add, avg pool, flatten, linear */
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
    float sim[B * 4];
    memcpy(sim, net.logits->val, sizeof sim);
    tq_qmodel qm;
    assert_int_equal(tq_model_to_int8(&m, &qm), TQ_OK);
    const int kinds[7] = {TQ_S8_CONV, TQ_S8_CONV, TQ_S8_CONV, TQ_S8_ADD, TQ_S8_AVGPOOL, TQ_S8_FLATTEN, TQ_S8_LINEAR};
    assert_int_equal(qm.n_layers, 7);
    for (int l = 0; l < 7; l++) assert_int_equal(qm.layer[l].kind, kinds[l]);
    assert_int_equal(tq_qmodel_producer(&qm, 2, 0), 0); /* the branch reads a */
    assert_int_equal(tq_qmodel_producer(&qm, 3, 0), 2);
    assert_int_equal(tq_qmodel_producer(&qm, 3, 1), 1);
    /* the add's output against the int8 ADD kernel on its inputs' integers */
    int8_t qa[N], qb[N], qy[N], qp[B * 3];
    to_int8(add->in[0]->val, N, &m.qat->afq[2], qa);
    to_int8(add->in[1]->val, N, &m.qat->afq[1], qb);
    for (int b = 0; b < B; b++) tq_add_s8_ref(&qm.view[3], qa + b * 108, qb + b * 108, qy + b * 108);
    for (int i = 0; i < N; i++) {
        int want = qy[i], got = (int)nearbyintf(add->val[i] / fy->scale[0]) + fy->zero_point[0];
        if (got != want) fail_msg("add element %d: simulation %d, int8 kernel %d", i, got, want);
    }
    /* the global pool against the int8 average pool on the add's integers */
    tq_node *pool = find_node(net.g, "pool_round");
    assert_non_null(pool);
    for (int b = 0; b < B; b++) tq_avgpool_s8_ref(&qm.view[4], qy + b * 108, qp + b * 3);
    for (int i = 0; i < B * 3; i++) {
        int got = (int)nearbyintf(pool->val[i] / fy->scale[0]) + fy->zero_point[0];
        if (got != qp[i]) fail_msg("pool output %d: simulation %d, int8 kernel %d", i, got, qp[i]);
    }
    /* the whole integer model against the simulation */
    assert_integer_logits(&m, &qm, px, B, sim);
    tq_qmodel_free(&qm);
    tq_net_free(&net);
    /* the quantized graph's file: observers and all, the same logits */
    char p1[128];
    snprintf(p1, sizeof p1, "%s/gq.tqf", dir);
    assert_int_equal(tq_model_save(&m, p1), TQ_OK);
    tq_model m2;
    assert_int_equal(tq_model_load(&m2, p1), TQ_OK);
    assert_non_null(m2.qat);
    assert_int_equal(tq_net_init(&net, &m2, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m2, px, NULL, B), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_EVAL), TQ_OK);
    assert_memory_equal(net.logits->val, sim, sizeof sim);
    tq_net_free(&net);
    tq_model_free(&m2);
    tq_model_free(&m);
}

/* Gradients through the add and the branch (each output read twice: the engine adds the two
 * gradients), against finite differences. No ReLU or max pool: no kinks to straddle. */
static void residual_gradients(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1b@a-c3k3p1@m-~a-c3k1-+m-+a-g-4"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 9);
    tq_model_init_params(&m, &r);
    enum { B = 3 };
    uint8_t px[B * 72], y[B] = {0, 3, 1};
    for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, B), TQ_OK);
    assert_true(gradcheck(net.g, net.loss, m.params, m.grads, m.n_params) <= 0);
    tq_net_free(&net);
    tq_model_free(&m);
}

/* A graph model saved and loaded gives the same spec, parameters and logits. */
static void graph_files(void **state) {
    (void)state;
    tq_model m, m2;
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3p1br@a-c4k3p1b-+a-r-m2-3"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 3);
    tq_model_init_params(&m, &r);
    char p1[128];
    snprintf(p1, sizeof p1, "%s/g.tqf", dir);
    assert_int_equal(tq_model_save(&m, p1), TQ_OK);
    assert_int_equal(tq_model_load(&m2, p1), TQ_OK);
    assert_string_equal(m2.spec, m.spec);
    assert_int_equal(m2.n_params, m.n_params);
    assert_memory_equal(m.params, m2.params, m.n_params * sizeof(float));
    uint8_t px[64];
    for (int i = 0; i < 64; i++) px[i] = (uint8_t)(i * 37);
    tq_net n1, n2;
    assert_int_equal(tq_net_init(&n1, &m, 1), TQ_OK);
    assert_int_equal(tq_net_init(&n2, &m2, 1), TQ_OK);
    assert_int_equal(tq_net_set_batch(&n1, &m, px, NULL, 1), TQ_OK);
    assert_int_equal(tq_net_set_batch(&n2, &m2, px, NULL, 1), TQ_OK);
    assert_int_equal(tq_graph_forward(n1.g, 0), TQ_OK);
    assert_int_equal(tq_graph_forward(n2.g, 0), TQ_OK);
    assert_memory_equal(n1.logits->val, n2.logits->val, 3 * sizeof(float));
    tq_net_free(&n1), tq_net_free(&n2);
    tq_model_free(&m), tq_model_free(&m2);
}

/* Every parameter of a whole model (conv, batch norm in training mode, average pool, depthwise,
 * dense) against finite differences of the loss. No ReLU or max pool: no kinks to straddle. */
static void whole_model_gradients(void **state) {
    (void)state;
    tq_model m;
    assert_int_equal(tq_model_init(&m, "6x6x2-c3k3p1b-a2-d2k2-4"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 8);
    tq_model_init_params(&m, &r);
    for (int c = 0; c < 3; c++) m.unit[0].gamma[c] = 0.7f + 0.3f * (float)c, m.unit[0].beta[c] = 0.2f * (float)c;
    enum { B = 3 };
    uint8_t px[B * 72];
    uint8_t y[B] = {0, 3, 1};
    for (int i = 0; i < B * 72; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, B), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, B), TQ_OK);
    assert_true(gradcheck(net.g, net.loss, m.params, m.grads, m.n_params) <= 0);
    tq_net_free(&net);
    tq_model_free(&m);
}

static void files_keep_the_statistics(void **state) {
    (void)state;
    tq_model m, m2;
    assert_int_equal(tq_model_init(&m, "10x10x1-c4k3br-m2-c6k3s2-3"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 2);
    tq_model_init_params(&m, &r);
    for (int c = 0; c < 4; c++) m.unit[0].running_mean[c] = 0.5f * (float)c, m.unit[0].running_var[c] = 2.0f + (float)c;
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/c.tqf", dir);
    snprintf(p2, sizeof p2, "%s/c2.tqf", dir);
    assert_int_equal(tq_model_save(&m, p1), TQ_OK);
    assert_int_equal(tq_model_load(&m2, p1), TQ_OK);
    assert_string_equal(m2.spec, m.spec);
    assert_memory_equal(m.params, m2.params, m.n_params * sizeof(float));
    assert_memory_equal(m.buffers, m2.buffers, m.n_buffers * sizeof(float));
    assert_int_equal(tq_model_save(&m2, p2), TQ_OK);
    assert_same_bytes(p1, p2);
    tq_model_free(&m2);
    tq_model_free(&m);
}

/* Folding the normalization into a first stage: into its bias (no batch norm), or its running
 * mean (batch norm); the function stays the same where no padding is read. */
static void fold_into_first_stage(void **state) {
    (void)state;
    const char *specs[2] = {"8x8x1-c4k3r-m2-3", "8x8x1-c4k3br-m2-3"};
    for (int k = 0; k < 2; k++) {
        tq_model m;
        assert_int_equal(tq_model_init(&m, specs[k]), TQ_OK);
        tq_rng r;
        tq_rng_seed(&r, 30 + (uint64_t)k);
        tq_model_init_params(&m, &r);
        m.in_mean = 0.3f;
        m.in_std = 0.4f;
        uint8_t px[2 * 64];
        for (int i = 0; i < 128; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
        float a[6], b[6];
        for (int pass = 0; pass < 2; pass++) {
            if (pass) tq_model_fold_input_norm(&m);
            tq_net net;
            assert_int_equal(tq_net_init(&net, &m, 2), TQ_OK);
            assert_int_equal(tq_net_set_batch(&net, &m, px, NULL, 2), TQ_OK);
            assert_int_equal(tq_graph_forward(net.g, 0), TQ_OK);
            memcpy(pass ? b : a, net.logits->val, sizeof a);
            tq_net_free(&net);
        }
        assert_true(m.in_mean == 0.0f && m.in_std == 1.0f);
        for (int i = 0; i < 6; i++) assert_float_equal(a[i], b[i], 1e-4f * (1 + fabsf(a[i])));
        tq_model_free(&m);
    }
}

static void quantized_cnn(void **state) {
    (void)state;
    tq_qat_cfg qc;
    tq_qat_cfg_defaults(&qc);
    tq_model m;
    /* a padded first convolution cannot take the normalization exactly: refused, with the way out */
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3p1br-m2-3"), TQ_OK);
    m.in_mean = 0.1f;
    m.in_std = 0.3f;
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_E_ARG);
    assert_non_null(strstr(tq_last_error(), "--no-norm"));
    m.in_mean = 0.0f;
    m.in_std = 1.0f;
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
    tq_model_free(&m);
    /* the fold: after a training run the observers have seen the stages, the weights the quantizer
     * saw are W * gamma / sigma on the per-channel grid, and the integer model follows the simulation */
    assert_int_equal(tq_model_init(&m, "8x8x1-c4k3br-m2-3"), TQ_OK);
    tq_rng r;
    tq_rng_seed(&r, 6);
    tq_model_init_params(&m, &r);
    for (int c = 0; c < 4; c++) m.unit[0].gamma[c] = 0.5f + 0.25f * (float)c, m.unit[0].running_var[c] = 0.3f + (float)c;
    assert_int_equal(tq_model_quantize(&m, &qc), TQ_OK);
    assert_int_equal(m.qat->n_stages, 1);
    uint8_t px[4 * 64];
    uint8_t y[4] = {0, 1, 2, 1};
    for (int i = 0; i < 256; i++) px[i] = (uint8_t)tq_rng_below(&r, 256);
    float rv0[4]; /* the fold reads the running variance before this run's batch updates it */
    memcpy(rv0, m.unit[0].running_var, sizeof rv0);
    tq_net net;
    assert_int_equal(tq_net_init(&net, &m, 4), TQ_OK);
    assert_int_equal(tq_net_set_batch(&net, &m, px, y, 4), TQ_OK);
    assert_int_equal(tq_graph_forward(net.g, TQ_RUN_TRAIN), TQ_OK);
    assert_true(m.unit[0].running_var[0] != rv0[0]);
    assert_int_equal(m.qat->aobs[0].n_seen, 1);
    assert_true(m.qat->aobs[0].min >= 0.0f); /* after the ReLU */
    tq_node *fq = NULL;
    for (size_t i = 0; i < tq_graph_size(net.g) && !fq; i++)
        if (!strcmp(tq_graph_node(net.g, i)->name, "fake_quant")) fq = tq_graph_node(net.g, i);
    assert_non_null(fq); /* the first fake quant is the stage's weights */
    assert_string_equal(fq->in[0]->name, "bn_fold_w");
    for (int o = 0; o < 4; o++) {
        float s = m.qat->wfq[0].scale[o], sigma = sqrtf(rv0[o] + 1e-5f);
        for (int k = 0; k < 9; k++) {
            float folded = m.unit[0].W[o * 9 + k] * m.unit[0].gamma[o] / sigma, q = fq->val[o * 9 + k] / s;
            assert_float_equal(fq->in[0]->val[o * 9 + k], folded, 1e-6f);
            assert_float_equal(q, nearbyintf(q), 1e-3f); /* on the grid */
            assert_true(fabsf(nearbyintf(q)) <= 127.0f);
        }
    }
    /* the integer model: conv (batch norm folded), max pool, flatten, linear; on these images its
     * logits are the simulation's (evaluation mode, running statistics, which rounds as the integer path does) */
    assert_int_equal(tq_graph_forward(net.g, 0), TQ_OK);
    float sim[4 * 3];
    memcpy(sim, net.logits->val, sizeof sim);
    /* with the running statistics the batch norm is the folded layer s x + b, b the folded bias on
     * its int32 grid (the one conversion stores, checked below); x is conv / s. The stage ends in
     * a ReLU, fused into the batch norm: b is read where the output is positive. */
    tq_node *bn = NULL;
    for (size_t i = 0; i < tq_graph_size(net.g) && !bn; i++)
        if (!strcmp(tq_graph_node(net.g, i)->name, "batchnorm_relu")) bn = tq_graph_node(net.g, i);
    assert_non_null(bn);
    float b_sim[4];
    for (int o = 0; o < 4; o++) {
        float sc = m.unit[0].gamma[o] * (1.0f / sqrtf(m.unit[0].running_var[o] + 1e-5f));
        size_t at = (size_t)o;
        while (at < tq_node_numel(bn) && !(bn->val[at] > 0.0f)) at += 4; /* the first positive output of channel o */
        assert_true(at < tq_node_numel(bn));
        b_sim[o] = bn->val[at] - sc * bn->in[0]->val[at];
    }
    tq_net_free(&net);
    tq_qmodel qm;
    assert_int_equal(tq_model_to_int8(&m, &qm), TQ_OK);
    assert_int_equal(qm.n_layers, 4);
    const int kinds[4] = {TQ_S8_CONV, TQ_S8_MAXPOOL, TQ_S8_FLATTEN, TQ_S8_LINEAR};
    for (int l = 0; l < 4; l++) assert_int_equal(qm.layer[l].kind, kinds[l]);
    assert_int_equal(qm.layer[0].out, 6 * 6 * 4);
    assert_int_equal(qm.layer[3].in, 3 * 3 * 4);
    for (int o = 0; o < 4; o++) {
        float step = TQ_INPUT_SCALE * m.qat->wfq[0].scale[o];
        if (fabsf(b_sim[o] / step - (float)qm.layer[0].bias[o]) > 0.01f)
            fail_msg("channel %d: the simulation adds %g steps of bias, the integer model %d", o, b_sim[o] / step,
                     qm.layer[0].bias[o]);
    }
    assert_integer_logits(&m, &qm, px, 4, sim);
    tq_qmodel_free(&qm);
    /* batch norm can be frozen for the whole model */
    tq_model_freeze_bn(&m, 1);
    assert_int_equal(m.unit[0].bn_state.frozen, 1);
    tq_model_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(digitscnn_preset),           cmocka_unit_test(bad_specs_name_the_stage),
        cmocka_unit_test(forward_matches_composition), cmocka_unit_test(whole_model_gradients),
        cmocka_unit_test(files_keep_the_statistics),  cmocka_unit_test(fold_into_first_stage),
        cmocka_unit_test(quantized_cnn),              cmocka_unit_test(resnet8_preset),
        cmocka_unit_test(residual_forward),           cmocka_unit_test(residual_gradients),
        cmocka_unit_test(concat_forward_gradients),   cmocka_unit_test(quantized_concat),
        cmocka_unit_test(graph_files),                cmocka_unit_test(quantized_graph),
        cmocka_unit_test(dscnn_and_mobilenet_presets), cmocka_unit_test(quantized_kxl_relu6),
    };
    return cmocka_run_group_tests(tests, tmpdir_setup, tmpdir_teardown);
}
