/* Integer models of graph layouts with random weights, for the tests and the Cortex-M counts while
 * tinyqat cannot yet train them (issue: models as graphs). Each takes pixels (p - 128 at 1/255)
 * so `tinyqat export --c` and the MCU harness run it like any trained model.
 *
 *   tq_graphgen LAYOUT OUT.tqm [SEED]
 *     residual  28x28x1: a SAME 3x3 conv to 8, a residual block (3x3 conv, 3x1 conv, add with
 *               the block's input), a block of 14 channels with a 1x1 stride-2 shortcut, a
 *               depthwise (3x5, ReLU6) separable block concatenated with a 1x1 branch, global
 *               average pool, dense 10: every new kind on MNIST-sized input, channel counts that
 *               are not multiples of 4 included
 *     resnet8   32x32x3: MLPerf Tiny's image-classification ResNet-8 (16, 32, 64 channels)
 *     dscnn     49x10x1: MLPerf Tiny's keyword-spotting DS-CNN (10x4 conv to 64 stride 2, four
 *               depthwise-separable blocks, average pool, dense 12)
 *     mobilenet 96x96x3: MobileNet v1 of width 0.25 (MLPerf Tiny's visual wake words layout: a
 *               stride-2 conv to 8, thirteen depthwise-separable blocks to 256, ReLU6 throughout,
 *               average pool, dense 2)
 *     mean      28x28x1: two convolutions (the second stride 2), then TFLite's MEAN over the image
 *               in the form SEED % 3 (runtime/int8_infer.h: 0 keep_dims, then a 1x1 conv; 1 at
 *               its own scale; 2 at its input's), dense 10
 *     softmax   28x28x1: two convolutions (the second stride 2), TFLite's int8 SOFTMAX over each of
 *               the 14x14 positions' 12 channels, dense 10 (logits at 1/16), SOFTMAX again
 * Weights uniform in +-sqrt(6 / fan-in) (He), per-channel scales, activations at fixed scales (ReLU
 * outputs z = -128), batch norm taken as folded. Exit 0 on success, 1 with a message otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/qmodel.h"
#include "src/rng.h"
#include "src/status.h"

typedef struct {
    tq_qlayer_src s[TQ_INT8_MAX_LAYERS];
    float *owned[3 * TQ_INT8_MAX_LAYERS];
    int n, n_owned;
    tq_rng r;
} graph;

static struct { int h, w, c; } net_in; /* the network's input: pixels */

typedef struct {
    int h, w, c;
    float scale;
    int32_t zp;
} shape;

static shape out_of(const graph *g, int l) {
    const tq_qlayer_src *L = &g->s[l];
    return (shape){L->out_h, L->out_w, L->out_c, L->out_scale, L->out_zp};
}

static float *buf(graph *g, size_t n) { return g->owned[g->n_owned++] = calloc(n ? n : 1, sizeof(float)); }

/* SAME padding along one axis (TFLite): the output ceil(in / stride), the odd padding after. */
static void same(int in, int k, int st, int *out, int *before) {
    *out = (in + st - 1) / st;
    int total = (*out - 1) * st + k - in;
    *before = total > 0 ? total / 2 : 0;
}

/* A conv (or depthwise) of the layer `from` (-1: the one before) to oc channels, k x kw, stride s,
 * SAME; returns its index. */
static int conv(graph *g, int from, int depthwise, int oc, int k, int kw, int st, int relu) {
    int l = g->n++;
    shape in = from >= 0 ? out_of(g, from) : l ? out_of(g, l - 1) : (shape){net_in.h, net_in.w, net_in.c, 1.0f / 255, -128};
    tq_qlayer_src *L = &g->s[l];
    int oh, ow, ph, pw;
    same(in.h, k, st, &oh, &ph);
    same(in.w, kw, st, &ow, &pw);
    if (depthwise) oc = in.c;
    size_t per = (size_t)k * kw * (depthwise ? 1 : in.c), nw = per * oc;
    float *W = buf(g, nw), *b = buf(g, oc), *sw = buf(g, oc);
    for (int o = 0; o < oc; o++) {
        float mx = 0;
        for (size_t i = 0; i < per; i++) {
            float v = tq_rng_uniform_in(&g->r, -1, 1) * sqrtf(6.0f / (float)per); /* He: keeps the scale through ReLUs */
            W[o * per + i] = v;
            mx = fabsf(v) > mx ? fabsf(v) : mx;
        }
        sw[o] = mx / 127;
        b[o] = tq_rng_uniform_in(&g->r, -0.1f, 0.1f);
    }
    *L = (tq_qlayer_src){.relu = relu, .w_bits = 8, .W = W, .b = b, .w_scale = sw, .in_scale = in.scale, .out_scale = 0.02f,
                         .in_zp = in.zp, .out_zp = relu ? -128 : 0, .kind = depthwise ? TQ_S8_DEPTHWISE : TQ_S8_CONV,
                         .in_h = in.h, .in_w = in.w, .in_c = in.c, .out_h = oh, .out_w = ow, .out_c = oc, .k = k,
                         .stride = st, .pad = ph, .src = {from < 0 ? 0 : from + 1, 0}};
    if (kw != k || pw != ph) L->kw = kw, L->stride_w = st, L->pad_w = pw;
    return l;
}

static int add(graph *g, int a, int b) {
    int l = g->n++;
    shape x = out_of(g, a), y = out_of(g, b);
    g->s[l] = (tq_qlayer_src){.relu = 1, .in_scale = x.scale, .in2_scale = y.scale, .out_scale = 0.03f, .in_zp = x.zp,
                              .in2_zp = y.zp, .out_zp = -128, .kind = TQ_S8_ADD, .in_h = x.h, .in_w = x.w, .in_c = x.c,
                              .out_h = x.h, .out_w = x.w, .out_c = x.c, .k = 1, .stride = 1, .src = {a + 1, b + 1}};
    return l;
}

/* channels of a and b side by side (one scale and zero point: both ReLU outputs here) */
static int concat(graph *g, int a, int b) {
    int l = g->n++;
    shape x = out_of(g, a), y = out_of(g, b);
    g->s[l] = (tq_qlayer_src){.in_scale = x.scale, .in2_scale = y.scale, .out_scale = x.scale, .in_zp = x.zp, .in2_zp = y.zp,
                              .out_zp = x.zp, .kind = TQ_S8_CONCAT, .in_h = x.h, .in_w = x.w, .in_c = x.c, .in2_c = y.c,
                              .out_h = x.h, .out_w = x.w, .out_c = x.c + y.c, .k = 1, .stride = 1, .src = {a + 1, b + 1}};
    return l;
}

/* global average pool, flatten, dense to `classes` */
static void head(graph *g, int classes) {
    shape x = out_of(g, g->n - 1);
    g->s[g->n++] = (tq_qlayer_src){.in_scale = x.scale, .out_scale = x.scale, .in_zp = x.zp, .out_zp = x.zp,
                                   .kind = TQ_S8_AVGPOOL, .in_h = x.h, .in_w = x.w, .in_c = x.c, .out_h = 1, .out_w = 1,
                                   .out_c = x.c, .k = x.h, .stride = 1, .kw = x.w, .stride_w = 1};
    g->s[g->n++] = (tq_qlayer_src){.in_scale = x.scale, .out_scale = x.scale, .in_zp = x.zp, .out_zp = x.zp,
                                   .kind = TQ_S8_FLATTEN, .in_h = 1, .in_w = 1, .in_c = x.c, .out_h = 1, .out_w = 1,
                                   .out_c = x.c, .k = 1, .stride = 1};
    float *W = buf(g, (size_t)x.c * classes), *b = buf(g, classes), *sw = buf(g, classes);
    for (int o = 0; o < classes; o++) {
        for (int i = 0; i < x.c; i++) W[o * x.c + i] = tq_rng_uniform_in(&g->r, -1, 1) * sqrtf(6.0f / (float)x.c);
        sw[o] = sqrtf(6.0f / (float)x.c) / 127;
        b[o] = 0;
    }
    g->s[g->n++] = (tq_qlayer_src){.in = x.c, .out = classes, .w_bits = 8, .W = W, .b = b, .w_scale = sw, .in_scale = x.scale,
                                   .out_scale = 0.01f, .in_zp = x.zp, .out_zp = 0};
}

/* TFLite's MEAN of the last layer over its image, in `form`: at scale s_out (form 2: the input's) */
static int mean(graph *g, int form, float s_out) {
    int l = g->n++;
    shape x = out_of(g, l - 1);
    g->s[l] = (tq_qlayer_src){.in_scale = x.scale, .out_scale = form == 2 ? x.scale : s_out, .in_zp = x.zp,
                              .out_zp = form == 2 ? x.zp : -100, .kind = TQ_S8_MEAN, .in_h = x.h, .in_w = x.w, .in_c = x.c,
                              .out_h = 1, .out_w = 1, .out_c = x.c, .k = 1, .stride = 1, .mean_form = form};
    return l;
}

/* TFLite's int8 SOFTMAX over the last layer's channels, at each position */
static int softmax(graph *g) {
    int l = g->n++;
    shape x = out_of(g, l - 1);
    if (g->s[l - 1].kind == TQ_S8_LINEAR) x.h = x.w = 1, x.c = g->s[l - 1].out; /* (a dense layer's source gives lengths) */
    g->s[l] = (tq_qlayer_src){.in_scale = x.scale, .out_scale = 1.0f / 256, .in_zp = x.zp, .out_zp = -128, .kind = TQ_S8_SOFTMAX,
                              .in_h = x.h, .in_w = x.w, .in_c = x.c, .out_h = x.h, .out_w = x.w, .out_c = x.c, .k = 1, .stride = 1};
    return l;
}

/* flatten, dense to `classes` */
static void dense_head(graph *g, int classes) {
    shape x = out_of(g, g->n - 1);
    g->s[g->n++] = (tq_qlayer_src){.in_scale = x.scale, .out_scale = x.scale, .in_zp = x.zp, .out_zp = x.zp,
                                   .kind = TQ_S8_FLATTEN, .in_h = x.h, .in_w = x.w, .in_c = x.c, .out_h = 1, .out_w = 1,
                                   .out_c = x.h * x.w * x.c, .k = 1, .stride = 1};
    const int n = x.h * x.w * x.c;
    float *W = buf(g, (size_t)n * classes), *b = buf(g, classes), *sw = buf(g, classes);
    for (int o = 0; o < classes; o++) {
        for (int i = 0; i < n; i++) W[o * n + i] = tq_rng_uniform_in(&g->r, -1, 1) * sqrtf(6.0f / (float)n);
        sw[o] = sqrtf(6.0f / (float)n) / 127;
    }
    g->s[g->n++] = (tq_qlayer_src){.in = n, .out = classes, .w_bits = 8, .W = W, .b = b, .w_scale = sw, .in_scale = x.scale,
                                   .out_scale = 0.01f, .in_zp = x.zp, .out_zp = 0};
}

static int first_conv(graph *g, int h, int w, int c, int oc, int k, int kw, int st) {
    net_in.h = h, net_in.w = w, net_in.c = c;
    return conv(g, -1, 0, oc, k, kw, st, 1);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: tq_graphgen residual|resnet8|dscnn|mobilenet|mean|softmax OUT.tqm [SEED]\n");
        return 2;
    }
    static graph g;
    tq_rng_seed(&g.r, argc == 4 ? strtoull(argv[3], NULL, 10) : 1);
    const char *lay = argv[1];
    if (!strcmp(lay, "residual")) {
        int x = first_conv(&g, 28, 28, 1, 8, 3, 3, 1);
        conv(&g, -1, 0, 8, 3, 3, 1, 1);
        int b = conv(&g, -1, 0, 8, 3, 1, 1, 0); /* 3x1 */
        x = add(&g, b, x);
        conv(&g, x, 0, 14, 3, 3, 2, 1); /* 28 -> 14, SAME: the odd padding after; 14 channels: not a multiple of 4 */
        b = conv(&g, -1, 0, 14, 3, 3, 1, 0);
        int sc = conv(&g, x, 0, 14, 1, 1, 2, 0); /* 1x1 stride-2 shortcut */
        x = add(&g, b, sc);
        conv(&g, -1, 1, 0, 3, 5, 1, 2);              /* depthwise, 3x5, ReLU6 */
        int pw = conv(&g, -1, 0, 16, 1, 1, 1, 1);    /* pointwise */
        int side = conv(&g, x, 0, 8, 1, 1, 1, 1);    /* a second branch from the block's output */
        concat(&g, pw, side);                        /* 16 + 8 channels */
        head(&g, 10);
    } else if (!strcmp(lay, "mean")) {
        const int form = (int)((argc == 4 ? strtoull(argv[3], NULL, 10) : 1) % 3);
        first_conv(&g, 28, 28, 1, 8, 3, 3, 1);
        conv(&g, -1, 0, 12, 3, 3, 2, 1);
        mean(&g, form, 0.004f);
        if (form == 0) conv(&g, -1, 0, 16, 1, 1, 1, 1); /* keep_dims: an image a convolution reads */
        dense_head(&g, 10);
    } else if (!strcmp(lay, "softmax")) {
        first_conv(&g, 28, 28, 1, 8, 3, 3, 1);
        conv(&g, -1, 0, 12, 3, 3, 2, 0);
        g.s[g.n - 1].out_scale = 0.1f; /* probabilities of some spread */
        softmax(&g);
        dense_head(&g, 10);
        g.s[g.n - 1].out_scale = 1.0f / 16;
        softmax(&g);
    } else if (!strcmp(lay, "resnet8")) {
        int x = first_conv(&g, 32, 32, 3, 16, 3, 3, 1);
        const int ch[3] = {16, 32, 64};
        for (int s = 0; s < 3; s++) {
            int st = s ? 2 : 1;
            conv(&g, x, 0, ch[s], 3, 3, st, 1);
            int b = conv(&g, -1, 0, ch[s], 3, 3, 1, 0);
            int sc = s ? conv(&g, x, 0, ch[s], 1, 1, 2, 0) : x;
            x = add(&g, b, sc);
        }
        head(&g, 10);
    } else if (!strcmp(lay, "dscnn")) {
        first_conv(&g, 49, 10, 1, 64, 10, 4, 2);
        for (int i = 0; i < 4; i++) {
            conv(&g, -1, 1, 0, 3, 3, 1, 1);
            conv(&g, -1, 0, 64, 1, 1, 1, 1);
        }
        head(&g, 12);
    } else if (!strcmp(lay, "mobilenet")) {
        first_conv(&g, 96, 96, 3, 8, 3, 3, 2);
        g.s[0].relu = 2;
        /* (pointwise channels, depthwise stride) of the thirteen blocks, at width 0.25 */
        const int blocks[13][2] = {{16, 1}, {32, 2}, {32, 1}, {64, 2}, {64, 1}, {128, 2}, {128, 1},
                                   {128, 1}, {128, 1}, {128, 1}, {128, 1}, {256, 2}, {256, 1}};
        for (int i = 0; i < 13; i++) {
            conv(&g, -1, 1, 0, 3, 3, blocks[i][1], 2);
            conv(&g, -1, 0, blocks[i][0], 1, 1, 1, 2);
        }
        head(&g, 2);
    } else {
        fprintf(stderr, "tq_graphgen: unknown layout %s (residual, resnet8, dscnn, mobilenet, mean, softmax)\n", lay);
        return 2;
    }
    tq_qmodel q;
    int rc = 0;
    if (tq_qmodel_convert(&q, lay, g.s, g.n) != TQ_OK || tq_qmodel_save(&q, argv[2]) != TQ_OK) {
        fprintf(stderr, "tq_graphgen: %s\n", tq_last_error());
        rc = 1;
    } else {
        printf("%s: %d layers, %llu MACs\n", argv[2], q.n_layers, (unsigned long long)tq_qmodel_macs(&q));
        tq_qmodel_free(&q);
    }
    for (int i = 0; i < g.n_owned; i++) free(g.owned[i]);
    return rc;
}
