#!/usr/bin/env python3
"""Side by side: one training epoch of DigitsNet, DigitsCNN and ResNet-8 with tinyqat and with PyTorch.

    python3 scripts/compare_pytorch.py [--tinyqat build/tinyqat] [--data DIR] [--threads 2]
                                       [--torch-threads 1,2] [--models digitsnet,digitscnn,resnet8]

Optional: nothing in the build or the tests needs it. PyTorch is Debian's python3-torch (1.13);
run it with the system Python (/usr/bin/python3). Both sides train the same network on the same
machine in the same run: Adam 1e-3, batch 64, one epoch of the 60,000 MNIST training images, FP32
and then QAT (8-bit weights and activations; PyTorch's eager-mode QAT with conv, batch norm and ReLU
fused, tinyqat's `qat`); ResNet-8 in FP32 only (tinyqat does not quantize graphs yet). PyTorch runs at each thread count of --torch-threads and is reported at its
fastest, since on a small machine one thread is often its best. Each PyTorch run is its own process
with OMP_NUM_THREADS and OPENBLAS_NUM_THREADS set to its thread count: Debian's PyTorch does its
matrix products in OpenBLAS, whose own threads torch.set_num_threads does not limit (left at the
core count, they make a one-thread DigitsNet epoch 2.4 s instead of 0.86 s on a 2-core machine).
The PyTorch times cover the training loop only (data already in memory as tensors); tinyqat's are
the seconds per epoch that `tinyqat train` and `tinyqat qat` report (their training loop, data in
memory).
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
except ImportError:
    sys.exit("compare_pytorch: needs numpy and PyTorch (Debian: apt-get install python3-torch; run with /usr/bin/python3)")


def read_idx(folder, stem):
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rb") as f:
                data = f.read()
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    sys.exit(f"compare_pytorch: {os.path.join(folder, stem)}[.gz]: not found")


def torch_models(torch, conv_bias=True):
    """The two networks; conv_bias: DigitsCNN's convolutions with a bias (PyTorch's default form,
    which batch norm makes redundant) or without one. Debian's PyTorch 1.13 runs the form without
    a bias several times slower, so both are measured and the faster one reported."""
    nn = torch.nn
    q = torch.ao.quantization

    class DigitsNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = q.QuantStub(), q.DeQuantStub()
            self.fc1, self.relu1 = nn.Linear(784, 100), nn.ReLU()
            self.fc2, self.relu2 = nn.Linear(100, 100), nn.ReLU()
            self.fc3 = nn.Linear(100, 10)
            self.fuse = [["fc1", "relu1"], ["fc2", "relu2"]]

        def forward(self, x):
            x = self.quant(x.flatten(1))
            x = self.relu2(self.fc2(self.relu1(self.fc1(x))))
            return self.dequant(self.fc3(x))

    class DigitsCNN(nn.Module):  # 1x28x28 -> c8k5 BN ReLU -> max 2 -> c16k5 BN ReLU -> max 2 -> 256 -> 10
        def __init__(self):
            super().__init__()
            self.quant, self.dequant = q.QuantStub(), q.DeQuantStub()
            self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, 8, 5, bias=conv_bias), nn.BatchNorm2d(8), nn.ReLU()
            self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 16, 5, bias=conv_bias), nn.BatchNorm2d(16), nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc = nn.Linear(256, 10)
            self.fuse = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]]

        def forward(self, x):
            x = self.quant(x)
            x = self.pool(self.relu1(self.bn1(self.conv1(x))))
            x = self.pool(self.relu2(self.bn2(self.conv2(x))))
            return self.dequant(self.fc(x.flatten(1)))

    class ResNet8(nn.Module):  # MLPerf Tiny's, as tinyqat's resnet8 preset: 3x3 convs with BN, 1x1 stride-2 shortcuts with a bias
        def __init__(self):
            super().__init__()

            def cbr(i, o, s):
                return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=conv_bias), nn.BatchNorm2d(o))

            self.c0, self.relu = cbr(1, 16, 1), nn.ReLU()
            self.b1 = nn.ModuleList([cbr(16, 16, 1), cbr(16, 16, 1)])
            self.b2 = nn.ModuleList([cbr(16, 32, 2), cbr(32, 32, 1)])
            self.b3 = nn.ModuleList([cbr(32, 64, 2), cbr(64, 64, 1)])
            self.s2, self.s3 = nn.Conv2d(16, 32, 1, 2), nn.Conv2d(32, 64, 1, 2)
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(64, 10)

        def forward(self, x):
            x = self.relu(self.c0(x))
            x = self.relu(self.b1[1](self.relu(self.b1[0](x))) + x)
            x = self.relu(self.b2[1](self.relu(self.b2[0](x))) + self.s2(x))
            x = self.relu(self.b3[1](self.relu(self.b3[0](x))) + self.s3(x))
            return self.fc(self.pool(x).flatten(1))

    return {"digitsnet": DigitsNet, "digitscnn": DigitsCNN, "resnet8": ResNet8}


def torch_epoch(torch, make, images, labels, qat, threads, seed=0, channels_last=False):
    """Seconds for one epoch of Adam 1e-3, batch 64 (data in memory), FP32 or QAT; channels_last:
    the model and each batch in NHWC memory order (PyTorch's faster convolutions for ResNet-8)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = make()
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=fmt)
    if qat:
        q = torch.ao.quantization
        model.qconfig = q.get_default_qat_qconfig("fbgemm")
        q.fuse_modules_qat(model, model.fuse, inplace=True)
        q.prepare_qat(model, inplace=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.randperm(images.shape[0])
    start = time.perf_counter()
    for i in range(0, images.shape[0], 64):
        idx = order[i:i + 64]
        opt.zero_grad()
        loss = loss_fn(model(images[idx].contiguous(memory_format=fmt)), labels[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def torch_run(script, data, model, mode, threads, form):
    """One PyTorch epoch in a fresh process with every thread pool at `threads`; form "bias",
    "nobias" (the CNNs' convolutions with or without a bias) or "cl" (with a bias, channels_last)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, script, "--torch-worker", model, mode, str(threads), "--form", form, "--data", data],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"compare_pytorch: the PyTorch run ({model} {mode}, {threads} threads, {form}) failed: {out.stderr.strip()[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def load_mnist(torch, data):
    x = read_idx(data, "train-images-idx3-ubyte")
    y = read_idx(data, "train-labels-idx1-ubyte")
    images = torch.from_numpy(((x.astype(np.float32) / 255.0) - 0.1307) / 0.3081).unsqueeze(1)
    return images, torch.from_numpy(y.astype(np.int64))


def tinyqat_epochs(binary, model, data, threads, workdir):
    """tinyqat's seconds per FP32 epoch and per QAT epoch (train, then qat from it; None for a graph)."""
    fp32 = os.path.join(workdir, model + ".tqf")
    common = ["--data", data, "--threads", str(threads), "--json"]

    def run(args):
        out = subprocess.run([binary] + args + common, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"compare_pytorch: {binary} {' '.join(args)} failed: {out.stderr.strip()}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    t = run(["train", "--model", model, "--epochs", "1", "--lr", "1e-3", "--out", fp32])
    if model in GRAPHS:
        return t["seconds_per_epoch"], None
    q = run(["qat", "--from", fp32, "--epochs", "1", "--lr", "1e-3", "--out", os.path.join(workdir, model + "-qat.tqf")])
    return t["seconds_per_epoch"], q["seconds_per_epoch"]


GRAPHS = ("resnet8",)  # FP32 only: tinyqat trains graphs in float for now


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tinyqat", default="build/tinyqat", help="the tinyqat binary [build/tinyqat]")
    ap.add_argument("--data", default=os.environ.get("MNIST_DIR", "data/mnist"), help="MNIST IDX folder [$MNIST_DIR or data/mnist]")
    ap.add_argument("--threads", type=int, default=2, help="tinyqat's threads [2]")
    ap.add_argument("--torch-threads", default="1,2", help="PyTorch thread counts to try; the fastest is reported [1,2]")
    ap.add_argument("--models", default="digitsnet,digitscnn,resnet8", help="[digitsnet,digitscnn,resnet8]")
    ap.add_argument("--torch-worker", nargs=3, metavar=("MODEL", "MODE", "THREADS"), help=argparse.SUPPRESS)
    ap.add_argument("--form", default="bias", choices=["bias", "nobias", "cl"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("compare_pytorch: needs PyTorch (Debian: apt-get install python3-torch; run with /usr/bin/python3)")
    if args.torch_worker:  # one timed epoch in this process, printed as seconds
        model, mode, threads = args.torch_worker
        images, labels = load_mnist(torch, args.data)
        print(torch_epoch(torch, torch_models(torch, args.form != "nobias")[model], images, labels, mode == "QAT", int(threads),
                          channels_last=args.form == "cl"))
        return
    if not os.access(args.tinyqat, os.X_OK):
        sys.exit(f"compare_pytorch: {args.tinyqat}: not an executable (build tinyqat first, or pass --tinyqat)")
    torch_threads = [int(t) for t in args.torch_threads.split(",")]
    if any(t < 1 for t in torch_threads) or args.threads < 1:
        sys.exit("compare_pytorch: thread counts must be at least 1")
    read_idx(args.data, "train-labels-idx1-ubyte")  # a missing file is reported here, once
    makers = torch_models(torch)
    print(f"PyTorch {torch.__version__}, tinyqat {args.tinyqat} with {args.threads} thread(s); one epoch, batch 64, Adam 1e-3")
    print("| model | mode | tinyqat | PyTorch (best of threads " + args.torch_threads + ", and for the CNNs of their convolutions "
          "with and without a bias, ResNet-8 also channels_last) | PyTorch / tinyqat |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as work:
        for model in args.models.split(","):
            if model not in makers:
                sys.exit(f"compare_pytorch: unknown model '{model}' (digitsnet, digitscnn, resnet8)")
            tq_fp32, tq_qat = tinyqat_epochs(args.tinyqat, model, args.data, args.threads, work)
            for mode, tq_s in (("FP32", tq_fp32), ("QAT", tq_qat)):
                if tq_s is None:
                    continue
                forms = ("bias", "nobias", "cl") if model == "resnet8" else ("bias", "nobias") if model == "digitscnn" else ("bias",)
                runs = {(t, f): torch_run(os.path.abspath(__file__), args.data, model, mode, t, f) for t in torch_threads for f in forms}
                best = min(runs, key=runs.get)
                detail = ", ".join(f"{t} thr{' ' + f if len(forms) > 1 else ''} {s:.2f} s" for (t, f), s in runs.items())
                print(f"| {model} | {mode} | {tq_s:.2f} s | {runs[best]:.2f} s ({detail}) | {runs[best] / tq_s:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
