/* Direct convolution kernels for CPUs with AVX-512 (internal to layers/conv.c; see conv_direct.c).
 *
 * They read an unpadded image (the caller pads a copy when the layer pads), in the geometry below,
 * and work on whole images [0, n). Weights come in two layouts: W[o][k] as the op stores them and
 * Wt[k][o] (o padded with zeros to OCp, a multiple of 16), k = (ky*KW + kx)*C + c. */
#ifndef TQ_CONV_DIRECT_H
#define TQ_CONV_DIRECT_H

#include <stddef.h>

#include "conv.h"

typedef struct {
    int H, W, C;             /* the image read (already padded) */
    int KH, KW, stride, stride_w; /* strides down and across */
    int OH, OW, OC, OCp;     /* OCp: OC rounded up to 16, the row length of Wt */
} tq_direct_geom;

/* 1 when this CPU runs the kernels (AVX-512F). */
int tq_direct_available(void);

/* The geometry the kernels see for a (not depthwise) convolution of shape s: its image padded,
 * OCp = OC rounded up to 16 (defined in layers/conv.c). */
tq_direct_geom tq_conv_direct_geom(const tq_conv_shape *s);

/* y[n][p][o] = b[o] + sum_k x[n][win(p) + off(k)] Wt[k][o]   (b may be NULL) */
void tq_direct_forward(const tq_direct_geom *g, float *y, const float *x, const float *Wt, const float *b, int n);

/* dWt[k][o] += sum over the n images' outputs p of x[win(p) + off(k)] dy[p][o] */
void tq_direct_weights(const tq_direct_geom *g, float *dWt, const float *x, const float *dy, int n);

/* dx[win(p) + off(k)] += sum_o dy[p][o] W[o][k] */
void tq_direct_data(const tq_direct_geom *g, float *dx, const float *dy, const float *W, int n);

#endif
