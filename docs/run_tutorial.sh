#!/usr/bin/env bash
# Regenerate docs/TUTORIAL.md: every "<!-- run: CMD -->" line is executed (in a scratch folder, with
# the build on hand as build/) and the block after it, up to "<!-- end -->", is replaced by the
# command and its real output. Needs a built tree and MNIST ($MNIST_DIR or data/mnist).
#   docs/run_tutorial.sh                 rewrite docs/TUTORIAL.md
#   docs/run_tutorial.sh --check [FILE]  rerun every command and fail (exit 1, with a diff) when a
#                                        recorded output no longer matches, timings aside; FILE
#                                        defaults to docs/TUTORIAL.md, which is left as it is
# $TQ_BUILD_DIR chooses the build (default: build/ beside docs/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
doc="$root/docs/TUTORIAL.md" check=0
if [ "${1:-}" = --check ]; then check=1; [ -n "${2:-}" ] && doc="$2"; fi
build=$(cd "${TQ_BUILD_DIR:-$root/build}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$build" "$work/build"
ln -s "$root/examples" "$work/examples"
export MNIST_DIR="${MNIST_DIR:-$root/data/mnist}"
out="$work/TUTORIAL.md"
skipping=0
while IFS= read -r line || [ -n "$line" ]; do
  if [ "$skipping" = 1 ]; then
    [ "$line" = "<!-- end -->" ] && skipping=0 && echo "$line" >>"$out"
    continue
  fi
  echo "$line" >>"$out"
  case "$line" in
    "<!-- run: "*" -->")
      cmd=${line#<!-- run: }
      cmd=${cmd% -->}
      echo "running: $cmd" >&2
      { echo '```'; echo "\$ $cmd"; (cd "$work" && bash -c "$cmd" 2>&1) | sed 's/[[:space:]]*$//'; echo '```'; } >>"$out"
      skipping=1
      ;;
  esac
done <"$doc"
if [ "$check" = 0 ]; then
  mv "$out" "$doc"
  echo "rewrote $doc" >&2
  exit 0
fi
# Timings change from run to run: numbers before s, ms, samples/s and images/s become <T>; the
# host kernel the CPU picks (AVX-512 VNNI, AVX2, reference) becomes <K>. Without
# the ARM toolchain the microcontroller block cannot run here: it is left out of both sides.
normalize() {
  local skip_mcu="$2"
  sed -E 's/[0-9]+(\.[0-9]+)? (s|ms)([^a-z]|$)/<T> \2\3/g; s/[0-9]+ (samples|images)\/s/<T> \1\/s/g; s/\((AVX-512 VNNI|AVX2|reference) kernel/(<K> kernel/g' "$1" |
    awk -v skip="$skip_mcu" '/^<!-- run: .*arm-none-eabi-gcc/ && skip { drop = 1; print; next }
                             drop && /^<!-- end -->/ { drop = 0 }
                             !drop { print }'
}
skip=0
grep -q "^(arm-none-eabi-gcc not installed" "$out" && skip=1 && echo "tutorial check: no ARM toolchain here, the microcontroller block is not compared" >&2
n=$(grep -c '^<!-- run: ' "$doc")
if diff -u <(normalize "$doc" "$skip") <(normalize "$out" "$skip") >"$work/diff"; then
  echo "tutorial check: $n commands rerun, every recorded output matches"
else
  sed 's/^/  | /' "$work/diff" | head -60
  echo "tutorial check: recorded outputs differ in $(grep -c '^@@' "$work/diff") place(s) (rerun docs/run_tutorial.sh if the change is meant)"
  exit 1
fi
