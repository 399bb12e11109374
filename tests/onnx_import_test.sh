#!/usr/bin/env bash
# tinyqat import (ONNX -> a float model; QDQ ONNX -> an integer model), checked two ways:
#   - round trip, needing nothing installed: tinyqat's own float models (a ResNet-8, a graph
#     with a 5x3 kernel, ReLU6 and a residual add, a channel concat, SAME padding and strides of their own among them) exported as ONNX and imported again
#     give the same logits to the bit on the 10,000 test images, and the imported
#     model goes through ptq, convert and infer;
#   - PyTorch's models (tests/onnx_torch_models.py, with python3-torch; skipped without it):
#     DigitsCNN's layout with batch norm folded and kept, an MLP with its own normalization,
#     dropout and a final softmax, depthwise + stride + padding + average pool, MatMul + Add, a
#     global average pool, a 3x5 kernel, a residual add, MLPerf Tiny's ResNet-8, a DS-CNN (10x4
#     kernel, padding per axis, depthwise-separable blocks), ReLU6, channel concats (two-way and
#     three-way), Dropout nodes of a training export (as dropP): tinyqat's logits within 1e-4 of PyTorch's (relative to the largest), every
#     prediction the same; and the models it must refuse (a Sigmoid, a ReLU after a concat, a
#     one-sided Pad, an add of a value from inside a layer) refused naming the node;
#   - a model quantized in PyTorch (tests/onnx_torch_qdq.py): its QDQ export imports as an integer
#     model with PyTorch's quantized outputs to within a step.
# Bad files (empty, truncated, not ONNX) are refused with a message and leave no output.
# Skipped (77) without MNIST.
#   tests/onnx_import_test.sh PATH/TO/tinyqat
set -u
bin="$1"
here=$(cd "$(dirname "$0")" && pwd)
[ -n "${MNIST_DIR:-}" ] || { echo "SKIP: MNIST_DIR not set"; exit 77; }
. "$here/cli_lib.sh"   # $tmp, ok, bad, expect
cd "$tmp"
d=(--data "$MNIST_DIR")
# the same logits, within tol of the largest, and the same predictions: near A B N TOL
near() {
  /usr/bin/python3 - "$@" <<'PY'
import sys
import numpy as np
a, b, n, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
x = np.fromfile(a, "<f4").reshape(-1, 10)[:n]
y = np.fromfile(b, "<f4").reshape(-1, 10)[:n]
rel = float((np.abs(x - y).max(1) / np.abs(y).max(1)).max())
same = float((x.argmax(1) == y.argmax(1)).mean())
print(f"{a}: {len(x)} images, largest difference {rel:.2e} of the largest logit, {100 * same:.2f}% of predictions the same")
sys.exit(0 if rel <= tol and same == 1.0 else 1)
PY
}
"$bin" train --epochs 1 --limit 3000 "${d[@]}" --out fp.tqf >/dev/null
"$bin" train --model digitscnn --epochs 1 --limit 2000 --threads 2 "${d[@]}" --out cnn.tqf >/dev/null
"$bin" train --model in-c4k3s2p1br-d2k3r-a2-out --no-norm --epochs 1 --limit 2000 "${d[@]}" --out odd.tqf >/dev/null
"$bin" train --model resnet8 --epochs 1 --limit 1000 --threads 2 "${d[@]}" --out r8.tqf >/dev/null
"$bin" train --model in-c16k5x3s2p2x1br6-d1k3p1br6-c16k1br@a-c16k1b-+a-r-g-out --epochs 1 --limit 1000 "${d[@]}" --out kxl.tqf >/dev/null
"$bin" train --model in-c4k3s2p1br@a-c4k3p1br-^a-c8k1br-m2-out --epochs 1 --limit 1000 "${d[@]}" --out cat.tqf >/dev/null
"$bin" train --model in-c4k3s2x1p1br-d1k3s1x2samebr-c8k10x4s2same-g-out --epochs 1 --limit 1000 "${d[@]}" --out same.tqf >/dev/null
for m in fp cnn odd r8 kxl cat same; do
  "$bin" export $m.tqf --onnx $m.onnx >/dev/null
  expect 0 "import $m.onnx" -- "$bin" import $m.onnx --out $m-in.tqf
  "$bin" eval $m.tqf "${d[@]}" --logits $m.f32 >/dev/null
  "$bin" eval $m-in.tqf "${d[@]}" --logits $m-in.f32 >/dev/null
  cmp -s $m.f32 $m-in.f32 && ok || bad "$m: the imported model's logits differ from the exported one's"
done
"$bin" ptq cnn-in.tqf --calib-batches 4 "${d[@]}" --out cnn-in-q.tqf >/dev/null && "$bin" convert cnn-in-q.tqf --out cnn-in.tqm >/dev/null &&
  "$bin" infer cnn-in.tqm --repeats 1 "${d[@]}" >/dev/null && ok || bad "the imported model does not go through ptq, convert, infer"
# QDQ: tinyqat's integer models exported as QDQ ONNX and imported again run to the same logits
for m in fp cnn odd; do
  "$bin" ptq $m.tqf --calib-batches 4 "${d[@]}" --out $m-q.tqf >/dev/null && "$bin" convert $m-q.tqf --out $m.tqm >/dev/null
  "$bin" export $m.tqm --onnx $m-qdq.onnx --softmax >/dev/null
  expect 0 "import the QDQ $m" -- "$bin" import $m-qdq.onnx --out $m-qdq.tqm
  grep -q "softmax left out" "$tmp/out" && ok || bad "QDQ $m: the softmax is not reported: $(cat "$tmp/out")"
  "$bin" infer $m.tqm --repeats 1 "${d[@]}" --logits $m.logits >/dev/null
  "$bin" infer $m-qdq.tqm --repeats 1 "${d[@]}" --logits $m-qdq.logits >/dev/null
  cmp -s $m.logits $m-qdq.logits && ok || bad "QDQ $m: the imported model's logits differ from the exported one's"
done
expect 2 "a QDQ model with --mean" -- "$bin" import fp-qdq.onnx --mean 0.5
expect 0 "import --json" -- "$bin" import odd.onnx --out j.tqf --mean 0.5 --std 2 --json
tail -1 "$tmp/out" | grep -q '"spec":"28x28x1-c4k3s2p1br-d2k3r-a2-10"' && tail -1 "$tmp/out" | grep -q '"in_mean":0.5,"in_std":2' && ok || bad "import --json: $(tail -1 "$tmp/out")"
# bad files: a message naming the file, exit 1, nothing written
: > empty.onnx
head -c 3000 cnn.onnx > cut.onnx
printf 'not a model at all, just text\n' > text.onnx
for f in empty cut text; do
  expect 1 "import $f.onnx" -- "$bin" import $f.onnx --out $f.tqf
  grep -q "$f.onnx" "$tmp/err" && [ ! -e $f.tqf ] && ok || bad "$f.onnx: $(cat "$tmp/err")"
done
expect 1 "import a missing file" -- "$bin" import nothing.onnx
expect 2 "--pixels with --std" -- "$bin" import fp.onnx --pixels --std 2
# PyTorch's models
if /usr/bin/python3 "$here/onnx_torch_models.py" "$tmp" "$MNIST_DIR" 1000 >torch.log 2>&1; then
  for m in cnn cnn_bn mlp dw matmul gap rect branch resnet8 dscnn relu6 cat cat3 drop; do
    expect 0 "import PyTorch's $m" -- "$bin" import $m.onnx --out $m.tqf
    "$bin" eval $m.tqf "${d[@]}" --logits $m.f32 >/dev/null
    near $m.f32 $m.torch 1000 1e-4 && ok || bad "$m: tinyqat's logits are not PyTorch's"
  done
  grep -q "softmax left out" <("$bin" import mlp.onnx --out mlp.tqf) && ok || bad "mlp: the dropped softmax is not reported"
  grep -q '"spec":"28x28x1-c16k3p1r@n1-c16k3p1r-c16k3p1-+n1-r@n4-c32k3s2p1r-c32k3p1@n6-~n4-c32k1s2-+n6-r@n8-' \
    <("$bin" import resnet8.onnx --out r8.tqf --json) && ok || bad "PyTorch's ResNet-8 is not imported as the resnet8 layout"
  grep -q '"spec":"28x28x1-c4k3p1r@n1-c4k3p1r@n2-~n1-c2k1@n3-~n1-^n2-^n3-c6k1r-m2-10"' \
    <("$bin" import cat3.onnx --out c3.tqf --json) && ok || bad "PyTorch's three-way concat is not imported as two joins"
  grep -q '"spec":"28x28x1-c4k3s2r-m2-drop25-32r-drop50-10"' <("$bin" import drop.onnx --out d.tqf --json) && ok ||
    bad "PyTorch's Dropout nodes are not imported as dropP"
  for case in "sigmoid:node 1 (Sigmoid" "catrelu:a ReLU after a Concat" "asym:a Pad of amounts computed" "inner:inside a layer"; do
    m=${case%%:*} want=${case#*:}
    expect 1 "PyTorch's $m refused" -- "$bin" import $m.onnx --out $m.tqf
    grep -q "$want" "$tmp/err" && [ ! -e $m.tqf ] && ok || bad "$m: the message does not say '$want': $(cat "$tmp/err")"
  done
else
  grep -q SKIP torch.log && echo "onnx_import: no python3-torch: PyTorch's models not checked" || { bad "onnx_torch_models.py"; cat torch.log; }
fi
# A model quantized in PyTorch (its own QDQ layout: Constant nodes, uint8 activations, per-channel
# weights): imported as an integer model, it gives PyTorch's quantized outputs on its quantized
# inputs to within a step (PyTorch requantizes in float, tinyqat in integers as CMSIS-NN does),
# every prediction the same; with weights of -128 (PyTorch's default range), refused naming the way out
if /usr/bin/python3 "$here/onnx_torch_qdq.py" "$tmp" "$MNIST_DIR" 1000 >qdq.log 2>&1; then
  expect 0 "import PyTorch's quantized model" -- "$bin" import pq.onnx --out pq.tqm
  grep -q "28x28x1-c8k5r-m2-c16k5r-m2-10" "$tmp/out" && ok || bad "pq: $(cat "$tmp/out")"
  "$bin" run pq.tqm --input pq_in.npy --output pq_out.npy >/dev/null && ok || bad "pq: run"
  /usr/bin/python3 - pq_out.npy pq.ref <<'PY' && ok || bad "pq: tinyqat's outputs are not PyTorch's"
import sys
import numpy as np
a = np.load(sys.argv[1]).astype(int)
r = np.fromfile(sys.argv[2], dtype=np.int8).reshape(a.shape).astype(int)
d = np.abs(a - r)
same = float((a.argmax(1) == r.argmax(1)).mean())
print(f"pq: {len(a)} images against PyTorch's quantized model: {100 * same:.2f}% of predictions the same, {int((d > 0).sum())} of "
      f"{d.size} outputs a step off, largest difference {int(d.max())}")
sys.exit(0 if d.max() <= 1 and same == 1.0 else 1)
PY
  expect 1 "PyTorch's full-range weights refused" -- "$bin" import pq_full.onnx --out pqf.tqm
  grep -q "quant_min=-127" "$tmp/err" && [ ! -e pqf.tqm ] && ok || bad "pq_full: $(cat "$tmp/err")"
else
  grep -q SKIP qdq.log && echo "onnx_import: no python3-torch: PyTorch's quantized model not checked" || { bad "onnx_torch_qdq.py"; cat qdq.log; }
fi
echo "onnx_import: $pass passed, $fail failed"
[ "$fail" = 0 ]
