#!/usr/bin/env bash
# CPU benchmarks against PyTorch, in one go: the CPU twin of run_gpu_bench.sh.
# Runs our bench_train_step, bench_flash and `attnlab bench attention` on the
# CPU next to their PyTorch peers (train_step_torch.py --device cpu and
# attention_bench_torch_cpu.py), and writes a markdown report.
#
#   bash bench/run_cpu_bench.sh [BUILD_DIR] [OUT_DIR]
#
# BUILD_DIR (default build/cpu) is used as it is when it exists: this script
# does not rebuild it (on a small shared machine a surprise rebuild competes
# with whoever else is building; BUILD=1 runs `cmake --build` for the three
# targets first). A BUILD_DIR without CMakeCache.txt is configured (Release,
# CUDA, tests and lessons off) and its targets bench_train_step, bench_flash
# and attnlab are built. OUT_DIR (default runs/cpu_bench) gets the JSON
# lines, bench.log (everything printed, with the load average before every
# run) and report.md (bench/cpu_bench_report.py).
#
# What runs, each configuration ours and then PyTorch's, RUNS rounds:
#   training step  S1: 4 layers, 4 heads, embd 128, block 64, batch 12
#                  S2: 6 layers, 6 heads, embd 384, block 256, batch 8
#                  vocab 65, fp32; attention mha (S2 also flash);
#                  dropout 0, and 0.2 with attention dropout 0.2
#   flash          causal attention, B 1, H 4, d 64, T 1024 and 4096
#   methods        dense / flash / linear, B 1, H 4, d 64, T 2048, 8192, 16384
# each at 1 and 2 threads. A full run (3 rounds) takes ~20 minutes on a
# 2-core machine, most of it the S2 steps (~1.5-2 s each on either side).
#
# Knobs (environment): RUNS (3), THREADS ("1 2"), DROPOUTS ("0 0.2"; the
# attention dropout is set to the same value), S2_ATTENTION ("mha,flash"),
# WARMUP (2), S1_STEPS (10), S2_STEPS (5; a step of S2 is ~1.5-2 s), FLASH_LENGTHS
# (1024,4096), FLASH_REPEATS (3), METHODS (1; 0 skips the methods rows),
# METHOD_LENGTHS (2048,8192,16384), METHOD_REPEATS (2), SHAPES ("S1 S2"),
# PYTHON (/usr/bin/python3: Debian's python3-torch), TORCH_OMP_WAIT_POLICY
# (passive; empty = OpenMP's default, see below).
#
# PyTorch's threads: the peers set torch's OpenMP pool *and* the OpenBLAS
# that Debian's torch does its products with to N (train_step_torch.py,
# set_cpu_threads). They run with OMP_WAIT_POLICY=passive: by default
# OpenMP's idle workers spin for a while after every parallel op, and on a
# 2-core machine the spinning worker holds the core OpenBLAS's worker needs
# next; measured on the 2-core VM this was written on, the S1 step at 2
# threads took ~150 ms by default and ~63 ms passive (~64-70 ms at 1 thread).
# A peer hobbled by a setting is no peer; the report says which policy ran.
#
# Why rounds, and why the load average: a CPU benchmark shares the machine
# with everything else on it. Running our side and PyTorch's back to back
# for each configuration means a busy moment hits both sides of the pair,
# and repeating the whole set RUNS times shows how far a ratio moves from
# round to round. /proc/loadavg goes into the log and the report at the
# start and end of each round and before every single run: on 2 cores, a
# load near 1 means another process holds a core, and a 2-thread run then
# spends its time waiting for a descheduled thread at every barrier.
set -uo pipefail  # no -e: one failed run is logged and the rest go on
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/cpu}
out=${2:-$root/runs/cpu_bench}
PY=${PYTHON:-/usr/bin/python3}
report="$root/bench/cpu_bench_report.py"
runs=${RUNS:-3}
threads_list=${THREADS:-"1 2"}
dropouts=${DROPOUTS:-"0 0.2"}
shapes=${SHAPES:-"S1 S2"}
warmup=${WARMUP:-2}
targets=(bench_train_step bench_flash attnlab)
torch_env=(env)  # what PyTorch's runs get in front of them
policy=${TORCH_OMP_WAIT_POLICY-passive}
[ -n "$policy" ] && torch_env=(env OMP_WAIT_POLICY="$policy")
mkdir -p "$out"

# ---- the build: reuse, or configure and build a fresh folder ----
if [ ! -f "$build/CMakeCache.txt" ]; then
  generator=(); command -v ninja > /dev/null && generator=(-G Ninja)
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DATTNLAB_CUDA=OFF \
    -DATTNLAB_BUILD_TESTS=OFF -DATTNLAB_BUILD_LESSONS=OFF -DATTNLAB_BUILD_BENCH=ON || exit 1
  cmake --build "$build" --target "${targets[@]}" || exit 1
elif [ "${BUILD:-0}" = 1 ]; then
  cmake --build "$build" --target "${targets[@]}" || exit 1
fi
for t in "${targets[@]}"; do
  if [ ! -x "$build/$t" ]; then
    echo "run_cpu_bench: $build/$t is missing; build it (cmake --build $build --target ${targets[*]}) or rerun with BUILD=1" >&2
    exit 1
  fi
done

# Everything printed from here on also goes to the log.
: > "$out/bench.log"
exec > >(tee -a "$out/bench.log") 2>&1
for f in train_ours train_torch flash_ours flash_torch methods_ours methods_torch rounds; do
  : > "$out/$f.jsonl"
done
echo "$(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB" > "$out/machine.txt"
echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(cat "$out/machine.txt"); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')"

# ---- which flags our binaries have ----
# The CPU flags (--threads, --dropout, --attn-dropout) are new; a binary
# built before them would stop at the unknown flag. Ask its --help instead
# of guessing: without --threads our side falls back to OPENBLAS_NUM_THREADS
# (the products only, a warning in the log), without --dropout its dropout
# rows are skipped.
has_flag() {  # has_flag FLAG COMMAND...: does COMMAND --help list FLAG?
  local flag=$1; shift
  "$@" --help 2>&1 | grep -qE -- "${flag}([^-a-z]|$)"
}
step_threads="env"; has_flag --threads "$build/bench_train_step" && step_threads=flag
flash_threads="env"; has_flag --threads "$build/bench_flash" && flash_threads=flag
methods_threads="env"; has_flag --threads "$build/attnlab" bench attention && methods_threads=flag
step_dropout=0
has_flag --dropout "$build/bench_train_step" && has_flag --attn-dropout "$build/bench_train_step" && step_dropout=1
for pair in "bench_train_step --threads:$step_threads" "bench_flash --threads:$flash_threads" \
            "attnlab bench attention --threads:$methods_threads"; do
  [ "${pair##*:}" = flag ] || echo "!! warning: ${pair%:*} not supported by this build (OPENBLAS_NUM_THREADS instead)"
done
[ "$step_dropout" = 1 ] || echo "!! warning: bench_train_step lacks --dropout/--attn-dropout: its dropout rows are skipped"

# record FILE TAG=VALUE... -- COMMAND...: run COMMAND, tag its JSON lines
# with what was asked (cfg) and the load average just before it started,
# and append them to FILE. A failure is logged, not fatal.
record() {
  local file=$1; shift
  local -a tags=()
  while [ "$1" != "--" ]; do tags+=("$1"); shift; done
  shift
  local load; load=$(cat /proc/loadavg)
  echo "-- $(date +%T) load $load: $*" >&2
  "$@" | "$PY" "$report" tag "${tags[@]}" "load=$load" | tee -a "$file"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || echo "!! exit $rc: $*" >&2
}

# at_threads flag|env N COMMAND...: run COMMAND (ours) at N threads, with
# `--threads N` where the binary has the flag, else (older builds) through
# OpenBLAS's variable. The log shows the call as "at_threads flag 2 ...".
at_threads() {
  local how=$1 n=$2; shift 2
  if [ "$how" = flag ]; then "$@" --threads "$n"; else OPENBLAS_NUM_THREADS=$n "$@"; fi
}

shape_flags() {
  case $1 in
    S1) echo "--layers 4 --heads 4 --embd 128 --block 64 --batch 12" ;;
    S2) echo "--layers 6 --heads 6 --embd 384 --block 256 --batch 8" ;;
  esac
}

mark_round() {  # mark_round ROUND start|end
  local load; load=$(cat /proc/loadavg)
  echo "== round $1 of $runs, $2: $(date +%T), load $load"
  printf '{"round": %d, "at": "%s", "loadavg": "%s", "epoch": %s}\n' "$1" "$2" "$load" "$(date +%s)" \
    >> "$out/rounds.jsonl"
}

for round in $(seq 1 "$runs"); do
  mark_round "$round" start

  # -- one training step --
  for shape in $shapes; do
    if [ "$shape" = S1 ]; then steps=${S1_STEPS:-10}; attentions=mha; else steps=${S2_STEPS:-5}; attentions=${S2_ATTENTION:-mha,flash}; fi
    read -r -a dims <<< "$(shape_flags "$shape")"
    for threads in $threads_list; do
      for p in $dropouts; do
        for att in ${attentions//,/ }; do
          tags=(round="$round" shape="$shape" threads="$threads" dropout="$p" attn_dropout="$p" attention="$att")
          common=(--attention "$att" --warmup "$warmup" --steps "$steps" "${dims[@]}")
          echo "== round $round: training step $shape, $att, $threads thread(s), dropout $p"
          drop=(); [ "$step_dropout" = 1 ] && drop=(--dropout "$p" --attn-dropout "$p")
          if [ "$p" != 0 ] && [ "$step_dropout" = 0 ]; then
            echo "!! ours skipped: bench_train_step has no --dropout"
          else
            record "$out/train_ours.jsonl" "${tags[@]}" -- \
              at_threads "$step_threads" "$threads" "$build/bench_train_step" --device cpu --precision fp32 \
              "${common[@]}" "${drop[@]}"
          fi
          record "$out/train_torch.jsonl" "${tags[@]}" -- \
            "${torch_env[@]}" "$PY" "$root/bench/train_step_torch.py" --device cpu --threads "$threads" \
            "${common[@]}" --dropout "$p" --attn-dropout "$p"
        done
      done
    done
  done

  # -- causal attention: our flash vs PyTorch's attention --
  for threads in $threads_list; do
    echo "== round $round: causal attention (flash), $threads thread(s)"
    flash_args=(--lengths "${FLASH_LENGTHS:-1024,4096}" --batch 1 --heads 4 --dim 64 --warmup 1
                --repeats "${FLASH_REPEATS:-3}")
    record "$out/flash_ours.jsonl" round="$round" threads="$threads" -- \
      at_threads "$flash_threads" "$threads" "$build/bench_flash" --device cpu "${flash_args[@]}"
    record "$out/flash_torch.jsonl" round="$round" threads="$threads" -- \
      "${torch_env[@]}" "$PY" "$root/bench/attention_bench_torch_cpu.py" --suite flash --threads "$threads" "${flash_args[@]}"
  done

  # -- dense / flash / linear against length --
  if [ "${METHODS:-1}" = 1 ]; then
    for threads in $threads_list; do
      echo "== round $round: dense / flash / linear, $threads thread(s)"
      md="$out/attention_ours/round${round}_threads${threads}"
      load=$(cat /proc/loadavg)
      echo "-- $(date +%T) load $load: attnlab bench attention ($md)"
      # attnlab prints its table to report.md, not as JSON: run it, then convert.
      if at_threads "$methods_threads" "$threads" "$build/attnlab" bench attention --device cpu \
           --methods dense,flash,linear --lengths "${METHOD_LENGTHS:-2048,8192,16384}" --heads 4 --dim 64 \
           --repeats "${METHOD_REPEATS:-2}" --out "$md"; then
        "$PY" "$report" attention-md "$md/report.md" round="$round" threads="$threads" "load=$load" \
          | tee -a "$out/methods_ours.jsonl"
      else
        echo "!! attnlab bench attention failed"
      fi
      record "$out/methods_torch.jsonl" round="$round" threads="$threads" -- \
        "${torch_env[@]}" "$PY" "$root/bench/attention_bench_torch_cpu.py" --suite methods --threads "$threads" \
        --lengths "${METHOD_LENGTHS:-2048,8192,16384}" --heads 4 --dim 64 --repeats "${METHOD_REPEATS:-2}"
    done
  fi

  mark_round "$round" end
done

"$PY" "$report" "$out" > "$out/report.md"
cat "$out/report.md"
