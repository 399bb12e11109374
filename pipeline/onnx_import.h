/* A float ONNX model (as PyTorch's torch.onnx.export writes it, opset 13 and later) read into a
 * tinyqat float model, which then trains, quantizes, converts and exports like any other.
 * docs/QUANTIZATION.md §15.
 *
 * The graph may branch and join as tinyqat's models do (layers/model.h): a layer may read any
 * earlier layer's output, and an Add of two outputs of one shape is a residual add. What maps:
 *   Conv (any KH x KW kernel up to 64, one stride for rows and columns, as many pads above as
 *   below and left as right, no dilation; group 1, or group = channels for a depthwise
 *   convolution), BatchNormalization after it, Relu (and Clip to [0, inf)), Clip to [0, 6]
 *   (ReLU6), MaxPool and AveragePool (square, no padding), GlobalAveragePool (or an AveragePool
 *   over the whole image), Add of two layers' outputs, Flatten or Reshape into the dense layers,
 *   Gemm or MatMul (+ Add), Dropout and Identity (nothing), a final Softmax or LogSoftmax
 *   (dropped: tinyqat's models give logits, the same class), and Sub / Div / Mul / Add by a
 *   constant before the first layer (the input normalization). The operators that compute the
 *   batch size for a Reshape (Shape, Gather, Unsqueeze, Concat, Cast, Constant) are read past.
 * tinyqat keeps each layer's output only: an operator that reads a value from inside a layer
 * (a convolution's output before the batch norm or ReLU that follow it) is refused, as is a
 * second layer reading the network's input and a channel concat (the integer path has one; the
 * float models not yet).
 * Everything else is refused naming the node, its operator and position. NCHW becomes tinyqat's
 * NHWC: kernels go from OIHW to OHWI, and the dense layer after a flatten gets its columns from
 * ONNX's (c, h, w) order into tinyqat's (h, w, c).
 *
 * The input: the model takes what its exporter fed it. By default that is x = p/255 for a
 * pixel p (in_mean 0, in_std 1), changed by a leading Sub / Div; in_mean and in_std (when not
 * NaN) say instead that the ONNX model expects x = (p/255 - in_mean) / in_std. */
#ifndef TQ_ONNX_IMPORT_H
#define TQ_ONNX_IMPORT_H

#include "../layers/model.h"
#include "../src/qmodel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int nodes;           /* operators in the file */
    int softmax_dropped; /* 1: the graph ended in a Softmax / LogSoftmax, left out */
} tq_onnx_info;

/* Read path into m (initialized here: tq_model_free it). in_mean / in_std: the normalization the
 * model expects (NaN: what the graph's own leading Sub / Div say, else none). info may be NULL.
 * TQ_E_FORMAT for a file that is not ONNX or is damaged, TQ_E_ARG for a model tinyqat cannot
 * hold (the message names the node), TQ_E_IO when it cannot be read. */
tq_status tq_import_onnx(tq_model *m, const char *path, float in_mean, float in_std, tq_onnx_info *info);

/* The same from bytes in memory (the fuzz target's way in); name is used in messages. */
tq_status tq_import_onnx_bytes(tq_model *m, const unsigned char *data, size_t len, const char *name, float in_mean, float in_std,
                               tq_onnx_info *info);

/* A QDQ ONNX model, as tq_export_onnx writes it (QuantizeLinear and DequantizeLinear around Conv,
 * Gemm, Relu, AveragePool; MaxPool and Flatten on the int8 values; int8 weights per channel or per
 * tensor with zero point 0, int32 biases), read into an integer model: the file's integers kept
 * (checked), the multipliers derived from its scales. The graph must be such a chain; anything
 * else is refused naming the node. */
tq_status tq_import_onnx_int8(tq_qmodel *q, const char *path, tq_onnx_info *info);
tq_status tq_import_onnx_int8_bytes(tq_qmodel *q, const unsigned char *data, size_t len, const char *name, tq_onnx_info *info);

#ifdef __cplusplus
}
#endif
#endif
