#!/usr/bin/env bash
# Memory per corpus byte at the peak of `attnlab train`, measured from the
# process's peak resident set (getrusage's maxrss, via GNU time):
#
#   bash bench/corpus_memory.sh [ATTNLAB] [MIB]
#
# Trains a tiny model for one step on a generated ASCII corpus of MIB MiB
# (default 200) and on one of 4 KiB, and prints
# (peak_big - peak_small) / (bytes_big - bytes_small): what each byte of
# corpus costs, with the program and the model subtracted. ASCII is the
# worst case for the ids (one 4-byte id per byte; multi-byte characters
# cost less per byte). Needs /usr/bin/time (Debian package `time`).
set -euo pipefail
bin=${1:-build/default/attnlab}
mib=${2:-200}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

python3 - "$dir" "$mib" <<'PY'
import random, sys
folder, mib = sys.argv[1], int(sys.argv[2])
random.seed(1)
words = "call me ishmael some years ago never mind how long precisely the whale ship sea".split()
block = "".join(" ".join(random.choice(words) for _ in range(12)) + ".\n" for _ in range(20000)).encode()
with open(f"{folder}/big.txt", "wb") as f:
    written = 0
    while written < mib << 20:
        f.write(block)
        written += len(block)
open(f"{folder}/small.txt", "wb").write(block[:4096])
PY

peak_kib() {  # peak resident KiB of training one step on corpus $1
  /usr/bin/time -f "%M" "$bin" train --data "$dir/$1.txt" --out "$dir/run_$1" --max-corpus-bytes $((mib * 2 << 20)) \
    --layers 1 --heads 2 --embd 16 --block 16 --batch 4 --steps 1 --eval-batches 1 --sample-tokens 0 \
    --threads 1 --quiet 2>&1 > /dev/null | tail -n 1
}
big=$(peak_kib big)
small=$(peak_kib small)
bytes_big=$(stat -c %s "$dir/big.txt")
bytes_small=$(stat -c %s "$dir/small.txt")
python3 -c "
big, small, nb, ns = $big, $small, $bytes_big, $bytes_small
print(f'corpus {nb} bytes: peak {big / 1024:.0f} MiB; 4 KiB corpus: peak {small / 1024:.0f} MiB')
print(f'{(big - small) * 1024 / (nb - ns):.2f} bytes of memory per corpus byte')"
