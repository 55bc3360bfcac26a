"""Turns the JSON lines of bench/run_gpu_bench.sh into markdown tables.

usage: python3 bench/bench_report.py OUT_DIR
Reads OUT_DIR/{train_ours,train_torch,flash_ours,flash_torch}.jsonl.
Ratio = torch_ms / ours_ms: above 1 means ours is faster, below 1 slower.
"""
import json
import sys
from pathlib import Path


def rows(path):
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.startswith("{")]


def ratio(torch_ms, ours_ms):
    return f"{torch_ms / ours_ms:.2f}" if torch_ms and ours_ms else "-"


def main():
    out = Path(sys.argv[1])
    ours = {(r["attention"], r["precision"]): r for r in rows(out / "train_ours.jsonl")}
    torch = {(r["attention"], r["precision"]): r for r in rows(out / "train_torch.jsonl")}
    print("## One training step, nanoGPT char shape\n")
    print("6 layers, 6 heads, embd 384, block 256, batch 64, vocab 65, dropout 0; forward, "
          "cross-entropy, backward, AdamW. Median of the timed steps; fwd/bwd/opt from a second "
          "set of steps synchronised between phases. Ratio = torch ms / ours ms (>1: ours faster).\n")
    print("| attention (ours / torch) | precision | ours ms | torch ms | ratio | ours fwd / bwd / opt ms "
          "| torch fwd / bwd / opt ms | ours peak MiB | torch peak MiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted(set(ours) | set(torch), key=lambda k: (k[1], k[0] != "mha")):
        o, t = ours.get(key, {}), torch.get(key, {})
        label = f"{key[0]} / {t.get('torch_attention', '?')}"
        split = lambda r: (f"{r['fwd_ms']:.1f} / {r['bwd_ms']:.1f} / {r['opt_ms']:.1f}" if r else "-")
        print(f"| {label} | {key[1]} | {o.get('median_ms', '-')} | {t.get('median_ms', '-')} | "
              f"{ratio(t.get('median_ms'), o.get('median_ms'))} | {split(o)} | {split(t)} | "
              f"{o.get('peak_mib', '-')} | {t.get('peak_mib', '-')} |")
    params = {r.get("params") for r in list(ours.values()) + list(torch.values())}
    print(f"\nParameters: {', '.join(str(p) for p in sorted(x for x in params if x))} "
          "(one number: both models are the same size).\n")

    fo = {r["T"]: r for r in rows(out / "flash_ours.jsonl")}
    ft = {r["T"]: r for r in rows(out / "flash_torch.jsonl")}
    any_row = next(iter(list(fo.values()) + list(ft.values())), {})
    print("## Causal attention, fp32: our flash vs torch SDPA\n")
    print(f"B={any_row.get('B')}, H={any_row.get('H')}, D={any_row.get('D')}; median ms; peak is "
          "memory above the inputs. Ratio = torch ms / ours ms (>1: ours faster). TFLOP/s counts "
          "the causal half: forward 2 B H T^2 D, forward+backward 3.5x that.\n")
    print("| T | ours fwd | torch fwd | ratio | ours fwd+bwd | torch fwd+bwd | ratio | "
          "ours TFLOP/s fwd / f+b | ours peak MiB f / f+b | torch peak MiB f / f+b |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for T in sorted(set(fo) | set(ft)):
        o, t = fo.get(T, {}), ft.get(T, {})
        tf = "-"
        if o:
            flops = 2 * o["B"] * o["H"] * T * T * o["D"]
            tf = f"{flops / o['fwd_ms'] / 1e9:.1f} / {3.5 * flops / o['fwdbwd_ms'] / 1e9:.1f}"
        peak = lambda r: f"{r['fwd_peak_mib']} / {r['fwdbwd_peak_mib']}" if r else "-"
        print(f"| {T} | {o.get('fwd_ms', '-')} | {t.get('fwd_ms', '-')} | "
              f"{ratio(t.get('fwd_ms'), o.get('fwd_ms'))} | {o.get('fwdbwd_ms', '-')} | "
              f"{t.get('fwdbwd_ms', '-')} | {ratio(t.get('fwdbwd_ms'), o.get('fwdbwd_ms'))} | {tf} | "
              f"{peak(o)} | {peak(t)} |")
    dev = next((r.get("device") for r in list(torch.values()) + list(ft.values()) if r.get("device")), "?")
    ver = next((r.get("torch") for r in list(torch.values()) + list(ft.values()) if r.get("torch")), "?")
    print(f"\nDevice: {dev}; PyTorch {ver}.")


if __name__ == "__main__":
    main()
