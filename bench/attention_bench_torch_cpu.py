"""PyTorch peers of our CPU attention benchmarks, fp32, causal.

Two suites, one per C++ benchmark they answer (bench/run_cpu_bench.sh runs
both; bench/cpu_bench_report.py pairs the lines):

  --suite flash    peer of bench/flash_bench.cpp (`bench_flash --device cpu`):
                   forward without a graph (torch.no_grad) and forward +
                   out.backward(dout) on [B, H, T, D] inputs; median of
                   --repeats runs after --warmup. Same JSON fields as
                   bench_flash: B, H, T, D, fwd_ms, fwdbwd_ms, fwd_peak_mib,
                   fwdbwd_peak_mib (null here: PyTorch keeps no allocator
                   statistics for host memory).
  --suite methods  peer of `attnlab bench attention` (train/bench_attention.cpp):
                   B = 1; the best (minimum) of --repeats runs, no warm-up;
                   the forward is timed while recording the graph, then
                   sum(out).backward() separately, and "fwdbwd_ms" is the
                   sum of the two minimums, exactly as our side counts them.
                   T x T methods whose ~4 T x T floats a head exceed
                   --max-dense-gib are skipped, by our side's rule.

What runs on the PyTorch side (--impls, default "auto"):
  manual        q k^T * 1/sqrt(d), masked_fill of the causal mask, softmax,
                @ v: nanoGPT's attention, the code a PyTorch 1.13 user
                writes. Materialises T x T.
  sdpa          F.scaled_dot_product_attention(is_causal=True), public from
                PyTorch 2.0; on the CPU it has a flash-style kernel that does
                not materialise T x T: the true peer of our flash.
  sdpa_private  PyTorch 1.13's F._scaled_dot_product_attention(is_causal=True),
                a private draft of the above. On 1.13 it is a composite of
                ordinary ops (the "math" path): it still materialises T x T,
                so it is no flash kernel, but it scales q (T x d) instead of
                the scores (T x T) and adds the mask in place: fewer T x T
                passes, so its forward+backward ran 1.2-1.5x faster than
                `manual`'s at T = 1024 on a 2-core EPYC (the forward alone
                about the same, sometimes slower: it builds a float mask).
  linear        our `linear` variant's math (attention/linear.cpp): phi(x) =
                elu(x) + 1 on q and k (no 1/sqrt(d)), causal, computed in
                chunks of 64 positions with a running state S = sum phi(k) v^T,
                z = sum phi(k); out = (phi(q) S + tril(phi(q) phi(k)^T) v) /
                (phi(q) z + rowsum(tril(...)) + 1e-6). Methods suite only.
  "auto" means: sdpa where it exists, else sdpa_private and manual (both,
  so the report shows the 1.13 user's two choices), plus linear in the
  methods suite.

Threads: --threads N sets torch's intra-op pool, one inter-op thread and the
thread count of the OpenBLAS that runs torch's products (set_cpu_threads).

    /usr/bin/python3 bench/attention_bench_torch_cpu.py --suite flash --threads 1 \\
        --lengths 1024,4096 --batch 1 --heads 4 --dim 64
    /usr/bin/python3 bench/attention_bench_torch_cpu.py --suite methods --threads 2 \\
        --lengths 2048,8192,16384 --heads 4 --dim 64 --repeats 2
    /usr/bin/python3 bench/attention_bench_torch_cpu.py --check   # the impls agree?

Prints one JSON object per (impl, T) on stdout.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

from torch_cpu import cpu_model_name, set_cpu_threads

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")
HAS_PRIVATE_SDPA = hasattr(F, "_scaled_dot_product_attention")
T_BY_T = {"manual", "sdpa_private"}  # implementations that materialise T x T scores


# ---- the implementations: each maps q, k, v [B, H, T, d] to out [B, H, T, d] ----

def manual_attention(q, k, v):
    T = q.size(-2)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    keep = torch.ones(T, T, dtype=torch.bool).tril()  # query i sees keys j <= i
    return F.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1) @ v


def sdpa_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def sdpa_private_attention(q, k, v):
    out, _weights = F._scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0,
                                                    need_attn_weights=False, is_causal=True)
    return out


def linear_attention(q, k, v, chunk=64, eps=1e-6):
    """Causal linear attention in chunks: the math of attention/linear.cpp.

    Prefix sums over all T positions would need a [T, d, d] tensor; instead
    the positions go in chunks of `chunk`. Everything before a chunk is
    summarised by S ([d, d_v]) and z ([d]); inside the chunk the exact causal
    sum is a small tril(c x c) product. Time O(T c d + T d^2), no T x T.
    """
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1  # positive features: weights > 0
    B, H, T, d = q.shape
    S = q.new_zeros(B, H, d, v.size(-1))  # sum over earlier chunks of phi(k_j) v_j^T
    z = q.new_zeros(B, H, 1, d)           # sum over earlier chunks of phi(k_j), as a row
    pieces = []
    for start in range(0, T, chunk):
        qc, kc, vc = (t[:, :, start:start + chunk] for t in (phi_q, phi_k, v))
        inside = torch.tril(qc @ kc.transpose(-2, -1))  # [.., c, c]: key j <= query i
        numer = qc @ S + inside @ vc
        denom = (qc * z).sum(-1, keepdim=True) + inside.sum(-1, keepdim=True)
        pieces.append(numer / (denom + eps))
        # The chunk's keys join the state only after its own queries are done.
        S = S + kc.transpose(-2, -1) @ vc
        z = z + kc.sum(-2, keepdim=True)
    return torch.cat(pieces, dim=-2)


IMPLS = {"manual": manual_attention, "sdpa": sdpa_attention,
         "sdpa_private": sdpa_private_attention, "linear": linear_attention}


def resolve_impls(spec, suite):
    if spec != "auto":
        names = spec.split(",")
    elif HAS_SDPA:
        names = ["manual", "sdpa"] if suite == "methods" else ["sdpa"]
    elif HAS_PRIVATE_SDPA:
        names = ["sdpa_private", "manual"]
    else:
        names = ["manual"]
    if spec == "auto" and suite == "methods":
        names.append("linear")
    for n in names:
        if n not in IMPLS:
            raise SystemExit(f"unknown impl {n!r}; choose from {', '.join(IMPLS)}")
        if (n == "sdpa" and not HAS_SDPA) or (n == "sdpa_private" and not HAS_PRIVATE_SDPA):
            raise SystemExit(f"impl {n!r} is not in PyTorch {torch.__version__}")
    return names


# ---- timing ----

def ms_since(t0):
    return (time.perf_counter() - t0) * 1e3


def flash_suite(a, names, common):
    """Median of repeats, like bench_flash: forward without a graph, then forward+backward."""
    for T in map(int, a.lengths.split(",")):
        g = torch.Generator().manual_seed(T)
        shape = (a.batch, a.heads, T, a.dim)
        q0, k0, v0, dout = (torch.randn(shape, generator=g) for _ in range(4))
        for name in names:
            fn = IMPLS[name]

            def forward():
                with torch.no_grad():
                    fn(q0, k0, v0)

            def both():
                q, k, v = (t.detach().requires_grad_() for t in (q0, k0, v0))
                fn(q, k, v).backward(dout)

            times = {}
            for label, run in (("fwd", forward), ("fwdbwd", both)):
                for _ in range(a.warmup):
                    run()
                samples = []
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    run()
                    samples.append(ms_since(t0))
                times[label] = statistics.median(samples)
            print(json.dumps({
                "impl": f"torch {name}", "torch_impl": name, "B": a.batch, "H": a.heads, "T": T,
                "D": a.dim, "fwd_ms": round(times["fwd"], 3), "fwdbwd_ms": round(times["fwdbwd"], 3),
                "fwd_peak_mib": None, "fwdbwd_peak_mib": None, "repeats": a.repeats, **common}), flush=True)


def methods_suite(a, names, common):
    """Best of repeats, like `attnlab bench attention`: forward with the graph, then backward."""
    for T in map(int, a.lengths.split(",")):
        g = torch.Generator().manual_seed(T)
        shape = (1, a.heads, T, a.dim)
        q0, k0, v0 = (torch.randn(shape, generator=g) for _ in range(3))
        for name in names:
            row = {"impl": f"torch {name}", "torch_impl": name, "B": 1, "H": a.heads,
                   "T": T, "D": a.dim, "repeats": a.repeats, **common}
            # The T x T buffers: scores, weights and their gradients, ~4 per
            # head. Our side skips these methods above the same bound.
            need_gib = 4.0 * a.heads * T * T * 4 / 2**30
            if name in T_BY_T and need_gib > a.max_dense_gib:
                row.update(fwd_ms=None, fwdbwd_ms=None,
                           note=f"skipped: needs ~{need_gib:.1f} GiB of T x T buffers")
                print(json.dumps(row), flush=True)
                continue
            best_f = best_b = math.inf
            for _ in range(a.repeats):
                q, k, v = (t.detach().requires_grad_() for t in (q0, k0, v0))
                t0 = time.perf_counter()
                out = IMPLS[name](q, k, v)
                best_f = min(best_f, ms_since(t0))
                t0 = time.perf_counter()
                out.sum().backward()
                best_b = min(best_b, ms_since(t0))
                del out, q, k, v  # free the graph before the next run allocates its own
            row.update(fwd_ms=round(best_f, 3), fwdbwd_ms=round(best_f + best_b, 3))
            print(json.dumps(row), flush=True)


def check():
    """The implementations agree with each other (and linear with a plain O(T^2) oracle)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 150, 16, generator=g, dtype=torch.float64) for _ in range(3))
    ref = manual_attention(q, k, v)
    for name in ("sdpa", "sdpa_private"):
        if (name == "sdpa" and HAS_SDPA) or (name == "sdpa_private" and HAS_PRIVATE_SDPA):
            print(f"{name:13s} vs manual: max |diff| {(IMPLS[name](q, k, v) - ref).abs().max():.2e}")
    # Linear attention the slow, obvious way: the T x T matrix of phi(q_i) . phi(k_j), causal.
    w = torch.tril((F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-2, -1))
    oracle = (w @ v) / (w.sum(-1, keepdim=True) + 1e-6)
    for chunk in (1, 7, 64, 150, 400):  # chunks that divide T, that do not, and bigger than T
        diff = (linear_attention(q, k, v, chunk=chunk) - oracle).abs().max()
        print(f"linear chunk {chunk:3d} vs O(T^2) oracle: max |diff| {diff:.2e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["flash", "methods"], default="flash")
    ap.add_argument("--impls", default="auto", help=f"comma list of {', '.join(IMPLS)}, or auto")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads; 0 keeps torch's default")
    ap.add_argument("--lengths", default=None, help="default 1024,4096 (flash), 2048,8192,16384 (methods)")
    ap.add_argument("--batch", type=int, default=1, help="flash suite only (methods: B = 1 as ours)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=1, help="flash suite only (methods: none, as ours)")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 (flash: median; methods: best)")
    ap.add_argument("--max-dense-gib", type=float, default=4.0, help="methods suite: skip T x T above this")
    ap.add_argument("--check", action="store_true", help="compare the implementations and exit")
    a = ap.parse_args()
    threads = set_cpu_threads(a.threads)
    if a.check:
        check()
        return
    a.lengths = a.lengths or ("1024,4096" if a.suite == "flash" else "2048,8192,16384")
    a.repeats = a.repeats or 3
    names = resolve_impls(a.impls, a.suite)
    common = {"suite": a.suite, "device": cpu_model_name(), "torch": torch.__version__,
              "causal": True, "dtype": "fp32", **threads}
    if not HAS_SDPA:
        common["note_sdpa"] = (f"PyTorch {torch.__version__} has no public scaled_dot_product_attention "
                               "and no fused CPU attention kernel: its attention materialises T x T")
    (flash_suite if a.suite == "flash" else methods_suite)(a, names, common)


if __name__ == "__main__":
    main()
