#!/usr/bin/env bash
# Run folders through the `attnlab` command (the library-level tests are
# RunFolders.* and CrashSafety.*):
#   - the main job's compare command (scripts/main.sh), at test size, run
#     twice into one folder: both succeed, the second reuses every run;
#   - a comparison stopped by SIGINT while its second variant trains keeps
#     the finished variant, saves the one in flight, and the command it
#     prints finishes the comparison, reusing and resuming them.
# Usage: run_folders.sh path/to/attnlab path/to/scripts/main.sh   (ctest: cli_run_folders)
set -euo pipefail
bin=$(realpath "$1")
main_sh=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
corpus=$dir/corpus.txt
for i in $(seq 80); do echo "to be or not to be, that is the question."; done > "$corpus"

# ---- the main job's comparison, twice ----
# Its command as main.sh has it (continuation lines joined), pointed at this
# binary, corpus and folder; then sizes that take seconds (the last value of
# an option wins).
cmd=$(sed -n '/attnlab compare/,/[^\\]$/p' "$main_sh" | sed 's/\\$//' | tr '\n' ' ')
[ -n "$cmd" ] || fail "no compare command found in $main_sh"
cmd=${cmd//.\/build\/default\/attnlab/\"\$bin\"}
cmd=${cmd//runs\/compare/\"\$dir\/compare\"}
test_size="--seeds 2 --steps 4 --eval-every 2 --eval-batches 1 --layers 1 --heads 2 --embd 16 --block 16 --batch 4"
test_size+=" --eval-windows 2 --sample-tokens 0 --quiet"
for round in 1 2; do
  eval "$cmd $test_size" > "$dir/compare$round.log" 2>&1 || fail "main.sh's compare, round $round: $(cat "$dir/compare$round.log")"
done
grep -q "^report: $dir/compare/report.md" "$dir/compare2.log" || fail "the second round wrote no report: $(cat "$dir/compare2.log")"
reused=$(grep -c '| reused |$' "$dir/compare/report.md" || true)
[ "$reused" = 12 ] || fail "the second round reused $reused runs, expected all 12 (6 variants x 2 seeds)"

# ---- SIGINT during a comparison ----
# A time budget (one second of training per run) rather than steps: the
# first variant is done after a second on any build, sanitized or not, and
# the second is surely still training when the signal comes.
cmp=("$bin" compare --data "$corpus" --out "$dir/cmp" --attention mha,mqa --budget seconds --seconds 1
     --steps 1000000 --eval-every 1000000 --eval-batches 1 --layers 1 --heads 2 --embd 16 --block 16 --batch 4
     --sample-tokens 0 --quiet)
"${cmp[@]}" > /dev/null 2> "$dir/cmp.err" &
pid=$!
for i in $(seq 3000); do [ -s "$dir/cmp/mqa/seed-1337/metrics.jsonl" ] && break; sleep 0.01; done
[ -s "$dir/cmp/mqa/seed-1337/metrics.jsonl" ] || fail "the second variant never started: $(cat "$dir/cmp.err")"
# Stopped while the signal arrives, so that it surely lands inside mqa's run.
kill -STOP "$pid"; kill -INT "$pid"; kill -CONT "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 130 ] || fail "compare after SIGINT: exit status $rc: $(cat "$dir/cmp.err")"
grep -q '"finished": true' "$dir/cmp/mha/seed-1337/compare.json" || fail "the finished variant is not kept as finished"
grep -q '"finished": false' "$dir/cmp/mqa/seed-1337/compare.json" || fail "the variant in flight is not marked unfinished"
[ -f "$dir/cmp/mqa/seed-1337/checkpoint.safetensors" ] || fail "the variant in flight was not saved"
[ ! -e "$dir/cmp/report.md" ] || fail "an interrupted comparison wrote a report"
again=$(sed -n 's/^attnlab: SIGINT: the run in flight is saved and the finished ones are kept; continue with: //p' "$dir/cmp.err")
[ -n "$again" ] || fail "no command to continue with: $(cat "$dir/cmp.err")"
eval "$again" > /dev/null 2>&1 || fail "the printed command failed: $again"
grep -qE '^\| `mha` \| 1337 \|.*\| reused \|$' "$dir/cmp/report.md" || fail "mha was not reused: $(grep 1337 "$dir/cmp/report.md")"
grep -qE '^\| `mqa` \| 1337 \|.*\| resumed \|$' "$dir/cmp/report.md" || fail "mqa was not resumed: $(grep 1337 "$dir/cmp/report.md")"
echo "run_folders: all checks passed"
