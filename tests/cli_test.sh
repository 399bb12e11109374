#!/usr/bin/env bash
# End-to-end checks of the tinyqat program: help, usage errors, missing files, and that the
# same seed and thread count give a byte-identical model (with MNIST; skipped without).
#   tests/cli_test.sh PATH/TO/tinyqat
set -u
bin="$1"
pnginfo="$(dirname "$bin")/tq_pnginfo"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok()   { pass=$((pass + 1)); }
bad()  { fail=$((fail + 1)); echo "FAIL: $*"; }
# expect STATUS DESCRIPTION -- command...: checks the exit status; stderr saved in $tmp/err
expect() {
  local want="$1" what="$2"; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
  if [ "$got" = "$want" ]; then ok; else bad "$what: exit $got, want $want"; sed 's/^/  | /' "$tmp/err" | head -5; fi
}
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
grep -q -- "--epochs N .*\[10\]" "$tmp/out" && ok || bad "train --help shows the epochs default"
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
  tail -n 1 "$tmp/out" | grep -q '^{"test_accuracy": ' && ok || bad "--json last line"
  expect 0 "train run 2" -- "$bin" "${args[@]}" --out "$tmp/b.tqf"
  cmp -s "$tmp/a.tqf" "$tmp/b.tqf" && ok || bad "same seed and threads give a byte-identical model"
  expect 0 "train run 3, other seed" -- "$bin" train --epochs 1 --limit 3000 --seed 8 --data "$MNIST_DIR" --out "$tmp/c.tqf"
  cmp -s "$tmp/a.tqf" "$tmp/c.tqf" && bad "another seed gives another model" || ok
  expect 0 "eval" -- "$bin" eval "$tmp/a.tqf" --data "$MNIST_DIR" --json
  grep -q "confusion matrix" "$tmp/out" && ok || bad "eval prints a confusion matrix"
  expect 1 "save into a missing folder" -- "$bin" "${args[@]}" --out "$tmp/no/such/dir/m.tqf"
  one_line_err "no/such/dir" "save into a missing folder"
  cp "$tmp/a.tqf" "$tmp/keep.tqf"
  expect 2 "bad args do not touch an existing output" -- "$bin" train --epochs 0 --out "$tmp/keep.tqf"
  cmp -s "$tmp/a.tqf" "$tmp/keep.tqf" && ok || bad "existing model untouched"
  # Ctrl-C once the first checkpoint exists, then --resume: the same bytes as a run never stopped
  run=(train --epochs 6 --limit 30000 --seed 3 --data "$MNIST_DIR")
  expect 0 "uninterrupted run" -- "$bin" "${run[@]}" --out "$tmp/u.tqf"
  "$bin" "${run[@]}" --out "$tmp/i.tqf" --checkpoint-every 1 >"$tmp/i.out" 2>"$tmp/i.err" &
  pid=$!
  for _ in $(seq 600); do [ -f "$tmp/i.tqf.ckpt" ] && break; sleep 0.05; done
  kill -INT "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  if [ "$rc" = 130 ]; then
    ok
    [ ! -e "$tmp/i.tqf" ] && ok || bad "an interrupted run leaves no half-written model"
    grep -q "resume from the last checkpoint with --resume" "$tmp/i.err" && ok || bad "interruption message names the checkpoint"
  elif [ "$rc" = 0 ]; then ok; echo "(the run finished before the interrupt; resuming from its last checkpoint)"
  else bad "interrupted run: exit $rc, want 130"; fi
  expect 0 "resume" -- "$bin" "${run[@]}" --out "$tmp/i.tqf" --resume "$tmp/i.tqf.ckpt"
  cmp -s "$tmp/u.tqf" "$tmp/i.tqf" && ok || bad "resumed run gives the same bytes as the uninterrupted one"
  expect 1 "resume with other options" -- "$bin" train --epochs 7 --limit 30000 --seed 3 --data "$MNIST_DIR" --out "$tmp/x.tqf" --resume "$tmp/i.tqf.ckpt"
  one_line_err "checkpoint was made by a run with" "resume with other options"
  # the same for QAT (observers and their frozen state travel in the checkpoint)
  qrun=(qat --from "$tmp/a.tqf" --epochs 3 --data "$MNIST_DIR")
  expect 0 "QAT uninterrupted" -- "$bin" "${qrun[@]}" --out "$tmp/qu.tqf"
  "$bin" "${qrun[@]}" --out "$tmp/qi.tqf" --checkpoint-every 1 >/dev/null 2>"$tmp/qi.err" &
  pid=$!
  for _ in $(seq 600); do [ -f "$tmp/qi.tqf.ckpt" ] && break; sleep 0.05; done
  kill -INT "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  { [ "$rc" = 130 ] || [ "$rc" = 0 ]; } && ok || bad "interrupted QAT: exit $rc"
  expect 0 "QAT resume" -- "$bin" "${qrun[@]}" --out "$tmp/qi.tqf" --resume "$tmp/qi.tqf.ckpt"
  cmp -s "$tmp/qu.tqf" "$tmp/qi.tqf" && ok || bad "resumed QAT gives the same bytes as the uninterrupted one"
  # divergence: stops with a message, writes no model, keeps the last good checkpoint
  expect 1 "diverging run" -- "$bin" train --optim sgd --lr 10 --epochs 1 --limit 5000 --data "$MNIST_DIR" --out "$tmp/nan.tqf" --checkpoint-every 1
  grep -q "diverged" "$tmp/err" && ok || bad "divergence message"
  [ ! -e "$tmp/nan.tqf" ] && ok || bad "a diverged run writes no model"
  # pictures: they decode, have the size the layout gives, and are not blank
  if "$pnginfo" /dev/null >/dev/null 2>&1; [ $? -ne 77 ]; then
    expect 0 "view" -- "$bin" view --count 16 --data "$MNIST_DIR" --out "$tmp/d.png"
    read -r w h ink < <("$pnginfo" "$tmp/d.png")
    [ "$w" = 560 ] && [ "$h" = 194 ] && ok || bad "view: size ${w}x${h}, want 560x194"
    read -r _ _ ink < <("$pnginfo" "$tmp/d.png" 8 30 63 85)    # the first digit's cell
    [ "${ink:-0}" -gt 50 ] && ok || bad "view: the first digit is blank ($ink)"
    expect 0 "view --misclassified" -- "$bin" view --misclassified "$tmp/a.tqf" "$tmp/c.tqf" --count 8 --data "$MNIST_DIR" --out "$tmp/m.png"
    read -r w h ink < <("$pnginfo" "$tmp/m.png")
    [ "$w" = 1120 ] && ok || bad "view --misclassified: two panels, width $w"
    expect 0 "experiment --plots" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --bits 8,4 --data "$MNIST_DIR" --plots "$tmp"
    for f in staircase weights curves misclassified; do
      read -r w h ink < <("$pnginfo" "$tmp/$f.png")
      [ "${ink:-0}" -gt 2000 ] && ok || bad "$f.png: blank or missing (${w}x${h}, ink $ink)"
    done
    read -r w h _ < <("$pnginfo" "$tmp/weights.png")
    [ "$w" = 1120 ] && [ "$h" = 600 ] && ok || bad "weights.png: two bit widths, 2x2 panels: ${w}x${h}"
    read -r _ _ ink < <("$pnginfo" "$tmp/curves.png" 80 40 540 300)   # inside the loss panel
    [ "${ink:-0}" -gt 300 ] && ok || bad "curves.png: no curve in the loss panel"
    expect 1 "plots into a missing folder" -- "$bin" experiment --seeds 1 --epochs 1 --qat-epochs 1 --data "$MNIST_DIR" --plots "$tmp/nope"
  else
    echo "built without libpng: skipping the picture checks"
    expect 1 "view without libpng" -- "$bin" view --data "$MNIST_DIR" --out "$tmp/d.png"
    grep -q "libpng" "$tmp/err" && ok || bad "the error says libpng is missing"
  fi
else
  echo "MNIST_DIR not set: skipping the training checks"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
