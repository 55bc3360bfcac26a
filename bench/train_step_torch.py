"""PyTorch peer of bench/train_step_bench.cpp: one nanoGPT-char training step.

A straightforward nanoGPT-style model (eager PyTorch, no torch.compile) with
the shape and initialisation of attnlab's GPT: learned positions, pre-norm
blocks with LayerNorm (bias), GELU MLP (4x), tied LM head; weights N(0, 0.02),
the two projections into the residual stream N(0, 0.02 / sqrt(2 layers)),
biases zero. AdamW (fused) with decay on matrices only.

Two attentions, paired with ours in the report:
  mha   -> "manual": q k^T, causal mask, softmax, @ v (materialises T x T),
           the way attnlab's dense attention does it;
  flash -> F.scaled_dot_product_attention(is_causal=True), PyTorch's fused
           kernel (in fp32 the memory-efficient one).

Prints one JSON object per (attention, precision) on stdout, with the same
fields as the C++ side.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, embd, heads, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.ln1 = nn.LayerNorm(embd)
        self.qkv = nn.Linear(embd, 3 * embd)
        self.proj = nn.Linear(embd, embd)
        self.ln2 = nn.LayerNorm(embd)
        self.fc = nn.Linear(embd, 4 * embd)
        self.fc_proj = nn.Linear(4 * embd, embd)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            att = F.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
            y = att @ v
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, block, layers, heads, embd, sdpa):
        super().__init__()
        self.wte = nn.Embedding(vocab, embd)
        self.wpe = nn.Embedding(block, embd)
        self.blocks = nn.ModuleList(Block(embd, heads, sdpa) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embd)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight",)) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()  # tied LM head


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attention", default="mha,flash")
    ap.add_argument("--precision", default="fp32,tf32")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--embd", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--profile", action="store_true",
                    help="also print torch.profiler's top CUDA kernels of one step")
    a = ap.parse_args()
    dev = torch.device("cuda")
    sync = torch.cuda.synchronize

    for precision in a.precision.split(","):
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        for attention in a.attention.split(","):
            torch.manual_seed(1337)
            model = GPT(a.vocab, a.block, a.layers, a.heads, a.embd, sdpa=attention == "flash").to(dev)
            decay = [p for p in model.parameters() if p.dim() >= 2]
            no_decay = [p for p in model.parameters() if p.dim() < 2]
            opt = torch.optim.AdamW(
                [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
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

                logits = model(x)
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
            torch.cuda.reset_peak_memory_stats()
            whole = []
            for _ in range(a.steps):
                t0 = time.perf_counter()
                step()
                sync()
                whole.append((time.perf_counter() - t0) * 1e3)
            peak = torch.cuda.max_memory_allocated() / 2**20
            fwd, bwd, upd = [], [], []
            for _ in range(a.steps):
                split = [0.0, 0.0, 0.0]
                loss = step(split)
                fwd.append(split[0]), bwd.append(split[1]), upd.append(split[2])
            if a.profile:
                from torch.profiler import ProfilerActivity, profile
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    step()
                    sync()
                print(f"# torch.profiler, one step, {attention} {precision}:")
                print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=30, max_name_column_width=70))
            print(json.dumps({
                "impl": "torch eager", "attention": attention, "precision": precision,
                "torch_attention": "sdpa" if attention == "flash" else "manual",
                "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                "median_ms": round(statistics.median(whole), 3), "min_ms": round(min(whole), 3),
                "fwd_ms": round(statistics.median(fwd), 3), "bwd_ms": round(statistics.median(bwd), 3),
                "opt_ms": round(statistics.median(upd), 3), "peak_mib": round(peak, 1),
                "params": sum(p.numel() for p in model.parameters()), "loss": round(loss.item(), 4),
                "steps": a.steps}), flush=True)
            del model, opt
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
