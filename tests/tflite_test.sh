#!/usr/bin/env bash
# tinyqat export --tflite checked by a real runtime: Arm NN's TFLite parser and reference backend
# run the exported DigitsNet and DigitsCNN on 2,000 test images, against tinyqat's integer path
# (tests/tflite_armnn.py: >= 99.9% of predictions agree, no logit off by more than one step; for a
# deeper network with stride-2 padding (a PAD), depthwise and average pool, where Arm NN's float
# rounding at ties moves more values and the steps add up: >= 97%, at most 4 steps; for a graph
# with adds, SAME and non-square kernels, and for one with channel concats: >= 99%, at most 4 steps).
# Per-tensor weights: Arm NN 20.08, Debian's, cannot run per-channel FULLY_CONNECTED weights.
# A path that cannot be written is refused and leaves nothing behind. Skipped (77) without MNIST
# or pyarmnn.
#   tests/tflite_test.sh PATH/TO/tinyqat
set -u
bin="$1"
here=$(cd "$(dirname "$0")" && pwd)
[ -n "${MNIST_DIR:-}" ] || { echo "SKIP: MNIST_DIR not set"; exit 77; }
/usr/bin/python3 -c "import numpy, pyarmnn" 2>/dev/null || { echo "SKIP: pyarmnn not installed (python3-pyarmnn, libarmnn-cpuref-backend22, libarmnntfliteparser22)"; exit 77; }
. "$here/cli_lib.sh"   # $tmp, ok, bad
cd "$tmp"
d=(--data "$MNIST_DIR")
"$bin" train --epochs 1 --limit 6000 "${d[@]}" --out fp.tqf >/dev/null
"$bin" train --model digitscnn --epochs 1 --limit 3000 --threads 2 "${d[@]}" --out cnn.tqf >/dev/null
"$bin" train --model in-c4k3s2p1br-d2k3r-a2-out --no-norm --epochs 1 --limit 2000 "${d[@]}" --out odd.tqf >/dev/null
"$bin" train --model in-c4k3s2x1p1br-d1k3s1x2samebr-c8k10x4s2same-g-out --epochs 1 --limit 2000 "${d[@]}" --out same.tqf >/dev/null # TFLite's SAME, strides 2x1 and 1x2
for m in fp cnn odd same; do
  case $m in odd|same) lim=(97 4) ;; *) lim=(99.9 1) ;; esac
  "$bin" ptq $m.tqf --per-tensor --calib-batches 4 "${d[@]}" --out $m-q.tqf >/dev/null
  "$bin" convert $m-q.tqf --out $m.tqm >/dev/null
  "$bin" export $m.tqm --tflite $m.tflite >/dev/null && [ -s $m.tflite ] && ok || bad "export $m --tflite"
  "$bin" infer $m.tqm --repeats 1 "${d[@]}" --logits $m.logits >/dev/null || bad "infer $m --logits"
  /usr/bin/python3 "$here/tflite_armnn.py" $m.tflite $m.logits "$MNIST_DIR" 2000 "${lim[@]}" >out 2>&1; st=$?
  grep -v "Skipped I" out
  [ "$st" = 0 ] && ok || bad "$m: Arm NN disagrees"
done
# a graph (tq_graphgen residual: adds, SAME with its odd row and column after, 3x1 and 3x5
# kernels, a 1x1 stride-2 shortcut, a global average pool): Arm NN runs what tinyqat writes, and
# the import reads it back to the same logits
"$(dirname "$bin")/tq_graphgen" residual graph.tqm 7 >/dev/null
"$bin" export graph.tqm --tflite graph.tflite >/dev/null && ok || bad "export graph --tflite"
"$bin" infer graph.tqm --repeats 1 "${d[@]}" --logits graph.logits >/dev/null || bad "infer graph --logits"
/usr/bin/python3 "$here/tflite_armnn.py" graph.tflite graph.logits "$MNIST_DIR" 2000 99 4 >out 2>&1 && ok || bad "graph: Arm NN disagrees"
grep -v "Skipped I" out
"$bin" import graph.tflite --out graph-rt.tqm >/dev/null && "$bin" infer graph-rt.tqm --repeats 1 "${d[@]}" --logits graph-rt.logits >/dev/null &&
  cmp -s graph.logits graph-rt.logits && ok || bad "graph: the import of the export gives other logits"
# channel concats trained here (each concat's inputs quantized at its one scale; the CONCATENATION
# copies): Arm NN runs them to tinyqat's predictions
"$bin" train --model 'in-c8k3p1br@a-c8k3p1br@b-~a-c4k1br-^b@c-m2-c16k3p1br-^c-c16k1br-g-out' --epochs 1 --limit 3000 "${d[@]}" \
  --out cat.tqf >/dev/null
"$bin" ptq cat.tqf --per-tensor --calib-batches 4 "${d[@]}" --out cat-q.tqf >/dev/null && "$bin" convert cat-q.tqf --out cat.tqm >/dev/null &&
  "$bin" export cat.tqm --tflite cat.tflite >/dev/null && ok || bad "export cat --tflite"
"$bin" infer cat.tqm --repeats 1 "${d[@]}" --logits cat.logits >/dev/null || bad "infer cat --logits"
/usr/bin/python3 "$here/tflite_armnn.py" cat.tflite cat.logits "$MNIST_DIR" 2000 99 4 >out 2>&1 && ok || bad "cat: Arm NN disagrees"
grep -v "Skipped I" out
# TFLite's MEAN (tq_graphgen mean: keep_dims, then without at two scales, then at one): Arm NN
# runs the first two; the third TFLite Micro truncates (sum / n), where Arm NN rounds, so its
# logits move by up to several steps there and only the import of the export is checked
for f in 0 1 2; do
  "$(dirname "$bin")/tq_graphgen" mean mean$f.tqm $f >/dev/null && "$bin" export mean$f.tqm --tflite mean$f.tflite >/dev/null &&
    "$bin" infer mean$f.tqm --repeats 1 "${d[@]}" --logits mean$f.logits >/dev/null && ok || bad "mean $f: graphgen, export or infer"
  if [ $f != 2 ]; then
    /usr/bin/python3 "$here/tflite_armnn.py" mean$f.tflite mean$f.logits "$MNIST_DIR" 2000 99 4 >out 2>&1 && ok || bad "mean $f: Arm NN disagrees"
    grep -v "Skipped I" out
  fi
  "$bin" import mean$f.tflite --out mean$f-rt.tqm >/dev/null && "$bin" infer mean$f-rt.tqm --repeats 1 "${d[@]}" --logits mean$f-rt.logits >/dev/null &&
    cmp -s mean$f.logits mean$f-rt.logits && ok || bad "mean $f: the import of the export gives other logits"
done
# with a SOFTMAX: Arm NN's int8 probabilities pick tinyqat's class and sum to 1
"$bin" export fp.tqm --tflite sm.tflite --softmax >/dev/null && ok || bad "export --softmax"
/usr/bin/python3 "$here/tflite_armnn.py" sm.tflite fp.logits "$MNIST_DIR" 2000 99.5 0 --softmax >out 2>&1 && ok || bad "softmax: Arm NN disagrees"
grep -v "Skipped I" out
# tinyqat's import computes that SOFTMAX in int8 as CMSIS-NN does. Arm NN's logits are a step off
# tinyqat's on a few images (its float requantization, above), and one logit step moves a
# probability by up to 256 s p (1 - p) steps, 5.5 at this model's logit scale (0.086): so within 6
# (tests/test_int8_infer.c checks the kernel against the exact softmax of the same int8 inputs)
"$bin" import sm.tflite --out sm.tqm --json >out && grep -q '"softmax":1' out && "$bin" infer sm.tqm --repeats 1 "${d[@]}" --logits sm.probs >/dev/null &&
  ok || bad "softmax: import or infer: $(tail -1 out)"
/usr/bin/python3 "$here/tflite_armnn.py" sm.tflite sm.probs "$MNIST_DIR" 2000 99.5 6 --probs >out 2>&1 && ok || bad "softmax: Arm NN's probabilities differ"
grep -v "Skipped I" out
# a softmax at each position of an image and one on the logits (tq_graphgen softmax): Arm NN's
# probabilities within 3 steps, the import gives the same model's outputs
"$(dirname "$bin")/tq_graphgen" softmax gsm.tqm 3 >/dev/null && "$bin" export gsm.tqm --tflite gsm.tflite >/dev/null &&
  "$bin" infer gsm.tqm --repeats 1 "${d[@]}" --logits gsm.probs >/dev/null && ok || bad "softmax graph: graphgen, export or infer"
/usr/bin/python3 "$here/tflite_armnn.py" gsm.tflite gsm.probs "$MNIST_DIR" 2000 99 3 --probs >out 2>&1 && ok || bad "softmax graph: Arm NN disagrees"
grep -v "Skipped I" out
"$bin" import gsm.tflite --out gsm-rt.tqm >/dev/null && "$bin" infer gsm-rt.tqm --repeats 1 "${d[@]}" --logits gsm-rt.probs >/dev/null &&
  cmp -s gsm.probs gsm-rt.probs && ok || bad "softmax graph: the import of the export gives other probabilities"
# the converter's default float interface (a QUANTIZE of p/255 first, a DEQUANTIZE last): Arm NN
# runs it to the same probabilities; the import leaves both out and gives the same int8 probabilities
"$bin" export fp.tqm --tflite smf.tflite --softmax --float-io >/dev/null && ok || bad "export --float-io"
/usr/bin/python3 "$here/tflite_armnn.py" smf.tflite fp.logits "$MNIST_DIR" 2000 99.5 0 --softmax >out 2>&1 && ok || bad "float io: Arm NN disagrees"
grep -v "Skipped I" out
"$bin" import smf.tflite --out smf.tqm --json >out && grep -q '"float_in":1,"float_out":1' out && "$bin" infer smf.tqm --repeats 1 "${d[@]}" --logits smf.probs >/dev/null &&
  cmp -s sm.probs smf.probs && ok || bad "float io: the import of the export gives other probabilities: $(tail -1 out)"
# a path that cannot be written: refused, nothing left; an existing file is left as it was
"$bin" export fp.tqm --tflite "$tmp/no/dir/m.tflite" 2>err && bad "an unwritable --tflite path succeeds" || ok
grep -q "no/dir" err && ok || bad "the message names the path: $(cat err)"
[ ! -e "$tmp/no" ] && ok || bad "a failed export leaves something behind"
cp fp.tflite keep.tflite
"$bin" export cnn.tqm --tflite fp.tflite --c "$tmp/fp.tflite" 2>/dev/null
cmp -s fp.tflite keep.tflite && ok || bad "--c into a file: the export went ahead and replaced fp.tflite"
echo "tflite: $pass passed, $fail failed"
[ "$fail" = 0 ]
