/* The quantized model on the host: conversion from a fake-quantized float model, the .tqm file,
 * and a fast batched runner bit-identical to the reference kernels of runtime/int8_infer.h.
 *
 * .tqm layout (little-endian), format TQ_TQM_FORMAT_VERSION (4; docs/QUANTIZATION.md §8):
 *   "TQI8"  u32 version  u16 spec_len  spec bytes  u32 n_layers
 *   per layer: u32 kind, in_h, in_w, in_c, out_h, out_w, out_c, k, stride, pad, relu, w_bits, w_bytes;
 *              i32 in_zp, out_zp, act_min, act_max; f32 in_scale, out_scale;
 *              version 4: i32 src[2], kw, stride_w, pad_w, in2_zp, in2_c; f32 in2_scale (tq_s8_layer's);
 *              version 5: those, then i32 act16 (tq_s8_layer's: 16-bit input and output);
 *              then, for linear, conv and depthwise layers (C = out_c channels):
 *              f32 w_scale[C]; w[...] (runtime/int8_infer.h's layouts, packed to the storage width
 *              of w_bits: 2 bits in 2, 3 and 4 in 4, 5..8 in 8); i32 bias[C] (i64 where act16 is
 *              not 0), M0[C], shift[C]
 *              and for an add: i32 M0[3], shift[3]; for a mean (kind 8): i32 M0[2], shift[2]; for a
 *              softmax (kind 9): i32 M0, shift
 *   u32 crc32 (zlib) of everything before it
 * A chain of square kernels is saved as version 3, byte for byte what earlier tinyqat wrote, a
 * graph of int8 activations as version 4.
 * A linear layer is 1 x 1 x in -> 1 x 1 x out with k = stride = 1, pad = 0. Version 2 files (no
 * w_bits: 8) and version 1 files (linear layers only: u32 in, out, relu; the same fields from
 * in_zp on) still load.
 * The float scales are information (and what --compare needs); the integer path uses none. */
#ifndef TQ_QMODEL_H
#define TQ_QMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../runtime/int8_infer.h"
#include "status.h"

#define TQ_TQM_FORMAT_VERSION 5

typedef struct {
    int32_t kind;              /* tq_s8_kind */
    int32_t in, out, relu;     /* values in and out; relu 1 a ReLU (act_min = z_y), 2 a ReLU6 (also act_max = z_y + round(6 / s_y)) */
    int32_t w_bits;            /* the weights' bit width, 2..8 (8 for layers without weights) */
    int32_t in_h, in_w, in_c, out_h, out_w, out_c, k, stride, pad;
    int32_t in_zp, out_zp, act_min, act_max;
    float in_scale, out_scale;
    float *w_scale;            /* [out_c]; NULL without weights */
    int8_t *w;
    int32_t *bias, *mult, *shift; /* [out_c]; an add has no bias and three multipliers (tq_qlayer_requants) */
    /* graphs and non-square kernels, as in tq_s8_layer (all 0 in a chain of square kernels) */
    int32_t src[2], kw, stride_w, pad_w, in2_zp, in2_c;
    float in2_scale;           /* an add's or concat's second input's scale */
    /* 16-bit activations, as in tq_s8_layer: act16 bit 0 the input, bit 1 the output; such a
     * layer's biases are bias64 (bias NULL) */
    int32_t act16;
    int64_t *bias64;
} tq_qlayer;

/* The longest model spec, with its NUL (a ResNet-8's is some 130 characters, a MobileNet's 300). */
#define TQ_SPEC_MAX 512

typedef struct {
    char spec[TQ_SPEC_MAX];
    int32_t n_layers;
    tq_qlayer layer[TQ_INT8_MAX_LAYERS];
    tq_s8_layer view[TQ_INT8_MAX_LAYERS]; /* the runtime's view of the layers above */
    tq_int8_net net;           /* {n_layers, view} */
} tq_qmodel;

/* One layer of a fake-quantized float model, as conversion needs it. A linear layer needs the
 * first eleven fields; the others describe an image layer (kind != TQ_S8_LINEAR). */
typedef struct {
    int in, out, relu, w_bits;
    const float *W, *b;        /* linear [out][in]; conv [out_c][k*k*in_c]; depthwise [out_c][k*k] */
    const float *w_scale;      /* [out_c] (all equal when per tensor) */
    float in_scale, out_scale;
    int32_t in_zp, out_zp;
    int kind;
    int in_h, in_w, in_c, out_h, out_w, out_c, k, stride, pad;
    /* An imported layer's integers, in W's and b's layouts, taken as they are instead of
     * quantizing W and b (which may then be NULL): a weight outside the width's range is refused. */
    const int8_t *Wq;
    const int32_t *bq;
    /* graphs and non-square kernels, as in tq_s8_layer (0 in a chain of square kernels) */
    int src[2], kw, stride_w, pad_w;
    int32_t in2_zp, in2_c;
    float in2_scale;
    /* 16 for an int16 output (zero point 0), 0 or 8 for int8; the input's width is its producer's
     * (the network's input: 8). Layers without weights keep their input's. */
    int out_bits;
    int mean_form;             /* a mean's (runtime/int8_infer.h: 0, 1 or 2) */
} tq_qlayer_src;

/* "linear", "conv", "depthwise", "max pool", "avg pool", "flatten", "add", "concat", "mean", "softmax" ("unknown" otherwise). */
const char *tq_qlayer_kind_name(int32_t kind);
/* Weights and channels of a layer (0 for pools and flatten). */
size_t tq_qlayer_weights(const tq_qlayer *L);
/* How a bit width is stored: 2 -> 2, 3 and 4 -> 4, 5..8 -> 8 bits a weight. */
int32_t tq_qlayer_storage_bits(int32_t w_bits);
/* Bytes of the packed weights. */
size_t tq_qlayer_weight_bytes(const tq_qlayer *L);
int32_t tq_qlayer_channels(const tq_qlayer *L);
/* Multiplier and shift pairs: one a channel, three for an add, two for a mean (its requantization,
 * then its form: runtime/int8_infer.h), one for a softmax, none for the others. */
int32_t tq_qlayer_requants(const tq_qlayer *L);
/* A kernel's or window's columns, horizontal stride and left padding (kw = 0: square). */
int32_t tq_qlayer_kw(const tq_qlayer *L);
int32_t tq_qlayer_stride_w(const tq_qlayer *L);
int32_t tq_qlayer_pad_w(const tq_qlayer *L);
/* 1 when the model is a chain of square kernels (what format version 3 and the exporters to
 * TFLite and ONNX hold), 0 when it uses a graph's inputs, an add or a non-square kernel. */
int tq_qmodel_is_chain(const tq_qmodel *q);
/* 1 when some layer has 16-bit activations (format version 5; the vector kernels and the
 * TFLite and ONNX exporters take int8 activations only). */
int tq_qmodel_has_act16(const tq_qmodel *q);
/* The layer whose output is layer l's input j (src[j] - 1, or l - 1 for src 0); -1: the network's input. */
int tq_qmodel_producer(const tq_qmodel *q, int l, int j);
/* Every channel's multiplier and shift are the ones tq_quantize_multiplier gives for
 * s_in s_w[o] / s_out: formats that keep only the scales (TFLite, ONNX) recompute them from those.
 * TQ_E_FORMAT naming `format`, the layer and the channel otherwise. */
/* A model with 16-bit activations is refused too: those formats hold int8 ones here. */
tq_status tq_qmodel_check_scales(const tq_qmodel *q, const char *format);
/* TQ_OK when the model takes pixels the way the pixel paths feed them (docs/QUANTIZATION.md §6:
 * q = p - 128 at s = 1/255, z = -128), as every model tinyqat trains does; TQ_E_ARG naming `who`
 * and the model's own input quantization otherwise (an imported model: tinyqat run feeds it). */
tq_status tq_qmodel_check_pixels(const tq_qmodel *q, const char *who);
/* 1 when it does (the same test, without a message). */
int tq_qmodel_takes_pixels(const tq_qmodel *q);
/* Multiply-adds of one inference. */
uint64_t tq_qmodel_macs(const tq_qmodel *q);

/* M (> 0) -> M0 in [2^30, 2^31 - 1] and shift with M = M0 2^(shift - 31) (docs/QUANTIZATION.md §5):
 * frexp, M0 = round-half-away(q 2^31), M0 == 2^31 -> 2^30 with shift + 1, shift < -31 -> 0, 0;
 * M >= 2^30 (+inf too) -> 2^31 - 1, 30, which saturates every output as M does; M <= 0 or NaN -> 0, 0. */
void tq_quantize_multiplier(double M, int32_t *M0, int32_t *shift);

/* An int8 ADD's three multipliers from its scales (inputs a, b, output y; docs/QUANTIZATION.md
 * §18): M0[0], M0[1] take each input to twice the larger input scale, 20 bits below it; M0[2] the
 * sum to s_y. What the converter stores and the QAT simulation of an add computes with. */
void tq_add_multipliers(float s_a, float s_b, float s_y, int32_t *M0, int32_t *shift);
/* TFLite Micro's int8 MEAN multiplier for form 0 or 1 (runtime/int8_infer.h) over n positions: s_in /
 * s_out as QuantizeMultiplier gives it, with 1/n folded in for form 1 as its QuantizedMeanOrSum
 * does; 0 and 0 for form 2. */
void tq_mean_multiplier(int32_t form, float s_in, float s_out, int32_t n, int32_t *M0, int32_t *shift);
/* TFLite's int8 SOFTMAX multiplier (beta 1) for an input at scale s_in: s_in 2^26 as M0
 * 2^(shift - 31), shift in [0, 31] (runtime/int8_infer.h). -1 (and 0, 0) when s_in 2^26 < 1. */
int tq_softmax_multiplier(float s_in, int32_t *M0, int32_t *shift);

/* Build an integer model: weights by tq_quantize_ref (the fake quant's own function), bias to
 * int32 at s_in s_w[o] (round half even, as the bias fake quant), M0/shift per channel; a
 * depthwise filter goes from [out_c][k*k] to 1HWO. The shapes are checked as the loader does. */
tq_status tq_qmodel_convert(tq_qmodel *q, const char *spec, const tq_qlayer_src *src, int n_layers);
void tq_qmodel_free(tq_qmodel *q); /* NULL-safe */

tq_status tq_qmodel_save(const tq_qmodel *q, const char *path);
tq_status tq_qmodel_load(tq_qmodel *q, const char *path);

/* ---- fast host path ---- */

/* A model prepared for the fast kernel: weights laid out as the kernels read them (packed 4- and
 * 2-bit weights stay packed, docs/QUANTIZATION.md section 12), rows padded, and the input zero
 * point folded into the bias (acc = b - (z_x + 128) sum_i W[o][i] + sum_i W[o][i] (x[i] + 128)),
 * so the dot products run on unsigned activations (AVX-512 VNNI vpdpbusd). */
typedef struct tq_qfast tq_qfast;

/* The kernels, all bit-identical: AUTO picks the fastest the CPU has (VNNI, then AVX2, then REF). */
typedef enum { TQ_KERNEL_AUTO = 0, TQ_KERNEL_REF = 1, TQ_KERNEL_AVX2 = 2, TQ_KERNEL_VNNI = 3 } tq_kernel;

tq_status tq_qfast_init(tq_qfast **f, const tq_qmodel *q);
void tq_qfast_free(tq_qfast *f);
/* Classify n images of raw pixels [n][in]; logits [n][out] int8 and predictions [n].
 * TQ_E_ARG when the CPU lacks the kernel asked for. The AVX2 and VNNI kernels cover networks of
 * linear layers; others run the reference kernels, images spread over the thread pool. */
tq_status tq_qfast_run(tq_qfast *f, const uint8_t *pixels, size_t n, int8_t *logits, uint8_t *pred, tq_kernel k);
/* What AUTO resolves to on this CPU, and a kernel's name. */
tq_kernel tq_qfast_best(const tq_qfast *f);
const char *tq_kernel_name(tq_kernel k);
/* "auto", "ref", "avx2", "vnni" -> kernel; -1 if unknown. */
int tq_kernel_parse(const char *s);

#endif
