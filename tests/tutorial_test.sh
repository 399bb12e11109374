#!/usr/bin/env bash
# The tutorial cannot drift: docs/run_tutorial.sh --check reruns every command of docs/TUTORIAL.md
# and must pass on it, and must fail on a copy whose one recorded result was changed (so the check
# can fail at all). Skipped (77) without MNIST.
#   tests/tutorial_test.sh BUILD_DIR
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
[ -n "${MNIST_DIR:-}" ] || { echo "SKIP: MNIST_DIR not set"; exit 77; }
export TQ_BUILD_DIR="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
if bash "$root/docs/run_tutorial.sh" --check >"$tmp/out" 2>"$tmp/err"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: docs/TUTORIAL.md no longer matches its commands"; tail -40 "$tmp/out"; fi
# one accuracy in a recorded output changed: the check must notice
sed '0,/98\.25% there/s//98.26% there/' "$root/docs/TUTORIAL.md" >"$tmp/changed.md"
if cmp -s "$root/docs/TUTORIAL.md" "$tmp/changed.md"; then fail=$((fail + 1)); echo "FAIL: could not change a recorded output"
elif bash "$root/docs/run_tutorial.sh" --check "$tmp/changed.md" >"$tmp/out2" 2>&1; then fail=$((fail + 1)); echo "FAIL: the check passed a changed recorded output"
elif grep -q "recorded outputs differ" "$tmp/out2"; then pass=$((pass + 1))
else fail=$((fail + 1)); echo "FAIL: the check failed without saying why"; tail -5 "$tmp/out2"; fi
echo "tutorial: $pass passed, $fail failed"
[ "$fail" = 0 ]
