#!/usr/bin/env bash
# Every unit test, and a short train -> ptq -> convert -> infer run of the program, under valgrind
# memcheck: any error or any leaked block (of any kind) fails.
#   scripts/valgrind.sh BUILD_DIR        (needs MNIST_DIR for the program run; skipped without)
set -uo pipefail
build=$(cd "${1:-build}" && pwd)
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
vg=(valgrind -q --error-exitcode=9 --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all
    --suppressions="$root/tests/valgrind.supp")
export OPENBLAS_NUM_THREADS=1
pass=0 fail=0
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  if "${vg[@]}" "$t" >"$build/valgrind-$(basename "$t").log" 2>&1; then pass=$((pass + 1))
  else fail=$((fail + 1)); echo "valgrind: $(basename "$t") FAILED (see $build/valgrind-$(basename "$t").log)"; tail -20 "$build/valgrind-$(basename "$t").log"; fi
done
if [ -n "${MNIST_DIR:-}" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  bin="$build/tinyqat"
  for step in "train --epochs 1 --limit 1000 --out $tmp/a.tqf" "ptq $tmp/a.tqf --calib-batches 2 --out $tmp/b.tqf" \
              "convert $tmp/b.tqf --out $tmp/b.tqm" "infer $tmp/b.tqm --repeats 1 --kernel ref" "export $tmp/b.tqm --c $tmp/c --tflite $tmp/b.tflite --onnx $tmp/b.onnx" \
              "export $tmp/a.tqf --onnx $tmp/a.onnx" "eval $tmp/a.tqf --logits $tmp/a.f32" \
              "view --count 4 --out $tmp/d.png" "view --count 4 --out $tmp/d.svg"; do
    # shellcheck disable=SC2086
    if "${vg[@]}" "$bin" $step >"$tmp/log" 2>&1; then pass=$((pass + 1))
    else fail=$((fail + 1)); echo "valgrind: tinyqat $step FAILED"; tail -20 "$tmp/log"; fi
  done
fi
echo "valgrind: $pass passed, $fail failed"
[ "$fail" = 0 ]
