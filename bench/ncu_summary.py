"""Sums Nsight Compute's per-launch kernel times by kernel name.

usage: ncu --metrics gpu__time_duration.sum --csv --page raw --print-units base \
           --print-kernel-base function PROGRAM ... > launches.csv
       python3 bench/ncu_summary.py launches.csv [STEPS] [TOP]
Prints the TOP kernels by total time (divided by STEPS, the number of
training steps the program ran, so the numbers are per step), with their
share of the total and their launch count: where a step's GPU time goes.
"""
import csv
import sys
from collections import defaultdict


def main():
    path = sys.argv[1]
    steps = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    lines = [l for l in open(path, errors="replace") if l.startswith('"')]
    rows = list(csv.reader(lines))
    header = next(r for r in rows if "Kernel Name" in r)
    name_col, time_col = header.index("Kernel Name"), header.index("gpu__time_duration.sum")
    total_ns, count = defaultdict(float), defaultdict(int)
    for r in rows:
        if r is header or len(r) <= time_col:
            continue
        try:
            ns = float(r[time_col].replace(",", ""))
        except ValueError:
            continue  # the units row
        total_ns[r[name_col][:70]] += ns
        count[r[name_col][:70]] += 1
    grand = sum(total_ns.values())
    print(f"{'kernel':70s} {'ms/step':>8s} {'share':>6s} {'launches/step':>13s}")
    for name, ns in sorted(total_ns.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{name:70s} {ns / 1e6 / steps:8.2f} {100 * ns / grand:5.1f}% {count[name] / steps:13.0f}")
    print(f"{'all kernels':70s} {grand / 1e6 / steps:8.2f} 100.0% {sum(count.values()) / steps:13.0f}")


if __name__ == "__main__":
    main()
