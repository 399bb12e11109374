#!/usr/bin/python3
"""A model quantized in PyTorch (eager mode: fused conv + ReLU, post-training calibration on MNIST
test images, per-channel weights and uint8 activations, on QNNPACK: Debian's torch has no FBGEMM) exported as ONNX by
torch.onnx.export, which writes PyTorch's own QDQ layout (Constant nodes, uint8 activations with
a Cast after each QuantizeLinear, int32 biases whose zero point comes from ConstantOfShape, a
MaxPool and a Flatten between a DequantizeLinear and a QuantizeLinear), for
tests/onnx_import_test.sh. Writes, in OUT_DIR:

    pq.onnx       the model (DigitsCNN's layout: conv 5x5 + ReLU, max pool, conv 5x5 + ReLU, max pool, dense)
    pq_in.npy     the first N MNIST test images as PyTorch's QuantStub quantizes them, int8 (q - 128)
    pq.ref        PyTorch's quantized outputs for them, int8 [N][10] (its quint8 logits - 128)
    pq_full.onnx  the same model with PyTorch's default weight range (-128..127), which tinyqat refuses

    tests/onnx_torch_qdq.py OUT_DIR MNIST_DIR [N]

Weights are observed symmetric in -127..127, the range tinyqat's kernels take. Exit 77 without torch."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.ao.quantization as tq
    from tq_mnist import out_folder_count, test_images
except ImportError:
    print("SKIP: needs python3-torch")
    sys.exit(77)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.c1, self.r1, self.p1 = nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2)
        self.c2, self.r2, self.p2 = nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2)
        self.flat, self.fc = nn.Flatten(), nn.Linear(256, 10)

    def forward(self, x):
        x = self.p1(self.r1(self.c1(self.quant(x))))
        x = self.p2(self.r2(self.c2(x)))
        return self.dequant(self.fc(self.flat(x)))


def quantized(x, narrow):
    torch.manual_seed(0)
    m = Net().eval()
    torch.backends.quantized.engine = "qnnpack"
    weights = tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                                    quant_min=-127 if narrow else -128, quant_max=127)
    m.qconfig = tq.QConfig(activation=tq.HistogramObserver.with_args(reduce_range=False), weight=weights)
    tq.fuse_modules(m, [["c1", "r1"], ["c2", "r2"]], inplace=True)
    tq.prepare(m, inplace=True)
    with torch.no_grad():
        m(x[:500])
    return tq.convert(m, inplace=True)


def main():
    out, folder, n = out_folder_count(__doc__)
    torch.set_num_threads(1)
    x = torch.from_numpy(test_images(folder, n, "onnx_torch_qdq").astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    for narrow in (True, False):
        m = quantized(x, narrow)
        torch.onnx.export(m, x[:1], os.path.join(out, "pq.onnx" if narrow else "pq_full.onnx"), opset_version=13)
    m = quantized(x, True)
    with torch.no_grad():
        q = m.quant(x)
        y = m.fc(m.flat(m.p2(m.c2(m.p1(m.c1(q))))))  # the quantized logits, before DeQuantStub
    xi = (q.int_repr().numpy().astype(np.int16) - 128).astype(np.int8).transpose(0, 2, 3, 1)  # NHWC for tinyqat
    np.save(os.path.join(out, "pq_in.npy"), np.ascontiguousarray(xi))
    (y.int_repr().numpy().astype(np.int16) - 128).astype(np.int8).tofile(os.path.join(out, "pq.ref"))
    print(f"onnx_torch_qdq: wrote {out}/pq.onnx, pq_full.onnx and {n} images quantized with PyTorch's outputs "
          f"(input scale {q.q_scale():.6g}, zero point {q.q_zero_point()})")


if __name__ == "__main__":
    main()
