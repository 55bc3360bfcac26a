#!/usr/bin/env bash
# The main job: installs dependencies, builds, fetches the corpus and
# compares attention variants on small char-level GPTs as an experiment:
# every variant trains with 3 seeds on the same data, model size and steps
# (only the attention differs), the report tests each difference against
# the noise between seeds (Welch's test, and the paired test over seeds
# with Holm's adjustment), and every model is also read at 2x and 4x its
# training block (length generalisation). Report: runs/compare/report.md.
# The comparison took 8 min 20 s on 2 cores (README, "What the main job shows"); run again,
# it reuses the finished runs and resumes an interrupted one.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"
corpus=$(bash data/fetch.sh | tail -n 1)
# Variants: learned positions (mha, and mqa's shared K/V head), RoPE, RoPE
# with NTK scaling, ALiBi, and a RoPE sliding window: one per position
# scheme, so the extrapolation table compares them.
./build/default/attnlab compare --data "$corpus" --out runs/compare \
  --attention mha,mqa,mha:rope,mha:rope,ntk=4,mha:alibi,window:size=32,rope \
  --seeds 3 --steps 500 --eval-every 100 --eval-batches 16 \
  --layers 2 --heads 4 --embd 64 --block 128 --batch 32 --lr 6e-3 \
  --extrapolate 2,4 --eval-windows 128
echo "report: runs/compare/report.md"
