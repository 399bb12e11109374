#!/usr/bin/python3
"""Where ONNX Runtime and tinyqat's integer path differ on a one-layer QDQ model, show whose the
difference is: recompute every output exactly from the file (its int8 weights, int32 bias and
scales, in integers and double), v = acc * s_in s_w / s_out, and check that
  - wherever v is not within TIE of a rounding tie (x.5), tinyqat's output is v rounded, plus z;
  - every output where the two differ has v within TIE of a tie (ONNX Runtime rounds ties to even
    with a float multiplier; tinyqat half away from zero with a 31-bit fixed-point one, as
    CMSIS-NN and TFLite Micro do).
So the file holds the right numbers and the runtimes differ only in how they round a tie.

    tests/onnx_ties.py MODEL.onnx ORT.bin TINYQAT.bin MNIST_DIR N [TIE]

ORT.bin: tests/onnx_ort.js's DUMP; TINYQAT.bin: `tinyqat infer --logits`. Exit 0 when both hold."""
import gzip
import json
import os
import sys

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError:
    print("SKIP: needs numpy and the onnx package (python3-onnx)")
    sys.exit(77)


def images(folder, n):
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            with (gzip.open if name.endswith(".gz") else open)(p, "rb") as f:
                data = f.read()
            count = int.from_bytes(data[4:8], "big")
            return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, -1)[:n], count
    sys.exit(f"onnx_ties: no t10k-images-idx3-ubyte[.gz] in {folder}")


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    model, ort_path, tq_path, folder, n = sys.argv[1:6]
    tie = float(sys.argv[6]) if len(sys.argv) > 6 else 1e-4
    g = onnx.load(model).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    ops = [nd.op_type for nd in g.node]
    if ops.count("Gemm") != 1 or ops.count("QuantizeLinear") != 2 or ops[0] != "QuantizeLinear" or ops[-1] != "DequantizeLinear":
        sys.exit(f"onnx_ties: {model} is not one dense layer as QDQ (operators: {ops})")
    q_in, gemm, q_out = g.node[0], g.node[ops.index("Gemm")], g.node[len(ops) - 2]
    s_in, z_in = float(init[q_in.input[1]]), int(init[q_in.input[2]])
    w_dq = [nd for nd in g.node if nd.output[0] == gemm.input[1]][0]
    b_dq = [nd for nd in g.node if nd.output[0] == gemm.input[2]][0]
    W = init[w_dq.input[0]].astype(np.int64)
    s_w = np.broadcast_to(init[w_dq.input[1]].astype(np.float64), (W.shape[0],))
    b = init[b_dq.input[0]].astype(np.int64)
    s_out, z_out = float(init[q_out.input[1]]), int(init[q_out.input[2]])
    relu = "Relu" in ops
    x, count = images(folder, int(n))
    xq = np.clip(np.round(x.astype(np.float64) / 255.0 / s_in) + z_in, -128, 127).astype(np.int64)
    acc = (xq - z_in) @ W.T + b
    v = acc * (s_in * s_w / s_out)  # in double, from the file's own float32 scales
    dist = np.abs(v - np.floor(v) - 0.5)  # 0 at a tie
    exact = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + z_out, z_out if relu else -128, 127)
    outs = W.shape[0]
    ort = np.fromfile(ort_path, dtype=np.int8).reshape(-1, outs).astype(np.int64)[: len(x)]
    tq = np.fromfile(tq_path, dtype=np.int8).reshape(-1, outs).astype(np.int64)[: len(x)]
    differ = ort != tq
    off_tie = dist > tie
    tq_wrong = int(np.sum((tq != exact) & off_tie))
    diff_off_tie = int(np.sum(differ & off_tie))
    result = {"model": model, "images": len(x), "outputs_compared": int(differ.size), "outputs_that_differ": int(differ.sum()),
              "largest_distance_from_a_tie_where_they_differ": float(dist[differ].max()) if differ.any() else None,
              "tinyqat_off_the_exact_value_away_from_ties": tq_wrong, "differences_away_from_ties": diff_off_tie}
    print(f"{model}: {int(differ.sum())} of {differ.size} outputs differ between ONNX Runtime and tinyqat; "
          f"{diff_off_tie} of them away from a rounding tie (|v - x.5| > {tie:g}); tinyqat equals the exact value rounded "
          f"everywhere away from ties ({tq_wrong} exceptions)")
    print(json.dumps(result))
    sys.exit(0 if tq_wrong == 0 and diff_off_tie == 0 else 1)


if __name__ == "__main__":
    main()
