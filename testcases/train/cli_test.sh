#!/usr/bin/env bash
# End-to-end test of the `attnlab` command: train a tiny model, resume it,
# sample from it, and check that bad values give one-line errors that name
# the value. Usage: cli_test.sh path/to/attnlab
set -euo pipefail
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for i in $(seq 80); do echo "to be or not to be, that is the question."; done > "$dir/corpus.txt"
common=(--data "$dir/corpus.txt" --layers 1 --heads 2 --embd 16 --block 16 --batch 4 --quiet
        --eval-every 10 --eval-batches 2 --sample-tokens 30)

"$bin" train "${common[@]}" --out "$dir/run" --steps 20 > "$dir/train.log"
for f in config.json metrics.jsonl checkpoint.safetensors sample.txt; do
  [ -s "$dir/run/$f" ] || fail "run folder lacks $f"
done
grep -q '"split":"val"' "$dir/run/metrics.jsonl" || fail "no val loss in metrics.jsonl"

"$bin" train "${common[@]}" --out "$dir/run" --steps 30 --resume "$dir/run" > /dev/null
[ "$(grep -c '"split":"val"' "$dir/run/metrics.jsonl")" = 3 ] || fail "resume did not add the step-30 eval"

out=$("$bin" sample --ckpt "$dir/run" --prompt "to be" --tokens 40 --temperature 0.8 --top-k 5 --seed 1)
[ "${out:0:5}" = "to be" ] || fail "sample does not start with the prompt: $out"
[ ${#out} -ge 40 ] || fail "sample too short: $out"
out2=$("$bin" sample --ckpt "$dir/run" --prompt "to be" --tokens 40 --temperature 0.8 --top-k 5 --seed 1)
[ "$out" = "$out2" ] || fail "same seed gave different samples"

# Each bad value: exit status 1 (or CLI11's usage status) and a message naming it.
expect_error() {
  local pattern=$1; shift
  local msg
  if msg=$("$bin" "$@" 2>&1); then fail "expected an error for: $*"; fi
  echo "$msg" | grep -qF -- "$pattern" || fail "error for '$*' lacks '$pattern': $msg"
}
expect_error "unknown variant 'nope'" train "${common[@]}" --out "$dir/bad" --attention nope
expect_error "--heads 3 must divide --embd 16" train "${common[@]}" --out "$dir/bad" --heads 3
expect_error "cannot open" train "${common[@]}" --out "$dir/bad" --data "$dir/missing.txt"
expect_error "--block 4000 is larger than the corpus allows" train "${common[@]}" --out "$dir/bad" --block 4000
expect_error "safetensors" sample --ckpt "$dir/corpus.txt"
expect_error "--steps must be in 1..100000000" train "${common[@]}" --out "$dir/bad" --steps 0
# Without a GPU, asking for one names the device (with or without CUDA built in).
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  expect_error "device cuda:0: " train "${common[@]}" --out "$dir/bad" --device cuda
fi
echo "cli_test: all checks passed"
