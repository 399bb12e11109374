#!/usr/bin/python3
"""Run an exported .tflite in Arm NN (its TFLite parser and CpuRef backend) on the MNIST test
images and compare with tinyqat's integer path: the fraction of predictions that agree and the
largest logit difference, in output steps.

    tests/tflite_armnn.py MODEL.tflite LOGITS.bin MNIST_DIR [N [MIN_AGREE [MAX_STEPS]]] [--json] [--softmax | --probs]

LOGITS.bin: `tinyqat infer M.tqm --logits LOGITS.bin` (int8 [images][outputs]). Exit 0 when at
least MIN_AGREE percent of the predictions agree (99.9) and no logit differs by more than
MAX_STEPS output steps (1: Arm NN requantizes in float, so a tie can round the other way; in a
deeper network such a step can grow layer by layer), 1 otherwise, 77 without pyarmnn. --softmax:
the model ends with a SOFTMAX (export --softmax): its int8 probabilities (s = 1/256, z = -128) must
sum to 1 within 10 steps and pick the class tinyqat's logits pick (MAX_STEPS is not used). A model
with a float interface (export --float-io) is fed p/255 and its float probabilities taken back to
int8 (it needs --softmax or --probs). --probs: the model ends with a SOFTMAX and LOGITS.bin holds
tinyqat's int8 probabilities (its import of the model computes the SOFTMAX): compared value for
value, as logits are."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import pyarmnn as ann
    from tq_mnist import test_images
except ImportError:
    print("SKIP: needs numpy and pyarmnn (Debian: python3-pyarmnn, libarmnn-cpuref-backend22, libarmnntfliteparser22)")
    sys.exit(77)


def main():
    args = [a for a in sys.argv[1:] if a not in ("--json", "--softmax", "--probs")]
    softmax = "--softmax" in sys.argv
    if len(args) < 3:
        sys.exit(__doc__)
    model, logits_path, folder = args[:3]
    n = int(args[3]) if len(args) > 3 else 10000
    min_agree = float(args[4]) if len(args) > 4 else 99.9
    max_steps = int(args[5]) if len(args) > 5 else 1
    all_images = test_images(folder, None, "tflite_armnn")
    images = all_images[:n]
    ref = np.fromfile(logits_path, dtype=np.int8)
    outputs = ref.size // len(all_images)
    ref = ref.reshape(-1, outputs)[:n]
    parser = ann.ITfLiteParser()
    net = parser.CreateNetworkFromBinaryFile(model)
    ib = parser.GetNetworkInputBindingInfo(0, parser.GetSubgraphInputTensorNames(0)[0])
    ob = parser.GetNetworkOutputBindingInfo(0, parser.GetSubgraphOutputTensorNames(0)[0])
    runtime = ann.IRuntime(ann.CreationOptions())
    opt, _ = ann.Optimize(net, [ann.BackendId("CpuRef")], runtime.GetDeviceSpec(), ann.OptimizerOptions())
    net_id, _ = runtime.LoadNetwork(opt)
    out_tensors = ann.make_output_tensors([ob])
    same, worst, steps, bad_sums = 0, 0, 0, 0
    float_in = ib[1].GetDataType() == ann.DataType_Float32
    float_out = ob[1].GetDataType() == ann.DataType_Float32
    if float_out and not softmax and "--probs" not in sys.argv:
        sys.exit("tflite_armnn: a float output is compared as probabilities only (--softmax or --probs)")
    for i in range(len(images)):
        if float_in:  # a float interface (export --float-io): x = p/255, which its QUANTIZE takes to p - 128
            x = (images[i].astype(np.float32) / np.float32(255)).astype(np.float32)
        else:
            x = (images[i].astype(np.int16) - 128).astype(np.int8)  # the input q = p - 128 at s = 1/255
        runtime.EnqueueWorkload(net_id, ann.make_input_tensors([ib], [x]), out_tensors)
        y = ann.workload_tensors_to_ndarray(out_tensors)[0].reshape(-1)
        # a float output is the int8 probabilities dequantized (s = 1/256, z = -128): back to them
        y = (np.rint(y.astype(np.float64) * 256) - 128 if float_out else y).astype(np.int32)
        r = ref[i].astype(np.int32)
        if softmax:  # probabilities against logits: only their sum and the choice compare
            bad_sums += int(abs(int(np.sum(y + 128)) - 256) > 10)
            same += int(np.argmax(y) == np.argmax(r))
            continue
        d = int(np.abs(y - r).max())
        worst, steps = max(worst, d), steps + int(d > 0)
        same += int(np.argmax(y) == np.argmax(r))
    agree = 100.0 * same / len(images)
    result = {"model": model, "images": len(images), "agree_percent": round(agree, 3),
              "images_with_a_logit_step": steps, "max_logit_diff": worst}
    if softmax:
        result.update(images_with_a_bad_sum=bad_sums)
        print(f"{model}: Arm NN (CpuRef)'s probabilities against tinyqat's logits on {len(images)} images: {agree:.2f}% of "
              f"predictions agree, {bad_sums} images whose probabilities do not sum to 1 within 10 steps of 1/256")
    else:
        print(f"{model}: Arm NN (CpuRef) against tinyqat's integer path on {len(images)} images: {agree:.2f}% of predictions "
              f"agree, {steps} images with a logit off, largest difference {worst} step(s)")
    if "--json" in sys.argv:
        print(json.dumps(result))
    if softmax:
        sys.exit(0 if agree >= min_agree and bad_sums == 0 else 1)
    sys.exit(0 if agree >= min_agree and worst <= max_steps else 1)


if __name__ == "__main__":
    main()
