#!/usr/bin/env bash
# One device call that checks a tree on the GPU machine: CUDA build, the
# whole ctest, the recipe-shaped clean-exit run ten times, and
# compute-sanitizer memcheck (leaks included) on a recipe-shaped
# `attnlab train --device cuda` and on the CUDA parity tests.
#
#   bash bench/gpu_verify.sh OUT_DIR       (logs and a summary in OUT_DIR)
#
# The stb headers are not on the GPU machine: carry Debian's
# /usr/include/stb as .carry/stb.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/runs/gpu_verify}
mkdir -p "$out"
build=$root/build/gpu
summary=$out/summary.txt
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

t0=$SECONDS
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DSTB_INCLUDE_DIR="$root/.carry/stb" > "$out/configure.log" 2>&1
cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1 || { note "build FAILED"; tail -40 "$out/build.log"; exit 1; }
note "build: $((SECONDS - t0)) s"

t0=$SECONDS
ctest --test-dir "$build" -j 8 --output-on-failure > "$out/ctest.log" 2>&1
note "ctest ($((SECONDS - t0)) s): $(grep -E '% tests passed' "$out/ctest.log")"
grep -E '\(Failed\)|\*\*\*Failed|Not Run|Timeout' "$out/ctest.log" | tee -a "$summary"
grep -E 'Skipped' "$out/ctest.log" | head -5 >> "$summary"

exits=""
for round in 1 2; do
  bash "$root/testcases/train/gpu_clean_exit.sh" "$build/attnlab" >> "$out/clean_exit.log" 2>&1
  exits="$exits $(grep -c 'exit status 0' "$out/clean_exit.log")"
done
note "recipe-shaped runs that exited 0 (cumulative after each round of 5):$exits"

if command -v compute-sanitizer > /dev/null; then
  work=$(mktemp -d)
  for i in $(seq 1 300); do echo "Call me Ishmael. Some years ago, never mind how long, line $i."; done > "$work/c.txt"
  t0=$SECONDS
  compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 "$build/attnlab" train \
    --data "$work/c.txt" --out "$work/run" --device cuda --steps 2 --layers 6 --heads 6 --embd 384 \
    --block 256 --batch 64 --dropout 0.2 --eval-every 2 --eval-batches 1 --sample-tokens 10 --quiet \
    > "$out/memcheck_train.log" 2>&1
  note "memcheck attnlab train (recipe shape, 2 steps): exit $? in $((SECONDS - t0)) s; $(grep -E 'ERROR SUMMARY|LEAK SUMMARY' "$out/memcheck_train.log" | tr '\n' ' ')"
  t0=$SECONDS
  compute-sanitizer --tool memcheck --leak-check full --error-exitcode 9 "$build/core_tests" \
    --gtest_filter='CudaParity.*:-CudaParity.OutOfMemoryIsAnError:CudaParity.LargeTensorsUse64BitIndexing' > "$out/memcheck_core.log" 2>&1
  note "memcheck core_tests CudaParity.*: exit $? in $((SECONDS - t0)) s; $(grep -E 'ERROR SUMMARY' "$out/memcheck_core.log" | tr '\n' ' ')"
fi
cat "$summary"
