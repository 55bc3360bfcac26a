#!/usr/bin/env bash
# `attnlab train --device cuda` at the nanoGPT char recipe's shape (6 layers,
# 6 heads, embd 384, block 256, batch 64, dropout 0.2), five times, a few
# steps each with an evaluation and a checkpoint: every run must exit 0.
# This caught cuBLAS handles destroyed after libcublas's own exit teardown
# ("double free or corruption", status 134, in 5 of 7 runs). Skips (77)
# without a GPU.
#   usage: gpu_clean_exit.sh ATTNLAB_BINARY
set -uo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 400); do echo "It was the best of times, it was the worst of times, said line $i."; done > "$work/corpus.txt"

probe=$("$bin" train --data "$work/corpus.txt" --out "$work/probe" --device cuda --steps 1 \
        --layers 1 --heads 1 --embd 8 --block 8 --batch 1 --eval-every 1 --eval-batches 1 \
        --sample-tokens 0 --quiet 2>&1)
status=$?
if [ $status -ne 0 ] && grep -qE "no CUDA device|built without CUDA" <<<"$probe"; then
  echo "SKIP: no GPU here ($probe)"
  exit 77
fi

failed=0
for run in 1 2 3 4 5; do
  "$bin" train --data "$work/corpus.txt" --out "$work/run$run" --device cuda --steps 4 \
    --layers 6 --heads 6 --embd 384 --block 256 --batch 64 --dropout 0.2 \
    --eval-every 2 --eval-batches 2 --sample-tokens 20 --quiet > "$work/log$run" 2>&1
  status=$?
  echo "run $run: exit status $status"
  if [ $status -ne 0 ]; then
    failed=1
    tail -n 5 "$work/log$run"
  fi
done
exit $failed
