#!/usr/bin/env bash
# What a user of the tinyqat program expects beyond correct numbers: "did you mean" for a mistyped
# command or option, --help showing real defaults, a hint when a file of the wrong kind is given,
# output names derived from the input, export making its folders, --json carrying the figures,
# and a checkpoint's or file's model never silently swapped for another one asked for.
#   tests/cli_usability_test.sh PATH/TO/tinyqat    (the parts that train need MNIST_DIR)
set -u
bin="$1"
. "$(dirname "$0")/cli_lib.sh"   # $tmp, ok, bad, expect
says() { grep -q -- "$1" "$tmp/${3:-err}" && ok || { bad "$2: no '$1' in:"; sed 's/^/  | /' "$tmp/${3:-err}" | head -5; }; }

expect 2 "mistyped command" -- "$bin" trian
says "did you mean 'train'" "mistyped command"
expect 2 "mistyped option" -- "$bin" train --epoch 3
says "did you mean --epochs" "mistyped option"
expect 2 "far from any option" -- "$bin" train --zzzzzzzz 3
grep -q "did you mean" "$tmp/err" && bad "no suggestion for a name far from every option" || ok
# (stand-ins: -2 for "the last epoch", nan for "the data's range", -1 for "the scheme's"; --lo's -1 is real)
for cmd in train ptq qat convert quantize experiment; do
  "$bin" $cmd --help | grep -v -- "--lo N" >"$tmp/out"
  if grep -qE '\[-[0-9]+\]|\[nan\]' "$tmp/out"; then bad "$cmd --help shows a stand-in default: $(grep -E '\[-[0-9]+\]|\[nan\]' "$tmp/out" | head -1)"; else ok; fi
done
"$bin" qat --help >"$tmp/out"
says "--freeze-epoch N .*\[the last\]" "qat --help: the freeze default" out

if [ -z "${MNIST_DIR:-}" ]; then
  echo "cli usability: $pass passed, $fail failed (the rest needs MNIST_DIR)"
  [ "$fail" = 0 ]; exit $?
fi
d=(--data "$MNIST_DIR")
cd "$tmp"
expect 0 "train with --json" -- "$bin" train --model in-16r-out --epochs 2 --limit 500 "${d[@]}" --out s.tqf --checkpoint-every 1 --json
tail -n 1 out | grep -q '"epochs_curve":\[{"epoch":1,"train_loss":[0-9.]*,"test_accuracy":[0-9.]*},{"epoch":2' && ok || bad "train --json carries the per-epoch curve"
expect 0 "eval --json" -- "$bin" eval s.tqf "${d[@]}" --json
tail -n 1 out | grep -q '"confusion":\[\[' && ok || bad "eval --json carries the confusion matrix"
# names from the input: ptq s.tqf -> s-ptq.tqf, convert s-ptq.tqf -> s.tqm, qat --from s.tqf -> s-qat.tqf
expect 0 "ptq, default output" -- "$bin" ptq s.tqf --calib-batches 2 "${d[@]}"
[ -f s-ptq.tqf ] && ok || bad "ptq s.tqf writes s-ptq.tqf"
expect 0 "convert, default output" -- "$bin" convert s-ptq.tqf
[ -f s.tqm ] && [ ! -f digitsnet.tqm ] && ok || bad "convert s-ptq.tqf writes s.tqm"
expect 0 "qat, default output" -- "$bin" qat --from s.tqf --epochs 1 "${d[@]}"
[ -f s-qat.tqf ] && ok || bad "qat --from s.tqf writes s-qat.tqf"
# a file of the other kind: the message says what it is
expect 1 "eval of an integer model" -- "$bin" eval s.tqm "${d[@]}"
says "integer model (.tqm), which infer and export read" "eval of a .tqm"
expect 1 "infer of a float model" -- "$bin" infer s.tqf "${d[@]}"
says "float or quantized model (.tqf)" "infer of a .tqf"
# export makes the folders it writes into
expect 0 "export into new folders" -- "$bin" export s.tqm --c a/b/c
[ -f a/b/c/tq_model.c ] && ok || bad "export --c a/b/c creates a and b"
# the checkpoint's model is the one trained: another --model is refused, the same is fine
expect 2 "resume with another --model" -- "$bin" train --model in-32r-out --epochs 2 --limit 500 "${d[@]}" --resume s.tqf.ckpt --out r.tqf
says "holds model 784-16r-10, not 784-32r-10" "resume with another --model"
[ ! -f r.tqf ] && ok || bad "a refused resume writes no model"
expect 2 "resume with a malformed --model" -- "$bin" train --model 784-x-10 --epochs 2 --resume s.tqf.ckpt "${d[@]}" --out r.tqf
expect 0 "resume with the same --model" -- "$bin" train --model in-16r-out --epochs 2 --limit 500 "${d[@]}" --resume s.tqf.ckpt --out r.tqf
cmp -s r.tqf s.tqf && ok || bad "the resumed run gives the finished run's model"
expect 0 "qat checkpoint" -- "$bin" qat --from s.tqf --epochs 2 --checkpoint-every 1 "${d[@]}" --out q.tqf
expect 0 "another float model" -- "$bin" train --model in-8r-out --epochs 1 --limit 300 "${d[@]}" --out o.tqf
expect 2 "qat --resume with another --from" -- "$bin" qat --from o.tqf --resume q.tqf.ckpt --epochs 2 "${d[@]}" --out q2.tqf
says "holds model 784-16r-10, but --from o.tqf is 784-8r-10" "qat --resume with another --from"
# train --from: go on training a saved float model
expect 0 "train --from" -- "$bin" train --from s.tqf --epochs 1 --limit 500 "${d[@]}" --out s2.tqf
grep -q "784-16r-10" out && ok || bad "train --from trains the saved model"
expect 1 "train --from a quantized model" -- "$bin" train --from s-qat.tqf --epochs 1 --limit 500 "${d[@]}" --out s3.tqf
# a first convolution that pads takes p/255 without the normalization, so that it quantizes
expect 0 "padded first convolution" -- "$bin" train --model in-c2k3p1-out --epochs 1 --limit 100 "${d[@]}" --out p.tqf
says "input mean 0.0000, std 1.0000" "a padded first convolution's model takes p/255" out
expect 0 "ptq of a padded first convolution" -- "$bin" ptq p.tqf --calib-batches 1 "${d[@]}" --out p-ptq.tqf
# a graph's widths: one per layer with weights (two convolutions and the dense layer; the add has none)
expect 0 "a residual graph" -- "$bin" train --model in-c2k3p1br@a-c2k3p1b-+a-r-g-out --epochs 1 --limit 100 "${d[@]}" --out rg.tqf
expect 0 "graph --layer-bits" -- "$bin" ptq rg.tqf --layer-bits 8,4,8 --calib-batches 1 "${d[@]}" --out rg-q.tqf
says "PTQ int8,4,8 weights" "a graph's widths, adds left out" out
expect 2 "graph --layer-bits counting the add" -- "$bin" ptq rg.tqf --layer-bits 8,4,4,8 --calib-batches 1 "${d[@]}" --out rg-q.tqf
says "want 3 widths of 2..8" "a graph's width count"
expect 1 "16-bit activations around an add" -- "$bin" ptq rg.tqf --act-bits 16 --calib-batches 1 "${d[@]}" --out rg-q16.tqf
says "stage 3 is an add: 16-bit activations are for convolutions" "an add's 16-bit activations are refused, naming it"
# a small dataset (200 images): the default sees as many images as 10 epochs of MNIST (600,000),
# here capped at 1,000 epochs, where 10 epochs (2,000 images) would underfit
mkdir -p small
for s in train t10k; do
  { printf '\x00\x00\x08\x03\x00\x00\x00\xc8\x00\x00\x00\x1c\x00\x00\x00\x1c'
    gzip -dc "$MNIST_DIR/$s-images-idx3-ubyte.gz" | tail -c +17 | head -c 156800; } >small/$s-images-idx3-ubyte
  { printf '\x00\x00\x08\x01\x00\x00\x00\xc8'; gzip -dc "$MNIST_DIR/$s-labels-idx1-ubyte.gz" | tail -c +9 | head -c 200; } \
    >small/$s-labels-idx1-ubyte
done
expect 0 "default epochs on a small set" -- "$bin" train --model in-8r-out --data small --out small.tqf --json
tail -n 1 out | grep -q '"epochs":1000' && ok || bad "200 images train 1000 epochs by default: $(tail -n 1 out | head -c 200)"
expect 0 "default epochs on MNIST stay 10" -- "$bin" train --model in-8r-out --batch 4096 "${d[@]}" --out big.tqf --json
tail -n 1 out | grep -q '"epochs":10,' && ok || bad "MNIST keeps 10 epochs, whatever the batch"
# --json: a failure is a JSON line too; the experiment gives each seed's figures
expect 1 "a failure with --json" -- "$bin" eval none.tqf --json
tail -n 1 out | grep -q '^{"error":"tinyqat: none.tqf: cannot open.*","exit":1}$' && ok || bad "--json failure: $(tail -n 1 out)"
says "none.tqf" "a failure with --json still says it on stderr"
expect 0 "experiment --json" -- "$bin" experiment --seeds 2 --epochs 1 --qat-epochs 1 --model in-8r-out "${d[@]}" --json
tail -n 1 out | grep -q '"per_seed":\[{"seed":0,"test_accuracy":[0-9.]*,"train_seconds":[0-9.]*},{"seed":1' && ok || bad "experiment --json carries each seed"
echo "cli usability: $pass passed, $fail failed"
[ "$fail" = 0 ]
