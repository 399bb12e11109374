#!/usr/bin/env bash
# End-to-end checks of the tinyqat program: help, usage errors, missing files, and that the
# same seed and thread count give a byte-identical model (with MNIST; skipped without).
#   tests/cli_test.sh PATH/TO/tinyqat
set -u
bin="$1"
figcheck="$(dirname "$bin")/tq_figcheck"
tool="$(dirname "$bin")/tq_testtool"
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/cli_lib.sh"   # $tmp, ok, bad, expect
one_line_err() { # the error is exactly one line and mentions $1
  local n; n=$(wc -l <"$tmp/err")
  if [ "$n" = 1 ] && grep -q -- "$1" "$tmp/err"; then ok; else bad "$2: want one stderr line naming '$1', got:"; sed 's/^/  | /' "$tmp/err" | head -5; fi
}

expect 0 "top-level --help" -- "$bin" --help
grep -q "train" "$tmp/out" && ok || bad "--help lists commands"
expect 2 "no command" -- "$bin"
expect 2 "unknown command" -- "$bin" frobnicate
one_line_err "frobnicate" "unknown command"

for cmd in $("$bin" --help | awk '/^commands:/{f=1;next} /^$/{f=0} f{print $1}'); do
  expect 0 "$cmd --help" -- "$bin" "$cmd" --help
  grep -q "usage: tinyqat $cmd" "$tmp/out" && ok || bad "$cmd --help prints its usage"
  expect 2 "$cmd with an unknown flag" -- "$bin" "$cmd" --no-such-flag
  one_line_err "no-such-flag" "$cmd unknown flag"
done

"$bin" train --help >"$tmp/out"
grep -q -- "--epochs N .*\[10" "$tmp/out" && ok || bad "train --help shows the epochs default"
expect 2 "zero batch" -- "$bin" train --batch 0
one_line_err "batch" "zero batch"
expect 2 "negative epochs" -- "$bin" train --epochs -3
expect 2 "learning rate not a number" -- "$bin" train --lr abc
one_line_err "not a number" "lr abc"
expect 2 "learning rate zero" -- "$bin" train --lr 0
expect 2 "bad model spec" -- "$bin" train --model 784-x-10
one_line_err "spec" "bad spec"
expect 2 "bad schedule" -- "$bin" train --schedule wavy
expect 2 "eval without a model" -- "$bin" eval
expect 1 "eval of a missing file" -- "$bin" eval "$tmp/none.tqf"
one_line_err "none.tqf" "missing model"
printf 'garbage' >"$tmp/junk.tqf"
expect 1 "eval of a junk file" -- "$bin" eval "$tmp/junk.tqf"
one_line_err "junk.tqf" "junk model"
expect 1 "train with no data" -- "$bin" train --data "$tmp/nodata" --epochs 1
grep -q "nodata" "$tmp/err" && ok || bad "missing data names the folder"

if [ -n "${MNIST_DIR:-}" ]; then
  args=(train --epochs 1 --limit 3000 --seed 7 --threads 1 --data "$MNIST_DIR")
  expect 0 "train run 1" -- "$bin" "${args[@]}" --out "$tmp/a.tqf" --json
  "$tool" json "$tmp/out" && ok || bad "train --json: the last line is a JSON object"
  expect 0 "train run 2" -- "$bin" "${args[@]}" --out "$tmp/b.tqf"
  cmp -s "$tmp/a.tqf" "$tmp/b.tqf" && ok || bad "same seed and threads give a byte-identical model"
  expect 0 "train run 3, other seed" -- "$bin" train --epochs 1 --limit 3000 --seed 8 --data "$MNIST_DIR" --out "$tmp/c.tqf"
  cmp -s "$tmp/a.tqf" "$tmp/c.tqf" && bad "another seed gives another model" || ok
  expect 0 "eval" -- "$bin" eval "$tmp/a.tqf" --data "$MNIST_DIR" --json
  grep -q "confusion matrix" "$tmp/out" && ok || bad "eval prints a confusion matrix"
  # every command's --json line parses, with a quote and a backslash in the paths it names
  odd="$tmp/we\"ird\\dir"
  mkdir -p "$odd"
  json_ok() { # json_ok WHAT -- ARGS...: exit 0 and a parsable last line
    local what="$1"; shift 2
    expect 0 "$what --json" -- "$bin" "$@" --json
    "$tool" json "$tmp/out" && ok || bad "$what --json: the last stdout line is not a JSON object"
  }
  json_ok train -- "${args[@]}" --out "$odd/m.tqf"
  json_ok eval -- eval "$odd/m.tqf" --data "$MNIST_DIR"
  json_ok ptq -- ptq "$odd/m.tqf" --data "$MNIST_DIR" --out "$odd/q.tqf"
  json_ok qat -- qat --from "$odd/m.tqf" --epochs 1 --data "$MNIST_DIR" --out "$odd/qat.tqf"
  json_ok convert -- convert "$odd/qat.tqf" --out "$odd/m.tqm"
  json_ok infer -- infer "$odd/m.tqm" --compare "$odd/qat.tqf" --data "$MNIST_DIR"
  grep -q 'we\\"ird' "$tmp/out" && ok || bad "infer --json escapes the quote in the path"
  # the integer path is the simulation, to the prediction and the logit (the README's promise)
  dis=$(tail -n 1 "$tmp/out" | grep -o '"disagreements":[0-9]*' | cut -d: -f2)
  mld=$(tail -n 1 "$tmp/out" | grep -o '"max_logit_diff":[0-9]*' | cut -d: -f2)
  [ "${dis:-1}" = 0 ] && [ "${mld:-1}" = 0 ] && ok || bad "infer --compare: ${dis:-?} of 10000 predictions and logits by ${mld:-?} steps differ (want 0, 0)"
  json_ok export -- export "$odd/m.tqm" --c "$tmp/cdir"
  json_ok quantize -- quantize -1 -0.5 0 0.5 1
  json_ok experiment -- experiment --seeds 1 --epochs 1 --qat-epochs 1 --data "$MNIST_DIR"
  # PTQ at 2 bits with MSE weight ranges: the range rule travels in the file, so the integer model
  # converted from it is what was simulated; the experiment shows a row per method
  expect 0 "ptq --method mse" -- "$bin" ptq "$odd/m.tqf" --bits 2 --method mse --data "$MNIST_DIR" --out "$tmp/mse.tqf"
  grep -q "mse ranges" "$tmp/out" && ok || bad "ptq --method mse says so"
  "$bin" convert "$tmp/mse.tqf" --out "$tmp/mse.tqm" >/dev/null && grep -q "2-bit weights (4 to a byte)" <("$bin" convert "$tmp/mse.tqf" --out "$tmp/mse.tqm") && ok || bad "convert packs 2-bit weights"
  expect 0 "2-bit infer --compare" -- "$bin" infer "$tmp/mse.tqm" --compare "$tmp/mse.tqf" --repeats 1 --data "$MNIST_DIR" --json
  # (a weak 2-bit model has many near-ties: a float rounding that moves a hidden value by one step
  # moves a logit by up to one step; more than that would be a real disagreement)
  mld=$(tail -n 1 "$tmp/out" | grep -o '"max_logit_diff":[0-9]*' | cut -d: -f2)
  [ "${mld:-9}" -le 1 ] && ok || bad "2-bit mse infer --compare: logits differ by ${mld:-?} steps (want <= 1)"
  expect 0 "qat --ste lsq" -- "$bin" qat --from "$odd/m.tqf" --ste lsq --bits 4 --epochs 1 --data "$MNIST_DIR" --out "$tmp/lsq.tqf"
  "$bin" convert "$tmp/lsq.tqf" --out "$tmp/lsq.tqm" >/dev/null &&
    "$bin" infer "$tmp/lsq.tqm" --compare "$tmp/lsq.tqf" --repeats 1 --data "$MNIST_DIR" --json >"$tmp/out" &&
    tail -n 1 "$tmp/out" | grep -q '"disagreements":0,"max_logit_diff":0' && ok || bad "an LSQ model's integer path is its simulation"
  expect 0 "experiment --ptq-methods --qat-methods" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --bits 2 --ptq-methods minmax,mse,gptq --qat-methods ste,lsq --data "$MNIST_DIR"
  grep -q "^| ptq mse | 2 |" "$tmp/out" && grep -q "^| ptq | 2 |" "$tmp/out" && grep -q "^| ptq gptq | 2 |" "$tmp/out" && ok || bad "experiment shows a PTQ row per method"
  grep -q "^| qat lsq | 2 |" "$tmp/out" && grep -q "^| qat | 2 |" "$tmp/out" && ok || bad "experiment shows a QAT row per method"
  # import of an int8 .tflite: the exported file read back runs as the model did
  expect 0 "export --tflite for import" -- "$bin" export "$odd/m.tqm" --tflite "$tmp/rt.tflite"
  expect 0 "import .tflite" -- "$bin" import "$tmp/rt.tflite" --json
  grep -q '"softmax":0' "$tmp/out" && [ -s "$tmp/rt.tqm" ] && ok || bad "import rt.tflite: $(cat "$tmp/out")"
  "$bin" infer "$odd/m.tqm" --repeats 1 --data "$MNIST_DIR" --logits "$tmp/a.logits" >/dev/null &&
    "$bin" infer "$tmp/rt.tqm" --repeats 1 --data "$MNIST_DIR" --logits "$tmp/b.logits" >/dev/null &&
    cmp -s "$tmp/a.logits" "$tmp/b.logits" && ok || bad "the imported .tflite's logits differ from the model exported"
  # with a SOFTMAX: imported as an int8 softmax after the same logits (probabilities out)
  expect 0 "export --tflite --softmax" -- "$bin" export "$odd/m.tqm" --tflite "$tmp/rs.tflite" --softmax
  expect 0 "import .tflite with a softmax" -- "$bin" import "$tmp/rs.tflite"
  grep -q "softmax computed in int8" "$tmp/out" && grep -q -- "-softmax:" "$tmp/out" && ok || bad "import rs.tflite: $(cat "$tmp/out")"
  "$bin" infer "$tmp/rs.tqm" --repeats 1 --data "$MNIST_DIR" --logits "$tmp/c.logits" >/dev/null &&
    [ "$(stat -c %s "$tmp/c.logits")" = "$(stat -c %s "$tmp/a.logits")" ] && ! cmp -s "$tmp/a.logits" "$tmp/c.logits" && ok ||
    bad "the imported softmax gives no probabilities"
  head -c 100 "$tmp/rt.tflite" > "$tmp/cut.tflite"
  expect 1 "import a cut .tflite" -- "$bin" import "$tmp/cut.tflite" --out "$tmp/cut.tqm"
  grep -q "cut.tflite" "$tmp/err" && [ ! -e "$tmp/cut.tqm" ] && ok || bad "import cut.tflite: $(cat "$tmp/err")"
  expect 2 "import .tflite with --mean" -- "$bin" import "$tmp/rt.tflite" --mean 0.5
  # run: a model on inputs from .npy files (int8, uint8 pixels, float32), the outputs those of infer
  if /usr/bin/python3 -c "import numpy" 2>/dev/null; then
    "$bin" infer "$odd/m.tqm" --repeats 1 --data "$MNIST_DIR" --logits "$tmp/ref.logits" >/dev/null
    /usr/bin/python3 - "$src/tests" "$MNIST_DIR" "$tmp" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from tq_mnist import test_images
x, t = test_images(sys.argv[2], 500), sys.argv[3]
np.save(t + "/px.npy", x.reshape(-1, 28, 28, 1))
np.save(t + "/q.npy", (x.astype(np.int16) - 128).astype(np.int8))
np.save(t + "/f.npy", x.astype(np.float32) / 255)
np.save(t + "/wrong.npy", x[:, :700])
np.save(t + "/f16.npy", x.astype(np.float16))
PY
    for f in px q f; do
      expect 0 "run --input $f.npy" -- "$bin" run "$odd/m.tqm" --input "$tmp/$f.npy" --output "$tmp/$f-out.npy"
    done
    /usr/bin/python3 -c "
import numpy as np, sys
ref = np.fromfile('$tmp/ref.logits', np.int8).reshape(-1, 10)[:500]
sys.exit(0 if all((np.load('$tmp/%s-out.npy' % f) == ref).all() for f in ('px', 'q', 'f')) else 1)" && ok || bad "run: the outputs are not infer's logits"
    expect 0 "run --dequantize" -- "$bin" run "$odd/m.tqm" --input "$tmp/q.npy" --dequantize --json
    [ -s "$tmp/q-out.npy" ] && tail -n 1 "$tmp/out" | grep -q '"inputs":500' && ok || bad "run --dequantize: $(tail -n 1 "$tmp/out")"
    expect 1 "run: inputs of the wrong size" -- "$bin" run "$odd/m.tqm" --input "$tmp/wrong.npy" --output "$tmp/x.npy"
    grep -q "wrong.npy: 500 rows of 700 values; model 784-100r-100r-10 takes 784" "$tmp/err" && [ ! -e "$tmp/x.npy" ] && ok || bad "run wrong.npy: $(cat "$tmp/err")"
    expect 1 "run: float16" -- "$bin" run "$odd/m.tqm" --input "$tmp/f16.npy" --output "$tmp/x.npy"
    grep -q "f16.npy: data type '<f2'" "$tmp/err" && ok || bad "run f16.npy: $(cat "$tmp/err")"
  else
    echo "cli: no numpy: run not checked"
  fi
  # weight widths per layer: given, or chosen for a flash budget; the integer path is the simulation
  expect 0 "ptq --layer-bits" -- "$bin" ptq "$odd/m.tqf" --layer-bits 2,4,8 --data "$MNIST_DIR" --out "$tmp/lb.tqf" --json
  tail -n 1 "$tmp/out" | grep -q '"layer_bits":"2,4,8"' && ok || bad "ptq --layer-bits: $(tail -n 1 "$tmp/out")"
  "$bin" convert "$tmp/lb.tqf" --out "$tmp/lb.tqm" >/dev/null &&
    "$bin" infer "$tmp/lb.tqm" --compare "$tmp/lb.tqf" --repeats 1 --data "$MNIST_DIR" --json >"$tmp/out" &&
    tail -n 1 "$tmp/out" | grep -q '"max_logit_diff":[01],' && ok || bad "mixed widths: the integer path is not the simulation"
  # 16-bit activations (TFLite's 16x8): every output but the logits, or per layer; the integer path is the simulation
  expect 0 "ptq --act-bits 16" -- "$bin" ptq "$odd/m.tqf" --act-bits 16 --data "$MNIST_DIR" --out "$tmp/a16.tqf"
  grep -q "PTQ int8 weights, 16-bit activations" "$tmp/out" && ok || bad "ptq --act-bits 16: $(cat "$tmp/out")"
  "$bin" convert "$tmp/a16.tqf" --out "$tmp/a16.tqm" >"$tmp/out" && grep -q "int32 / int64 (16-bit activations) biases" "$tmp/out" &&
    grep -q "\[0,32767\]" "$tmp/out" &&
    "$bin" infer "$tmp/a16.tqm" --compare "$tmp/a16.tqf" --repeats 1 --data "$MNIST_DIR" --json >"$tmp/out" &&
    tail -n 1 "$tmp/out" | grep -q '"disagreements":0,"max_logit_diff":0,' && ok ||
    bad "16-bit activations: the integer path is not the simulation: $(tail -n 1 "$tmp/out")"
  expect 0 "qat --act-bits 16,8,8" -- "$bin" qat --from "$odd/m.tqf" --act-bits 16,8,8 --epochs 1 --data "$MNIST_DIR" --out "$tmp/a16b.tqf"
  grep -q "activations 16,8,8" "$tmp/out" && ok || bad "qat --act-bits 16,8,8: $(cat "$tmp/out")"
  expect 1 "tflite export of 16-bit activations" -- "$bin" export "$tmp/a16.tqm" --tflite "$tmp/a16.tflite"
  grep -q "layer 0 (linear) has 16-bit activations" "$tmp/err" && [ ! -e "$tmp/a16.tflite" ] && ok || bad "tflite of a16: $(cat "$tmp/err")"
  expect 2 "--act-bits 12" -- "$bin" ptq "$odd/m.tqf" --act-bits 12 --data "$MNIST_DIR" --out "$tmp/x.tqf"
  grep -q "act-bits '12': 8 or 16" "$tmp/err" && ok || bad "--act-bits 12: $(cat "$tmp/err")"
  expect 1 "--act-bits with 16-bit logits" -- "$bin" ptq "$odd/m.tqf" --act-bits 8,8,16 --data "$MNIST_DIR" --out "$tmp/x.tqf"
  grep -q "the logits are int8" "$tmp/err" && [ ! -e "$tmp/x.tqf" ] && ok || bad "--act-bits 8,8,16: $(cat "$tmp/err")"
  expect 2 "--layer-bits of the wrong count" -- "$bin" ptq "$odd/m.tqf" --layer-bits 4,4 --data "$MNIST_DIR" --out "$tmp/x.tqf"
  grep -q "3 layers with weights" "$tmp/err" && ok || bad "--layer-bits 4,4: $(cat "$tmp/err")"
  expect 1 "a flash budget below the smallest model" -- "$bin" ptq "$odd/m.tqf" --flash-budget 1000 --data "$MNIST_DIR" --out "$tmp/x.tqf"
  grep -q "with every layer at 2 bits it takes 24918" "$tmp/err" && [ ! -e "$tmp/x.tqf" ] && ok || bad "--flash-budget 1000: $(cat "$tmp/err")"
  expect 0 "qat --flash-budget" -- "$bin" qat --from "$odd/m.tqf" --flash-budget 30000 --epochs 1 --calib-batches 4 --data "$MNIST_DIR" --out "$tmp/fb.tqf" --json
  by=$(tail -n 1 "$tmp/out" | grep -o '"model_bytes":[0-9]*' | cut -d: -f2)
  [ -n "$by" ] && [ "$by" -le 30000 ] && grep -q "loss increase at 2 / 3 / 4 / 6 bits" "$tmp/out" && ok || bad "qat --flash-budget 30000: ${by:-?} bytes"
  expect 0 "convert the budget's model" -- "$bin" convert "$tmp/fb.tqf" --out "$tmp/fb.tqm" --json
  [ "$(stat -c %s "$tmp/fb.tqm")" -le 31000 ] && ok || bad "the budget's .tqm is $(stat -c %s "$tmp/fb.tqm") bytes"
  expect 2 "qat --flash-budget without --from" -- "$bin" qat --flash-budget 30000 --data "$MNIST_DIR" --out "$tmp/x.tqf"
  json_ok bench -- bench --repeats 1 --data "$MNIST_DIR"
  # a convolutional model: trains, quantizes both ways, the same bytes with one thread or two
  cnn=(train --model in-c4k5br-m2-out --epochs 1 --limit 3000 --seed 5 --data "$MNIST_DIR")
  expect 0 "cnn train, one thread" -- "$bin" "${cnn[@]}" --threads 1 --out "$tmp/c1.tqf"
  grep -q "28x28x1-c4k5br-m2-10" "$tmp/out" && ok || bad "cnn train names the resolved spec"
  expect 0 "cnn train, two threads" -- "$bin" "${cnn[@]}" --threads 2 --out "$tmp/c2.tqf"
  cmp -s "$tmp/c1.tqf" "$tmp/c2.tqf" && ok || bad "a CNN trained with one and two threads differs"
  expect 0 "cnn eval" -- "$bin" eval "$tmp/c1.tqf" --data "$MNIST_DIR"
  expect 0 "cnn ptq" -- "$bin" ptq "$tmp/c1.tqf" --calib-batches 4 --data "$MNIST_DIR" --out "$tmp/cp.tqf"
  expect 0 "cnn qat" -- "$bin" qat --from "$tmp/c1.tqf" --epochs 1 --threads 2 --data "$MNIST_DIR" --out "$tmp/cq.tqf"
  # its integer model: conv, max pool, flatten, linear; the same predictions as the simulation
  expect 0 "cnn convert" -- "$bin" convert "$tmp/cq.tqf" --out "$tmp/cq.tqm"
  grep -q "max pool" "$tmp/out" && grep -q "flatten" "$tmp/out" && ok || bad "cnn convert lists the pool and the flatten"
  expect 0 "cnn infer --compare" -- "$bin" infer "$tmp/cq.tqm" --compare "$tmp/cq.tqf" --repeats 1 --data "$MNIST_DIR" --json
  dis=$(tail -n 1 "$tmp/out" | grep -o '"disagreements":[0-9]*' | cut -d: -f2)
  [ -n "$dis" ] && [ "$dis" -le 5 ] && ok || bad "cnn infer --compare: ${dis:-?} of 10000 predictions differ (want <= 5)"
  # every kernel gives the reference's accuracy (the unit tests compare the logits)
  "$bin" infer "$tmp/cq.tqm" --kernel ref --repeats 1 --data "$MNIST_DIR" --json | tail -n 1 | grep -o '"test_accuracy":[0-9.]*' >"$tmp/ref_acc"
  for k in avx2 vnni; do
    if "$bin" infer "$tmp/cq.tqm" --kernel $k --repeats 1 --data "$MNIST_DIR" --json >"$tmp/out" 2>"$tmp/err"; then
      tail -n 1 "$tmp/out" | grep -o '"test_accuracy":[0-9.]*' | cmp -s - "$tmp/ref_acc" && ok || bad "cnn infer --kernel $k: accuracy differs from the reference's"
    else
      grep -q "cannot run" "$tmp/err" && ok || bad "cnn infer --kernel $k failed: $(cat "$tmp/err")"
    fi
  done
  expect 0 "cnn export" -- "$bin" export "$tmp/cq.tqm" --c "$tmp/ccdir" --test-images 5 --data "$MNIST_DIR"
  grep -q "TQ_S8_CONV" "$tmp/ccdir/tq_model.c" && ok || bad "cnn export writes a conv layer"
  # the exported header and the library's headers can meet in one program
  printf '#include "layers/model.h"\n#include "tq_model.h"\nint main(void) { tq_model m; (void)m; return TQ_MODEL_INPUTS - (int)tq_model_net.layer[0].in; }\n' >"$tmp/both.c"
  cc -std=c11 -fsyntax-only -I"$src" -I"$tmp/cdir" "$tmp/both.c" 2>"$tmp/err" && ok || { bad "library and exported headers clash"; sed 's/^/  | /' "$tmp/err" | head -5; }
  expect 1 "save into a missing folder" -- "$bin" "${args[@]}" --out "$tmp/no/such/dir/m.tqf"
  one_line_err "no/such/dir" "save into a missing folder"
  cp "$tmp/a.tqf" "$tmp/keep.tqf"
  expect 2 "bad args do not touch an existing output" -- "$bin" train --epochs 0 --out "$tmp/keep.tqf"
  cmp -s "$tmp/a.tqf" "$tmp/keep.tqf" && ok || bad "existing model untouched"
  # Ctrl-C once the first checkpoint exists, then --resume: the same bytes as a run never stopped.
  # The run is long enough (7 epochs left after the first checkpoint) that it must still be going.
  # It augments its images (--shift, --flip) and drops 20% of a layer's outputs, draws that must
  # come out the same after a resume.
  run=(train --model in-100r-drop20-100r-out --epochs 8 --limit 30000 --seed 3 --shift 2 --flip --data "$MNIST_DIR")
  expect 0 "uninterrupted run" -- "$bin" "${run[@]}" --out "$tmp/u.tqf"
  "$bin" "${run[@]}" --out "$tmp/i.tqf" --checkpoint-every 1 >"$tmp/i.out" 2>"$tmp/i.err" &
  pid=$!
  for _ in $(seq 600); do [ -f "$tmp/i.tqf.ckpt" ] && break; sleep 0.05; done
  kill -INT "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  [ "$rc" = 130 ] && ok || bad "interrupted run: exit $rc, want 130"
  [ ! -e "$tmp/i.tqf" ] && ok || bad "an interrupted run leaves no half-written model"
  grep -q "resume from the last checkpoint with --resume" "$tmp/i.err" && ok || bad "interruption message names the checkpoint"
  expect 0 "resume" -- "$bin" "${run[@]}" --out "$tmp/i.tqf" --resume "$tmp/i.tqf.ckpt"
  cmp -s "$tmp/u.tqf" "$tmp/i.tqf" && ok || bad "resumed run gives the same bytes as the uninterrupted one"
  expect 1 "resume with other options" -- "$bin" train --epochs 8 --limit 30000 --seed 3 --shift 1 --flip --data "$MNIST_DIR" --out "$tmp/x.tqf" --resume "$tmp/i.tqf.ckpt"
  one_line_err "checkpoint was made by a run with" "resume with other options"
  # the same for QAT (observers and their frozen state travel in the checkpoint)
  qrun=(qat --from "$tmp/a.tqf" --epochs 5 --data "$MNIST_DIR")
  expect 0 "QAT uninterrupted" -- "$bin" "${qrun[@]}" --out "$tmp/qu.tqf"
  "$bin" "${qrun[@]}" --out "$tmp/qi.tqf" --checkpoint-every 1 >/dev/null 2>"$tmp/qi.err" &
  pid=$!
  for _ in $(seq 600); do [ -f "$tmp/qi.tqf.ckpt" ] && break; sleep 0.05; done
  kill -INT "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  [ "$rc" = 130 ] && ok || bad "interrupted QAT: exit $rc, want 130"
  [ ! -e "$tmp/qi.tqf" ] && ok || bad "an interrupted QAT run leaves no model"
  expect 0 "QAT resume" -- "$bin" "${qrun[@]}" --out "$tmp/qi.tqf" --resume "$tmp/qi.tqf.ckpt"
  cmp -s "$tmp/qu.tqf" "$tmp/qi.tqf" && ok || bad "resumed QAT gives the same bytes as the uninterrupted one"
  # divergence: stops with a message, writes no model, keeps the last good checkpoint
  expect 1 "diverging run" -- "$bin" train --optim sgd --lr 10 --epochs 1 --limit 5000 --data "$MNIST_DIR" --out "$tmp/nan.tqf" --checkpoint-every 1
  grep -q "diverged" "$tmp/err" && ok || bad "divergence message"
  [ ! -e "$tmp/nan.tqf" ] && ok || bad "a diverged run writes no model"
  # pictures: each PNG decodes (libpng) to the size the layout gives, with ink where it draws
  # and anti-aliased edges; each SVG parses, and its text is text (tests/tools/figcheck.c)
  if "$bin" --version | grep -q "pictures: PNG and SVG"; then
    expect 0 "view" -- "$bin" view --count 16 --data "$MNIST_DIR" --out "$tmp/d.png"
    read -r w h ink _ < <("$figcheck" "$tmp/d.png")
    [ "$w" = 560 ] && [ "$h" = 202 ] && ok || bad "view: size ${w}x${h}, want 560x202"
    read -r _ _ ink _ < <("$figcheck" "$tmp/d.png" 8 34 63 89)    # the first digit's cell
    [ "${ink:-0}" -gt 50 ] && ok || bad "view: the first digit is blank ($ink)"
    expect 0 "view as SVG" -- "$bin" view --count 16 --data "$MNIST_DIR" --out "$tmp/d.svg"
    "$figcheck" "$tmp/d.svg" > "$tmp/svg.txt" && grep -qx "7" "$tmp/svg.txt" && ok || bad "view: the SVG does not parse or lacks the label 7"
    expect 0 "view --misclassified" -- "$bin" view --misclassified "$tmp/a.tqf" "$tmp/c.tqf" --count 8 --data "$MNIST_DIR" --out "$tmp/m.png"
    read -r w h ink _ < <("$figcheck" "$tmp/m.png")
    [ "$w" = 576 ] && ok || bad "view --misclassified: two panels of four columns, width $w"
    expect 0 "experiment --plots" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --bits 8,4 --ptq-methods minmax,mse --flash-budget 30000,60000 --data "$MNIST_DIR" --plots "$tmp"
    grep -q "| qat, widths for 30000 bytes | 2,4,8 |" "$tmp/out" && grep -q "| qat, widths for 60000 bytes |" "$tmp/out" && ok || bad "experiment: a row per budget"
    for f in bits staircase rounding curves confusion misclassified sqnr bytes; do
      read -r w h ink grays < <("$figcheck" "$tmp/$f.png")
      [ "${ink:-0}" -gt 2000 ] && ok || bad "$f.png: blank or missing (${w}x${h}, ink $ink)"
      [ "${grays:-0}" -gt 200 ] && ok || bad "$f.png: no anti-aliased gray edges ($grays)"
      "$figcheck" "$tmp/$f.svg" > "$tmp/svg.txt" 2> "$tmp/svgerr" && ok || bad "$f.svg does not parse: $(cat "$tmp/svgerr")"
      read -r sw sh _ < "$tmp/svg.txt"
      [ "$sw $sh" = "$w $h" ] && ok || bad "$f.svg is ${sw}x${sh}, its PNG ${w}x${h}"
    done
    # the text is searchable, and says what the figure shows
    "$figcheck" "$tmp/bits.svg" | grep -q "test accuracy against weight bits" && ok || bad "bits.svg: no title text"
    for want in "PTQ, min-max ranges" "PTQ, MSE ranges" "QAT, STE" "weight bits (activations 8-bit)"; do
      "$figcheck" "$tmp/bits.svg" | grep -qF "$want" && ok || bad "bits.svg: no legend or label '$want'"
    done
    for want in "test accuracy against model bytes" "QAT, one width for all layers" "QAT, widths per layer chosen for the budget" "4 bits"; do
      "$figcheck" "$tmp/bytes.svg" | grep -qF "$want" && ok || bad "bytes.svg: no title, legend or label '$want'"
    done
    "$figcheck" "$tmp/sqnr.svg" | grep -q "^dense 3$" && ok || bad "sqnr.svg: no label for the third layer"
    "$figcheck" "$tmp/rounding.svg" | grep -q "4-bit QAT: weights changing their integer value" && ok || bad "rounding.svg: the 4-bit flips panel is missing"
    read -r w h _ < <("$figcheck" "$tmp/rounding.png")
    [ "$w" = 900 ] && [ "$h" = 290 ] && ok || bad "rounding.png: one width swept below 8 (4), one row: ${w}x${h}"
    read -r _ _ ink _ < <("$figcheck" "$tmp/curves.png" 80 40 430 300)   # inside the loss panel
    [ "${ink:-0}" -gt 300 ] && ok || bad "curves.png: no curve in the loss panel"
    mkdir -p "$tmp/svgonly"
    expect 0 "experiment --plot-format svg" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --bits 8 --data "$MNIST_DIR" --plots "$tmp/svgonly" --plot-format svg
    [ "$(ls "$tmp/svgonly" | sort | tr '\n' ' ')" = "bits.svg confusion.svg curves.svg misclassified.svg rounding.svg sqnr.svg staircase.svg " ] && ok ||
      bad "--plot-format svg: want the six SVGs only, got: $(ls "$tmp/svgonly" | tr '\n' ' ')"
    expect 1 "plots into a missing folder" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --data "$MNIST_DIR" --plots "$tmp/nope"
    # a figure that cannot be written: exit 1 naming it, and the table is printed all the same
    mkdir -p "$tmp/pfail/bits.png"
    expect 1 "a figure that cannot be written" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --bits 8 --data "$MNIST_DIR" --plots "$tmp/pfail"
    grep -q "bits.png" "$tmp/err" && grep -q "^| fp32 |" "$tmp/out" && ok || bad "a failed figure: want its name on stderr and the table on stdout"
  else
    echo "built without cairo: skipping the picture checks"
    expect 1 "view without cairo" -- "$bin" view --data "$MNIST_DIR" --out "$tmp/d.png"
    grep -q "cairo" "$tmp/err" && ok || bad "the error says cairo is missing"
  fi
else
  echo "MNIST_DIR not set: skipping the training checks"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
