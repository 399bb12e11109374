/* Integer-only inference of a quantized MLP (tinyqat's docs/QUANTIZATION.md §5). Freestanding: this header
 * and int8_infer.c use only <stdint.h> and <stddef.h>, no malloc, no libc, no float, so the same
 * source builds for the host and for a Cortex-M (the build compiles it with -mgeneral-regs-only
 * on x86-64: any float would fail the build).
 *
 * One fully connected layer, input x (int8, zero point z_x), weights W[out][in] (int8, z = 0),
 * bias b (int32 at scale s_x s_w[o]):
 *
 *     acc[o] = b[o] + sum_i W[o][i] (x[i] - z_x)                        int32
 *     y[o]   = clamp(requant(acc[o], M0[o], shift[o]) + z_y, act_min, act_max)
 *
 * where M = s_x s_w[o] / s_y = M0 2^(shift - 31), M0 in [2^30, 2^31 - 1], and requant is the
 * TFLite / gemmlowp double rounding (CMSIS-NN's default). A fused ReLU is act_min = z_y.
 * The same numbers map one to one onto CMSIS-NN's arm_fully_connected_s8 (input_offset = -z_x,
 * output_offset = z_y, quant_params = {M0, shift}).
 *
 * Memory: the caller passes everything. tq_int8_mlp_scratch_bytes says how much scratch a run
 * needs (two activation buffers); the scratch needs no particular contents. */
#ifndef TQ_INT8_INFER_H
#define TQ_INT8_INFER_H

#include <stddef.h>
#include <stdint.h>

#define TQ_INT8_MAX_LAYERS 8
#define TQ_INT8_OK 0
#define TQ_INT8_E_ARG (-1)   /* same value as TQ_E_ARG */

typedef struct {
    int32_t in, out;
    const int8_t *w;        /* [out][in] row-major */
    const int32_t *bias;    /* [out] */
    const int32_t *mult;    /* [out] M0 */
    const int32_t *shift;   /* [out] */
    int32_t in_zp, out_zp;  /* zero points, in [-128, 127] */
    int32_t act_min, act_max;
} tq_s8_layer;

typedef struct {
    int32_t n_layers;
    tq_s8_layer layer[TQ_INT8_MAX_LAYERS];
} tq_int8_mlp;

/* (acc * M0 * 2^(shift - 31)) rounded as TFLite does; shift in [-31, 30]. */
int32_t tq_requantize_ref(int32_t acc, int32_t M0, int32_t shift);

/* y[out] = the layer applied to x[in]. */
void tq_linear_s8_ref(const tq_s8_layer *L, const int8_t *x, int8_t *y);

/* Bytes of scratch tq_int8_mlp_run needs: two buffers of the widest layer. */
size_t tq_int8_mlp_scratch_bytes(const tq_int8_mlp *m);

/* Run all layers: in[layer[0].in] -> out[layer[n-1].out]. TQ_INT8_E_ARG when the scratch is
 * too small or the model is malformed; TQ_INT8_OK otherwise. */
int tq_int8_mlp_run(const tq_int8_mlp *m, const int8_t *in, int8_t *out, void *scratch, size_t scratch_bytes);

/* Bytes of scratch tq_int8_mlp_predict_u8 needs: two buffers of the widest layer output (the
 * pixels are read where they are, so the input needs no copy: 200 bytes for 784-100-100-10). */
size_t tq_int8_mlp_predict_scratch_bytes(const tq_int8_mlp *m);

/* Classify raw pixels (uint8, 0..255): the integer input is q = p - 128 (s = 1/255, z = -128,
 * which stands for p/255 exactly). Writes the int8 logits and returns the class (the first
 * maximum), or TQ_INT8_E_ARG when the scratch is too small. */
int tq_int8_mlp_predict_u8(const tq_int8_mlp *m, const uint8_t *pixels, int8_t *logits, void *scratch,
                           size_t scratch_bytes);

#endif
