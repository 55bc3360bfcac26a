"""PyTorch peer of the recipe benchmark (bench/run_recipe_bench.sh): nanoGPT's
shakespeare_char recipe, trained end to end on a text file (eager fp32 by
default; --precision bf16 and --compile for nanoGPT's own fast settings).

The same settings as `attnlab train` in run_recipe_bench.sh, written the way a
nanoGPT user would run them: a char-level GPT (learned positions, pre-norm
LayerNorm blocks without biases, GELU MLP 4x, tied head), dropout after the
embeddings, on both residual branches and on the attention probabilities
(SDPA's dropout_p, is_causal=True), AdamW with decay on matrices only,
linear warmup then cosine decay to min_lr, global grad-norm clipping.
Evaluation: the mean loss of `eval_batches` random batches of each split,
every `eval_every` steps and at the end, in eval mode (no dropout); a
checkpoint (model + optimizer state, written to a temporary name and
renamed) after every evaluation, as attnlab writes one.

Data as attnlab reads it: the vocabulary is the sorted set of the text's
characters, the first 90% of the text trains and the last 10% validates,
and a batch is `batch` windows drawn at uniform random offsets of its split.

TF32 is off for products and cuDNN (`allow_tf32 = False`): this is the fp32
side of the comparison. --precision bf16 runs forward and loss under
torch.autocast(bfloat16), as nanoGPT does (fp32 weights and optimizer
state; SDPA then runs FlashAttention-2 in bf16); --compile wraps the model
in torch.compile (its compile time is in the wall time and in the first
steps' train time, as a user pays it). Prints one JSON line at the end with wall time
(everything after the model is built), train time (steps only), ms per
step, peak memory and the best and final validation loss.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, embd, heads, dropout, attn_dropout):
        super().__init__()
        self.heads, self.attn_dropout = heads, attn_dropout
        self.ln1 = nn.LayerNorm(embd, bias=False)
        self.qkv = nn.Linear(embd, 3 * embd, bias=False)
        self.proj = nn.Linear(embd, embd, bias=False)
        self.ln2 = nn.LayerNorm(embd, bias=False)
        self.fc = nn.Linear(embd, 4 * embd, bias=False)
        self.fc_proj = nn.Linear(4 * embd, embd, bias=False)
        self.drop = nn.Dropout(dropout)

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.drop(self.attention(self.ln1(x)))
        return x + self.drop(self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self, vocab, block, layers, heads, embd, dropout, attn_dropout):
        super().__init__()
        self.wte = nn.Embedding(vocab, embd)
        self.wpe = nn.Embedding(block, embd)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(embd, heads, dropout, attn_dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(embd, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx):
        T = idx.size(1)
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(T, device=idx.device)))
        for b in self.blocks:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, help="folder for the checkpoint")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--embd", type=int, default=384)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--attn-dropout", type=float, default=0.2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.99)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--eval-batches", type=int, default=200)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    import contextlib
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if a.precision == "bf16" \
        else contextlib.nullcontext

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(a.seed)
    dev = torch.device("cuda")
    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = len(ids) - round(len(ids) * 0.1)
    splits = {"train": ids[:cut], "val": ids[cut:]}

    def batch(split, gen):
        data = splits[split]
        starts = torch.randint(0, len(data) - a.block, (a.batch,), generator=gen)
        x = torch.stack([data[s:s + a.block] for s in starts.tolist()])
        y = torch.stack([data[s + 1:s + 1 + a.block] for s in starts.tolist()])
        return x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

    model = GPT(len(chars), a.block, a.layers, a.heads, a.embd, a.dropout, a.attn_dropout).to(dev)
    raw_model = model
    if a.compile:
        model = torch.compile(model)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(a.beta1, a.beta2), eps=1e-8, fused=True)

    def lr_at(step):  # linear warmup, then cosine from lr to min_lr at the last step
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        t = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.min_lr + 0.5 * (1 + math.cos(math.pi * min(t, 1.0))) * (a.lr - a.min_lr)

    @torch.no_grad()
    def evaluate(split):
        model.eval()
        gen = torch.Generator().manual_seed(a.seed + (2 if split == "val" else 1))
        total = 0.0
        for _ in range(a.eval_batches):
            x, y = batch(split, gen)
            with autocast():
                total += F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1)).item()
        model.train()
        return total / a.eval_batches

    os.makedirs(a.out, exist_ok=True)
    ckpt = os.path.join(a.out, "checkpoint.pt")
    gen = torch.Generator().manual_seed(a.seed + 3)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    wall0 = time.perf_counter()
    train_s, best, vals = 0.0, float("inf"), []
    model.train()
    for step in range(a.steps):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = batch("train", gen)
        with autocast():
            loss = F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        torch.cuda.synchronize()
        train_s += time.perf_counter() - t0
        done = step + 1
        if done % a.eval_every == 0 or done == a.steps:
            val = evaluate("val")
            evaluate("train")
            vals.append((done, round(val, 4)))
            best = min(best, val)
            torch.save({"model": raw_model.state_dict(), "optim": opt.state_dict(), "step": done}, ckpt + ".tmp")
            os.replace(ckpt + ".tmp", ckpt)
            print(f"step {done} val {val:.4f} train-time {train_s:.1f} s", flush=True)
    wall = time.perf_counter() - wall0
    print(json.dumps({
        "impl": f"torch {'compile' if a.compile else 'eager'} {a.precision} (sdpa)", "seed": a.seed, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(), "steps": a.steps, "wall_s": round(wall, 1),
        "train_s": round(train_s, 1), "ms_per_step": round(1000 * train_s / a.steps, 2),
        "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        "best_val": round(best, 4), "final_val": vals[-1][1], "val_curve": vals}), flush=True)


if __name__ == "__main__":
    main()
