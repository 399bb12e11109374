#!/usr/bin/env bash
# Install tinyqat's build dependencies (Debian packages), build it, and fetch MNIST.
# Quick and harmless to run again: it installs only what is missing and skips a verified dataset.
#   scripts/setup.sh [--no-data] [--fashion] [--mcu] [--runtimes] [--build-dir DIR] [--cmake-args "..."]
# --fashion also installs Fashion-MNIST (Debian's dataset-fashion-mnist) into data/fashion-mnist.
# --mcu also installs the Cortex-M cross compiler and QEMU (about 1 GB) for the microcontroller test.
# --runtimes also installs what the interchange tests check files with: Arm NN's TFLite parser
#   (Debian), the ONNX checker (python3-onnx), PyTorch (python3-torch, whose models the import test
#   reads) and ONNX Runtime (npm onnxruntime-node, CPU only, into $TQ_NPM_DIR, default
#   ~/.cache/tinyqat/npm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build" data=1 cmake_args="" mcu=0 fashion=0 runtimes=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-data) data=0 ;;
    --mcu) mcu=1 ;;
    --fashion) fashion=1 ;;
    --runtimes) runtimes=1 ;;
    --build-dir) build="$2"; shift ;;
    --cmake-args) cmake_args="$2"; shift ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

install_missing() { # install_missing REQUIRED(0/1) PACKAGE...
  local required="$1" missing="" p sudo=""
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  echo "setup: installing$missing"
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"
    else echo "setup: need root or sudo to install:$missing (apt-get install$missing)" >&2; return 1; fi
  fi
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null; }; then
    echo "setup: could not install$missing" >&2
    [ "$required" = 1 ] && return 1
  fi
  return 0
}
install_missing 1 cmake make gcc pkg-config libopenblas-dev zlib1g-dev libcmocka-dev libpng-dev libcjson-dev curl ca-certificates || exit 1
install_missing 0 libcairo2-dev fonts-dejavu-core || echo "setup: tinyqat will build without pictures" >&2
if [ "$mcu" = 1 ]; then
  install_missing 0 gcc-arm-none-eabi binutils-arm-none-eabi qemu-system-arm libglib2.0-dev ||
    echo "setup: the microcontroller test will be skipped" >&2
fi
if [ "$runtimes" = 1 ]; then
  install_missing 0 python3-pyarmnn libarmnn-cpuref-backend22 libarmnntfliteparser22 ||
    echo "setup: Arm NN not installed: the tflite test will be skipped" >&2
  install_missing 0 python3-onnx python3-numpy || echo "setup: the onnx test will be skipped" >&2
  install_missing 0 python3-torch || echo "setup: no PyTorch: the import test will not read PyTorch's models" >&2
  # Node.js: Debian's, unless one is there already (a packaged npm would clash with another's)
  command -v npm >/dev/null || install_missing 0 nodejs npm || echo "setup: no Node.js: the onnx test will be skipped" >&2
  npm_dir="${TQ_NPM_DIR:-$HOME/.cache/tinyqat/npm}"
  if command -v npm >/dev/null && ! [ -d "$npm_dir/node_modules/onnxruntime-node" ]; then
    echo "setup: installing onnxruntime-node into $npm_dir"
    # ONNXRUNTIME_NODE_INSTALL=skip: its install script would fetch GPU libraries the CPU runtime does not need
    { mkdir -p "$npm_dir" && cd "$npm_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node@1.31.1 >/dev/null; } ||
      echo "setup: onnxruntime-node not installed: the onnx test will be skipped" >&2
    cd "$root"
  fi
fi

# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release $cmake_args >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "setup: built $build/tinyqat"

if [ "$data" = 1 ]; then
  "$root/data/fetch_data.sh" mnist
  [ "$fashion" = 0 ] || "$root/data/fetch_data.sh" fashion-mnist
fi
