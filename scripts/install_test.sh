#!/usr/bin/env bash
# Install a build into a temporary prefix and use it as an outside program would: build
# examples/library against it through pkg-config and through CMake's find_package, run both
# (they exit non-zero unless the integer path agrees with the simulation on >= 99.9% of the test
# images), check the shared library's soname, and that tinyqat.h compiles as C++.
#   scripts/install_test.sh BUILD_DIR      (needs MNIST_DIR to run the example; builds it without)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name tinyqat.pc)
[ -n "$pc" ] || { echo "install: no tinyqat.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
export PKG_CONFIG_PATH="$(dirname "$pc")"
pass=0
echo "install: pkg-config --cflags --libs tinyqat -> $(pkg-config --cflags --libs tinyqat)"
test -x "$prefix/bin/tinyqat" && "$prefix/bin/tinyqat" --version
test -f "$libdir/libtinyqat.a" && test -f "$libdir/libtinyqat_runtime.a"
soname=$(readelf -d "$libdir/libtinyqat.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libtinyqat.so.$(pkg-config --modversion tinyqat | cut -d. -f1)" ] || { echo "install: soname '$soname'"; exit 1; }
echo "install: soname $soname"
# 1. pkg-config
cc -std=c11 -Wall -Wextra -Werror "$root/examples/library/main.c" $(pkg-config --cflags --libs tinyqat) \
   -Wl,-rpath,"$libdir" -o "$tmp/demo_pc"
pass=$((pass + 1))
# 2. find_package
cmake -S "$root/examples/library" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$tmp/cm" >/dev/null
pass=$((pass + 1))
# the include path holds include/ alone: <tinyqat.h> and <tinyqat/runtime/int8_infer.h>, never <src/...>
printf '#include <tinyqat.h>\n#include <tinyqat/runtime/int8_infer.h>\nint main(void) { return 0; }\n' >"$tmp/inc.c"
cc -std=c11 -fsyntax-only $(pkg-config --cflags tinyqat) "$tmp/inc.c" || { echo "install: <tinyqat/runtime/int8_infer.h> not found"; exit 1; }
printf '#include <runtime/int8_infer.h>\nint main(void) { return 0; }\n' >"$tmp/bad.c"
if cc -std=c11 -fsyntax-only $(pkg-config --cflags tinyqat) "$tmp/bad.c" 2>/dev/null; then echo "install: a folder named src is on the include path"; exit 1; fi
[ ! -d "$prefix/include/src" ] && [ -f "$prefix/include/tinyqat.h" ] || { echo "install: headers outside include/tinyqat"; exit 1; }
pass=$((pass + 1))
# 3. the umbrella header from C++
echo '#include <tinyqat.h>
int main() { return tq_version()[0] == 0; }' >"$tmp/cxx.cpp"
if command -v c++ >/dev/null; then c++ -fsyntax-only $(pkg-config --cflags tinyqat) "$tmp/cxx.cpp" && pass=$((pass + 1)); fi
if [ -n "${MNIST_DIR:-}" ]; then
  "$tmp/demo_pc" "$MNIST_DIR" | tail -n 1
  LD_LIBRARY_PATH="$libdir" "$tmp/cm/tq_demo" "$MNIST_DIR" >/dev/null
  pass=$((pass + 2))
else
  echo "install: MNIST_DIR not set: the example was built but not run"
fi
echo "install: $pass passed, 0 failed"
