#!/usr/bin/env bash
# The main job: installs dependencies, builds, fetches the corpus and trains
# a small char-level GPT on it, writing a run folder under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"
corpus=$(bash data/fetch.sh | tail -n 1)
./build/default/attnlab train --data "$corpus" --out runs/main --steps 600 --eval-every 100 \
  --layers 2 --heads 4 --embd 64 --block 64 --batch 16 --lr 3e-3
echo "loss curve: runs/main/loss.png   sample: runs/main/sample.txt"
