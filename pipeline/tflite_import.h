/* An int8 TensorFlow Lite model (.tflite) read into a tinyqat integer model (.tqm), which then
 * runs on the host (tinyqat run, infer), as a C module for a microcontroller, and exports again.
 * docs/QUANTIZATION.md §17.
 *
 * The model must be in TFLite's int8 scheme: int8 activations with a scale and zero point, int8
 * weights symmetric per channel or per tensor, int32 biases at s_in s_w. What maps: CONV_2D and
 * DEPTHWISE_CONV_2D (k x kw kernels, strides of their own, no dilation; VALID, SAME, or a PAD of
 * the zero point before them), FULLY_CONNECTED, ADD, CONCATENATION (channels, one scale), MAX_POOL_2D and AVERAGE_POOL_2D (VALID, the
 * scale kept), MEAN over an image, RESHAPE into the dense layers, fused NONE, RELU or RELU6, SOFTMAX
 * (beta 1, computed in int8 as CMSIS-NN does: probabilities in steps of 1/256 come out), and a float interface (a QUANTIZE of the float input
 * first, a DEQUANTIZE of the output last: left out, the integer model reads and writes the int8
 * tensors between); an operator may read any tensor an earlier one wrote, so residual
 * networks import as graphs (docs/QUANTIZATION.md §18). Anything else is refused naming the
 * operator and its position. The integers are the file's: weights, biases and zero points are
 * taken as they are, the multipliers derived from the scales as TFLite derives them
 * (docs/QUANTIZATION.md §5); an imported model's output equals TFLite's reference
 * kernels' wherever they round as CMSIS-NN does. */
#ifndef TQ_TFLITE_IMPORT_H
#define TQ_TFLITE_IMPORT_H

#include "../src/qmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int operators;       /* in the file's subgraph */
    int softmax;         /* 1: it holds an int8 SOFTMAX, computed as TFLite Micro does (probabilities out) */
    int float_in, float_out; /* 1: a QUANTIZE of its float input first / a DEQUANTIZE into its float output last, left out */
} tq_tflite_info;

/* Read path into q (initialized here: tq_qmodel_free it). TQ_E_FORMAT for a damaged file,
 * TQ_E_ARG for a model tinyqat cannot hold (the message names the operator), TQ_E_IO when it
 * cannot be read. info may be NULL. */
tq_status tq_import_tflite(tq_qmodel *q, const char *path, tq_tflite_info *info);
tq_status tq_import_tflite_bytes(tq_qmodel *q, const unsigned char *data, size_t len, const char *name, tq_tflite_info *info);

#ifdef __cplusplus
}
#endif
#endif
