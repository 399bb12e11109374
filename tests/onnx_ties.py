#!/usr/bin/python3
"""Where ONNX Runtime and tinyqat's integer path differ on a one-layer QDQ model, show whose the
difference is. From the file alone (its int8 weights, int32 bias and float32 scales) this
recomputes every output twice, in integers and double:
  - as docs/QUANTIZATION.md §5 defines it: M0 and shift from s_in s_w / s_out, the rounding
    doubling high multiply and the rounding shift. tinyqat's outputs must equal these everywhere:
    the file holds the model tinyqat runs;
  - exactly: v = acc s_in s_w / s_out. Every output where ONNX Runtime differs must have v at a
    rounding tie (x.5), up to the reach of the two roundings: ONNX Runtime rounds v half to even
    with a float multiplier (float32's precision), tinyqat rounds twice as CMSIS-NN and TFLite Micro
    do, first to 2^-e of a step (e the right shift), so either can land on the other side of a
    value that close to x.5.

    tests/onnx_ties.py MODEL.onnx ORT.bin TINYQAT.bin MNIST_DIR N [--saturated]

--saturated: ONNX Runtime ran on an x86 CPU without VNNI, where its int8 products (MLAS's U8S8
kernel: the activations made uint8 by adding 128) use vpmaddubsw, which adds each pair of
neighbouring u8 x s8 products into int16 with saturation (ONNX Runtime's documentation on
quantization says so). Its outputs are then compared with its accumulator recomputed that way
and rounded, every difference again at a tie; tinyqat's outputs still with §5.

ORT.bin: tests/onnx_ort.js's DUMP; TINYQAT.bin: `tinyqat infer --logits`. Exit 0 when both hold."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from tq_mnist import test_images
except ImportError:
    print("SKIP: needs numpy and the onnx package (python3-onnx)")
    sys.exit(77)


def requant(acc, M, z, lo):
    """§5's requantization of int64 accumulators acc[images][channels] by M[channels] (double)."""
    q, e = np.frexp(M)
    M0 = np.floor(q * 2.0**31 + 0.5).astype(np.int64)  # q > 0: half away from zero
    e = np.where(M0 == 2**31, e + 1, e)
    M0 = np.where(M0 == 2**31, 2**30, M0)
    assert np.all(e >= -31) and np.all(e <= 30), "a multiplier outside what this check covers"
    a = acc * (2 ** np.maximum(e, 0))
    prod = a * M0
    num = prod + np.where(prod >= 0, 2**30, 1 - 2**30)
    h = np.where(num >= 0, num // 2**31, -((-num) // 2**31))  # C's truncating division
    r = np.maximum(-e, 0)
    mask = (1 << r) - 1
    out = (h >> r) + ((h & mask) > (mask >> 1) + (h < 0)).astype(np.int64)
    return np.clip(out + z, lo, 127), r


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    model, ort_path, tq_path, folder, n = sys.argv[1:6]
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
    lo = z_out if "Relu" in ops else -128
    x = test_images(folder, int(n), "onnx_ties")
    xq = np.clip(np.round(x.astype(np.float64) / 255.0 / s_in) + z_in, -128, 127).astype(np.int64)
    acc = (xq - z_in) @ W.T + b
    M = s_in * s_w / s_out  # the product tinyqat's converter forms, in double
    spec, r = requant(acc, M, z_out, lo)
    acc_ort = acc
    if "--saturated" in sys.argv[6:]:  # MLAS U8S8 on AVX2: sat16(a[k] w[k] + a[k+1] w[k+1]), then the zero point
        a = xq + 128
        k = a.shape[1] + a.shape[1] % 2
        a2 = np.zeros((a.shape[0], k), np.int64)
        w2 = np.zeros((W.shape[0], k), np.int64)
        a2[:, : a.shape[1]], w2[:, : W.shape[1]] = a, W
        pairs = np.einsum("nkj,okj->nok", a2.reshape(len(a), -1, 2), w2.reshape(len(W), -1, 2))
        acc_ort = np.clip(pairs, -32768, 32767).sum(2) - (z_in + 128) * W.sum(1) + b
    v = acc_ort * M  # exact, up to double's rounding
    dist = np.abs(v - np.floor(v) - 0.5)  # 0 at a tie
    reach = np.broadcast_to(2.0 ** -r.astype(np.float64) + 1e-5, v.shape)  # tinyqat's first rounding; float32's slack
    outs = W.shape[0]
    ort = np.fromfile(ort_path, dtype=np.int8).reshape(-1, outs).astype(np.int64)[: len(x)]
    tq = np.fromfile(tq_path, dtype=np.int8).reshape(-1, outs).astype(np.int64)[: len(x)]
    # where ONNX Runtime's accumulator is tinyqat's, its outputs are compared with tinyqat's; where it
    # saturates, with its own accumulator rounded (half up: a tie may go either way)
    ref = tq if acc_ort is acc else np.clip(np.floor(v + 0.5) + z_out, lo, 127)
    differ = ort != ref
    tq_off_spec = int(np.sum(tq != spec))
    far = int(np.sum(differ & (dist > reach)))
    result = {"model": model, "images": len(x), "outputs_compared": int(differ.size), "outputs_that_differ": int(differ.sum()),
              "largest_distance_from_a_tie_where_they_differ": float(dist[differ].max()) if differ.any() else None,
              "rounding_reach_of_the_layer": float(reach.max()),
              "differences_beyond_a_tie": far, "tinyqat_outputs_off_the_specification": tq_off_spec}
    print(f"{model}: tinyqat's {differ.size} outputs equal §5 recomputed from the file ({tq_off_spec} do not); "
          f"{int(differ.sum())} differ in ONNX Runtime, each at a rounding tie "
          f"(largest |v - x.5| {result['largest_distance_from_a_tie_where_they_differ'] or 0:.2g}, "
          f"reach {result['rounding_reach_of_the_layer']:.2g}; {far} beyond it)")
    print(json.dumps(result))
    sys.exit(0 if tq_off_spec == 0 and far == 0 else 1)


if __name__ == "__main__":
    main()
