#!/usr/bin/env bash
# Set up (dependencies, build) and run the whole test suite through ctest.
# MNIST_DIR, if set, lets the tests that need the real data use it (else they are skipped
# unless data/mnist/ holds it). TQ_MCU=1 also installs the Cortex-M toolchain and QEMU so the
# microcontroller test runs instead of being skipped; TQ_RUNTIMES=1 installs the runtimes the
# interchange tests (tflite, onnx) check exported files with.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${BUILD_DIR:-$root/build}"
mcu=""
[ "${TQ_MCU:-0}" = 1 ] && mcu="--mcu"
[ "${TQ_RUNTIMES:-0}" = 1 ] && mcu="$mcu --runtimes"
"$root/scripts/setup.sh" --no-data $mcu --build-dir "$build" --cmake-args "-DTQ_WERROR=ON ${CMAKE_ARGS:-}"
if [ -z "${MNIST_DIR:-}" ] && [ -d "$root/data/mnist" ]; then export MNIST_DIR="$root/data/mnist"; fi
cd "$build"
ctest --output-on-failure -j2 "$@"
