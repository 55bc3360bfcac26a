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

# --attn-dropout: left out, it follows --dropout (stored in the run); given, it
# is its own; a variant without attention probabilities runs without the
# inherited value, saying so once on stderr.
"$bin" train "${common[@]}" --out "$dir/drop" --steps 2 --dropout 0.1 > /dev/null
grep -q '"attn_dropout": 0.1' "$dir/drop/config.json" || fail "--attn-dropout did not follow --dropout 0.1"
"$bin" train "${common[@]}" --out "$dir/drop2" --steps 2 --dropout 0.1 --attn-dropout 0.05 > /dev/null
grep -q '"attn_dropout": 0.05' "$dir/drop2/config.json" || fail "--attn-dropout 0.05 was not stored"
"$bin" train "${common[@]}" --out "$dir/lin" --steps 2 --dropout 0.1 --attention linear > /dev/null 2> "$dir/lin.err"
[ "$(grep -c "attention 'linear' has no attention dropout" "$dir/lin.err")" = 1 ] || fail "linear's notice: $(cat "$dir/lin.err")"
grep -q '"attn_dropout": 0.0' "$dir/lin/config.json" || fail "linear stored an attention dropout"
# Performer (random features, no K/V cache) trains a few steps and samples.
"$bin" train "${common[@]}" --out "$dir/perf" --steps 3 --attention performer:features=64 > /dev/null
[ -s "$dir/perf/sample.txt" ] || fail "the performer run wrote no sample"

# compare with seeds and --extrapolate, then eval on one of its runs: the
# report names the test and n/a for learned positions; the same command
# again reuses every run; eval prints a loss at 4x the block for RoPE.
cmp=(compare "${common[@]}" --out "$dir/cmp" --steps 10 --attention mha,mha:rope --seeds 2 --extrapolate 2,4)
"$bin" "${cmp[@]}" > "$dir/cmp.log" 2> /dev/null
grep -q "Welch" "$dir/cmp/report.md" || fail "compare report lacks the significance test"
grep -q "n/a (learned positions)" "$dir/cmp/report.md" || fail "compare report lacks n/a for learned positions"
grep -qF -- "--seeds 2 --extrapolate 2,4" "$dir/cmp/report.md" || fail "compare report lacks its command"
grep -q "2 seeds" "$dir/cmp.log" || fail "compare did not print the seeds: $(cat "$dir/cmp.log")"
"$bin" "${cmp[@]}" > /dev/null
[ "$(grep -c '| reused |' "$dir/cmp/report.md")" = 4 ] || fail "compare did not reuse its 4 runs"
"$bin" eval --ckpt "$dir/cmp/mha_rope/seed-1337" --lengths 16,64 --plot "$dir/pos.png" > "$dir/eval.log"
grep -qE "^ +64 +[0-9]+ +[0-9.]+ " "$dir/eval.log" || fail "eval gave no loss at 64: $(cat "$dir/eval.log")"
[ -s "$dir/pos.png" ] || fail "eval --plot wrote no PNG"
# Streaming (chapter 18): 200 characters past a block of 16 through a
# rolling cache of 2 sinks + 6, and eval --stream's four modes.
out=$("$bin" sample --ckpt "$dir/cmp/mha_rope/seed-1337" --prompt "to be" --tokens 200 --stream --sinks 2 --window 6 --seed 1)
[ ${#out} -ge 200 ] || fail "sample --stream too short: $out"
"$bin" eval --ckpt "$dir/cmp/mha_rope/seed-1337" --stream --sinks 2 --window 6 --windows 2 --plot "$dir/stream.png" > "$dir/stream.log"
[ "$(grep -cE '^\(([abcd])\) .* [0-9]+\.[0-9]+ +[0-9]+\.[0-9]+$' "$dir/stream.log")" = 4 ] || fail "eval --stream: $(cat "$dir/stream.log")"
[ -s "$dir/stream.png" ] || fail "eval --stream --plot wrote no PNG"
"$bin" eval --ckpt "$dir/cmp/mha/seed-1337" --lengths 64 | grep -q "n/a (learned positions)" || fail "eval: learned positions at 64"

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
