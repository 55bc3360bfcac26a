#!/usr/bin/env bash
# The main job: installs dependencies, builds, fetches the corpus and
# compares attention variants on small char-level GPTs (same seed, data and
# steps; only the attention differs). Report: runs/compare/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)"
corpus=$(bash data/fetch.sh | tail -n 1)
./build/default/attnlab compare --data "$corpus" --out runs/compare \
  --attention mha,gqa:kv_heads=2,mqa,mha:rope,mla:latent=16,linear \
  --steps 300 --eval-every 100 --layers 2 --heads 4 --embd 64 --block 64 --batch 16 --lr 3e-3
echo "report: runs/compare/report.md"
