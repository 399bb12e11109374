/* Integer-only inference (tinyqat's docs/QUANTIZATION.md §5, §11 and §18): the freestanding
 * runtime that ships to a microcontroller. This header and its parts (runtime/kernels_ref.c, the
 * reference kernels; runtime/kernels_dsp.c, the Cortex-M DSP kernels; runtime/net.c, the checks,
 * the arena planner and the runners; an export joins them into one int8_infer.c) use only
 * <stdint.h> and <stddef.h>, no malloc, no libc, no float, so the same source builds for the host
 * and for a Cortex-M (the build compiles it with -mgeneral-regs-only on x86-64: any float would
 * fail the build). The host's own faster kernels (AVX2, VNNI) are a backend beside it, in
 * src/int8_fast.c.
 *
 * A network is a list of layers over NHWC int8 activations. A layer with weights computes, per
 * output value, an int32 accumulator from int8 weights (z = 0) and inputs (zero point z_x), and
 *
 *     y = clamp(requant(acc, M0[o], shift[o]) + z_y, act_min, act_max)
 *
 * with M = s_x s_w[o] / s_y = M0 2^(shift - 31), M0 in [2^30, 2^31 - 1], requant the TFLite /
 * gemmlowp double rounding (CMSIS-NN's default). A fused ReLU is act_min = z_y.
 *
 *   linear     acc[o] = b[o] + sum_i W[o][i] (x[i] - z_x)             W [out][in]
 *              = CMSIS-NN's arm_fully_connected_s8 (input_offset = -z_x, output_offset = z_y)
 *   conv       acc[oy][ox][o] = b[o] + sum_{ky,kx,c} W[o][ky][kx][c] (x[iy][ix][c] - z_x)
 *              iy = oy stride + ky - pad (likewise ix); a position outside the image holds z_x,
 *              so it adds nothing. W is OHWI [out_c][k][k][in_c] = arm_convolve_s8
 *   depthwise  acc[oy][ox][o] = b[o] + sum_{ky,kx} W[ky][kx][o] (x[iy][ix][o / mult] - z_x)
 *              W is 1HWO [k][k][out_c], out_c = in_c mult = arm_depthwise_conv_s8
 *   max pool   y = clamp(max over the k x k window)            = arm_max_pool_s8
 *   avg pool   y = clamp(round(sum / count)), half away from 0 = arm_avgpool_s8 (TFLite's rounding)
 *              both on the raw int8 values: a pool keeps the scale and zero point; no padding.
 *              A window the size of the image is a global average pool
 *   flatten    H x W x C -> H*W*C values, which in NHWC is the same bytes: nothing to compute
 *   add        two tensors of one shape, as TFLite's int8 ADD and arm_elementwise_add_s8:
 *                a_j = requant((x_j - z_j) 2^20, M0[j], shift[j])     j = 0, 1 (M_j = s_j / 2 max(s_0, s_1))
 *                y = clamp(requant(a_0 + a_1, M0[2], shift[2]) + z_y)   (M_2 = 2 max(s_0, s_1) / (2^20 s_y))
 *              |x - z| <= 255, so the shifted inputs and their sum stay inside int32
 *   concat     two tensors of one height and width joined along the channels (the first's, then
 *              the second's), of one scale and zero point: nothing to compute but copies
 *   mean       per channel over the whole image (H x W x C -> 1 x 1 x C), as TFLite Micro's int8
 *              MEAN over height and width computes it, in one of its three forms (mult[1]):
 *                sum = sum over the n = H W positions of (x - z_x)
 *                0 (keep_dims):  y = clamp(round(requant(sum, M0[0], shift[0]) / n) + z_y)
 *                                 (M = s_x / s_y; the division rounds half away from zero)
 *                1 (otherwise):  y = clamp(requant(sum, M0[0], shift[0]) + z_y)   (M = s_x / (s_y n), §18)
 *                2 (one scale and zero point, no keep_dims): y = (sum of the raw x) / n, truncated
 *              mult = {M0, form}, shift = {shift, 0}; n at most 2^23, so sum fits int32
 *   softmax    per position, over its C channels (C <= 511), as CMSIS-NN's arm_softmax_s8 and
 *              TFLite Micro's int8 SOFTMAX (beta 1) compute it, in fixed point (§20):
 *                d = x - max over the channels; a = d s_x in Q5.26 (M0 2^shift = s_x 2^57, shift
 *                in [0, 31]); e = exp(a) in Q0.31; y = e / sum(e) in steps of 1/256, - 128
 *              the output's scale is 1/256 and zero point -128; mult = {M0}, shift = {shift}
 *
 * 16-bit activations (TFLite's 16x8 mode, CMSIS-NN's s16 kernels; §19): a layer's input, output or
 * both may be int16 (act16), symmetric (zero point 0), with int8 weights as above. Such a layer
 * (linear, conv, depthwise, pools, flatten; not add or concat) accumulates in int64 from an int64
 * bias (bias64) and requantizes with TFLite's 64-bit MultiplyByQuantizedMultiplier, as
 * arm_nn_requantize_s64 does:
 *     m = M0 < 0x7fff0000 ? (M0 + 2^15) >> 16 : 0x7fff        (M0 reduced to 16 bits)
 *     y = clamp((acc m + 2^(14 - shift)) >> (15 - shift) + z_y, act_min, act_max)
 * (shift <= 14; a larger one saturates). An int8 side keeps its zero point, so a layer can go from
 * int8 to int16 (the first, on pixels) or back (the last: logits stay int8). A layer reads what its
 * producer writes; the network's input and output are int8.
 *
 * Kernels and windows are k x kw (kw = 0: square), strides stride x stride_w, the padding pad
 * above and pad_w on the left; below and on the right it is what the output size implies, at most
 * one more than above (TFLite's SAME puts the odd row there) and never a whole window.
 *
 * Graphs: a layer reads the output of the layer before it, or of any earlier layer (src); an add
 * reads two. The runners place each output in the arena for as long as a later layer reads it.
 *
 * Packed weights (w_bits 4 or 2): the weights of a layer are two's-complement fields of w_bits
 * bits, packed over the whole tensor in its layout's order with nothing between rows (a row of
 * odd length starts mid-byte): weight i is in byte i / (8 / w_bits), the first of a byte in its
 * lowest bits (TFLite's int4 and CMSIS-NN's s4 layout: low nibble first). The kernels read them
 * packed and compute the same integers as with the weights one per byte.
 *
 * Memory: the caller passes everything. The *_scratch_bytes functions say how much a run needs;
 * the scratch needs no particular contents.
 *
 * Ranges (as CMSIS-NN states its kernels' parameter ranges): the runners check every size and
 * that the layers chain, so a malformed network is refused, not run past its buffers. The values
 * are the caller's to bound, because checking them costs a pass over the weights: M0 in
 * [2^30, 2^31 - 1] (or M0 = shift = 0), shift in [-31, 30] (an add's two input shifts at most 0:
 * TFLite's multipliers below 1), and for every output channel o
 *
 *     |bias[o]| + 510 * 2^(8 - w_bits) * sum_i |W[o][i]|  <=  TQ_S8_ACC_MAX
 *
 * (a layer with a 16-bit side: |bias64[o]| <= 2^46, so its int64 accumulator stays below 2^47)
 *
 * (w_bits the storage width, 8 for int8), so no accumulator, partial sum or requantized value
 * overflows int32 in any kernel here: |x - z_x| <= 255, the host kernels' zero-point fold can
 * double it, and the DSP kernels sum packed weights scaled by 2^(8 - w_bits). tinyqat's converter
 * and .tqm loader refuse a model outside these ranges. */
#ifndef TQ_INT8_INFER_H
#define TQ_INT8_INFER_H

#include <stddef.h>
#include <stdint.h>

#define TQ_INT8_MAX_LAYERS 64

/* The layer kinds a build runs, one bit per tq_s8_kind: all of them here. An exported module's
 * copy of this header names its model's kinds only, so the other kernels stay out of the flash;
 * a layer of a kind left out is not computed. */
#define TQ_INT8_KINDS 0x3ff
/* The packed weight widths a build runs, one bit per width (1 << 4 | 1 << 2): both here; an
 * exported module's names its model's, 0 for an int8 model. */
#define TQ_INT8_PACKED 0x14
/* 1 when this build runs graphs (layers reading earlier layers, adds) and non-square kernels; an
 * exported chain of square kernels says 0, which leaves their fields, the graph planner and the
 * runner out of its flash. */
#define TQ_INT8_GRAPHS 1
/* 1 when this build runs layers with 16-bit activations (below); an exported module of int8
 * activations only says 0, which leaves their fields and kernel out of its flash. */
#define TQ_INT8_ACT16 1
/* The export a copy of the runtime belongs to (0 here): an exported module's files all carry the
 * same id, and tq_model.c and int8_infer.c refuse to compile beside files of another export (one
 * interrupted half way). */
#define TQ_INT8_EXPORT_ID 0x0u
/* 1 when the only networks this build runs were checked already: an exported module's, whose
 * const tables tq_export_c checked (tq_int8_net_check) as it wrote them. Its runners then test
 * the layer count alone, which keeps the check's code out of the flash and its time out of each
 * inference. 0 here: the host's runners check every network they are given. */
#define TQ_INT8_PRECHECKED 0
#define TQ_INT8_OK 0
/* The accumulator bound above: 2^31 - 256 leaves room to add an output zero point. */
#define TQ_S8_ACC_MAX 0x7fffff00
#define TQ_INT8_E_ARG (-1)   /* same value as TQ_E_ARG */

typedef enum {
    TQ_S8_LINEAR = 0,        /* 0, so a layer filled with the first ten fields only is linear */
    TQ_S8_CONV = 1,
    TQ_S8_DEPTHWISE = 2,
    TQ_S8_MAXPOOL = 3,
    TQ_S8_AVGPOOL = 4,
    TQ_S8_FLATTEN = 5,
    TQ_S8_ADD = 6,
    TQ_S8_CONCAT = 7,
    TQ_S8_MEAN = 8,
    TQ_S8_SOFTMAX = 9,
} tq_s8_kind;

/* What each kind is, as sets of kinds (bit k: kind k): the one place the runtime's checks and
 * runners, the loader, the converter, the host's kernels and the exporters ask. */
#define TQ_S8_WEIGHTED 0x007u  /* linear, conv, depthwise: weights, and per output channel a bias, M0 and shift */
#define TQ_S8_WINDOWED 0x01eu  /* conv, depthwise, max and average pool: a k x kw window, strides, padding */
#define TQ_S8_BINARY 0x0c0u    /* add, concat: two inputs */
#define TQ_S8_INT8_ONLY 0x3c0u /* add, concat, mean, softmax: no 16-bit side, and no place in a format-3 chain */
#define TQ_S8_IN(set, kind) ((uint32_t)(kind) < 32u && (((set) >> (uint32_t)(kind)) & 1u))
/* The multiplier and shift pairs of a kind without weights: an add's three (its inputs', its
 * output's), a mean's two (its multiplier, its form), a softmax's one; 0 for the others. */
#define TQ_S8_FIXED_REQUANTS(kind) ((kind) == TQ_S8_ADD ? 3 : (kind) == TQ_S8_MEAN ? 2 : (kind) == TQ_S8_SOFTMAX ? 1 : 0)

typedef struct {
    int32_t in, out;        /* values in and out: a linear layer's lengths, H*W*C for the others */
    const int8_t *w;        /* layouts above; NULL for pools and flatten */
    const int32_t *bias;    /* [output channels] */
    const int32_t *mult;    /* [output channels] M0 (an add: [3], its two inputs' and its output's; a mean: [2]; a softmax: [1]) */
    const int32_t *shift;   /* [output channels] (an add: [3]; a mean: [2]; a softmax: [1]) */
    int32_t in_zp, out_zp;  /* zero points, in [-128, 127] (equal for pools and flatten) */
    int32_t act_min, act_max;
    int32_t kind;           /* tq_s8_kind */
    int32_t in_h, in_w, in_c, out_h, out_w, out_c; /* images (linear: 1 x 1 x in -> 1 x 1 x out) */
    int32_t k, stride, pad; /* kernel or window rows, vertical stride, padding above (pools: 0) */
    int32_t w_bits;         /* bits per stored weight: 8 (or 0, so older initializers mean int8), 4 or 2 */
#if TQ_INT8_GRAPHS
    /* The fields below are 0 in a chain of square kernels, so older initializers keep meaning it
     * (and an exported chain's module, TQ_INT8_GRAPHS 0, leaves them out of its flash). */
    int32_t src[2];         /* input j is layer src[j] - 1's output; 0: the layer before's (the network's input
                               for layer 0). An add reads both, the other kinds src[0] */
    int32_t in2_zp;         /* an add's or concat's second input's zero point */
    int32_t kw, stride_w, pad_w; /* kernel columns, horizontal stride, padding on the left; kw = 0: square
                                    (k, stride, pad) */
    int32_t in2_c;          /* a concat's second input's channels (out_c = in_c + in2_c) */
#endif
#if TQ_INT8_ACT16
    /* 0 in a layer of int8 activations (so older initializers keep meaning it) */
    int32_t act16;          /* bit 0: the input is int16, bit 1: the output is int16 (zero point 0) */
    const int64_t *bias64;  /* a layer with weights and an int16 side: its biases [output channels] (bias unused) */
#endif
} tq_s8_layer;

typedef struct {
    int32_t n_layers;            /* 1..TQ_INT8_MAX_LAYERS */
    const tq_s8_layer *layer;    /* [n_layers] */
} tq_int8_net;

/* Weight i of a tensor stored w_bits (8, 4 or 2) to a weight, as above. */
int32_t tq_s8_unpack(const int8_t *w, int32_t w_bits, size_t i);

/* (acc * M0 * 2^(shift - 31)) rounded as TFLite does; shift in [-31, 30]. */
int32_t tq_requantize_ref(int32_t acc, int32_t M0, int32_t shift);
/* The 16-bit layers' requantization above, for |acc| <= 2^47 (saturated to int32). */
int32_t tq_requantize64_ref(int64_t acc, int32_t M0, int32_t shift);

/* The reference kernels, plain loops: y = the layer applied to x. The convolution gathers each
 * output position's window (k*k*in_c values) into `patch` first (tq_s8_layer_scratch_bytes). */
void tq_linear_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);
void tq_conv_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y, int8_t *patch);
void tq_depthwise_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);
void tq_maxpool_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);
void tq_avgpool_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);
void tq_add_s8_ref(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y);
void tq_concat_s8_ref(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y);
void tq_mean_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);
void tq_softmax_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);
/* exp(a) in Q0.31 for a <= 0 in Q5.26, the softmax's exponential (exposed for the tests). */
int32_t tq_exp_q31_ref(int32_t a);
/* A layer with a 16-bit side (act16 != 0), any kind it allows: x and y are int16 or int8 arrays
 * as act16 says; a convolution gathers each window into patch (tq_s8_layer_scratch_bytes). */
void tq_layer_s16_ref(const tq_s8_layer *L, const void *x, void *y, void *patch);

/* Scratch a layer's kernel needs besides its input and output: the convolution's patch; for a
 * linear layer of packed weights, its input unpacked to int16 (the DSP kernel's; every build
 * reports the same, so one buffer fits both). */
size_t tq_s8_layer_scratch_bytes(const tq_s8_layer *L);

/* One layer with the best kernel this build has (on a Cortex-M with DSP: SMLAD for linear and
 * conv). Flatten copies (the runners below pass its input through instead). x2 is an add's second
 * input (the others ignore it), and a concat's. */
void tq_s8_layer_run(const tq_s8_layer *L, const int8_t *x, const int8_t *x2, int8_t *y, int8_t *patch);

/* TQ_INT8_OK when every layer's sizes agree with its kind (in = in_h in_w in_c, a kernel's
 * output size, pads and windows inside the input, channels), weights, biases and multipliers are
 * there where the kind has them, zero points and clamps fit their side's type (an int16 side's
 * zero point is 0), each layer reads earlier layers only and takes the shape, type and zero point
 * they give, the network's input and output are int8, and every output but the last is read (the
 * last is the network's output); TQ_INT8_E_ARG otherwise. The runners call it. */
int tq_int8_net_check(const tq_int8_net *m);

/* Bytes of scratch tq_int8_net_run needs: the arena the outputs and the layers' patches live in
 * (the network's input and output are the caller's). A chain alternates the arena's two ends (each
 * output goes to the end its input left free) and puts a layer's patch between its input and
 * output, from a word, so the arena is the largest input, patch and output of a layer. A graph
 * places each output and each patch, largest first, at the lowest offset free for as long as it
 * lives (an output from its layer to the last layer reading it, a patch its layer), as TFLite
 * Micro's greedy planner does. */
size_t tq_int8_net_scratch_bytes(const tq_int8_net *m);

/* Run all layers: in[layer[0].in] -> out[layer[n-1].out]. TQ_INT8_E_ARG when the scratch is
 * too small or the network is malformed (tq_int8_net_check); TQ_INT8_OK otherwise. */
int tq_int8_net_run(const tq_int8_net *m, const int8_t *in, int8_t *out, void *scratch, size_t scratch_bytes);

/* Bytes of scratch tq_int8_net_predict_u8 needs. A first linear layer reads the pixels where they
 * are (200 bytes for 784-100-100-10); any other first layer gets them as int8 in the arena. */
size_t tq_int8_net_predict_scratch_bytes(const tq_int8_net *m);

/* Classify raw pixels (uint8, 0..255): the integer input is q = p - 128 (s = 1/255, z = -128,
 * which stands for p/255 exactly). Writes the int8 logits and returns the class (the first
 * maximum), or TQ_INT8_E_ARG when the scratch is too small. */
int tq_int8_net_predict_u8(const tq_int8_net *m, const uint8_t *pixels, int8_t *logits, void *scratch,
                           size_t scratch_bytes);

#endif
