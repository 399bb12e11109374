#!/usr/bin/python3
"""Write PyTorch models as ONNX (torch.onnx.export, opset 13) for tests/onnx_import_test.sh, each
with PyTorch's own logits on the first N MNIST test images (x = p/255, float32 [N][10]):

    tests/onnx_torch_models.py OUT_DIR MNIST_DIR [N]

Models (random weights, batch norm statistics made up, seed 0): cnn (DigitsCNN's layout: conv,
batch norm and a bias-free conv, which the exporter folds), cnn_bn (the same exported with its
BatchNormalization nodes), mlp (x.view(-1, 784), its own normalization, dropout, a final
softmax), dw (stride 2 and padding, depthwise with batch norm, average pool,
x.view(x.size(0), -1)), matmul (MatMul + Add), gap (a global average pool), rect (a 3x5 kernel
padded 1 and 2), branch (a residual add), resnet8 (MLPerf Tiny's ResNet-8: residual blocks, 1x1
stride-2 shortcuts), dscnn (a 10x4 stride-2 kernel padded 4 and 1, depthwise-separable blocks),
relu6 (MobileNet's ReLU6 around a depthwise-separable block), cat (a channel concat), cat3 (a
three-way concat, Inception's join), drop (Dropout nodes, exported for training). And models tinyqat must refuse: sigmoid, catrelu (a ReLU
after a concat), asym (a Pad of one more row and column below and right), inner (an add that
reads a convolution's value from before its ReLU). Exit 77 without torch."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
    import torch.nn as nn
    from tq_mnist import out_folder_count, test_images
except ImportError:
    print("SKIP: needs python3-torch")
    sys.exit(77)


def mnist(folder, n):
    x = test_images(folder, n, "onnx_torch_models").reshape(-1, 1, 28, 28)
    return torch.from_numpy(x.astype(np.float32) / 255.0)


class Seq(nn.Module):
    def __init__(self, features, head, view=None, norm=None, softmax=False):
        super().__init__()
        self.features, self.head, self.view, self.norm, self.softmax = features, head, view, norm, softmax

    def forward(self, x):
        if self.norm:
            x = (x - self.norm[0]) / self.norm[1]
        x = self.features(x)
        x = x.view(-1, 784) if self.view == "fixed" else x.view(x.size(0), -1) if self.view == "size" else torch.flatten(x, 1)
        x = self.head(x)
        return torch.softmax(x, 1) if self.softmax else x


class MatMulNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(784, 64) * 0.05), nn.Parameter(torch.randn(64) * 0.1)
        self.w2, self.b2 = nn.Parameter(torch.randn(64, 10) * 0.1), nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = torch.relu(torch.matmul(x.reshape(-1, 784), self.w1) + self.b1)
        return torch.matmul(x, self.w2) + self.b2


class Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        y = torch.relu(self.a(x))
        return self.fc(torch.flatten(y + self.b(y), 1))


class Branch2(nn.Module):
    """cat: two convolutions' outputs joined along channels; catrelu: the same with a ReLU after the
    join; inner: conv + its own ReLU'd value"""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.a, self.b, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Linear(8 * 28 * 28, 10)
        self.fc2 = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        if self.how in ("cat", "catrelu"):
            y = torch.relu(self.a(x))
            z = torch.cat([y, self.b(y)], 1)
            return self.fc(torch.flatten(torch.relu(z) if self.how == "catrelu" else z, 1))
        y = self.a(x)
        return self.fc2(torch.flatten(torch.relu(y) + y, 1))


class Cat3(nn.Module):
    """Inception's join: the input of the block, a 3x3 branch and a 1x1 branch, along channels, then
    a 1x1 convolution, a max pool and a dense layer"""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn, self.c, self.d = nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1), nn.Conv2d(10, 6, 1)
        self.fc = nn.Linear(6 * 14 * 14, 10)

    def forward(self, x):
        y = torch.relu(self.a(x))
        z = torch.cat([y, torch.relu(self.bn(self.b(y))), self.c(y)], 1)
        return self.fc(torch.flatten(nn.functional.max_pool2d(torch.relu(self.d(z)), 2), 1))


class Block(nn.Module):
    """MLPerf Tiny ResNet-8's block: conv-BN-ReLU, conv-BN, plus the input (or its 1x1 convolution), ReLU"""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.short = nn.Conv2d(cin, cout, 1, stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (self.short(x) if self.short is not None else x))


class ResNet8(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


def separable(c, act):
    return [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), act(),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), act()]


def models():
    def cnn():
        return Seq(nn.Sequential(nn.Conv2d(1, 8, 5), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 5, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)),
                   nn.Linear(256, 10))
    yield "cnn", cnn(), {}
    yield "cnn_bn", cnn(), {"do_constant_folding": False, "training": torch.onnx.TrainingMode.PRESERVE}
    yield "mlp", Seq(nn.Identity(), nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Dropout(0.2), nn.Linear(100, 10)),
                     view="fixed", norm=(0.1307, 0.3081), softmax=True), {}
    yield "dw", Seq(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, groups=4),
                                  nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2)),
                    nn.Sequential(nn.Linear(8 * 6 * 6, 32), nn.ReLU(), nn.Linear(32, 10)), view="size"), {}
    yield "matmul", MatMulNet(), {}
    yield "gap", Seq(nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1)), nn.Linear(16, 10)), {}
    yield "rect", Seq(nn.Sequential(nn.Conv2d(1, 4, (3, 5), padding=(1, 2)), nn.ReLU()), nn.Linear(4 * 28 * 28, 10)), {}
    yield "branch", Branch(), {}
    yield "resnet8", ResNet8(), {}
    yield "dscnn", Seq(nn.Sequential(nn.Conv2d(1, 32, (10, 4), stride=2, padding=(4, 1)), nn.BatchNorm2d(32), nn.ReLU(),
                                     *separable(32, nn.ReLU), *separable(32, nn.ReLU), nn.AdaptiveAvgPool2d(1)),
                       nn.Linear(32, 10)), {}
    yield "relu6", Seq(nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                                     *separable(8, nn.ReLU6), nn.AvgPool2d(2)), nn.Linear(8 * 7 * 7, 10)), {}
    # exported for training, so that the Dropout nodes stay (an evaluation export drops them):
    # their ratios become dropP; the logits are the evaluation's
    yield "drop", Seq(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25)),
                      nn.Sequential(nn.Linear(4 * 6 * 6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))), \
        {"training": torch.onnx.TrainingMode.TRAINING, "do_constant_folding": False}
    yield "sigmoid", Seq(nn.Sequential(nn.Conv2d(1, 4, 5), nn.Sigmoid()), nn.Linear(4 * 24 * 24, 10)), {}
    yield "cat", Branch2("cat"), {}
    yield "cat3", Cat3(), {}
    yield "catrelu", Branch2("catrelu"), {}
    yield "asym", Seq(nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 4, 3, stride=2), nn.ReLU()),
                      nn.Linear(4 * 14 * 14, 10)), {}
    yield "inner", Branch2("inner"), {}


def main():
    out, folder, n = out_folder_count(__doc__)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = mnist(folder, n)
    for name, model, kw in models():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):  # statistics as if trained
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
        model.eval()
        torch.onnx.export(model, x[:1], os.path.join(out, name + ".onnx"), opset_version=13, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, **kw)
        with torch.no_grad():
            y = model(x)
            if getattr(model, "softmax", False):  # tinyqat leaves the final softmax out: compare the logits
                model.softmax = False
                y = model(x)
        y.numpy().astype("<f4").tofile(os.path.join(out, name + ".torch"))
    print(f"onnx_torch_models: wrote {out}/*.onnx and the logits of {n} images")


if __name__ == "__main__":
    main()
