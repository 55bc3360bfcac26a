"""PyTorch peer of bench/train_step_bench.cpp: one nanoGPT-char training step.

A straightforward nanoGPT-style model (eager PyTorch; --compile for torch.compile) with
the shape and initialisation of attnlab's GPT: learned positions, pre-norm
blocks with LayerNorm (bias), GELU MLP (4x), tied LM head; weights N(0, 0.02),
the two projections into the residual stream N(0, 0.02 / sqrt(2 layers)),
biases zero. AdamW with decay on matrices only: fused on CUDA, and on the
CPU (or a PyTorch without `fused`) the multi-tensor "foreach" version where
it exists, else the plain per-parameter loop.

Two attentions, paired with ours in the report:
  mha   -> "manual": q k^T, causal mask, softmax, @ v (materialises T x T),
           the way attnlab's dense attention does it;
  flash -> PyTorch's own attention op:
           F.scaled_dot_product_attention(is_causal=True) where it exists
           (PyTorch >= 2.0; in fp32 on CUDA the memory-efficient kernel);
           on PyTorch 1.13, which has no public SDPA, its private
           F._scaled_dot_product_attention (a composite "math" version: it
           still materialises T x T, but scales q instead of the scores and
           adds the mask in place, so it makes fewer T x T passes than the
           manual code); failing both, the manual attention again.
           The JSON line's "torch_attention" says which one ran.

Dropout (nanoGPT's placement, the model in train mode): --dropout after the
token + position embeddings and on each residual branch (the attention's
output projection and the MLP's output), --attn-dropout on the attention
probabilities. A rate of 0 adds no op at all, so the default step is the
same as before these flags existed.

Devices:
  --device cuda (default)  the GPU benchmark of bench/run_gpu_bench.sh;
  --device cpu             the CPU benchmark of bench/run_cpu_bench.sh, e.g.
      /usr/bin/python3 bench/train_step_torch.py --device cpu --threads 2 \\
          --layers 4 --heads 4 --embd 128 --block 64 --batch 12 \\
          --attention mha --dropout 0.2 --attn-dropout 0.2 --warmup 2 --steps 10
  On the CPU --threads N sets torch's intra-op pool (torch.set_num_threads),
  one inter-op thread, and the thread count of the OpenBLAS that does
  torch's matrix products in a distribution build (set_cpu_threads says why).
  On a machine with few cores run it with OMP_WAIT_POLICY=passive: by
  default OpenMP's idle workers spin, and on 2 cores they take the core
  that OpenBLAS's worker needs (the S1 step above, 2 threads, on a 2-core
  VM: ~150 ms by default, ~63 ms passive, ~70 ms at 1 thread).

Prints one JSON object per (attention, precision) on stdout, with the same
fields as the C++ side, plus "threads", "dropout" and "attn_dropout". On the
CPU "device" is the processor's model name (/proc/cpuinfo) and "peak_mib" is
null: PyTorch keeps no allocator statistics for host memory.
"""
import argparse
import inspect
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_cpu import cpu_model_name, set_cpu_threads

# PyTorch 2.0 made scaled_dot_product_attention public; 1.13 shipped a
# private draft of it (different signature: it returns (out, weights)).
HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
HAS_PRIVATE_SDPA = hasattr(F, "_scaled_dot_product_attention")


def flash_peer():
    """Which PyTorch attention plays the part of our flash attention."""
    if HAS_SDPA:
        return "sdpa"
    if HAS_PRIVATE_SDPA:
        return "sdpa_private"
    return "manual"


def dropout_layer(p):
    """nn.Dropout(p), or nothing at all when p is 0 (no op, no extra pass)."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class Block(nn.Module):
    def __init__(self, embd, heads, impl, dropout, attn_dropout):
        super().__init__()
        self.heads, self.impl, self.attn_p = heads, impl, attn_dropout
        self.ln1 = nn.LayerNorm(embd)
        self.qkv = nn.Linear(embd, 3 * embd)
        self.proj = nn.Linear(embd, embd)
        self.ln2 = nn.LayerNorm(embd)
        self.fc = nn.Linear(embd, 4 * embd)
        self.fc_proj = nn.Linear(4 * embd, embd)
        self.attn_drop = dropout_layer(attn_dropout)  # on the probabilities (manual path)
        self.resid_drop = dropout_layer(dropout)      # on the attention branch
        self.mlp_drop = dropout_layer(dropout)        # on the MLP branch

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        # The fused ops take the dropout rate as an argument; it must be 0
        # outside training, since they do not look at self.training.
        p = self.attn_p if self.training else 0.0
        if self.impl == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif self.impl == "sdpa_private":
            y, _ = F._scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=p,
                                                   need_attn_weights=False, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
            y = self.attn_drop(att) @ v
        return self.resid_drop(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.mlp_drop(self.fc_proj(F.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    def __init__(self, vocab, block, layers, heads, embd, impl, dropout=0.0, attn_dropout=0.0):
        super().__init__()
        self.wte = nn.Embedding(vocab, embd)
        self.wpe = nn.Embedding(block, embd)
        self.drop = dropout_layer(dropout)
        self.blocks = nn.ModuleList(Block(embd, heads, impl, dropout, attn_dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embd)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight",)) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.size(1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied LM head


def make_adamw(groups, device):
    """AdamW as fast as this PyTorch offers it on this device.

    `fused` (one kernel for every parameter) exists from PyTorch 2.0 and, in
    the versions this script meets, only for CUDA tensors; `foreach` (a few
    multi-tensor ops instead of a Python loop over parameters) exists from
    1.12 on every device. The keyword arguments are looked up rather than
    assumed, so the same script runs on Debian's 1.13 and on a current wheel.
    """
    accepted = inspect.signature(torch.optim.AdamW).parameters
    kwargs, kind = {}, "for-loop"
    if device.type == "cuda" and "fused" in accepted:
        kwargs, kind = {"fused": True}, "fused"
    elif "foreach" in accepted:
        kwargs, kind = {"foreach": True}, "foreach"
    opt = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, **kwargs)
    return opt, kind


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU: intra-op threads (torch.set_num_threads); 0 keeps torch's default")
    ap.add_argument("--attention", default="mha,flash")
    ap.add_argument("--precision", default=None,
                    help="fp32, tf32 and/or bf16 (CUDA only: bf16 autocast around the forward and the "
                         "loss, as nanoGPT's); default fp32,tf32 on CUDA, fp32 on the CPU")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the model (compiled during the warmup steps)")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="after the embeddings and on each residual branch (nanoGPT's dropout)")
    ap.add_argument("--attn-dropout", type=float, default=0.0, help="on the attention probabilities")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--embd", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's top kernels (CUDA) or ops (CPU) of one step")
    a = ap.parse_args()
    on_cpu = a.device == "cpu"
    dev = torch.device(a.device)
    precisions = (a.precision or ("fp32" if on_cpu else "fp32,tf32")).split(",")
    for p in precisions:
        if p not in ("fp32", "tf32", "bf16") or (on_cpu and p != "fp32"):
            ap.error(f"--precision {p}: fp32, tf32 or bf16 on CUDA, fp32 on the CPU")

    threads = {}
    if on_cpu:
        threads = set_cpu_threads(a.threads)
        device_name = cpu_model_name()
        sync = lambda: None  # CPU ops have finished when they return
    else:
        device_name = torch.cuda.get_device_name()
        sync = torch.cuda.synchronize

    for precision in precisions:
        if not on_cpu:  # TF32 is a property of NVIDIA tensor cores; there is nothing to set on a CPU
            tf32 = precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        for attention in a.attention.split(","):
            impl = flash_peer() if attention == "flash" else "manual"
            torch.manual_seed(1337)
            model = GPT(a.vocab, a.block, a.layers, a.heads, a.embd, impl,
                        a.dropout, a.attn_dropout).to(dev)
            model.train()  # dropout active: the step is a training step
            run = torch.compile(model) if a.compile else model
            bf16 = precision == "bf16"
            decay = [p for p in model.parameters() if p.dim() >= 2]
            no_decay = [p for p in model.parameters() if p.dim() < 2]
            opt, adamw_kind = make_adamw(
                [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], dev)
            x = torch.randint(0, a.vocab, (a.batch, a.block), device=dev)
            y = torch.randint(0, a.vocab, (a.batch, a.block), device=dev)

            def step(split=None):
                t0 = time.perf_counter()

                def lap(i):
                    nonlocal t0
                    if split is not None:
                        sync()
                        t = time.perf_counter()
                        split[i] = (t - t0) * 1e3
                        t0 = t

                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = run(x)
                    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
                lap(0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                lap(1)
                opt.step()
                lap(2)
                return loss

            for _ in range(a.warmup):
                loss = step()
            sync()
            whole, fwd, bwd, upd = [], [], [], []
            if on_cpu:
                # On the CPU the laps cost nothing (sync() is a no-op, ops are
                # done when they return), so one set of steps gives both the
                # whole step and its split; the CPU step is ~100x slower than
                # the GPU's, and a second set would double the run for nothing.
                for _ in range(a.steps):
                    split = [0.0, 0.0, 0.0]
                    loss = step(split)
                    whole.append(sum(split))
                    fwd.append(split[0]), bwd.append(split[1]), upd.append(split[2])
                peak = None
            else:
                torch.cuda.reset_peak_memory_stats()
                for _ in range(a.steps):
                    t0 = time.perf_counter()
                    step()
                    sync()
                    whole.append((time.perf_counter() - t0) * 1e3)
                peak = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                # The split needs a sync between phases, which slows the
                # asynchronous GPU pipeline: a second set of steps, so the
                # whole-step times above stay free of it.
                for _ in range(a.steps):
                    split = [0.0, 0.0, 0.0]
                    loss = step(split)
                    fwd.append(split[0]), bwd.append(split[1]), upd.append(split[2])
            if a.profile:
                from torch.profiler import ProfilerActivity, profile
                activity = ProfilerActivity.CPU if on_cpu else ProfilerActivity.CUDA
                with profile(activities=[activity]) as prof:
                    step()
                    sync()
                print(f"# torch.profiler, one step, {attention} {precision} ({a.device}):")
                print(prof.key_averages().table(sort_by="self_cpu_time_total" if on_cpu else "cuda_time_total",
                                                row_limit=30, max_name_column_width=70))
            print(json.dumps({
                "impl": "torch compile" if a.compile else "torch eager", "attention": attention, "precision": precision,
                "torch_attention": impl, "device": device_name, "torch": torch.__version__,
                "threads": threads.get("threads"), "blas": threads.get("blas"),
                "blas_threads": threads.get("blas_threads"), "omp_wait_policy": threads.get("omp_wait_policy"),
                "dropout": a.dropout, "attn_dropout": a.attn_dropout, "adamw": adamw_kind,
                "layers": a.layers, "heads": a.heads, "embd": a.embd, "block": a.block,
                "batch": a.batch, "vocab": a.vocab,
                "median_ms": round(statistics.median(whole), 3), "min_ms": round(min(whole), 3),
                "fwd_ms": round(statistics.median(fwd), 3), "bwd_ms": round(statistics.median(bwd), 3),
                "opt_ms": round(statistics.median(upd), 3), "peak_mib": peak,
                "params": sum(p.numel() for p in model.parameters()), "loss": round(loss.item(), 4),
                "steps": a.steps}), flush=True)
            del model, run, opt
            if not on_cpu:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
