#!/usr/bin/python3
"""Check an exported .onnx with the ONNX package's checker (full_check: shape inference too) and
print what its output is, read from the file: "SCALE ZERO_POINT" when it is dequantized int8 (a
QDQ model), "probabilities" after a Softmax (export --softmax), else "float".

    tests/onnx_check.py MODEL.onnx

Exit 0 when the checker accepts the model, 1 when it does not, 77 without python3-onnx."""
import sys

try:
    import onnx
    from onnx import numpy_helper
except ImportError:
    print("SKIP: needs the onnx package (Debian: python3-onnx)")
    sys.exit(77)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model = onnx.load(sys.argv[1])
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker's own message names the node and the rule
        print(f"{sys.argv[1]}: the ONNX checker refuses it: {e}", file=sys.stderr)
        sys.exit(1)
    out = model.graph.output[0].name
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if out in node.output and node.op_type == "DequantizeLinear":
            print(f"{float(init[node.input[1]]):.9g} {int(init[node.input[2]])}")
            return
        if out in node.output and node.op_type == "Softmax":
            print("probabilities")
            return
    print("float")


if __name__ == "__main__":
    main()
