/* Convolution, depthwise convolution and pooling on NHWC activations (docs/QUANTIZATION.md §10).
 *
 * A batch of images is a [B][H*W*C] node: row b is image b, stored [H][W][C] (channels fastest),
 * the layout TFLite and CMSIS-NN use, so conversion needs no transposes. Shapes travel in a
 * tq_conv_shape that the op keeps as its ctx (the caller owns it).
 *
 *   conv2d     y[b][oy][ox][o] = bias[o] + sum_{ky,kx,c} W[o][ky][kx][c] x[b][iy][ix][c]
 *              iy = oy*stride + ky - pad, ix = ox*stride + kx - pad_w; outside the image x = 0.
 *              W is [OC][KH*KW*C] (OHWI): one row per output channel, which is also the row of
 *              the per-channel weight quantizer. On a CPU with AVX-512, computed by direct
 *              kernels (layers/conv_direct.c: output channels as vector lanes, no copies);
 *              elsewhere as im2col + one SGEMM per batch slice:
 *              col[b*OH*OW + p][(ky*KW + kx)*C + c] = x at the window of output p, and
 *              y = col W^T; backward: dW += dy^T col, dcol = dy W, dx += col2im(dcol).
 *   depthwise  y[b][oy][ox][o] = bias[o] + sum_{ky,kx} W[o][ky*KW + kx] x[b][iy][ix][o / mult]
 *              W is [OC][KH*KW] with OC = C * mult (row o: the filter of output channel o; the
 *              file and the integer path store it 1HWO, [KH][KW][OC]).
 *   max pool   y = max over the k x k window (stride s, no padding); the gradient goes to the
 *              first maximum of the window.
 *   avg pool   y = mean over the window.
 */
#ifndef TQ_CONV_H
#define TQ_CONV_H

#include "../src/autograd.h"
#include "../src/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int H, W, C;          /* input image */
    int KH, KW, stride, pad;   /* kernel rows and columns, the stride down, padding above */
    int pad_w;                 /* padding left and right */
    int pad_b, pad_r;          /* padding below and on the right: pad and pad_w, or one more (TFLite's SAME) */
    int stride_w;              /* the stride across: stride, or its own */
    int OC;               /* output channels (depthwise: C * mult) */
    int OH, OW;           /* output image: (H + pad + pad_b - KH) / stride + 1, likewise across with stride_w */
    int depthwise;        /* 1: one KH x KW filter per output channel */
    int im2col;           /* 1: the im2col path even where the direct kernels run (0 from init) */
} tq_conv_shape;

/* Fill s and derive OH, OW. TQ_E_SHAPE (with a message) when the kernel does not fit the padded
 * image or a size is not positive; for depthwise, OC must be a multiple of C. */
tq_status tq_conv_shape_init(tq_conv_shape *s, int H, int W, int C, int K, int stride, int pad, int OC, int depthwise);
/* The same with a KH x KW kernel and padding pad (rows) and pad_w (columns). */
tq_status tq_conv_shape_init_hw(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int pad, int pad_w, int OC,
                                int depthwise);
/* TFLite's (and TensorFlow's) SAME padding: the output ceil(H / stride) x ceil(W / stride), the
 * padding each needs split with the odd row or column after (below, right). */
tq_status tq_conv_shape_init_same(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int stride_w, int OC,
                                  int depthwise);
/* Strides of their own down (stride) and across (stride_w), symmetric padding pad and pad_w. */
tq_status tq_conv_shape_init_strides(tq_conv_shape *s, int H, int W, int C, int KH, int KW, int stride, int stride_w, int pad, int pad_w,
                                     int OC, int depthwise);

/* Record y = conv(x, W) + b (b may be NULL).  x:[B][H*W*C]  W:[OC][KH*KW*C] (depthwise
 * [OC][KH*KW])  b:[1][OC]  ->  [B][OH*OW*OC]. */
tq_node *tq_conv2d(tq_graph *g, tq_node *x, tq_node *W, tq_node *b, const tq_conv_shape *s);

/* On a CPU with AVX-512 a (not depthwise) convolution runs direct kernels (layers/conv_direct.c)
 * instead of im2col + SGEMM; a shape with im2col = 1 takes im2col anyway, to compare the two
 * (tests, bench). The choice belongs to the shape, not the process, so threads training other
 * models never see it change. tq_conv_direct(s): whether a convolution of shape s takes the
 * direct kernels. */
int tq_conv_direct(const tq_conv_shape *s);

/* The same by direct loops in double, the reference the op is tested against. */
void tq_conv2d_ref(float *y, const float *x, const float *W, const float *b, int B, const tq_conv_shape *s);

/* PyTorch's default (kaiming_uniform with a = sqrt(5)): W and b uniform in +-1/sqrt(fan_in),
 * fan_in = KH*KW*C (depthwise: KH*KW). b may be NULL. */
void tq_conv_init(float *W, float *b, const tq_conv_shape *s, tq_rng *rng);

typedef struct {
    int H, W, C, K, stride;  /* K x KW windows, no padding */
    int OH, OW;              /* (H - K) / stride + 1, (W - KW) / stride + 1 */
    int avg;                 /* 0: max pool, 1: average pool */
    int KW;                  /* the window's columns: K but in a global pool of a non-square image */
} tq_pool_shape;

tq_status tq_pool_shape_init(tq_pool_shape *s, int H, int W, int C, int K, int stride, int avg);
/* A global average pool: one H x W window, a 1 x 1 output. */
tq_status tq_pool_shape_global(tq_pool_shape *s, int H, int W, int C);

/* x:[B][H*W*C] -> [B][OH*OW*C] */
tq_node *tq_pool2d(tq_graph *g, tq_node *x, const tq_pool_shape *s);

#ifdef __cplusplus
}
#endif
#endif
