#!/usr/bin/env bash
# GPU benchmarks against PyTorch, in one go: builds bench_train_step and
# bench_flash (CUDA), runs them and their PyTorch peers, and writes a
# markdown report (the tables of bench/RESULTS.md).
#
#   bash bench/run_gpu_bench.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR (default build/bench_gpu) is configured if it is new (Release,
# CUDA on, tests off; set CUDA_ARCH, default 90 = H100/H200). An existing
# build folder is reused as it is. OUT_DIR (default runs/gpu_bench) gets
# the raw JSON lines, the logs and report.md. Needs an NVIDIA GPU, nvcc and
# a python3 with PyTorch. RUNS (default 3) rounds of both sides; the
# tables give medians and every round's ratio.
#
# PROFILE=1 adds where the time goes: Nsight Compute's time of every kernel
# of two training steps summed by kernel name (ours, mha and flash, TF32),
# torch.profiler's top kernels of one PyTorch step, and ncu's basic report
# of our flash kernels at T=4096 (profile_*.txt, ncu_flash_kernels.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/bench_gpu}
out=${2:-$root/runs/gpu_bench}
mkdir -p "$out"

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DATTNLAB_BUILD_TESTS=OFF -DATTNLAB_BUILD_BENCH=ON
fi
cmake --build "$build" --target bench_train_step bench_flash

# RUNS rounds, each running our side and then PyTorch's: a machine that
# slows down for a while hits both sides of a round, and the report lists
# every round's ratio next to the median.
runs=${RUNS:-3}
for f in train_ours train_torch flash_ours flash_torch; do : > "$out/$f.jsonl"; done
for run in $(seq 1 "$runs"); do
  echo "== round $run of $runs: training step, attnlab" >&2
  "$build/bench_train_step" | tee -a "$out/train_ours.jsonl"
  echo "== round $run of $runs: training step, PyTorch" >&2
  python3 "$root/bench/train_step_torch.py" | tee -a "$out/train_torch.jsonl"
  echo "== round $run of $runs: causal attention, attnlab flash" >&2
  "$build/bench_flash" --warmup 5 --repeats 15 | tee -a "$out/flash_ours.jsonl"
  echo "== round $run of $runs: causal attention, PyTorch SDPA" >&2
  python3 "$root/bench/attention_bench_torch.py" --warmup 5 --repeats 15 | tee -a "$out/flash_torch.jsonl"
done

python3 "$root/bench/bench_report.py" "$out" > "$out/report.md"
cat "$out/report.md"

if [ "${PROFILE:-0}" = 1 ]; then
  set +e  # a profiler that cannot run on this machine leaves the tables above intact
  for att in mha flash; do
    echo "== profile: attnlab step, $att, tf32 (ncu, 2 steps)" >&2
    ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw --print-units base \
      --print-kernel-base function "$build/bench_train_step" --attention $att --precision tf32 \
      --warmup 0 --steps 1 > "$out/ncu_$att.csv" 2> "$out/ncu_$att.log"
    python3 "$root/bench/ncu_summary.py" "$out/ncu_$att.csv" 2 | tee "$out/profile_$att.txt"
  done
  echo "== profile: PyTorch step, tf32 (torch.profiler)" >&2
  python3 "$root/bench/train_step_torch.py" --profile --precision tf32 --warmup 2 --steps 3 \
    | grep -v '^{' | tee "$out/profile_torch.txt"
  echo "== profile: our flash kernels, T=4096 (ncu basic set)" >&2
  ncu --set basic --section ComputeWorkloadAnalysis -k regex:flash -c 5 "$build/bench_flash" \
    --lengths 4096 --warmup 0 --repeats 1 > "$out/ncu_flash_kernels.txt" 2>&1
  grep -E "flash_|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Executed Ipc A|Theoretical Occ" \
    "$out/ncu_flash_kernels.txt"
fi
