#!/usr/bin/env bash
# The test command: installs dependencies, configures, builds, runs every
# test. Exits non-zero if anything fails.
#
# Then the hardening steps (README, "Sanitizers and fuzzing"): a second,
# smaller build with clang, ASan + UBSan and libFuzzer coverage (preset
# `sanitize`, build/san, CPU only, no lessons) that runs the suites of the
# parts that read files and text (core, attention, train, the CLI) and
# then each fuzz target for ATTNLAB_FUZZ_SECONDS (default 30), all three
# at once. ATTNLAB_HARDENING=0 skips them.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
jobs=$(nproc)

# Without a GPU the CUDA code (when a toolkit is found) is compiled only to
# show that it compiles: one architecture shows that, in half the time.
cuda_arch=()
nvidia-smi >/dev/null 2>&1 || cuda_arch=(-DCMAKE_CUDA_ARCHITECTURES=90)
cmake --preset default "${cuda_arch[@]}" >/dev/null
cmake --build --preset default -j "$jobs"
status=0
ctest --preset default -j "$jobs" || status=$?
# Every lesson suite, run on the solution and on the untouched stub: the counts.
echo "== lesson suites (lessons/suite_check.cmake):"
cat build/default/lessons/suite_reports/*.txt 2>/dev/null || echo "   (no reports: lessons not built)"
[ "$status" = 0 ] || exit "$status"

[ "${ATTNLAB_HARDENING:-1}" = 0 ] && exit 0

# ---- sanitizers: the tests of files and parsing under ASan + UBSan ----
step() { echo "== hardening: $*"; }
t0=$SECONDS
cmake --preset sanitize >/dev/null
cmake --build --preset sanitize -j "$jobs"
step "sanitize build (clang -O1, ASan+UBSan, fuzzer coverage): $((SECONDS - t0)) s"

t0=$SECONDS
# The test preset sets ASAN_OPTIONS (leaks checked) and UBSAN_OPTIONS (halt on error).
ctest --preset sanitize -j "$jobs" > build/san/ctest.log 2>&1 || {
  tail -n 60 build/san/ctest.log
  step "sanitizer tests FAILED (full log: build/san/ctest.log)"
  exit 1
}
step "sanitizer tests: $(grep -Eo '[0-9]+% tests passed.*' build/san/ctest.log) in $((SECONDS - t0)) s"

# ---- fuzzing: each target for a short time, all at once ----
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export OPENBLAS_NUM_THREADS=1 ATTNLAB_THREADS=1
t0=$SECONDS
seconds=${ATTNLAB_FUZZ_SECONDS:-30}
fz=build/san/fuzz
rm -rf "$fz/seeds" && "$fz/fuzz_seeds" "$fz/seeds" >/dev/null
targets=(checkpoint text variant)
pids=()
for t in "${targets[@]}"; do
  # build/san/fuzz/corpus/<t>: what earlier runs found, kept between runs.
  mkdir -p "$fz/corpus/$t" "$fz/artifacts"
  extra=()
  [ -f "fuzz/$t.dict" ] && extra+=("-dict=fuzz/$t.dict")
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t") || seeds=()
  "$fz/fuzz_$t" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$fz/artifacts/$t-" "${extra[@]}" \
    "$fz/corpus/$t" "$fz/seeds/$t" "${seeds[@]}" > "$fz/$t.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  if wait "${pids[$i]}"; then
    runs=$(grep -Eo 'number_of_executed_units: *[0-9]+' "$fz/$t.log" | grep -Eo '[0-9]+$' || echo '?')
    step "fuzz_$t: $runs runs in ${seconds} s, nothing found"
  else
    failed=1
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written|deadly|uncaught' "$fz/$t.log" | head -n 20 || true
    step "fuzz_$t FOUND A PROBLEM (log: $fz/$t.log, input: $fz/artifacts/$t-*)"
  fi
done
step "fuzzing: $((SECONDS - t0)) s"
exit "$failed"
