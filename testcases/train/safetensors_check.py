#!/usr/bin/env python3
"""Checks that Hugging Face's `safetensors` package reads files attnlab wrote.

    python3 testcases/train/safetensors_check.py FILE [FILE ...]

For each file it prints the metadata and every tensor (dtype, shape, values).
It reads the file with safetensors.numpy and, when PyTorch is installed,
again with safetensors.torch (which maps the data in place and so also
checks that each tensor is aligned to its element size), and compares the
two. Exits with status 1 if any file fails to load or the readers disagree.
Needs `pip install safetensors numpy` (and optionally torch).
"""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file as load_numpy

try:
    import torch
    from safetensors.torch import load_file as load_torch
except ImportError:  # PyTorch is optional
    torch = None


def show(name, array):
    values = array.reshape(-1)[:16].tolist()
    more = " ..." if array.size > 16 else ""
    print(f"  {name}: {array.dtype} {list(array.shape)} {values}{more}")


def check(path):
    with safe_open(path, framework="np") as f:
        metadata = f.metadata() or {}
    tensors = load_numpy(path)
    print(f"{path}: {len(tensors)} tensors, {len(metadata)} metadata entries")
    for key in sorted(metadata):
        value = metadata[key]
        shown = value if len(value) <= 60 else value[:60] + "..."
        print(f"  metadata {key!r}: {shown!r}")
    for name in sorted(tensors):
        show(name, tensors[name])

    if torch is not None:
        for name, t in load_torch(path).items():
            same = np.array_equal(t.numpy(), tensors[name], equal_nan=t.dtype.is_floating_point)
            if not same or t.dtype == torch.bool and tensors[name].dtype != np.bool_:
                raise ValueError(f"tensor {name!r}: torch and numpy readers disagree")
        print("  torch reader agrees")


def main(paths):
    if not paths:
        print(__doc__)
        return 2
    failed = 0
    for path in paths:
        try:
            check(path)
        except Exception as e:  # report every file, then fail
            print(f"{path}: FAILED: {type(e).__name__}: {e}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
