"""Turns the JSON lines of bench/run_gpu_bench.sh into markdown tables.

usage: python3 bench/bench_report.py OUT_DIR
Reads OUT_DIR/{train_ours,train_torch,flash_ours,flash_torch}.jsonl.
Ratio = torch_ms / ours_ms: above 1 means ours is faster, below 1 slower.

run_gpu_bench.sh runs both sides RUNS times, one side after the other in
each run, appending to the files: the k-th line of a configuration on our
side pairs with the k-th on torch's. Each table cell is the median over
the runs, and the last column lists every run's ratio, so the spread that
a shared machine adds is in plain view.
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def rows(path):
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.startswith("{")]


def runs_by(path, key):
    """Every run's row of each configuration, in run order."""
    grouped = defaultdict(list)
    for r in rows(path):
        grouped[key(r)].append(r)
    return grouped


def median_of(runs, field):
    values = [r[field] for r in runs if r.get(field) is not None]  # null: not measured (CPU peak)
    return round(statistics.median(values), 3) if values else None


def ratios(ours_runs, torch_runs, field):
    """torch / ours for each run that both sides finished."""
    return [t[field] / o[field] for o, t in zip(ours_runs, torch_runs) if o.get(field) and t.get(field)]


def fmt(x):
    return "-" if x is None else f"{x:g}"


def fmt_ratio(rs):
    return f"**{statistics.median(rs):.2f}**" if rs else "-"


def fmt_spread(rs):
    return " / ".join(f"{r:.2f}" for r in rs) if rs else "-"


def main():
    out = Path(sys.argv[1])
    ours = runs_by(out / "train_ours.jsonl", lambda r: (r["attention"], r["precision"]))
    torch = runs_by(out / "train_torch.jsonl", lambda r: (r["attention"], r["precision"]))
    n_runs = max([len(v) for v in list(ours.values()) + list(torch.values())] or [0])
    print("## One training step, nanoGPT char shape\n")
    print("6 layers, 6 heads, embd 384, block 256, batch 64, vocab 65, dropout 0; forward, "
          "cross-entropy, backward, AdamW. Median of the timed steps; fwd/bwd/opt from a second "
          "set of steps synchronised between phases. Ratio = torch ms / ours ms (>1: ours faster). "
          f"{n_runs} run(s) a side: cells are medians over the runs, the last column each run's "
          "ratio.\n")
    print("| attention (ours / torch) | precision | ours ms | torch ms | ratio | ours fwd / bwd / opt ms "
          "| torch fwd / bwd / opt ms | ours peak MiB | torch peak MiB | ratio of each run |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted(set(ours) | set(torch), key=lambda k: (k[1], k[0] != "mha")):
        o, t = ours.get(key, []), torch.get(key, [])
        label = f"{key[0]} / {t[0].get('torch_attention', '?') if t else '?'}"
        split = lambda rs: (" / ".join(f"{median_of(rs, f):.1f}" for f in ("fwd_ms", "bwd_ms", "opt_ms"))
                            if rs else "-")
        rs = ratios(o, t, "median_ms")
        print(f"| {label} | {key[1]} | {fmt(median_of(o, 'median_ms'))} | "
              f"{fmt(median_of(t, 'median_ms'))} | {fmt_ratio(rs)} | {split(o)} | {split(t)} | "
              f"{fmt(median_of(o, 'peak_mib'))} | {fmt(median_of(t, 'peak_mib'))} | {fmt_spread(rs)} |")
    params = {r.get("params") for runs in list(ours.values()) + list(torch.values()) for r in runs}
    print(f"\nParameters: {', '.join(str(p) for p in sorted(x for x in params if x))} "
          "(one number: both models are the same size).\n")

    fo = runs_by(out / "flash_ours.jsonl", lambda r: r["T"])
    ft = runs_by(out / "flash_torch.jsonl", lambda r: r["T"])
    any_row = next((runs[0] for runs in list(fo.values()) + list(ft.values())), {})
    print("## Causal attention, fp32: our flash vs torch SDPA\n")
    print(f"B={any_row.get('B')}, H={any_row.get('H')}, D={any_row.get('D')}; median ms; peak is "
          "memory above the inputs. Ratio = torch ms / ours ms (>1: ours faster), the median over "
          "the runs; the last columns list each run's. TFLOP/s counts the causal half: forward "
          "2 B H T^2 D, forward+backward 3.5x that.\n")
    print("| T | ours fwd | torch fwd | ratio | ours fwd+bwd | torch fwd+bwd | ratio | "
          "ours TFLOP/s fwd / f+b | ours peak MiB f / f+b | torch peak MiB f / f+b "
          "| fwd ratio of each run | f+b ratio of each run |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for T in sorted(set(fo) | set(ft)):
        o, t = fo.get(T, []), ft.get(T, [])
        fwd, fb = median_of(o, "fwd_ms"), median_of(o, "fwdbwd_ms")
        tf = "-"
        if o and fwd and fb:
            flops = 2 * o[0]["B"] * o[0]["H"] * T * T * o[0]["D"]
            tf = f"{flops / fwd / 1e9:.1f} / {3.5 * flops / fb / 1e9:.1f}"
        peak = lambda rs: (f"{fmt(median_of(rs, 'fwd_peak_mib'))} / {fmt(median_of(rs, 'fwdbwd_peak_mib'))}"
                           if rs else "-")
        r_fwd, r_fb = ratios(o, t, "fwd_ms"), ratios(o, t, "fwdbwd_ms")
        print(f"| {T} | {fmt(fwd)} | {fmt(median_of(t, 'fwd_ms'))} | {fmt_ratio(r_fwd)} | {fmt(fb)} | "
              f"{fmt(median_of(t, 'fwdbwd_ms'))} | {fmt_ratio(r_fb)} | {tf} | {peak(o)} | {peak(t)} | "
              f"{fmt_spread(r_fwd)} | {fmt_spread(r_fb)} |")
    everything = [r for runs in list(torch.values()) + list(ft.values()) for r in runs]
    dev = next((r.get("device") for r in everything if r.get("device")), "?")
    ver = next((r.get("torch") for r in everything if r.get("torch")), "?")
    print(f"\nDevice: {dev}; PyTorch {ver}.")


if __name__ == "__main__":
    main()
