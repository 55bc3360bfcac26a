"""PyTorch peer of bench/flash_bench.cpp: causal attention, fp32 or bf16.

torch.nn.functional.scaled_dot_product_attention(is_causal=True) on
[B, H, T, D] tensors, forward (no_grad) and forward+backward
(out.backward(dout)); median of N runs with CUDA synchronisation, and the
peak memory above what was allocated before. In fp32 PyTorch picks its
memory-efficient kernel (the FlashAttention kernels need fp16/bf16); with
--precision bf16 the tensors are bfloat16, as autocast's linear layers
hand them over, and PyTorch picks FlashAttention-2.
Prints one JSON object per length, with the same fields as flash_bench.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def median_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="1024,4096,16384")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    a = ap.parse_args()
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    dev = torch.device("cuda")
    # TF32 off: the comparison is plain fp32 on both sides.
    torch.backends.cuda.matmul.allow_tf32 = False
    for T in map(int, a.lengths.split(",")):
        g = torch.Generator(device=dev).manual_seed(T)
        shape = (a.batch, a.heads, T, a.dim)
        q0, k0, v0, dout = (torch.randn(shape, device=dev, generator=g).to(dtype) for _ in range(4))
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()

        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q0, k0, v0, is_causal=True)

        def both():
            q, k, v = (t.detach().requires_grad_() for t in (q0, k0, v0))
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dout)

        torch.cuda.reset_peak_memory_stats()
        fwd = median_ms(forward, a.warmup, a.repeats)
        fwd_peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        torch.cuda.reset_peak_memory_stats()
        fb = median_ms(both, a.warmup, a.repeats)
        fb_peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        print(json.dumps({
            "impl": "torch sdpa", "precision": a.precision, "B": a.batch, "H": a.heads, "T": T, "D": a.dim,
            "fwd_ms": round(fwd, 3), "fwdbwd_ms": round(fb, 3),
            "fwd_peak_mib": round(fwd_peak, 1), "fwdbwd_peak_mib": round(fb_peak, 1),
            "device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
        del q0, k0, v0, dout
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
