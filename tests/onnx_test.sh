#!/usr/bin/env bash
# tinyqat export --onnx checked by real tools: the ONNX checker (python3-onnx, with shape
# inference) accepts every file, and ONNX Runtime (npm onnxruntime-node) runs it on the 10,000 test
# images against tinyqat (tests/onnx_ort.js):
#   - QDQ from an integer model, per-channel weights: DigitsNet at 8 bits and DigitsCNN (one
#     short epoch each, so less sure of their answers than trained ones: the README has those) agree
#     on >= 99.8% of predictions with no logit off by more than one step (DigitsNet at 2 bits, where
#     ties are many more: 99.5%); a deeper network with
#     padding, stride 2, depthwise and average pool on >= 97%, at most 4 steps (ONNX Runtime
#     requantizes in float and rounds ties to even: a step can grow layer by layer);
#   - for one dense layer, tinyqat's outputs are QUANTIZATION §5 recomputed from the file, and
#     every output where ONNX Runtime differs is at a rounding tie (tests/onnx_ties.py). On an x86
#     CPU without VNNI ONNX Runtime's int8 products saturate (its documentation says so): there
#     the QDQ models are checked to load and run, and the one-layer model's differences at ties
#     once that saturation is recomputed;
#   - float from a .tqf: the logits within 1e-5 of the largest, the same predictions (a K x L
#     kernel with padding per axis and ReLU6, and a ResNet-8 with its adds and branches, among them).
# Refusals: a quantized .tqf, --c or --tflite of a float model, an unwritable path (nothing left
# behind, an existing file untouched). Skipped (77) without MNIST, python3-onnx or onnxruntime-node.
#   tests/onnx_test.sh PATH/TO/tinyqat
set -u
bin="$1"
here=$(cd "$(dirname "$0")" && pwd)
export NODE_PATH="${TQ_NPM_DIR:-$HOME/.cache/tinyqat/npm}/node_modules${NODE_PATH:+:$NODE_PATH}"
cmp_ort() { bash "$here/onnx_compare.sh" "$@"; }
[ -n "${MNIST_DIR:-}" ] || { echo "SKIP: MNIST_DIR not set"; exit 77; }
/usr/bin/python3 -c "import numpy, onnx" 2>/dev/null || { echo "SKIP: python3-onnx not installed (scripts/setup.sh --runtimes)"; exit 77; }
node -e "require('onnxruntime-node')" 2>/dev/null || { echo "SKIP: onnxruntime-node not installed (scripts/setup.sh --runtimes)"; exit 77; }
. "$here/cli_lib.sh"   # $tmp, ok, bad, expect
cd "$tmp"
d=(--data "$MNIST_DIR")
# On an x86 CPU without VNNI, ONNX Runtime's int8 products (vpmaddubsw) saturate each pair of
# u8 x s8 products at int16, as its documentation on quantization warns: there, the QDQ models are
# checked to load and run only, and the one-layer model against that saturation (onnx_ties.py).
sat=()
if [ "$(uname -m)" = x86_64 ] && ! grep -qw -e avx512_vnni -e avx_vnni /proc/cpuinfo; then
  sat=(--saturated)
  echo "onnx: no VNNI on this CPU: ONNX Runtime's int8 products saturate, its QDQ predictions are not compared"
fi
n=10000
"$bin" train --epochs 1 --limit 6000 "${d[@]}" --out fp.tqf >/dev/null
"$bin" train --model digitscnn --epochs 1 --limit 3000 --threads 2 "${d[@]}" --out cnn.tqf >/dev/null
"$bin" train --model in-c4k3s2p1br-d2k3r-a2-out --no-norm --epochs 1 --limit 2000 "${d[@]}" --out odd.tqf >/dev/null
"$bin" train --model in-out --epochs 1 --limit 3000 "${d[@]}" --out one.tqf >/dev/null
"$bin" train --model in-c4k5x3s2p2x1br6-d1k3p1br6-c6k1br-m2-out --epochs 1 --limit 2000 "${d[@]}" --out kxl.tqf >/dev/null
"$bin" train --model resnet8 --epochs 1 --limit 2000 --threads 2 "${d[@]}" --out r8.tqf >/dev/null
"$bin" train --model in-c4k3s2p1br@a-c4k3p1br-^a-c8k1br-m2-out --epochs 1 --limit 2000 "${d[@]}" --out cat.tqf >/dev/null
for m in fp fp2 cnn odd one; do
  src=$m bits=()
  case $m in fp2) src=fp bits=(--bits 2) ;; esac
  case $m in odd) lim=(97 4) ;; fp2) lim=(99.5 1) ;; *) lim=(99.8 1) ;; esac
  [ ${#sat[@]} = 0 ] || lim=(0 255)
  "$bin" ptq $src.tqf "${bits[@]}" --calib-batches 4 "${d[@]}" --out $m-q.tqf >/dev/null
  "$bin" convert $m-q.tqf --out $m.tqm >/dev/null
  "$bin" export $m.tqm --onnx $m.onnx >/dev/null && [ -s $m.onnx ] && ok || bad "export $m --onnx"
  "$bin" infer $m.tqm --repeats 1 "${d[@]}" --logits $m.logits >/dev/null || bad "infer $m --logits"
  cmp_ort $m.onnx $m.logits "$MNIST_DIR" $n "${lim[@]}" $m.ort >out 2>&1 && ok || bad "$m: refused by the checker, or ONNX Runtime disagrees"
  grep -q "integer path" out && ok || bad "$m.onnx: not compared as a QDQ model"
  head -1 out
done
/usr/bin/python3 "$here/onnx_ties.py" one.onnx one.ort one.logits "$MNIST_DIR" $n "${sat[@]}" >out 2>&1 && ok || bad "one dense layer: a difference away from a tie"
head -1 out
for m in fp cnn odd kxl r8 cat; do   # kxl: a 5x3 kernel padded 2 and 1, ReLU6 (Clip); r8: ResNet-8's adds and branches; cat: a Concat
  "$bin" export $m.tqf --onnx $m-f.onnx >/dev/null || bad "export $m.tqf --onnx"
  "$bin" eval $m.tqf "${d[@]}" --logits $m.f32 >/dev/null || bad "eval $m --logits"
  cmp_ort $m-f.onnx $m.f32 "$MNIST_DIR" $n 1e-5 >out 2>&1 && ok || bad "$m: refused by the checker, or ONNX Runtime's float logits differ"
  grep -q "float logits" out && ok || bad "$m-f.onnx: not compared as a float model"
  head -1 out
done
# with --softmax: probabilities that sum to 1 and pick tinyqat's class (QDQ and float)
"$bin" export fp.tqm --onnx sm.onnx --softmax >/dev/null && "$bin" export fp.tqf --onnx smf.onnx --softmax >/dev/null && ok || bad "export --softmax"
cmp_ort sm.onnx fp.logits "$MNIST_DIR" $n "$([ ${#sat[@]} = 0 ] && echo 99.8 || echo 0)" >out 2>&1 && ok || bad "softmax (QDQ): $(cat out)"
head -1 out
cmp_ort smf.onnx fp.f32 "$MNIST_DIR" $n 99.99 >out 2>&1 && ok || bad "softmax (float): $(cat out)"
head -1 out
# the same model gives the same bytes
"$bin" export fp.tqm --onnx again.onnx >/dev/null && cmp -s fp.onnx again.onnx && ok || bad "two exports of one model differ"
# refusals: each names the problem, leaves nothing behind and an existing file as it was
cp fp.onnx keep.onnx
expect 1 "a quantized .tqf" -- "$bin" export fp-q.tqf --onnx fp.onnx
grep -q "quantized" "$tmp/err" && ok || bad "the message says the model is quantized: $(cat "$tmp/err")"
expect 2 "--c of a float model" -- "$bin" export fp.tqf --c "$tmp/cdir"
grep -q "float model" "$tmp/err" && [ ! -e "$tmp/cdir" ] && ok || bad "--c of a .tqf: $(cat "$tmp/err")"
expect 1 "an unwritable --onnx path" -- "$bin" export fp.tqm --onnx "$tmp/no/dir/m.onnx"
grep -q "no/dir" "$tmp/err" && [ ! -e "$tmp/no" ] && ok || bad "the message names the path and nothing is left: $(cat "$tmp/err")"
expect 1 "a folder as --onnx" -- "$bin" export fp.tqm --onnx "$tmp"
cmp -s fp.onnx keep.onnx && ok || bad "a refused export changed fp.onnx"
ls "$tmp" | grep -q "\.tmp\." && bad "a temporary file was left behind" || ok
echo "onnx: $pass passed, $fail failed"
[ "$fail" = 0 ]
