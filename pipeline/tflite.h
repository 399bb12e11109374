/* An integer model as a TensorFlow Lite flatbuffer (.tflite), in TFLite's int8 scheme, for the
 * tools that take one (TFLite Micro, Arm NN, STM32Cube.AI, Vela). docs/QUANTIZATION.md §13.
 *
 * Every tensor is int8 with the model's scale and zero point; convolution, depthwise and dense
 * weights are symmetric per output channel (zero point 0; the quantized dimension 0 for conv and
 * dense [out][...], 3 for depthwise [1][k][k][out]); biases int32 at s_in s_w[o]. Layers map one to
 * one: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (a fused RELU where the layer has one),
 * MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE for a flatten; padding is VALID, or SAME where tinyqat's
 * symmetric padding is what SAME gives, else a PAD before the convolution (which pads int8 with
 * the zero point, as tinyqat's kernels read outside the image). The input is the first layer's
 * int8 (pixels p as p - 128 at s = 1/255), the output the last layer's int8 logits, or with
 * softmax a SOFTMAX after them: int8 probabilities at s = 1/256, z = -128 (what TFLite's int8
 * SOFTMAX requires). Weights of 2 to 4 bits are written as int8 values: TFLite has no packed form
 * for these ops. */
#ifndef TQ_TFLITE_H
#define TQ_TFLITE_H

#include "../src/qmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* flags: TQ_TFLITE_SOFTMAX ends the model with a SOFTMAX; TQ_TFLITE_FLOAT_IO gives it a float
 * interface, as TFLite's converter does by default: a QUANTIZE of a float input first and a
 * DEQUANTIZE of the output last (the integer model is what lies between them). */
enum { TQ_TFLITE_SOFTMAX = 1, TQ_TFLITE_FLOAT_IO = 2 };
/* Write q to path as .tflite (atomically: a failure leaves an existing file as it was). */
tq_status tq_export_tflite(const tq_qmodel *q, const char *path, int flags);

#ifdef __cplusplus
}
#endif
#endif
