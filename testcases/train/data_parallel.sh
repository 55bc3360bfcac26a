#!/usr/bin/env bash
# Several processes under mpirun: the communicator, ring attention
# (attention/ring.h) and data-parallel training end to end
# (train/data_parallel.h).
# Usage: data_parallel.sh ATTNLAB CHECKPOINT_DIFF COMM_CHECK RING_CHECK MPIRUN
# MPIRUN is empty for a build without MPI: then --data-parallel must say
# what to install, and that is all there is to test (exit 77 = skipped).
set -euo pipefail
bin=$1 diff_tool=$2 comm_check=$3 ring_check=$4 mpirun=${5:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for i in $(seq 200); do echo "to be or not to be, that is the question: whether 'tis nobler in the mind."; done > "$dir/corpus.txt"
common=(--data "$dir/corpus.txt" --layers 2 --heads 2 --embd 32 --block 24 --batch 8 --quiet
        --eval-every 3 --eval-batches 2 --sample-tokens 10 --dropout 0.1)

if [ -z "$mpirun" ]; then
  if "$bin" train "${common[@]}" --steps 2 --out "$dir/x" --data-parallel 2> "$dir/err"; then fail "--data-parallel ran without MPI"; fi
  grep -q "attnlab was built without MPI.*libopenmpi-dev openmpi-bin" "$dir/err" || fail "no-MPI message: $(cat "$dir/err")"
  [ ! -e "$dir/x" ] || fail "a refused run made its folder"
  echo "SKIP: this build has no MPI (the message that says so is checked)"
  exit 77
fi
# The test machines run as root and have fewer cores than ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
# One machine: no ssh needed to start the ranks (plm isolated), and no
# ptrace-based single copy between them (containers often forbid it).
export OMPI_MCA_plm=isolated OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi() { "$mpirun" -np "$@"; }

# The communicator and the gradient averaging on 2 and 3 ranks; ring
# attention against one process's flash attention on 2, 3 and 4.
for check in "$comm_check 2" "$comm_check 3" "$ring_check 2" "$ring_check 3" "$ring_check 4"; do
  read -r program n <<< "$check"
  log="$dir/$(basename "$program")$n.log"
  mpi "$n" "$program" > "$log" 2>&1 || fail "$(basename "$program") on $n ranks: $(cat "$log")"
  [ "$(grep -c 'every check held' "$log")" = "$n" ] || fail "$(basename "$program") on $n ranks: $(cat "$log")"
done

# N = 2 and 4 end where one process with the same global batch ends, up to
# the order of the gradient sums: within 1e-5 after 6 AdamW steps (measured
# 3e-8). Dropout numbers samples by their place in the global batch, so the
# masks are the same.
"$bin" train "${common[@]}" --steps 6 --out "$dir/one" > /dev/null
for n in 2 4; do
  mpi "$n" "$bin" train --data-parallel "${common[@]}" --steps 6 --out "$dir/dp$n" > "$dir/dp$n.log"
  [ "$(grep -c '^trained 6 steps' "$dir/dp$n.log")" = 1 ] || fail "rank 0 alone reports: $(cat "$dir/dp$n.log")"
  "$diff_tool" "$dir/dp$n" "$dir/one" 1e-5 || fail "$n ranks and one process differ"
  for f in config.json metrics.jsonl checkpoint.safetensors sample.txt; do
    [ -s "$dir/dp$n/$f" ] || fail "the $n-rank run folder lacks $f"
  done
done
# The same N again: bitwise the same run. And stopped at step 3, resumed: the same.
mpi 2 "$bin" train --data-parallel "${common[@]}" --steps 6 --out "$dir/again" > /dev/null
"$diff_tool" "$dir/again" "$dir/dp2" || fail "two 2-rank runs differ"
mpi 2 "$bin" train --data-parallel "${common[@]}" --steps 6 --stop-at 3 --out "$dir/resumed" > /dev/null
mpi 2 "$bin" train --data-parallel --data "$dir/corpus.txt" --steps 6 --resume "$dir/resumed" --quiet > /dev/null
"$diff_tool" "$dir/resumed" "$dir/dp2" || fail "a resumed 2-rank run differs from an unbroken one"

# The ring variant splits every sequence over the ranks instead of the
# batch (context parallel): on 2 and 4 ranks, zigzag and contiguous, it
# ends where one process (a ring of one: flash attention) ends.
ring=(--data "$dir/corpus.txt" --layers 2 --heads 2 --embd 32 --block 32 --batch 4 --quiet --eval-every 3
      --eval-batches 2 --sample-tokens 10 --dropout 0 --steps 4)
"$bin" train "${ring[@]}" --attention ring --out "$dir/ring1" > /dev/null
for run in "2 zigzag" "4 zigzag" "2 contiguous"; do
  read -r n split <<< "$run"
  mpi "$n" "$bin" train --data-parallel "${ring[@]}" --attention "ring:split=$split" --out "$dir/ring$n$split" > /dev/null
  "$diff_tool" "$dir/ring$n$split" "$dir/ring1" 1e-5 || fail "ring attention, $split over $n ranks, and one process differ"
done
if mpi 4 "$bin" train --data-parallel "${ring[@]}" --attention ring --block 36 --out "$dir/ring36" > /dev/null 2> "$dir/ring36.err"; then
  fail "--block 36 over 4 zigzag ranks ran"
fi
grep -q "train: --block 36 does not split evenly over 4 ranks for ring attention (8 zigzag chunks); use a multiple of 8" \
  "$dir/ring36.err" || fail "ring block: $(cat "$dir/ring36.err")"

# A batch that does not split: every rank stops with the reason, no folder.
if mpi 2 "$bin" train --data-parallel "${common[@]}" --batch 7 --steps 2 --out "$dir/odd" > /dev/null 2> "$dir/odd.err"; then
  fail "--batch 7 over 2 ranks ran"
fi
grep -q "train: --batch 7 does not split evenly over 2 ranks; use a multiple of 2" "$dir/odd.err" || fail "odd batch: $(cat "$dir/odd.err")"
[ ! -e "$dir/odd" ] || fail "a refused run made its folder"

# A rank killed with -9: the job ends within a bounded time, not hanging,
# and the last checkpoint is whole.
mpi 2 "$bin" train --data-parallel "${common[@]}" --steps 100000 --eval-every 1000 --checkpoint-every 5 \
  --out "$dir/killed" > /dev/null 2> "$dir/killed.err" &
job=$!
for _ in $(seq 300); do [ -s "$dir/killed/checkpoint.safetensors" ] && break; sleep 0.1; done
[ -s "$dir/killed/checkpoint.safetensors" ] || fail "the long run wrote no checkpoint"
victim=$(pgrep -f -- "--out $dir/killed" | while read -r p; do [ "$p" != "$job" ] && [ "$(ps -o comm= -p "$p")" = attnlab ] && echo "$p"; done | tail -n 1)
[ -n "$victim" ] || fail "no rank process found"
kill -9 "$victim"
for _ in $(seq 300); do kill -0 "$job" 2> /dev/null || break; sleep 0.1; done
if kill -0 "$job" 2> /dev/null; then kill -9 "$job"; fail "the job still ran 30 s after a rank died"; fi
if wait "$job"; then fail "the job ended with status 0 after a rank died"; fi
"$diff_tool" "$dir/killed" "$dir/killed" > /dev/null || fail "the checkpoint left by the killed job does not load"

# compare over 2 ranks: the report is written once, by rank 0.
mpi 2 "$bin" compare --data-parallel "${common[@]}" --steps 3 --attention mha,mqa --out "$dir/cmp" > "$dir/cmp.log"
[ -s "$dir/cmp/report.md" ] || fail "compare over 2 ranks wrote no report"
[ "$(grep -c '^report:' "$dir/cmp.log")" = 1 ] || fail "compare's summary printed $(grep -c '^report:' "$dir/cmp.log") times"
if mpi 2 "$bin" compare --data-parallel "${common[@]}" --steps 3 --attention mha > /dev/null 2> "$dir/cmp.err"; then
  fail "compare --data-parallel without --out ran"
fi
grep -q "compare: --data-parallel needs --out" "$dir/cmp.err" || fail "compare without --out: $(cat "$dir/cmp.err")"
echo "data parallel: every check held"
