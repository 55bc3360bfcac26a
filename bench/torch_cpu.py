"""What the PyTorch peers need on the CPU: fair thread settings and the CPU's name.

Shared by bench/train_step_torch.py and bench/attention_bench_torch_cpu.py.
"""
import ctypes
import os
import platform

import torch


def set_cpu_threads(n):
    """N threads for torch's own kernels *and* for its BLAS; returns what took effect.

    torch.set_num_threads sizes torch's OpenMP pool, which runs its own
    kernels (elementwise, softmax, ...). Its matrix products, though, go
    to whatever BLAS it was built against, and a distribution build such as
    Debian's (BLAS_INFO=generic) calls the system libblas, here OpenBLAS with
    its own pthread pool sized to every core, which never hears of
    set_num_threads. Without the second call "1 thread" would run every
    product on all cores, and at 2 threads OpenBLAS's workers would fight
    OpenMP's spinning ones for the same cores. So the OpenBLAS already
    loaded into this process is found in /proc/self/maps and told too.
    One inter-op thread: eager training runs one op at a time, and a second
    pool would only compete with the first for the same cores. Must run
    before the first parallel op (the inter-op pool cannot be resized later).
    """
    if n > 0:
        torch.set_num_threads(n)
    torch.set_num_interop_threads(1)
    # OMP_WAIT_POLICY is read once, when libgomp loads with torch, so it can
    # only come from the environment (bench/run_cpu_bench.sh sets it): it is
    # recorded here, not set.
    info = {"threads": torch.get_num_threads(), "blas": None, "blas_threads": None,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if ".so" in line and "blas" in line.lower()})
    except OSError:
        paths = []
    for path in paths:
        lib = ctypes.CDLL(path)  # already loaded: this only returns a handle to it
        if hasattr(lib, "openblas_set_num_threads"):
            if n > 0:
                lib.openblas_set_num_threads(n)
            lib.openblas_get_config.restype = ctypes.c_char_p
            info["blas"] = " ".join(lib.openblas_get_config().decode().split()[:2])  # "OpenBLAS 0.3.21"
            info["blas_threads"] = lib.openblas_get_num_threads()
    return info


def cpu_model_name():
    """The processor's name as /proc/cpuinfo gives it (Linux), else platform's guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"
