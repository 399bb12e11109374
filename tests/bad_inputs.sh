#!/usr/bin/env bash
# Bad input for every command, table-driven: each case must exit non-zero (not by a signal), print
# exactly one stderr line naming the problem, and leave an existing output file byte for byte as
# it was. Files are damaged copies of valid ones the program makes itself.
#   tests/bad_inputs.sh PATH/TO/tinyqat        (the file cases need MNIST_DIR; skipped without)
set -u
bin="$1"
tool="$(dirname "$bin")/tq_testtool"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
printf 'precious bytes\n' >"$tmp/keep"
# case WANT_STATUS NEEDLE -- ARGS...   (ARGS may name $tmp/keep as an output: it must survive)
case_() {
  local want="$1" needle="$2"; shift 3
  cp "$tmp/keep" "$tmp/out.keep"
  "$bin" "$@" >/dev/null 2>"$tmp/err"; local got=$?
  local lines; lines=$(wc -l <"$tmp/err")
  local why=""
  [ "$got" = "$want" ] || why="exit $got, want $want"
  [ "$got" -lt 128 ] || why="killed by a signal ($got)"
  [ "$lines" = 1 ] || why="${why:+$why; }$lines stderr lines"
  grep -qi -- "$needle" "$tmp/err" || why="${why:+$why; }message lacks '$needle'"
  cmp -s "$tmp/keep" "$tmp/out.keep" || why="${why:+$why; }an existing file was changed"
  if [ -z "$why" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL [$*]: $why"; sed 's/^/  | /' "$tmp/err" | head -3; fi
}

# --- datasets: names, and folders whose files do not fit together (written by tq_testtool) ---
mkd() { # mkd DIR TRAIN_N TRAIN_H TRAIN_W TRAIN_K TEST_N TEST_H TEST_W TEST_K
  mkdir -p "$1"
  "$tool" images "$1/train-images-idx3-ubyte" "$2" "$3" "$4" && "$tool" labels "$1/train-labels-idx1-ubyte" "$2" "$5" &&
  "$tool" images "$1/t10k-images-idx3-ubyte" "$6" "$7" "$8" && "$tool" labels "$1/t10k-labels-idx1-ubyte" "$6" "$9"
}
mkd "$tmp/d_small" 30 12 10 3 9 12 10 3     # fine: 3 classes of 12x10
mkd "$tmp/d_shape" 30 12 10 3 9 12 9 3      # test images of another size
mkd "$tmp/d_label" 30 12 10 3 9 12 10 6     # test labels up to 5, training labels only 0..2
mkd "$tmp/d_one" 30 12 10 1 9 12 10 1       # one class
for cmd in train eval ptq qat experiment infer view bench; do
  case "$cmd" in eval|ptq|infer) m="$tmp/keep" ;; *) m="" ;; esac
  # shellcheck disable=SC2086
  case_ 2 "'cifar' is not one of mnist,fashion-mnist" -- $cmd $m --dataset cifar
done
case_ 2 "'cifar' is not one of" -- export "$tmp/keep" --c "$tmp/cdir" --test-images 3 --dataset cifar
case_ 1 "test images are 12x9x1 but training images are 12x10x1" -- train --data "$tmp/d_shape" --epochs 1 --out "$tmp/keep"
case_ 1 "label 3 at index 3, but the training labels are 0..2" -- train --data "$tmp/d_label" --epochs 1 --out "$tmp/keep"
case_ 1 "label 3 at index 3, but the training labels are 0..2" -- qat --data "$tmp/d_label" --epochs 1 --out "$tmp/keep"
case_ 1 "only 1 class" -- train --data "$tmp/d_one" --epochs 1 --out "$tmp/keep"
case_ 1 "takes 784 inputs, but the images have 120 values" -- train --data "$tmp/d_small" --model 784-16r-10 --epochs 1 --out "$tmp/keep"
case_ 1 "gives 10 outputs, but the data has 3 classes" -- train --data "$tmp/d_small" --model in-16r-10 --epochs 1 --out "$tmp/keep"
case_ 2 "'out' can only be the last token" -- train --model in-out-16 --data "$tmp/d_small"
case_ 2 "--method must be minmax, mse or gptq, not 'adaround'" -- ptq "$tmp/keep" --method adaround
case_ 2 "--ptq-methods 'mse,mse': want a list of minmax, mse and gptq, each once" -- experiment --ptq-methods mse,mse
case_ 2 "--ptq-methods 'adaround'" -- experiment --ptq-methods adaround
case_ 2 "--qat-methods 'gptq': want ste, lsq or ste,lsq" -- experiment --qat-methods gptq
case_ 2 "--flash-budget '30000,x': want up to 8 byte counts" -- experiment --flash-budget 30000,x
case_ 2 "--act-bits 12: 8 or 16" -- experiment --act-bits 12
case_ 2 "--act-bits 'x': 8 or 16" -- ptq "$tmp/keep" --act-bits x
case_ 2 "--ste must be clipped, lsq or plain, not 'exact'" -- qat --ste exact
case_ 2 "pictures are written as .png or .svg" -- view --out "$tmp/keep.jpg"
case_ 2 "'bmp' is not one of png,svg,both" -- experiment --plots "$tmp" --plot-format bmp
case_ 1 "--plots $tmp/nope: not a folder" -- experiment --plots "$tmp/nope"
# convolutional specs that do not fit the data: refused before training, naming the stage
case_ 1 "stage 1: convolution: a 13x13 kernel does not fit a 12x10 image" -- train --model in-c4k13-out --data "$tmp/d_small" --out "$tmp/keep"
case_ 1 "stage 2: pool: a 4x4 window does not fit a 3x2 image" -- train --model in-c4k3r-m2-c4k3-m4-out --data "$tmp/d_small" --out "$tmp/keep"
case_ 1 "takes 12x10x3 images, but the data's are 12x10x1" -- train --model 12x10x3-c4k3-3 --data "$tmp/d_small" --out "$tmp/keep"
case_ 1 "stage 1: convolution: a 13x13 kernel" -- qat --model in-c4k13-out --data "$tmp/d_small" --epochs 1 --out "$tmp/keep"
case_ 2 "a pool must follow a convolution" -- train --model in-m2-out --data "$tmp/d_small"
case_ 2 "model spec 'in-16x-out': unexpected 'x'" -- qat --model in-16x-out --data "$tmp/d_small"

# --- arguments, every command ---
for cmd in train eval ptq qat experiment convert infer export bench; do
  case_ 2 "unknown option" -- $cmd --no-such-flag
done
for opt in "--batch 0" "--batch -1" "--epochs 0" "--epochs -2" "--lr 0" "--lr -1" "--lr nan" "--epochs 1e9" "--threads 0"; do
  case_ 2 "${opt%% *}" -- train $opt --out "$tmp/keep"
  case_ 2 "${opt%% *}" -- qat $opt --out "$tmp/keep"
done
for b in 1 9 0 -3 x; do
  case_ 2 "bits" -- ptq "$tmp/m.tqf" --bits $b --out "$tmp/keep"
  case_ 2 "bits" -- qat --bits $b --out "$tmp/keep"
  case_ 2 "bits" -- experiment --bits $b
done
case_ 2 "bits" -- experiment --bits 8,,4
case_ 2 "observer" -- ptq "$tmp/m.tqf" --observer median --out "$tmp/keep"
case_ 2 "kernel" -- infer "$tmp/m.tqm" --kernel gpu
case_ 2 "recipe" -- experiment --recipe magic
case_ 2 "missing argument" -- eval
case_ 2 "missing argument" -- convert
case_ 2 "required" -- export "$tmp/m.tqm"
case_ 2 "spec" -- train --model 784-0-10 --out "$tmp/keep"
case_ 2 "unexpected argument" -- eval a b

# --- files ---
if [ -z "${MNIST_DIR:-}" ]; then
  echo "MNIST_DIR not set: skipping the file cases"
else
  d="$MNIST_DIR"
  "$bin" train --model 784-16r-10 --epochs 1 --limit 2000 --data "$d" --out "$tmp/m.tqf" >/dev/null || exit 1
  "$bin" ptq "$tmp/m.tqf" --calib-batches 2 --data "$d" --out "$tmp/q.tqf" >/dev/null || exit 1
  "$bin" convert "$tmp/q.tqf" --out "$tmp/m.tqm" >/dev/null || exit 1
  cp "$tmp/m.tqm" "$tmp/q.tqm"
  # damaged copies: name|how
  mk() { # mk NAME SRC: write damaged variants of SRC
    local src="$1" base="$2" n; n=$(stat -c %s "$src")
    : >"$tmp/$base.empty"
    for cut in 2 6 10 14 20 40 $((n / 2)) $((n - 3)); do head -c "$cut" "$src" >"$tmp/$base.cut$cut"; done
    cp "$src" "$tmp/$base.magic" && printf 'XXXX' | dd of="$tmp/$base.magic" conv=notrunc status=none
    cp "$src" "$tmp/$base.crc" && printf '\x55' | dd of="$tmp/$base.crc" bs=1 seek=$((n / 2)) conv=notrunc status=none
    cp "$src" "$tmp/$base.version" && printf '\x09' | dd of="$tmp/$base.version" bs=1 seek=4 conv=notrunc status=none
  }
  mk "$tmp/q.tqf" tqf
  mk "$tmp/q.tqm" tqm
  for f in "$tmp"/tqf.*; do
    needle=$(basename "$f")
    for cmd in "eval $f --data $d" "ptq $f --data $d --out $tmp/keep" "qat --from $f --data $d --epochs 1 --out $tmp/keep" \
               "convert $f --out $tmp/keep"; do
      # shellcheck disable=SC2086
      case_ 1 "$needle" -- $cmd
    done
  done
  for f in "$tmp"/tqm.*; do
    needle=$(basename "$f")
    case_ 1 "$needle" -- infer "$f" --data "$d"
    case_ 1 "$needle" -- export "$f" --c "$tmp/cdir"
  done
  case_ 1 "none.tqf" -- eval "$tmp/none.tqf" --data "$d"
  case_ 1 "none.tqm" -- infer "$tmp/none.tqm" --data "$d"
  # NaN weights, a float model given where an integer one is wanted and the reverse
  if "$tool" nan-weight "$tmp/m.tqf" "$tmp/nan.tqf"; then case_ 1 "NaN" -- eval "$tmp/nan.tqf" --data "$d"
  else fail=$((fail + 1)); echo "FAIL: could not make the NaN-weight model"; fi
  case_ 1 "m.tqf" -- infer "$tmp/m.tqf" --data "$d"
  case_ 1 "not quantized" -- convert "$tmp/m.tqf" --out "$tmp/keep"
  case_ 1 "already quantized" -- ptq "$tmp/q.tqf" --data "$d" --out "$tmp/keep"
  # outputs into folders that do not exist: nothing written, the message names the path
  case_ 1 "no/dir" -- train --epochs 1 --limit 500 --data "$d" --out "$tmp/no/dir/m.tqf"
  case_ 1 "no/dir" -- ptq "$tmp/m.tqf" --data "$d" --out "$tmp/no/dir/m.tqf"
  case_ 1 "no/dir" -- convert "$tmp/q.tqf" --out "$tmp/no/dir/m.tqm"
  case_ 1 "m.tqm/c" -- export "$tmp/m.tqm" --c "$tmp/m.tqm/c"   # a folder inside a file (missing parents are made)
  # bad data folders: absurd counts, zero columns, counts that disagree, truncation
  mkdata() { # mkdata DIR IMAGES_HEADER_HEX LABEL_COUNT
    mkdir -p "$1"
    printf "$2" >"$1/t10k-images-idx3-ubyte"
    head -c 100 /dev/zero >>"$1/t10k-images-idx3-ubyte"
    printf "\x00\x00\x08\x01\x00\x00\x00\x$(printf %02x "$3")" >"$1/t10k-labels-idx1-ubyte"
    head -c "$3" /dev/zero >>"$1/t10k-labels-idx1-ubyte"
  }
  mkdata "$tmp/d_huge" '\x00\x00\x08\x03\x80\x00\x00\x00\x00\x00\x00\x1c\x00\x00\x00\x1c' 5
  mkdata "$tmp/d_zero" '\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x00' 5
  mkdata "$tmp/d_trunc" '\x00\x00\x08\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x1c' 5
  mkdata "$tmp/d_magic" '\x00\x00\x0d\x03\x00\x00\x00\x05\x00\x00\x00\x1c\x00\x00\x00\x1c' 5
  case_ 1 "absurd" -- eval "$tmp/m.tqf" --data "$tmp/d_huge"
  case_ 1 "dimension 2 is 0" -- eval "$tmp/m.tqf" --data "$tmp/d_zero"
  case_ 1 "truncated" -- eval "$tmp/m.tqf" --data "$tmp/d_trunc"
  case_ 1 "magic" -- eval "$tmp/m.tqf" --data "$tmp/d_magic"
  mkdir -p "$tmp/d_count" && head -c $((16 + 784 * 3)) /dev/zero >"$tmp/d_count/t10k-images-idx3-ubyte" &&
    printf '\x00\x00\x08\x03\x00\x00\x00\x03\x00\x00\x00\x1c\x00\x00\x00\x1c' | dd of="$tmp/d_count/t10k-images-idx3-ubyte" conv=notrunc status=none &&
    printf '\x00\x00\x08\x01\x00\x00\x00\x02\x00\x00' >"$tmp/d_count/t10k-labels-idx1-ubyte"
  case_ 1 "labels" -- eval "$tmp/m.tqf" --data "$tmp/d_count"
  case_ 1 "not found" -- eval "$tmp/m.tqf" --data "$tmp/d_none"
  # a model given data of another shape, or labels beyond its outputs
  case_ 1 "takes 784 inputs" -- eval "$tmp/m.tqf" --data "$tmp/d_small"
  case_ 1 "takes 784 inputs" -- infer "$tmp/m.tqm" --data "$tmp/d_small"
  case_ 1 "takes 784 inputs" -- ptq "$tmp/m.tqf" --data "$tmp/d_small" --out "$tmp/keep"
  mkdir -p "$tmp/d_k12"
  "$tool" images "$tmp/d_k12/t10k-images-idx3-ubyte" 20 28 28 && "$tool" labels "$tmp/d_k12/t10k-labels-idx1-ubyte" 20 13
  case_ 1 "model has 10 outputs" -- eval "$tmp/m.tqf" --data "$tmp/d_k12"
  case_ 1 "model has 10 outputs" -- infer "$tmp/m.tqm" --data "$tmp/d_k12"
  # a convolutional integer model (conv, max pool, flatten, linear) with one header field wrong:
  # layer, field (0 kind 3 in_c 4 out_h 6 out_c 7 k 8 stride 9 pad 11 w_bits 12 w_bytes 14 out_zp),
  # value, the message
  "$bin" train --model in-c4k5br-m2-out --epochs 1 --limit 1000 --data "$d" --out "$tmp/c.tqf" >/dev/null &&
    "$bin" ptq "$tmp/c.tqf" --calib-batches 2 --data "$d" --out "$tmp/cq.tqf" >/dev/null &&
    "$bin" convert "$tmp/cq.tqf" --out "$tmp/c.tqm" >/dev/null || exit 1
  case_ 1 "takes 28x28x1 images" -- infer "$tmp/c.tqm" --data "$tmp/d_small"
  while read -r layer field value needle; do
    if ! "$tool" tqm-set "$tmp/c.tqm" "$tmp/cbad.tqm" "$layer" "$field" "$value"; then
      fail=$((fail + 1)); echo "FAIL: tqm-set $layer $field $value"; continue
    fi
    case_ 1 "${needle//_/ }" -- infer "$tmp/cbad.tqm" --data "$d"
    case_ 1 "${needle//_/ }" -- export "$tmp/cbad.tqm" --c "$tmp/cdir"
  done <<'EOF'
0 7 40 do_not_fit
0 8 0 do_not_fit
0 9 5 do_not_fit
0 9 -1 do_not_fit
0 4 23 kernel_gives_24x24
0 0 10 unknown_kind
0 3 65536 bad_shape
1 14 7 zero_points
0 11 9 9-bit_weights
0 11 4 100_bytes_of_weights,_but_100_weights_of_4_bits_take_50
0 12 99 99_bytes_of_weights
1 9 1 do_not_fit
1 6 5 output_channels
2 6 100 shape_fields
2 0 3 kernel_gives
3 3 577 does_not_follow
EOF
fi
echo "bad inputs: $pass passed, $fail failed"
[ "$fail" = 0 ]
