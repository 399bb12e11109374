/* A model as ONNX (.onnx, opset 13), for ONNX Runtime, TensorRT, netron and the converters that
 * take it. docs/QUANTIZATION.md §14.
 *
 * An integer model (.tqm) becomes a QDQ graph: every activation is an int8 tensor between a
 * QuantizeLinear and a DequantizeLinear at its scale and zero point, around the float operators
 * (Conv, Gemm, Relu, AveragePool; MaxPool and Flatten run on the int8 tensor itself). Weights are
 * int8 initializers dequantized per output channel (axis 0, zero point 0; one scale when every
 * channel has the same), biases int32 at s_in s_w[o]. Weights of 2 to 4 bits are written as int8
 * values: int4 needs opset 21, which few runtimes take yet.
 *
 * A float model (.tqf) becomes the plain float graph: Conv, BatchNormalization (the running
 * statistics), Relu, MaxPool, AveragePool, Flatten, Gemm, with the input normalization as a Sub
 * and a Div in front.
 *
 * Both take the input as the integer path does: x = p/255 for a pixel p, float, NCHW
 * [N][C][H][W] (a dense-only model: [N][inputs]), N free; both give "logits" [N][classes] (the
 * QDQ graph: the last layer's dequantized int8 outputs, so q = round(y / s) + z recovers them),
 * or with softmax "probabilities", a Softmax of them.
 * ONNX flattens NCHW where tinyqat flattens NHWC: the first dense layer's weight columns are
 * permuted to match, so the graph computes the same function. */
#ifndef TQ_ONNX_H
#define TQ_ONNX_H

#include "../layers/model.h"
#include "../src/qmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write the integer model q to path as a QDQ ONNX model (atomically: a failure leaves an existing
 * file as it was). TQ_E_FORMAT when a layer's multiplier is not the one its scales give (ONNX
 * keeps only the scales). */
tq_status tq_export_onnx(const tq_qmodel *q, const char *path, int softmax);

/* Write the float model m to path as a float ONNX model. TQ_E_ARG for a quantized model (its
 * deployed form is the integer model: convert it and export that). */
tq_status tq_export_onnx_float(const tq_model *m, const char *path, int softmax);

#ifdef __cplusplus
}
#endif
#endif
