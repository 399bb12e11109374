#!/usr/bin/env python3
"""Train DigitsCNN, DigitsNet or ResNet-8 in PyTorch and write it as ONNX, for `tinyqat import`:
the README's "trained elsewhere" path (PyTorch -> ONNX -> tinyqat PTQ / QAT -> integer -> Cortex-M).

    /usr/bin/python3 scripts/pytorch_to_onnx.py OUT.onnx [--model digitscnn|digitsnet|resnet8]
                     [--epochs 5] [--data DIR] [--threads 1] [--seed 0] [--norm | --no-norm]

The networks are compare_pytorch.py's (DigitsCNN: conv, batch norm, ReLU, max pool, the dense
head; ResNet-8: MLPerf Tiny's, residual adds and 1x1 stride-2 shortcuts), trained with Adam 1e-3,
batch 64. DigitsNet and DigitsCNN train on x = (p/255 - 0.1307) / 0.3081 (import them with --mean
0.1307 --std 0.3081); ResNet-8 on x = p/255 (--no-norm's form, its default): its first convolution
pads, and zero padding of a normalized image is not the padding of the pixels once the integer
model folds the normalization away (docs/QUANTIZATION.md §6). It prints its test accuracy and
exports in evaluation mode (opset 13, the batch free), which folds each batch norm into its
convolution. PyTorch is Debian's python3-torch; nothing in the build needs it."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_pytorch as cp  # noqa: E402  (its networks and its IDX reader)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--model", default="digitscnn", choices=["digitscnn", "digitsnet", "resnet8"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--data", default=os.environ.get("MNIST_DIR", "data/mnist"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--norm", dest="norm", action="store_true", default=None, help="train on (p/255 - 0.1307) / 0.3081")
    ap.add_argument("--no-norm", dest="norm", action="store_false", help="train on p/255")
    a = ap.parse_args()
    if a.norm is None:
        a.norm = a.model != "resnet8"
    try:
        import torch
    except ImportError:
        sys.exit("pytorch_to_onnx: needs PyTorch (Debian: apt-get install python3-torch; run with /usr/bin/python3)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    images, labels = cp.load_mnist(torch, a.data)
    test_x = torch.from_numpy((cp.read_idx(a.data, "t10k-images-idx3-ubyte").astype("float32") / 255.0 - 0.1307) / 0.3081)
    test_x = test_x.reshape(-1, 1, 28, 28)
    if not a.norm:  # p/255, as tinyqat feeds it
        images = torch.from_numpy(cp.read_idx(a.data, "train-images-idx3-ubyte").astype("float32") / 255.0).unsqueeze(1)
        test_x = torch.from_numpy(cp.read_idx(a.data, "t10k-images-idx3-ubyte").astype("float32") / 255.0).reshape(-1, 1, 28, 28)
    test_y = torch.from_numpy(cp.read_idx(a.data, "t10k-labels-idx1-ubyte").astype("int64"))
    model = cp.torch_models(torch)[a.model]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(images.shape[0])
        for i in range(0, images.shape[0], 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            loss_fn(model(images[idx]), labels[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = 100.0 * (model(test_x).argmax(1) == test_y).float().mean().item()
        print(f"epoch {epoch + 1}/{a.epochs}: test accuracy {acc:.2f}% (PyTorch)")
    model.eval()
    torch.onnx.export(model, test_x[:1], a.out, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    how = "--mean 0.1307 --std 0.3081" if a.norm else "with no options (it takes p/255)"
    print(f"wrote {a.out} ({a.model}, test accuracy {acc:.2f}% in PyTorch); import it {how}")


if __name__ == "__main__":
    main()
