#!/usr/bin/env bash
# Regenerate docs/TUTORIAL.md: every "<!-- run: CMD -->" line is executed (in a scratch folder, with
# build/ on hand as build/) and the block after it, up to "<!-- end -->", is replaced by the
# command and its real output. Needs a built tree and MNIST (--data, $MNIST_DIR or data/mnist).
#   docs/run_tutorial.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
doc="$root/docs/TUTORIAL.md"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$root/build" "$work/build"
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
mv "$out" "$doc"
echo "rewrote $doc" >&2
