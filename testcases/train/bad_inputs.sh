#!/usr/bin/env bash
# The bad-input catalogue (docs/bad_inputs.md), end to end: every row feeds
# the `attnlab` command one wrong input and asserts that it
#   - fails (exit status 1..127: an error, never a signal, within 30 s),
#   - says so in at most two lines (the error and a --help hint), with the
#     row's message: the command or op, the option or file, the value and
#     what was expected,
#   - and damages no file the user had: the corpus and a run folder (its
#     checkpoint, config.json, metrics.jsonl, ...) keep their bytes, checked
#     with sha256sum after every row.
# Usage: bad_inputs.sh path/to/attnlab      (ctest: cli_bad_inputs)
set -euo pipefail
bin=$1
dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
rows=0

for i in $(seq 80); do echo "to be or not to be, that is the question."; done > "$dir/corpus.txt"
common=(--data "$dir/corpus.txt" --layers 1 --heads 2 --embd 16 --block 16 --batch 4 --quiet
        --eval-every 10 --eval-batches 2 --sample-tokens 20)
# A paused run: checkpoint at step 10 of 20, so that continuing it is real.
"$bin" train "${common[@]}" --out "$dir/run" --steps 20 --stop-at 10 > /dev/null
run=$dir/run
ckpt=$run/checkpoint.safetensors
(cd "$dir" && sha256sum corpus.txt run/*) > "$dir/before.sha256"
unchanged() { (cd "$dir" && sha256sum --quiet -c before.sha256) || fail "$1 changed a user's file"; }

# expect MESSAGE ARGS...: attnlab ARGS fails with MESSAGE in its output.
expect() {
  local want=$1; shift
  local msg rc=0
  msg=$(timeout 30 "$bin" "$@" 2>&1) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected an error for: $*"
  [ "$rc" -lt 124 ] || fail "exit status $rc (timeout or signal) for: $*: $msg"
  echo "$msg" | grep -qF -- "$want" || fail "error for '$*' lacks '$want': $msg"
  [ "$(echo "$msg" | wc -l)" -le 2 ] || fail "error for '$*' is more than two lines: $msg"
  unchanged "$*"
  rows=$((rows + 1))
}
T=(train "${common[@]}" --out "$dir/new")

# ---- command-line values out of range ----
expect "attnlab: train: --steps must be in 1..100000000, got -1" "${T[@]}" --steps -1
expect "attnlab: train: --steps must be in 1..100000000, got 0" "${T[@]}" --steps 0
expect "attnlab: train: --batch must be in 1..65536, got 0" "${T[@]}" --batch 0
expect "attnlab: train: --lr must be in (0, 10), got 0" "${T[@]}" --lr 0
expect "attnlab: train: --lr must be in (0, 10), got -1" "${T[@]}" --lr -1
expect "attnlab: train: --lr must be in (0, 10), got nan" "${T[@]}" --lr nan
expect "attnlab: train: --min-lr must be in [0, lr], got 0.5" "${T[@]}" --min-lr 0.5
expect "attnlab: train: --warmup must be >= 0, got -1" "${T[@]}" --warmup -1
expect "attnlab: train: --weight-decay must be >= 0, got -1" "${T[@]}" --weight-decay -1
expect "attnlab: train: --beta1 must be in [0, 1), got 1.5" "${T[@]}" --beta1 1.5
expect "attnlab: train: --beta1 must be in [0, 1), got -0.1" "${T[@]}" --beta1 -0.1
expect "attnlab: train: --beta2 must be in [0, 1), got 1.5" "${T[@]}" --beta2 1.5
expect "attnlab: train: --beta2 must be in [0, 1), got 1" "${T[@]}" --beta2 1
expect "attnlab: train: --beta2 must be in [0, 1), got -0.5" "${T[@]}" --beta2 -0.5
expect "attnlab: train: --beta2 must be in [0, 1), got 1.5" compare "${common[@]}" --out "$dir/cmp" --steps 2 --attention mha --beta2 1.5
expect "attnlab: train: --grad-clip must be >= 0 (0 = off), got -1" "${T[@]}" --grad-clip -1
expect "attnlab: train: --eval-every must be >= 1, got 0" "${T[@]}" --eval-every 0
expect "attnlab: train: --eval-batches must be >= 1, got 0" "${T[@]}" --eval-batches 0
expect "attnlab: train: --log-every must be >= 1, got 0" "${T[@]}" --log-every 0
expect "attnlab: train: --stop-at must be >= 0, got -1" "${T[@]}" --stop-at -1
expect "attnlab: train: --checkpoint-every must be >= 0, got -1" "${T[@]}" --checkpoint-every -1
expect "attnlab: train: --sample-tokens must be >= 0 (0 = no sample), got -5" "${T[@]}" --sample-tokens -5
expect "attnlab: train: --optimizer must be adamw or sgd, got 'adam'" "${T[@]}" --optimizer adam
expect "attnlab: model: --layers must be in 1..128, got 0" "${T[@]}" --layers 0
expect "attnlab: model: --heads must be >= 1, got -2" "${T[@]}" --heads -2
expect "attnlab: model: --embd must be in 1..16384, got 0" "${T[@]}" --embd 0
expect "attnlab: model: --block must be in 1..65536, got 0" "${T[@]}" --block 0
expect "attnlab: model: --dropout must be in [0, 1), got 1" "${T[@]}" --dropout 1
expect "attnlab: model: --dropout must be in [0, 1), got -0.1" "${T[@]}" --dropout -0.1
expect "attnlab: model: --attn-dropout must be in [0, 1), got 1" "${T[@]}" --attn-dropout 1
expect "attnlab: model: --attn-dropout must be in [0, 1), got -0.1" "${T[@]}" --attn-dropout -0.1
expect "attnlab: model: --attn-dropout must be in [0, 1), got 1" compare "${common[@]}" --out "$dir/cmp" --steps 2 --attention mha --attn-dropout 1
expect "attnlab: model: --norm must be layernorm or rmsnorm, got 'batchnorm'" "${T[@]}" --norm batchnorm
expect "attnlab: model: --norm-position must be pre or post, got 'mid'" "${T[@]}" --norm-position mid
expect "attnlab: model: --mlp must be gelu or swiglu, got 'relu'" "${T[@]}" --mlp relu
expect "attnlab train: --seed: expected a whole number >= 0, got '-1'" "${T[@]}" --seed -1
expect "attnlab: --threads must be in 1..1024, got 0" "${T[@]}" --threads 0
expect "attnlab: --threads must be in 1..1024, got 1025" sample --ckpt "$run" --threads 1025
ATTNLAB_THREADS=two expect "ATTNLAB_THREADS must be a whole number in 1..1024, got 'two'" "${T[@]}"
expect "attnlab: sample: --temperature must be a finite number >= 0 (0 = greedy), got -1" sample --ckpt "$run" --temperature -1
expect "attnlab: sample: --temperature must be a finite number >= 0 (0 = greedy), got inf" sample --ckpt "$run" --temperature inf
expect "attnlab: sample: --top-k must be >= 0, got -1" sample --ckpt "$run" --top-k -1
expect "attnlab: sample: --tokens must be >= 0, got -1" sample --ckpt "$run" --tokens -1
expect "attnlab sample: --seed: expected a whole number >= 0, got '-2'" sample --ckpt "$run" --seed -2
expect "attnlab: tokenizer: character 'x' (U+0078) at byte 0 is not in the vocabulary of" sample --ckpt "$run" --prompt "xyz"
expect "attnlab: convert: --finetune-steps must be >= 1, got 0" convert --ckpt "$run" --to mqa --out "$dir/cv" --finetune-steps 0
expect "attnlab: bench attention: lengths must be >= 1, got 0" bench attention --lengths 0 --out "$dir/bench"
expect "attnlab: bench attention: --heads must be >= 1, got 0" bench attention --heads 0 --out "$dir/bench"
expect "attnlab: bench attention: method multiscale gives half the heads --window and half the full context, so --heads must be even, got 3" bench attention --heads 3 --lengths 8 --out "$dir/bench"
expect "attnlab: demo: --steps must be in 1..1000000, got 0" demo --steps 0

# ---- values that are not numbers, unknown options and commands ----
expect "attnlab train: --steps 'abc' is not a whole number" "${T[@]}" --steps abc
expect "attnlab train: --steps '1e2' is not a whole number" "${T[@]}" --steps 1e2
expect "attnlab train: --lr '1e-3x' is not a number" "${T[@]}" --lr 1e-3x
expect "attnlab train: --beta1 'high' is not a number" "${T[@]}" --beta1 high
expect "attnlab train: --attn-dropout 'some' is not a number" "${T[@]}" --attn-dropout some
expect "attnlab train: --bias: expected true or false, got 'maybe'" "${T[@]}" --bias maybe
expect "attnlab train: --bias: expected true or false, got '0'" "${T[@]}" --bias 0
expect "attnlab compare: --bias: expected true or false, got 'no'" compare "${common[@]}" --out "$dir/cmp" --attention mha --bias no
expect "attnlab sample: --temperature 'hot' is not a number" sample --ckpt "$run" --temperature hot
expect "attnlab train: The following arguments were not expected: 3 --bogus" "${T[@]}" --bogus 3
expect "attnlab train: --data is required" train --out "$dir/new"
expect "attnlab: unknown command 'trian'; expected one of: train, sample," trian --data "$dir/corpus.txt"
expect "attnlab bench: unknown command 'attn'; expected one of: attention" bench attn

# ---- attention variants and their options ----
expect "attnlab: attention: unknown variant 'nope'; known variants: bigbird, blocksparse, flash," "${T[@]}" --attention nope
expect "attnlab: attention gqa: unknown option 'kv_hedas'; options: kv_heads, rope, rope_base, ntk, alibi" "${T[@]}" --attention gqa:kv_hedas=2
expect "attnlab: attention mqa: unknown option 'foo'; options: rope, rope_base, ntk, alibi" "${T[@]}" --attention mqa:foo
expect "attnlab: attention gqa: needs the option kv_heads=N, e.g. gqa:kv_heads=2" "${T[@]}" --attention gqa
expect "attnlab: attention gqa: option kv_heads=abc is not a non-negative integer" "${T[@]}" --attention gqa:kv_heads=abc
expect "attnlab: attention: kv_heads=0 must be >= 1 (and divide heads=2)" "${T[@]}" --attention gqa:kv_heads=0
expect "attnlab: attention window: size must be >= 1, got 0" "${T[@]}" --attention window:size=0
expect "attnlab: attention bigbird: window must be >= 1 (keys p - W + 1 .. p, the query itself included), got 0" "${T[@]}" --attention bigbird:window=0,global=2,random=2
expect "attnlab: attention bigbird: option random=-1 is not a non-negative integer" "${T[@]}" --attention bigbird:window=8,global=2,random=-1
expect "attnlab: attention bigbird: option global=-1 is not a non-negative integer" "${T[@]}" --attention bigbird:window=8,global=-1,random=2
expect "attnlab: attention bigbird: block must be >= 1 (tokens per block), got 0" "${T[@]}" --attention bigbird:window=8,global=2,random=2,block=0
expect "attnlab: attention bigbird: needs the option global=N, e.g. bigbird:window=16,global=2,random=2" "${T[@]}" --attention bigbird:window=8,random=2
expect "attnlab: attention bigbird: unknown option 'alibi'; options: window, global, random, block, seed, kv_heads, rope, rope_base, ntk" "${T[@]}" --attention bigbird:window=8,global=2,random=2,alibi
expect "attnlab: attention bigbird: has no attention dropout (its block-sparse kernel gathers keys from several places and drops none)" "${T[@]}" --attention bigbird:window=8,global=2,random=2 --attn-dropout 0.1
expect "attnlab: attention: option 'kv_heads' is given twice in 'gqa:kv_heads=2,kv_heads=2'" "${T[@]}" --attention gqa:kv_heads=2,kv_heads=2
expect "attnlab: attention: bad option 'kv heads=2' at position 4 of 'gqa:kv heads=2'; expected key=value" "${T[@]}" --attention "gqa:kv heads=2"
expect "attnlab: attention mha: rope_base and ntk only apply together with rope" "${T[@]}" --attention mha:rope_base=5
expect "attnlab: attention: choose rope or alibi, not both" "${T[@]}" --attention mha:rope,alibi
expect "attnlab: attention linear: alibi adds a bias to the scores" "${T[@]}" --attention linear:alibi
expect "attnlab: attention multiscale: needs the option windows=W1,W2,..., e.g. multiscale:windows=8,32,0" "${T[@]}" --attention multiscale
expect "attnlab: attention multiscale: windows=8,-1 has '-1'; expected a comma-separated list of integers >= 0 (0 = full causal)" "${T[@]}" --attention multiscale:windows=8,-1
expect "attnlab: attention multiscale: windows=true has 'true'; expected a comma-separated list of integers >= 0" "${T[@]}" --attention multiscale:windows
expect "attnlab: attention: bad option 'windows=' at position 11 of 'multiscale:windows='; expected key=value" "${T[@]}" --attention multiscale:windows=
expect "attnlab: attention: bad option '32' at position 4 of 'mha:32'; a bare number continues the list of the key=value before it" "${T[@]}" --attention mha:32
expect "attnlab: attention multiscale: has no attention dropout (it runs one flash call per head group" "${T[@]}" --attention multiscale:windows=2,0 --attn-dropout 0.1
expect "attnlab: attention linear: has no attention dropout (linear attention never forms the probabilities to drop); --attn-dropout must be 0 for it, got 0.1" "${T[@]}" --attention linear --attn-dropout 0.1
expect "attnlab: attention linear: has no attention dropout" compare "${common[@]}" --out "$dir/cmp" --steps 2 --attention linear --attn-dropout 0.1
expect "attnlab: compare: empty variant at position 4 of 'mha,,gqa:kv_heads=2'" compare "${common[@]}" --out "$dir/cmp" --steps 2 --attention "mha,,gqa:kv_heads=2"
expect "attnlab: compare: variant 'mha' is listed twice" compare "${common[@]}" --out "$dir/cmp" --steps 2 --attention mha,mha

# ---- compare as an experiment (seeds, budgets, extrapolation) and eval: checked before any run ----
C=(compare "${common[@]}" --out "$dir/cmp" --steps 2 --attention mha)
expect "attnlab: compare: --seeds must be in 1..1000, got 0" "${C[@]}" --seeds 0
expect "attnlab: compare: --extrapolate factors must be in [1, 64] (multiples of --block), got 0.5" "${C[@]}" --extrapolate 0.5
expect "attnlab compare: --extrapolate 'abc' is not a number" "${C[@]}" --extrapolate abc
expect "attnlab: compare: --budget must be tokens or seconds, got 'weekly'" "${C[@]}" --budget weekly
expect "attnlab: compare: --seconds must be in (0, 10000000] with --budget seconds (training seconds per run), got 0" "${C[@]}" --budget seconds --seconds 0
expect "attnlab: compare: --seconds must be in (0, 10000000] with --budget seconds (training seconds per run), got 0" "${C[@]}" --budget seconds
expect "attnlab: compare: --seconds 60 applies only with --budget seconds (the tokens budget trains --steps steps)" "${C[@]}" --seconds 60
expect "attnlab: compare: --eval-windows must be >= 1, got 0" "${C[@]}" --eval-windows 0
expect "attnlab: eval: --lengths must be in 1..1048576, got 0" eval --ckpt "$run" --lengths 0
expect "attnlab eval: --lengths 'abc' is not a whole number" eval --ckpt "$run" --lengths abc
expect "attnlab: eval: --windows must be >= 1, got 0" eval --ckpt "$run" --windows 0
expect "attnlab: attention: unknown variant 'nope'" convert --ckpt "$run" --to nope --out "$dir/cv"
expect "attnlab: bench attention: unknown method 'nope'; methods: dense, flash," bench attention --methods nope --out "$dir/bench"

# ---- sizes that do not divide ----
expect "attnlab: model: --heads 3 must divide --embd 16 (16 % 3 = 1)" "${T[@]}" --heads 3
expect "attnlab: attention: kv_heads=3 must divide heads=2" "${T[@]}" --attention gqa:kv_heads=3
expect "attnlab: attention multiscale: windows=8,32,0 lists 3 windows, which do not divide heads=2; the heads split evenly among the windows" "${T[@]}" --attention multiscale:windows=8,32,0
expect "attnlab: attention: kv_heads=3 must divide heads=4" "${T[@]}" --heads 4 --attention flash:kv_heads=3

# ---- the corpus ----
expect "attnlab: train: --block 4000 is larger than the corpus allows (train split 3024 tokens, val split 336)" "${T[@]}" --block 4000
head -c 170 "$dir/corpus.txt" > "$dir/small.txt"   # train split 153 > 20, val split 17 < 21
expect "attnlab: train: --block 20 is larger than the corpus allows (train split 153 tokens, val split 17)" "${T[@]}" --data "$dir/small.txt" --block 20
: > "$dir/empty.txt"
expect "attnlab: data: corpus '$dir/empty.txt' is empty" "${T[@]}" --data "$dir/empty.txt"
printf 'text\0\1\2binary' > "$dir/binary.bin"
expect "attnlab: data: corpus '$dir/binary.bin' looks binary (NUL byte at 4)" "${T[@]}" --data "$dir/binary.bin"
printf 'caf\xe9 au lait\n' > "$dir/latin1.txt"   # Latin-1, not UTF-8
expect "attnlab: data: corpus '$dir/latin1.txt': invalid UTF-8 at byte 3 (truncated sequence)" "${T[@]}" --data "$dir/latin1.txt"
printf 'ab\xc0\xafcd\n' > "$dir/overlong.txt"
expect "attnlab: data: corpus '$dir/overlong.txt': invalid UTF-8 at byte 2 (overlong encoding)" "${T[@]}" --data "$dir/overlong.txt"
expect "attnlab: data: cannot open '$dir/missing.txt': No such file or directory" "${T[@]}" --data "$dir/missing.txt"
expect "attnlab: data: cannot read '$dir': Is a directory" "${T[@]}" --data "$dir"

# ---- output folders ----
printf 'my notes\n' > "$dir/notes.txt"
(cd "$dir" && sha256sum notes.txt) >> "$dir/before.sha256"
expect "attnlab: train: --out '$dir/notes.txt' is a file, expected a folder (the file was left as it was)" train "${common[@]}" --out "$dir/notes.txt"
expect "attnlab: train: --out '$dir/notes.txt/run': cannot create the folder: Not a directory" train "${common[@]}" --out "$dir/notes.txt/run"
expect "attnlab: compare: --out '$dir/notes.txt' is a file, expected a folder" compare "${common[@]}" --out "$dir/notes.txt" --attention mha
expect "attnlab: convert: --out '$dir/notes.txt' is a file, expected a folder" convert --ckpt "$run" --to mqa --out "$dir/notes.txt"
expect "attnlab: bench attention: --out '$dir/notes.txt' is a file, expected a folder" bench attention --out "$dir/notes.txt"

# ---- devices ----
expect "attnlab: device: unknown device 'tpu'; expected cpu, cuda or cuda:N" "${T[@]}" --device tpu
expect "attnlab: device: unknown device 'cuda:x'; expected cpu, cuda or cuda:N" sample --ckpt "$run" --device cuda:x
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
  # Built without CUDA: "...built without CUDA; rebuild with -DATTNLAB_CUDA=ON";
  # with CUDA but no GPU: the driver's reason. Both start so.
  expect "attnlab: device cuda:0: " "${T[@]}" --device cuda
  expect "attnlab: device cuda:0: " sample --ckpt "$run" --device cuda
fi

# ---- checkpoints: missing, truncated, tampered, of another model ----
mkdir "$dir/empty_run"
expect "attnlab: checkpoint: run folder '$dir/empty_run' has no checkpoint.safetensors" sample --ckpt "$dir/empty_run"
expect "attnlab: checkpoint: run folder '$dir/empty_run' has no checkpoint.safetensors" "${T[@]}" --resume "$dir/empty_run"
expect "attnlab: checkpoint: run folder '$dir/empty_run' has no checkpoint.safetensors" eval --ckpt "$dir/empty_run"
expect "attnlab: safetensors: cannot open '$dir/nothere': No such file or directory" sample --ckpt "$dir/nothere"
expect "attnlab: safetensors: $dir/corpus.txt: header length is" sample --ckpt "$dir/corpus.txt"
size=$(stat -c %s "$ckpt")
head -c 4 "$ckpt" > "$dir/t4.safetensors"
expect "attnlab: safetensors: $dir/t4.safetensors: file is 4 bytes long, too short for the 8-byte header length" sample --ckpt "$dir/t4.safetensors"
head -c 1000 "$ckpt" > "$dir/t1000.safetensors"
expect "attnlab: safetensors: $dir/t1000.safetensors: header length is" sample --ckpt "$dir/t1000.safetensors"
expect "(the file is truncated)" sample --ckpt "$dir/t1000.safetensors"
head -c $((size - 10)) "$ckpt" > "$dir/tail.safetensors"
expect "attnlab: safetensors: $dir/tail.safetensors: tensor '" sample --ckpt "$dir/tail.safetensors"
expect "but the data buffer has $((size - 10 - 8 - $(od -An -tu8 -N8 "$ckpt" | tr -d ' '))) bytes" sample --ckpt "$dir/tail.safetensors"
expect "attnlab: safetensors: $dir/tail.safetensors" "${T[@]}" --resume "$dir/tail.safetensors"
# tamper FILE STRING REPLACEMENT: overwrite the first STRING in FILE (same length).
tamper() {
  local at
  at=$(grep -obUaF -- "$2" "$1" | head -1 | cut -d: -f1)
  [ -n "$at" ] || fail "'$2' not found in $1"
  printf '%s' "$3" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}
cp "$ckpt" "$dir/format.safetensors"
tamper "$dir/format.safetensors" attnlab-checkpoint-1 attnlab-checkpoint-9
expect "attnlab: checkpoint '$dir/format.safetensors': format is 'attnlab-checkpoint-9', expected 'attnlab-checkpoint-1'" sample --ckpt "$dir/format.safetensors"
cp "$ckpt" "$dir/header.safetensors"
tamper "$dir/header.safetensors" '"__metadata__"' '"__metadata__['
expect "attnlab: safetensors: $dir/header.safetensors: header is not valid JSON" sample --ckpt "$dir/header.safetensors"
cp "$ckpt" "$dir/offsets.safetensors"
tamper "$dir/offsets.safetensors" '"data_offsets":[0,' '"data_offsets":[8,'
expect "attnlab: safetensors: $dir/offsets.safetensors: tensor '" sample --ckpt "$dir/offsets.safetensors"
cp "$ckpt" "$dir/shape.safetensors"   # model_config (the first "layers") says 2 blocks; the tensors hold 1
tamper "$dir/shape.safetensors" 'layers\":1' 'layers\":2'
expect "attnlab: checkpoint '$dir/shape.safetensors': its tensors do not fit the model its metadata describes (load_state_dict: 'blocks.1." sample --ckpt "$dir/shape.safetensors"
expect "attnlab: train: --layers 2 differs from the run being resumed ('$ckpt' has 1); --resume keeps the stored run's settings" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --layers 2
expect "attnlab: train: --embd 32 differs from the run being resumed ('$ckpt' has 16)" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --embd 32
expect "attnlab: train: --attn-dropout 0.2 differs from the run being resumed ('$ckpt' has 0)" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --attn-dropout 0.2
expect "attnlab: train: --attention \"gqa:kv_heads=1\" differs from the run being resumed ('$ckpt' has \"mha\")" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --attention gqa:kv_heads=1
expect "attnlab: train: --data \"$dir/small.txt\" differs from the run being resumed" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --data "$dir/small.txt"
expect "attnlab: train: --beta2 0.99 differs from the run being resumed ('$ckpt' has 0.95)" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --beta2 0.99
expect "attnlab: train: --bias false differs from the run being resumed ('$ckpt' has true)" train "${common[@]}" --out "$run" --resume "$run" --steps 20 --bias false

# ---- a full disk while saving ----
# config.json is written to config.json.tmp and renamed: point that name at
# /dev/full, whose writes fail with ENOSPC.
ln -s /dev/full "$run/config.json.tmp"
expect "attnlab: writing '$run/config.json.tmp' failed: No space left on device; '$run/config.json' was left as it was" train "${common[@]}" --out "$run" --resume "$run" --steps 20
[ ! -e "$run/config.json.tmp" ] || fail "the failed write left config.json.tmp behind"
# The checkpoint: a file-size limit makes its write fail (EFBIG, as a full
# disk's ENOSPC would) in the middle. Continuing the paused run to step 20
# rewrites config.json with the same bytes and appends to metrics.jsonl.
cp "$run/metrics.jsonl" "$dir/metrics.before"
msg=$( (ulimit -f 16; trap '' XFSZ; exec timeout 30 "$bin" train "${common[@]}" --out "$run" --resume "$run" --steps 20) 2>&1) &&
  fail "saving under a 16 KiB file-size limit succeeded"
echo "$msg" | grep -qF "attnlab: safetensors: cannot write '$ckpt.tmp-" || fail "full-disk error does not name the temporary file: $msg"
echo "$msg" | grep -qF "File too large (saving '$ckpt'; any existing file there was left as it was)" ||
  fail "full-disk error does not name the checkpoint: $msg"
(cd "$dir" && sha256sum --quiet -c <(grep -v metrics.jsonl before.sha256)) || fail "the failed save changed a file"
[ "$(head -c "$(stat -c %s "$dir/metrics.before")" "$run/metrics.jsonl" | sha256sum)" = "$(sha256sum < "$dir/metrics.before")" ] ||
  fail "the failed save changed the metrics logged before it"
if ls "$run" | grep -q tmp; then fail "the failed save left a temporary file: $(ls "$run")"; fi
rows=$((rows + 1))
# With space again, the same command continues from the intact checkpoint.
"$bin" train "${common[@]}" --out "$run" --resume "$run" --steps 20 > /dev/null
grep -q '"split":"val","step":20,' "$run/metrics.jsonl" || fail "the run did not continue to step 20 after the failed save"

# metrics.jsonl: a new run logging every step outgrows a 1 KiB limit at
# about step 7, before its first checkpoint (step 10).
msg=$( (ulimit -f 1; trap '' XFSZ; exec timeout 30 "$bin" train "${common[@]}" --out "$dir/small_disk" --steps 20 --log-every 1) 2>&1) &&
  fail "logging under a 1 KiB file-size limit succeeded"
echo "$msg" | grep -qF "attnlab: train: cannot append to '$dir/small_disk/metrics.jsonl': File too large (the checkpoint keeps the last saved step)" ||
  fail "metrics error does not name the file: $msg"
rows=$((rows + 1))

echo "bad_inputs: all $rows rows passed"
