"""The MNIST test images for the tests' Python scripts (tflite_armnn.py, onnx_ties.py,
onnx_torch_models.py): t10k-images-idx3-ubyte, raw or gzip, as uint8 [images][pixels]."""
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
