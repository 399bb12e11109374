/* The quantized model on the host: conversion from a fake-quantized float model, the .tqm file,
 * and a fast batched runner bit-identical to the reference kernels of src/int8_infer.h.
 *
 * .tqm layout (little-endian), format TQ_TQM_FORMAT_VERSION:
 *   "TQI8"  u32 version  u16 spec_len  spec bytes  u32 n_layers
 *   per layer: u32 in, out, relu; i32 in_zp, out_zp, act_min, act_max; f32 in_scale, out_scale;
 *              f32 w_scale[out]; i8 w[out][in]; i32 bias[out]; i32 M0[out]; i32 shift[out]
 *   u32 crc32 (zlib) of everything before it
 * The float scales are information (and what --compare needs); the integer path uses none. */
#ifndef TQ_QMODEL_H
#define TQ_QMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "src/int8_infer.h"
#include "src/status.h"

#define TQ_TQM_FORMAT_VERSION 1

typedef struct {
    int32_t in, out, relu;
    int32_t in_zp, out_zp, act_min, act_max;
    float in_scale, out_scale;
    float *w_scale;            /* [out] */
    int8_t *w;                 /* [out][in] */
    int32_t *bias, *mult, *shift; /* [out] */
} tq_qlayer;

typedef struct {
    char spec[128];
    int32_t n_layers;
    tq_qlayer layer[TQ_INT8_MAX_LAYERS];
    tq_int8_mlp mlp;           /* the runtime's view of the arrays above */
} tq_qmodel;

/* One layer of a fake-quantized float model, as conversion needs it. */
typedef struct {
    int in, out, relu, w_bits;
    const float *W, *b;        /* [out][in], [out] */
    const float *w_scale;      /* [out] (all equal when per tensor) */
    float in_scale, out_scale;
    int32_t in_zp, out_zp;
} tq_qlayer_src;

/* M (> 0) -> M0 in [2^30, 2^31 - 1] and shift with M = M0 2^(shift - 31) (docs/QUANTIZATION.md §5):
 * frexp, M0 = round-half-away(q 2^31), M0 == 2^31 -> 2^30 with shift + 1, shift < -31 -> 0, 0. */
void tq_quantize_multiplier(double M, int32_t *M0, int32_t *shift);

/* Build an integer model: weights by tq_quantize_ref (the fake quant's own function), bias to
 * int32 at s_in s_w[o] (round half even, as the bias fake quant), M0/shift per channel. */
tq_status tq_qmodel_convert(tq_qmodel *q, const char *spec, const tq_qlayer_src *src, int n_layers);
void tq_qmodel_free(tq_qmodel *q); /* NULL-safe */

tq_status tq_qmodel_save(const tq_qmodel *q, const char *path);
tq_status tq_qmodel_load(tq_qmodel *q, const char *path);

/* ---- fast host path ---- */

/* A model prepared for the fast kernel: weights padded to 64 bytes a row and the input zero
 * point folded into the bias (acc = b - (z_x + 128) sum_i W[o][i] + sum_i W[o][i] (x[i] + 128)),
 * so the dot products run on unsigned activations (AVX-512 VNNI vpdpbusd). */
typedef struct tq_qfast tq_qfast;

/* The kernels, all bit-identical: AUTO picks the fastest the CPU has (VNNI, then AVX2, then REF). */
typedef enum { TQ_KERNEL_AUTO = 0, TQ_KERNEL_REF = 1, TQ_KERNEL_AVX2 = 2, TQ_KERNEL_VNNI = 3 } tq_kernel;

tq_status tq_qfast_init(tq_qfast **f, const tq_qmodel *q);
void tq_qfast_free(tq_qfast *f);
/* Classify n images of raw pixels [n][in]; logits [n][out] int8 and predictions [n].
 * TQ_E_ARG when the CPU lacks the kernel asked for. */
tq_status tq_qfast_run(tq_qfast *f, const uint8_t *pixels, size_t n, int8_t *logits, uint8_t *pred, tq_kernel k);
/* What AUTO resolves to on this CPU, and a kernel's name. */
tq_kernel tq_qfast_best(const tq_qfast *f);
const char *tq_kernel_name(tq_kernel k);
/* "auto", "ref", "avx2", "vnni" -> kernel; -1 if unknown. */
int tq_kernel_parse(const char *s);

#endif
