"""The MNIST test images for the tests' Python scripts (tflite_armnn.py, onnx_ties.py,
onnx_torch_models.py, onnx_torch_qdq.py): t10k-images-idx3-ubyte, raw or gzip, as uint8
[images][pixels]; and the command line the two PyTorch scripts share."""
import gzip
import os
import sys

import numpy as np


def test_images(folder, n=None, who="tests"):
    """The first n test images of folder (all when n is None), [n][784] uint8."""
    for name in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
                data = f.read()
            count = int.from_bytes(data[4:8], "big")
            return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(count, -1)[:n]
    sys.exit(f"{who}: no t10k-images-idx3-ubyte[.gz] in {folder}")


def out_folder_count(doc):
    """OUT_DIR MNIST_DIR [N] from the command line (N 1000 when not given); the usage (doc) and
    exit when they are not there."""
    if len(sys.argv) < 3:
        sys.exit(doc)
    return sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1000
