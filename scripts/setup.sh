#!/usr/bin/env bash
# Install tinyqat's build dependencies (Debian packages), build it, and fetch MNIST.
# Quick and harmless to run again: it installs only what is missing and skips a verified dataset.
#   scripts/setup.sh [--no-data] [--fashion] [--mcu] [--build-dir DIR] [--cmake-args "..."]
# --fashion also installs Fashion-MNIST (Debian's dataset-fashion-mnist) into data/fashion-mnist.
# --mcu also installs the Cortex-M cross compiler and QEMU (about 1 GB) for the microcontroller test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build" data=1 cmake_args="" mcu=0 fashion=0
while [ $# -gt 0 ]; do
  case "$1" in
    --no-data) data=0 ;;
    --mcu) mcu=1 ;;
    --fashion) fashion=1 ;;
    --build-dir) build="$2"; shift ;;
    --cmake-args) cmake_args="$2"; shift ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release $cmake_args >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
echo "setup: built $build/tinyqat"

if [ "$data" = 1 ]; then
  "$root/data/fetch_data.sh" mnist
  [ "$fashion" = 0 ] || "$root/data/fetch_data.sh" fashion-mnist
fi
