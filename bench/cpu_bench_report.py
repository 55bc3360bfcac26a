"""The CPU benchmark's bookkeeping: tags JSON lines as they are made, and
turns a finished run into markdown tables (bench/run_cpu_bench.sh calls it).

    python3 bench/cpu_bench_report.py OUT_DIR > OUT_DIR/report.md
    ... | python3 bench/cpu_bench_report.py tag round=1 shape=S1 threads=2 dropout=0.2 attn_dropout=0.2
    python3 bench/cpu_bench_report.py attention-md runs/x/report.md round=1 threads=2

Why tag: our binaries and the PyTorch scripts print one JSON line per
configuration, but not all of them say which shape, thread count, dropout
or round they ran (attnlab's own bench_train_step does not print its
shape). The shell script knows what it asked for, so `tag` adds that
under "cfg" to every JSON line passing through. The report keys every row
by cfg, never by what a binary says about itself; where a binary does
report a value (threads, dropout) that differs from the request, the
report lists the mismatch, since it means a flag did not take effect.

`attention-md` reads the table that `attnlab bench attention` writes to
its report.md (it prints no JSON) and prints it as JSON lines.

The report: ratio = torch ms / ours ms, above 1 = ours faster. Rounds ran
ours then torch for each configuration; rows pair by (configuration,
round). A cell is the median over the rounds, the ratio column is the
median of the per-round ratios, and the spread column lists every round's
ratio, so a slow moment of a shared machine shows instead of hiding in a
mean. The load average (/proc/loadavg) was read before every run and at
the start and end of every round; on a machine with 2 cores a load above
~1 means someone else had a core, and a 2-thread run then waits at every
barrier for a descheduled thread.
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


# ---------- tagging (used while the benchmark runs) ----------

def parse_value(text):
    """'2' -> 2, '0.2' -> 0.2, 'S1' -> 'S1': tags compare as numbers where they are numbers."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_tags(args):
    tags = {}
    for a in args:
        key, sep, value = a.partition("=")
        if not sep:
            raise SystemExit(f"tag: expected key=value, got {a!r}")
        tags[key] = parse_value(value)
    return tags


def tag(args):
    """stdin -> stdout: every JSON line gets "cfg": {tags}; other lines go to stderr (the log)."""
    cfg = parse_tags(args)
    for line in sys.stdin:
        if line.startswith("{"):
            row = json.loads(line)
            row["cfg"] = cfg
            print(json.dumps(row), flush=True)
        elif line.strip():
            sys.stderr.write(line)


def attention_md(args):
    """The table of `attnlab bench attention`'s report.md as JSON lines.

    Its rows: | method | T | forward ms | forward peak MiB | fwd+bwd ms | fwd+bwd peak MiB | note |
    with empty cells for a skipped method.
    """
    path, cfg = Path(args[0]), parse_tags(args[1:])
    number = lambda s: float(s) if s.strip() else None
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or not cells[1].isdigit():
            continue  # the header, its rule, or prose
        method, T, f_ms, f_mib, fb_ms, fb_mib, note = cells
        print(json.dumps({"impl": "attnlab", "method": method, "T": int(T), "B": 1,
                          "fwd_ms": number(f_ms), "fwdbwd_ms": number(fb_ms),
                          "fwd_peak_mib": number(f_mib), "fwdbwd_peak_mib": number(fb_mib),
                          "note": note, "cfg": cfg}), flush=True)


# ---------- the report ----------

SHAPES = {  # what bench/run_cpu_bench.sh runs; the report prints it next to the tables
    "S1": "4 layers, 4 heads, embd 128, block 64, batch 12",
    "S2": "6 layers, 6 heads, embd 384, block 256, batch 8",
}


def rows(path):
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.startswith("{")]


def by_key_and_round(path, key):
    """{configuration key: {round: row}}."""
    out = defaultdict(dict)
    for r in rows(path):
        if "cfg" in r:
            out[key(r)][r["cfg"].get("round", 1)] = r
    return out


def median_of(runs, field):
    values = [r[field] for r in runs if r.get(field) is not None]
    return statistics.median(values) if values else None


def ratios(ours, torch, field):
    """torch / ours for each round both sides finished, in round order."""
    out = []
    for rnd in sorted(set(ours) & set(torch)):
        o, t = ours[rnd].get(field), torch[rnd].get(field)
        if o and t:
            out.append(t / o)
    return out


def fmt(x, digits=3):
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:.0f}"


def fmt_ratio(rs):
    return f"**{statistics.median(rs):.2f}**" if rs else "-"


def fmt_spread(rs):
    return " / ".join(f"{r:.2f}" for r in rs) if rs else "-"


def load1(row):
    """The 1-minute load average read just before this run ("-" if not recorded)."""
    text = row.get("cfg", {}).get("load")
    return text.split()[0] if isinstance(text, str) and text else "-"


def loads(ours, torch):
    """'ours/torch' 1-minute load before each round's runs."""
    return " · ".join(f"{load1(ours[r]) if r in ours else '-'}/{load1(torch[r]) if r in torch else '-'}"
                      for r in sorted(set(ours) | set(torch))) or "-"


def mismatches(all_rows):
    """Rows whose binary reports a threads/dropout value other than the one asked for."""
    found = []
    for r in all_rows:
        cfg = r.get("cfg", {})
        for field in ("threads", "dropout", "attn_dropout"):
            if field in cfg and r.get(field) is not None and float(r[field]) != float(cfg[field]):
                found.append(f"{r.get('impl')} {r.get('attention', r.get('method', ''))} round "
                             f"{cfg.get('round')}: asked {field}={cfg[field]}, it reports {r[field]}")
    return found


def round_table(out):
    marks = defaultdict(dict)
    for r in rows(out / "rounds.jsonl"):
        marks[r["round"]][r["at"]] = r
    if not marks:
        return
    print("## Load average, each round\n")
    print("/proc/loadavg: 1, 5 and 15-minute averages, running/total tasks. The machine's "
          "cores are listed under the tables.\n")
    print("| round | at the start | at the end | minutes |")
    print("| ---: | --- | --- | ---: |")
    for rnd in sorted(marks):
        s, e = marks[rnd].get("start", {}), marks[rnd].get("end", {})
        minutes = (e["epoch"] - s["epoch"]) / 60 if "epoch" in s and "epoch" in e else None
        print(f"| {rnd} | {s.get('loadavg', '-')} | {e.get('loadavg', '-')} | {fmt(minutes, 2)} |")
    print()


def train_table(out):
    key = lambda r: (r["cfg"]["shape"], r["cfg"]["threads"], r["cfg"]["dropout"],
                     r["cfg"]["attn_dropout"], r["attention"])
    ours = by_key_and_round(out / "train_ours.jsonl", key)
    torch = by_key_and_round(out / "train_torch.jsonl", key)
    if not ours and not torch:
        return
    print("## One training step (forward, cross-entropy, backward, AdamW), fp32\n")
    for name, text in SHAPES.items():
        print(f"- {name}: {text}, vocab 65")
    print("\nMedian ms of the timed steps; fwd / bwd / opt: the same steps cut at the phase "
          "boundaries. Dropout = residual (embeddings, attention and MLP outputs) / attention "
          "probabilities. Ratio = torch ms / ours ms (>1: ours faster). Load: 1-minute load average "
          "before our run / before torch's, each round. Loss: after each side's last step, a "
          "sanity check only (the two sides draw different initial weights and dropout masks, and "
          "our binary runs a second set of steps for its split).\n")
    print("| shape | attention (ours / torch) | threads | dropout | ours ms | torch ms | ratio "
          "| ours fwd / bwd / opt | torch fwd / bwd / opt | ratio of each round | load, each round "
          "| ours peak MiB | loss ours / torch |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | --- |")
    for k in sorted(set(ours) | set(torch), key=lambda k: (k[0], k[4] != "mha", k[4], k[1], k[2], k[3])):
        o, t = ours.get(k, {}), torch.get(k, {})
        ov, tv = list(o.values()), list(t.values())
        peer = tv[0].get("torch_attention", "?") if tv else "?"
        split = lambda rs: (" / ".join(fmt(median_of(rs, f)) for f in ("fwd_ms", "bwd_ms", "opt_ms"))
                            if rs else "-")
        rs = ratios(o, t, "median_ms")
        loss = f"{fmt(median_of(ov, 'loss'), 4)} / {fmt(median_of(tv, 'loss'), 4)}"
        print(f"| {k[0]} | {k[4]} / {peer} | {k[1]} | {k[2]:g} / {k[3]:g} | {fmt(median_of(ov, 'median_ms'))} "
              f"| {fmt(median_of(tv, 'median_ms'))} | {fmt_ratio(rs)} | {split(ov)} | {split(tv)} "
              f"| {fmt_spread(rs)} | {loads(o, t)} | {fmt(median_of(ov, 'peak_mib'))} | {loss} |")
    params = sorted({(r["cfg"]["shape"], r.get("impl", "?").split()[0], r.get("params"))
                     for side in (ours, torch) for runs in side.values() for r in runs.values()})
    if params:
        print("\nParameters (shape, side): " + ", ".join(f"{s} {i} {p}" for s, i, p in params) + ".")
    adamw = {r.get("adamw") for runs in torch.values() for r in runs.values() if r.get("adamw")}
    if adamw:
        print(f"PyTorch's AdamW: {', '.join(sorted(adamw))} (torch 1.13 has no fused CPU AdamW).")
    print()


def flash_table(out):
    key_o = lambda r: (r["T"], r["cfg"]["threads"])
    key_t = lambda r: (r["T"], r["cfg"]["threads"], r.get("torch_impl", "?"))
    ours = by_key_and_round(out / "flash_ours.jsonl", key_o)
    torch = by_key_and_round(out / "flash_torch.jsonl", key_t)
    if not ours and not torch:
        return
    any_row = next(iter(r for side in (ours, torch) for runs in side.values() for r in runs.values()))
    print("## Causal attention, fp32: our flash (`bench_flash`) vs PyTorch\n")
    print(f"B={any_row.get('B')}, H={any_row.get('H')}, D={any_row.get('D')}; median ms of the timed "
          "runs; forward without a graph, forward+backward = out.backward(dout). One row per "
          "PyTorch implementation (see attention_bench_torch_cpu.py): `manual` is nanoGPT's "
          "q k^T / mask / softmax / @ v, `sdpa_private` PyTorch 1.13's private "
          "F._scaled_dot_product_attention (composite ops, still T x T), `sdpa` the public one "
          "of PyTorch >= 2.0. Ours GFLOP/s counts the causal half: forward 2 B H T^2 D, "
          "forward+backward 3.5x that. Ratio = torch / ours (>1: ours faster).\n")
    print("| T | threads | torch impl | ours fwd | torch fwd | ratio | ours fwd+bwd | torch fwd+bwd "
          "| ratio | ours GFLOP/s fwd / f+b | ours peak MiB f / f+b | fwd ratio of each round "
          "| f+b ratio of each round | load, each round |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    keys = sorted(set(torch) | {k + ("-",) for k in ours if not any(t[:2] == k for t in torch)})
    for k in keys:
        o, t = ours.get(k[:2], {}), torch.get(k, {})
        ov, tv = list(o.values()), list(t.values())
        fwd, fb = median_of(ov, "fwd_ms"), median_of(ov, "fwdbwd_ms")
        gf = "-"
        if ov and fwd and fb:
            flops = 2 * ov[0]["B"] * ov[0]["H"] * k[0] ** 2 * ov[0]["D"]
            gf = f"{flops / fwd / 1e6:.1f} / {3.5 * flops / fb / 1e6:.1f}"
        peak = f"{fmt(median_of(ov, 'fwd_peak_mib'))} / {fmt(median_of(ov, 'fwdbwd_peak_mib'))}" if ov else "-"
        r_f, r_fb = ratios(o, t, "fwd_ms"), ratios(o, t, "fwdbwd_ms")
        print(f"| {k[0]} | {k[1]} | {k[2]} | {fmt(fwd)} | {fmt(median_of(tv, 'fwd_ms'))} | {fmt_ratio(r_f)} "
              f"| {fmt(fb)} | {fmt(median_of(tv, 'fwdbwd_ms'))} | {fmt_ratio(r_fb)} | {gf} | {peak} "
              f"| {fmt_spread(r_f)} | {fmt_spread(r_fb)} | {loads(o, t)} |")
    print("\nPyTorch reports no host-memory peak, so its peak columns are absent.\n")


def methods_table(out):
    ours = by_key_and_round(out / "methods_ours.jsonl", lambda r: (r["method"], r["T"], r["cfg"]["threads"]))
    torch = by_key_and_round(out / "methods_torch.jsonl",
                             lambda r: (r["torch_impl"], r["T"], r["cfg"]["threads"]))
    if not ours and not torch:
        return
    impls = {k[0] for k in torch}
    # Which PyTorch implementation answers which of ours: the T x T ones answer
    # our dense attention; our flash gets the public SDPA where this PyTorch has
    # it (a flash-style CPU kernel) and otherwise the same T x T ones, since a
    # PyTorch 1.13 user has nothing else.
    peers = {"dense": [i for i in ("manual", "sdpa_private") if i in impls],
             "flash": ["sdpa"] if "sdpa" in impls else [i for i in ("sdpa_private", "manual") if i in impls],
             "linear": ["linear"] if "linear" in impls else []}
    print("## Dense, flash and linear attention against length (`attnlab bench attention`)\n")
    print("B=1, H=4, D=64, fp32, causal. Both sides: the best of the runs (no warm-up), the "
          "forward timed while recording the graph, fwd+bwd = that forward + sum(out).backward(). "
          "Linear on the PyTorch side is our linear variant's math (elu + 1 features, chunks of 64) "
          "written in PyTorch ops. T x T methods needing more than 4 GiB are skipped on both sides. "
          "Ratio = torch / ours (>1: ours faster).\n")
    print("| ours / torch | T | threads | ours fwd | torch fwd | ratio | ours fwd+bwd | torch fwd+bwd "
          "| ratio | f+b ratio of each round | ours peak MiB f / f+b | load, each round | note |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |")
    order = {"dense": 0, "flash": 1, "linear": 2}
    for method, T, threads in sorted(ours, key=lambda k: (k[2], k[1], order.get(k[0], 9), k[0])):
        o = ours[(method, T, threads)]
        ov = list(o.values())
        for impl in peers.get(method) or ["-"]:
            t = torch.get((impl, T, threads), {})
            tv = list(t.values())
            note = next((r.get("note") for r in ov + tv if r.get("note")), "")
            r_f, r_fb = ratios(o, t, "fwd_ms"), ratios(o, t, "fwdbwd_ms")
            peak = f"{fmt(median_of(ov, 'fwd_peak_mib'))} / {fmt(median_of(ov, 'fwdbwd_peak_mib'))}"
            print(f"| {method} / {impl} | {T} | {threads} | {fmt(median_of(ov, 'fwd_ms'))} "
                  f"| {fmt(median_of(tv, 'fwd_ms'))} | {fmt_ratio(r_f)} | {fmt(median_of(ov, 'fwdbwd_ms'))} "
                  f"| {fmt(median_of(tv, 'fwdbwd_ms'))} | {fmt_ratio(r_fb)} | {fmt_spread(r_fb)} "
                  f"| {peak} | {loads(o, t)} | {note} |")
    print()


def report(out):
    out = Path(out)
    everything = [r for f in sorted(out.glob("*.jsonl")) if f.name != "rounds.jsonl" for r in rows(f)]
    torch_rows = [r for r in everything if str(r.get("impl", "")).startswith("torch")]
    n_rounds = max([r["cfg"].get("round", 1) for r in everything if "cfg" in r] or [0])
    print("# CPU benchmarks against PyTorch\n")
    print(f"{n_rounds} round(s); in each, every configuration ran ours and then PyTorch's. "
          "Ratio = torch ms / ours ms: **above 1 means ours is faster**.\n")
    round_table(out)
    train_table(out)
    flash_table(out)
    methods_table(out)
    bad = mismatches(everything)
    if bad:
        print("## Flags that did not take effect\n")
        for b in bad:
            print(f"- {b}")
        print()
    dev = next((r.get("device") for r in torch_rows if r.get("device")), "?")
    ver = next((r.get("torch") for r in torch_rows if r.get("torch")), "?")
    note = next((r.get("note_sdpa") for r in torch_rows if r.get("note_sdpa")), None)
    machine = (out / "machine.txt").read_text().strip() if (out / "machine.txt").exists() else ""
    print(f"Device: {dev}{' (' + machine + ')' if machine else ''}; PyTorch {ver}.")
    # How PyTorch's threads were set up: its OpenMP pool, the BLAS under it
    # (a separate pool in a distribution build) and OpenMP's wait policy.
    setups = sorted({(str(r.get("threads")), str(r.get("blas")), str(r.get("blas_threads")),
                      str(r.get("omp_wait_policy"))) for r in torch_rows if r.get("threads") is not None})
    if setups:
        print("PyTorch threads (torch / BLAS threads, OMP_WAIT_POLICY): " + ", ".join(
            f"{t} / {b} {bt}, {w}" for t, b, bt, w in setups) + ".")
    if note:
        print(f"{note}. The peer of our flash attention is therefore the attention a PyTorch {ver} "
              "user can run (`sdpa_private` and `manual`), not a fused kernel.")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "tag":
        tag(sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "attention-md":
        attention_md(sys.argv[2:])
    elif len(sys.argv) == 2:
        report(sys.argv[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
