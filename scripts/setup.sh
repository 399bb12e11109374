#!/usr/bin/env bash
# Install tinyqat's build dependencies (Debian packages), build it, and fetch MNIST.
# Quick and harmless to run again: it installs only what is missing and skips a verified dataset.
#   scripts/setup.sh [--no-data] [--build-dir DIR] [--cmake-args "..."]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build" data=1 cmake_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --no-data) data=0 ;;
    --build-dir) build="$2"; shift ;;
    --cmake-args) cmake_args="$2"; shift ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

pkgs="cmake make gcc pkg-config libopenblas-dev zlib1g-dev libcmocka-dev libpng-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  if [ "$(id -u)" = 0 ]; then sudo=""
  elif command -v sudo >/dev/null; then sudo="sudo"
  else echo "setup: need root or sudo to install:$missing (apt-get install$missing)" >&2; exit 1; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release $cmake_args >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "setup: built $build/tinyqat"

if [ "$data" = 1 ]; then
  "$root/data/fetch_mnist.sh"
fi
