"""PyTorch peer of `attnlab bench attention --device cuda` for sparse patterns.

FlexAttention (torch.nn.attention.flex_attention, compiled) with the block
masks of attnlab's `sparse` (strided: the last L keys plus every S-th key)
and `blocksparse` (its own block, the previous one and the first) patterns,
and SDPA for causal attention, on [B, H, T, D] float32 tensors: forward
(no_grad) and forward+backward, median of N runs with CUDA synchronisation.
Prints one JSON object per (method, length). --tf32 lets the products use
TF32 (both FlexAttention's and SDPA's); without it they run in fp32.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from attention_bench_torch import median_ms  # same folder: the same timing loop


def strided(local, stride):
    def mask(b, h, q, kv):
        return (kv <= q) & ((q - kv < local) | (kv % stride == stride - 1))
    return mask


def block_sparse(block):
    def mask(b, h, q, kv):
        qb, kb = q // block, kv // block
        return (kv <= q) & ((kb == qb) | (kb == qb - 1) | (kb == 0))
    return mask


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="4096,16384,65536")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--local", type=int, default=512)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--block", type=int, default=320)
    # FlexAttention's compiled kernel refuses mask blocks that are not a
    # multiple of its own tiles (128 on the H100): 64 fails to lower there.
    ap.add_argument("--mask-block", type=int, default=128, help="FlexAttention's BLOCK_SIZE")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    flex = torch.compile(flex_attention, dynamic=False)
    for T in map(int, a.lengths.split(",")):
        g = torch.Generator(device=dev).manual_seed(T)
        shape = (1, a.heads, T, a.dim)
        q0, k0, v0 = (torch.randn(shape, device=dev, generator=g) for _ in range(3))
        methods = {
            "flash (sdpa)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        }
        for name, mod in (("sparse", strided(a.local, a.stride)), ("blocksparse", block_sparse(a.block))):
            bm = create_block_mask(mod, None, None, T, T, device=dev, BLOCK_SIZE=a.mask_block)
            methods[name] = lambda q, k, v, bm=bm: flex(q, k, v, block_mask=bm)
        for name, run in methods.items():
            def forward():
                with torch.no_grad():
                    run(q0, k0, v0)

            def both():
                q, k, v = (t.detach().requires_grad_() for t in (q0, k0, v0))
                run(q, k, v).sum().backward()

            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fwd = median_ms(forward, a.warmup, a.repeats)
            fb = median_ms(both, a.warmup, a.repeats)
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            print(json.dumps({
                "impl": "torch " + name + (" flex" if name != "flash (sdpa)" else ""), "T": T,
                "H": a.heads, "D": a.dim, "tf32": a.tf32, "fwd_ms": round(fwd, 3),
                "fwdbwd_ms": round(fb, 3), "peak_mib": round(peak, 1),
                "torch": torch.__version__}), flush=True)
        del q0, k0, v0
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
