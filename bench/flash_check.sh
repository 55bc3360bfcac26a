#!/usr/bin/env bash
# Flash attention on a GPU machine, in one go: build, parity tests (CPU twin
# vs CUDA), our timing next to torch SDPA's (same machine, same run), then
# compute-sanitizer memcheck and racecheck on the parity tests.
#
#   bash bench/flash_check.sh [BUILD_DIR] [OUT_DIR]
#
# SANITIZE=0 skips the sanitizers, TRAIN=1 adds the training step with flash
# attention on both sides (train_*.jsonl, report.md), NCU=1 adds Nsight Compute's view of the
# kernels at T=4096 (ncu_flash.txt). Logs go to OUT_DIR; a summary is printed last.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/flash_check}
out=${2:-$root/runs/flash_check}
mkdir -p "$out"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DATTNLAB_BUILD_TESTS=ON -DATTNLAB_BUILD_BENCH=ON \
    > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
cmake --build "$build" -j16 --target core_tests train_tests bench_flash bench_train_step > "$out/build.log" 2>&1 \
  || { grep -E "error|Error" "$out/build.log" | head -30; exit 1; }

summary=()
"$build/core_tests" --gtest_filter='CudaParity.Flash*' > "$out/core_flash.log" 2>&1
summary+=("core_tests CudaParity.Flash*: rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/core_flash.log" | tr '\n' ' ')")
grep "rel err" "$out/core_flash.log"
"$build/train_tests" --gtest_filter='GpuParity.Flash*:*VariantParity*flash*' > "$out/train_flash.log" 2>&1
summary+=("train_tests flash parity: rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/train_flash.log" | tr '\n' ' ')")
grep -E "Failure|FAILED|error|element" "$out/core_flash.log" "$out/train_flash.log" | head -40

echo "== ours" && "$build/bench_flash" ${BENCH_ARGS:-} | tee "$out/flash_ours.jsonl"
echo "== torch" && python3 "$root/bench/attention_bench_torch.py" ${BENCH_ARGS:-} | tee "$out/flash_torch.jsonl"

if [ "${TRAIN:-0}" = 1 ]; then
  echo "== training step, flash: ours, torch"
  "$build/bench_train_step" --attention flash | tee "$out/train_ours.jsonl"
  python3 "$root/bench/train_step_torch.py" --attention flash | tee "$out/train_torch.jsonl"
  python3 "$root/bench/bench_report.py" "$out" > "$out/report.md"
fi
if [ "${SANITIZE:-1}" = 1 ]; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool $([ $tool = memcheck ] && echo --leak-check full) \
      "$build/core_tests" --gtest_filter='CudaParity.Flash*' > "$out/sanitize_$tool.log" 2>&1
    summary+=("sanitizer $tool: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY' "$out/sanitize_$tool.log" | tr '\n' ' ')")
  done
fi
if [ "${NCU:-0}" = 1 ]; then
  ncu --set basic --section ComputeWorkloadAnalysis --section WarpStateStats -k regex:flash -c 4 \
    "$build/bench_flash" --lengths 4096 --warmup 0 --repeats 1 > "$out/ncu_flash.txt" 2>&1
  grep -E "flash_|Duration|Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Executed Ipc A|Stall" \
    "$out/ncu_flash.txt" | head -60
fi
echo "== summary"
printf '%s\n' "${summary[@]}"
python3 - "$out" <<'PY'
import json, sys
ours = {r["T"]: r for r in map(json.loads, open(sys.argv[1] + "/flash_ours.jsonl"))}
torch = {r["T"]: r for r in map(json.loads, open(sys.argv[1] + "/flash_torch.jsonl"))}
for T, o in sorted(ours.items()):
    t = torch.get(T)
    fl = 2 * o["B"] * o["H"] * T * T * o["D"]
    line = f"T={T}: fwd {o['fwd_ms']:.3f} ms ({fl / o['fwd_ms'] / 1e9:.1f} TF/s) f+b {o['fwdbwd_ms']:.3f} ms ({3.5 * fl / o['fwdbwd_ms'] / 1e9:.1f} TF/s)"
    if t:
        line += f" | torch {t['fwd_ms']:.3f} / {t['fwdbwd_ms']:.3f} ms | ratio fwd {t['fwd_ms'] / o['fwd_ms']:.2f} f+b {t['fwdbwd_ms'] / o['fwdbwd_ms']:.2f}"
    print(line)
PY
