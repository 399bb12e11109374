#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan + UBSan) and run each for SECONDS (default 60) on a
# corpus seeded from valid files; report executions and coverage. Crashes are saved as
# build-fuzz/crash-* and fail the run: each becomes a case in the unit test of the module it crashed
# (as tests/test_model.c keeps the spec fuzz_cli found overflowing).
#   scripts/fuzz.sh [SECONDS]        (needs clang and MNIST_DIR for the IDX seeds)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs="${1:-60}"
out="$root/build-fuzz"
mkdir -p "$out"
command -v clang >/dev/null || { echo "fuzz: clang not installed (apt-get install clang)" >&2; exit 1; }
cflags=(-std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_POSIX_C_SOURCE=200809L -DTQ_FUZZING
        -I"$root" -I"$root/include" $(pkg-config --cflags openblas libcjson))
# the library without the exporters (the C one embeds a generated file; no target needs them) and the CLI's parser
libsrc=("$root"/src/*.c "$root"/runtime/*.c "$root"/layers/*.c "$root"/optim/*.c "$root"/data/*.c "$root"/pipeline/{train,int8,version,gptq,onnx_import,tflite_import}.c
        "$root/examples/tinyqat/cli.c")
for t in idx model tqm cli api onnx npy tflite; do
  clang "${cflags[@]}" "${libsrc[@]}" "$root/tests/fuzz/fuzz_$t.c" -o "$out/fuzz_$t" $(pkg-config --libs openblas libcjson) -lz -lm -lpthread
done
# seeds: valid files of each kind, made by the program itself
seed="$out/seed" && rm -rf "$seed" && mkdir -p "$seed"/{idx,model,tqm,cli,api,onnx,npy,tflite}
if [ -n "${MNIST_DIR:-}" ]; then
  gzip -dc "$MNIST_DIR/t10k-labels-idx1-ubyte.gz" | head -c 108 >"$seed/idx/labels"     # 8-byte header + 100 labels
  printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04\x05\x06\x07\x08' >"$seed/idx/images"
  gzip -c "$seed/idx/images" >"$seed/idx/images.gz"
  tq="$root/build/tinyqat"
  if [ -x "$tq" ]; then
    "$tq" train --model in-4r-out --epochs 1 --limit 500 --data "$MNIST_DIR" --out "$seed/model/a.tqf" >/dev/null
    "$tq" ptq "$seed/model/a.tqf" --calib-batches 1 --data "$MNIST_DIR" --out "$seed/model/q.tqf" >/dev/null
    "$tq" convert "$seed/model/q.tqf" --out "$seed/tqm/q.tqm" >/dev/null
    "$tq" train --model in-c2k3p1br-m2-out --no-norm --epochs 1 --limit 300 --data "$MNIST_DIR" --out "$seed/model/c.tqf" >/dev/null
    "$tq" ptq "$seed/model/c.tqf" --calib-batches 1 --data "$MNIST_DIR" --out "$seed/model/cq.tqf" >/dev/null
    "$tq" convert "$seed/model/cq.tqf" --out "$seed/tqm/c.tqm" >/dev/null
    "$tq" ptq "$seed/model/c.tqf" --bits 4 --calib-batches 1 --data "$MNIST_DIR" --out "$seed/model/c4.tqf" >/dev/null
    "$tq" convert "$seed/model/c4.tqf" --out "$seed/tqm/c4.tqm" >/dev/null   # packed: two weights a byte
    "$tq" ptq "$seed/model/a.tqf" --bits 2 --calib-batches 1 --data "$MNIST_DIR" --out "$seed/model/q2.tqf" >/dev/null
    "$tq" convert "$seed/model/q2.tqf" --out "$seed/tqm/q2.tqm" >/dev/null   # four a byte
    "$tq" export "$seed/model/a.tqf" --onnx "$seed/onnx/a.onnx" >/dev/null
    "$tq" export "$seed/model/c.tqf" --onnx "$seed/onnx/c.onnx" >/dev/null
    "$tq" export "$seed/tqm/c.tqm" --tflite "$seed/tflite/c.tflite" >/dev/null
    "$tq" export "$seed/tqm/c.tqm" --onnx "$seed/onnx/cq.onnx" >/dev/null
    "$tq" export "$seed/tqm/q.tqm" --tflite "$seed/tflite/q.tflite" --softmax >/dev/null
    "$tq" train --model in-c2k3p1br@a-c2k3p1b-+a-r-g-out --no-norm --epochs 1 --limit 300 --data "$MNIST_DIR" --out "$seed/model/g.tqf" >/dev/null # a float graph
    "$tq" ptq "$seed/model/g.tqf" --calib-batches 1 --data "$MNIST_DIR" --out "$seed/model/gq.tqf" >/dev/null # quantized: an add's observer
    "$tq" convert "$seed/model/gq.tqf" --out "$seed/tqm/gq.tqm" >/dev/null
    "$tq" export "$seed/model/g.tqf" --onnx "$seed/onnx/g.onnx" >/dev/null # a float graph as ONNX: an Add, a branch
    if /usr/bin/python3 -c "import torch" 2>/dev/null; then # PyTorch's own QDQ layout (Constant nodes, uint8, Casts)
      /usr/bin/python3 "$root/tests/onnx_torch_qdq.py" "$seed/onnx" "$MNIST_DIR" 50 >/dev/null 2>&1 || true
      rm -f "$seed/onnx/pq_full.onnx" "$seed/onnx/pq.ref" "$seed/onnx/pq_in.npy"
    fi
    if [ -x "$root/build/tq_graphgen" ]; then # a graph: adds, SAME, non-square kernels
      "$root/build/tq_graphgen" residual "$seed/tqm/g.tqm" >/dev/null
      "$tq" export "$seed/tqm/g.tqm" --tflite "$seed/tflite/g.tflite" >/dev/null
      for f in 0 1; do # TFLite's MEAN with and without keep_dims
        "$root/build/tq_graphgen" mean "$seed/tqm/m$f.tqm" $f >/dev/null
        "$tq" export "$seed/tqm/m$f.tqm" --tflite "$seed/tflite/m$f.tflite" >/dev/null
      done
      "$root/build/tq_graphgen" softmax "$seed/tqm/s.tqm" >/dev/null # int8 SOFTMAX, per position and last
      "$tq" export "$seed/tqm/s.tqm" --tflite "$seed/tflite/s.tflite" >/dev/null
    fi
  fi
fi
printf -- '--epochs\0003\000784-100r-10' >"$seed/cli/a"
printf -- 'x\000in-c4k3p1br@a-c4k3p1b@m-~a-c4k1-+m-r-g-out' >"$seed/cli/g"   # a graph spec: names, a branch, an add
printf -- 'x\000in-c8k10x4s2p4x1br-d1k3p1br6-c8k1br-g-out' >"$seed/cli/k"      # K x L kernels, per-axis padding, ReLU6
printf -- 'x\000in-c4k3p1br@a-c4k3p1br@b-~a-c2k1br-^b-g-out' >"$seed/cli/c"   # a channel concat
printf "\x93NUMPY\x01\x00\x76\x00{'descr': '|i1', 'fortran_order': False, 'shape': (2, 3), }%*s\n\x01\x02\x03\x04\x05\x06" 58 "" >"$seed/npy/a.npy"
# api: a two-layer network for the runner (even first byte), a small dataset and model (odd)
printf '\x00\x01\x00\x01\x01\x05\x01\x01\x04\x00\x00\x01\x01\x00\x80\x80\x00\xff\x01' >"$seed/api/runner"
head -c 4000 /dev/zero | tr '\0' '\7' >"$seed/api/pipeline"
printf -- '--lr=0.5\000--json\000--seed\00018446744073709551615' >"$seed/cli/b"
status=0
for t in idx model tqm cli api onnx npy tflite; do
  corpus="$out/corpus-$t" && mkdir -p "$corpus"
  log="$out/fuzz_$t.log"
  if (cd "$out" && ./fuzz_$t -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 "$corpus" "$seed/$t" >"$log" 2>&1); then
    echo "fuzz_$t: $(grep -E '^#[0-9]+.*DONE' "$log" | tail -1 | sed 's/ *$//')"
  else
    echo "fuzz_$t: FAILED, see $log"; grep -E "ERROR|SUMMARY|Test unit written" "$log" | head -5; status=1
  fi
done
exit $status
