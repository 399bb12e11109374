#!/usr/bin/env bash
# Check an exported .onnx with the ONNX checker (tests/onnx_check.py) and run it in ONNX Runtime
# on the MNIST test images against tinyqat's own logits (tests/onnx_ort.js). A QDQ model is
# compared with `tinyqat infer M.tqm --logits LOGITS` (int8, in output steps), a float one with
# `tinyqat eval M.tqf --logits LOGITS` (float32, relative to the largest logit); one exported with
# --softmax by the class it picks (and its probabilities' sums).
#   tests/onnx_compare.sh MODEL.onnx LOGITS MNIST_DIR [N [MIN_AGREE MAX_STEPS [DUMP] | MAX_REL | MIN_AGREE]]
# Defaults: all 10,000 images; QDQ 99.9% of predictions and 1 step, float 1e-5, softmax 99.9%. Exit 0 when the
# checker accepts the file and the runtime agrees; 77 when a runtime is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 3 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
model="$1" logits="$2" mnist="$3" n="${4:-10000}"
shift $(( $# < 4 ? $# : 4 ))
export NODE_PATH="${TQ_NPM_DIR:-$HOME/.cache/tinyqat/npm}/node_modules${NODE_PATH:+:$NODE_PATH}"
out=$(/usr/bin/python3 "$here/onnx_check.py" "$model"); st=$?
[ "$st" = 0 ] || { [ -n "$out" ] && echo "$out"; exit "$st"; }
case $out in
  probabilities) args=(probabilities "${1:-99.9}") ;;
  float) args=(float "${1:-1e-5}") ;;
  *) read -r s z <<<"$out"; args=(int8 "$s" "$z" "${1:-99.9}" "${2:-1}" ${3:+"$3"}) ;;
esac
# onnx_ort.js prints its verdict, then exits; ONNX Runtime's teardown can hang at that exit now and
# then, so the process gets a bounded life and the printed verdict decides
log=$(mktemp)
timeout -k 5 300 node "$here/onnx_ort.js" "$model" "$logits" "$mnist" "$n" "${args[@]}" >"$log" 2>&1; st=$?
grep -v "^onnx_ort: \(pass\|fail\)$" "$log"
if grep -qx "onnx_ort: pass" "$log"; then st=0; elif grep -qx "onnx_ort: fail" "$log"; then st=1; fi
rm -f "$log"
exit "$st"
