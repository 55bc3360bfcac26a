#!/usr/bin/env bash
# The bad-input catalogue (docs/bad_inputs.md), end to end: every row feeds
# the `attnlab` command one wrong input and asserts that it
#   - fails (exit status 1..127: an error, never a signal, within 30 s),
#   - says so in at most two lines (the error and a --help hint), with the
#     row's message: the command or op, the option or file, the value and
#     what was expected,
#   - and damages no file the user had: the corpus and the run folders (a
#     checkpoint, config.json, metrics.jsonl, ...) keep their bytes, checked
#     with sha256sum after every row (the lock file .attnlab.lock, which
#     exists only while a process writes the folder, is not among them).
# Usage: bad_inputs.sh path/to/attnlab      (ctest: cli_bad_inputs)
set -euo pipefail
bin=$(realpath "$1")  # absolute: some rows run in other folders
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
# remember PATH...: every file under these paths (relative to $dir) is checked from now on.
remember() { (cd "$dir" && find "$@" -type f ! -name .attnlab.lock -exec sha256sum {} +) >> "$dir/before.sha256"; }

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
expect "attnlab: train: --max-corpus-bytes must be >= 1, got 0" "${T[@]}" --max-corpus-bytes 0
expect "attnlab: eval: --max-corpus-bytes must be >= 1, got 0" eval --ckpt "$run" --max-corpus-bytes 0
expect "attnlab: train: --optimizer must be adamw or sgd, got 'adam'" "${T[@]}" --optimizer adam
expect "attnlab: train: --precision must be fp32, tf32 or bf16, got 'fp16'" "${T[@]}" --precision fp16
expect "attnlab: train: --precision tf32 is the GPU's tensor-core mode for float32 products (--device cuda); on the CPU use fp32 or bf16" "${T[@]}" --precision tf32
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
# streaming (chapter 18): $run has block 16 and learned positions; the window checks come first
expect "attnlab: sample: --sinks must be >= 0, got -1" sample --ckpt "$run" --stream --sinks -1
expect "attnlab: sample: --window must be >= 1 (tokens kept after the sinks), got 0" sample --ckpt "$run" --stream --window 0
expect "attnlab: sample: --sinks 4 + --window 13 = 17 exceeds the model's block size 16 (positions inside the cache must stay ones the model trained on)" sample --ckpt "$run" --stream --sinks 4 --window 13
expect "attnlab: sample: --sinks 16 leaves no room for a window in the block size 16" sample --ckpt "$run" --stream --sinks 16
expect "attnlab: sample: --stream: model: attention 'mha' uses learned positions, which a rolling cache cannot renumber" sample --ckpt "$run" --stream
expect "attnlab: sample: --sinks and --window shape the rolling cache of --stream; add --stream" sample --ckpt "$run" --sinks 2
expect "attnlab: eval: --sinks and --window shape the rolling cache of --stream; add --stream" eval --ckpt "$run" --window 8
expect "attnlab: eval: --sinks must be >= 0, got -1" eval --ckpt "$run" --stream --sinks -1
expect "attnlab: eval: --window must be >= 1 (tokens kept after the sinks), got 0" eval --ckpt "$run" --stream --window 0
expect "attnlab: eval: --stream reads one stream length, got 2 --lengths" eval --ckpt "$run" --stream --lengths 32,64
expect "attnlab: eval: --sinks 4 + --window 13 must fit the model's block size 16 with a window of at least 1" eval --ckpt "$run" --stream --sinks 4 --window 13
expect "attnlab: eval: --stream: model: attention 'mha' uses learned positions" eval --ckpt "$run" --stream
"$bin" train "${common[@]}" --out "$dir/linear_run" --attention linear --steps 2 > /dev/null
expect "attnlab: sample: --stream: model: attention 'linear' has no KV cache to stream with" sample --ckpt "$dir/linear_run" --stream
expect "attnlab: convert: --finetune-steps must be >= 1, got 0" convert --ckpt "$run" --to mqa --out "$dir/cv" --finetune-steps 0
expect "attnlab: bench attention: lengths must be >= 1, got 0" bench attention --lengths 0 --out "$dir/bench"
expect "attnlab: bench attention: --heads must be >= 1, got 0" bench attention --heads 0 --out "$dir/bench"
expect "attnlab: bench attention: --sparse-stride must be >= 1, got 0" bench attention --sparse-stride 0 --out "$dir/bench"
expect "attnlab: bench attention: --sparse-local must be >= 0 (0 = --window), got -1" bench attention --sparse-local -1 --out "$dir/bench"
expect "attnlab: bench attention: --precision must be fp32, tf32 or bf16, got 'fp16'" bench attention --precision fp16 --out "$dir/bench"
expect "attnlab: bench attention: --precision tf32 is a GPU tensor-core mode; the CPU runs fp32" bench attention --precision tf32 --out "$dir/bench"
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

# ---- lesson grade: every option checked before any test runs ----
expect "attnlab: lesson grade: --timeout-s must be in (0, 3600] seconds, got 0" lesson grade 01 --timeout-s 0
expect "attnlab: lesson grade: --memory-mb must be 0 (no limit) or in 256..1048576, got 10" lesson grade 01 --memory-mb 10
expect "attnlab: lesson grade: --format must be table, gradescope or junit, got 'xml'" lesson grade 01 --format xml
expect "attnlab: lesson: no chapter '99'; chapters: 01_softmax_attention," lesson grade 01 99
expect "attnlab: lesson grade: --hidden '$dir/no_such': no such folder" lesson grade 01 --hidden "$dir/no_such"
mkdir -p "$dir/hidden_empty" "$dir/hidden_bad/softmax_extra"
expect "attnlab: lesson grade: --hidden '$dir/hidden_empty': no chapter folder in it (expected $dir/hidden_empty/NN_name/*.cpp" \
  lesson grade 01 --hidden "$dir/hidden_empty"
expect "attnlab: lesson grade: --hidden '$dir/hidden_bad': folder 'softmax_extra' names no chapter (expected NN_name" \
  lesson grade 01 --hidden "$dir/hidden_bad"
expect "attnlab: lesson grade: --output '$dir/no_such/results.json': the folder $dir/no_such does not exist" \
  lesson grade 01 --format gradescope --output "$dir/no_such/results.json"
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
expect "attnlab: attention bigbird: unknown option 'nope'; options: window, global, random, block, seed, kv_heads, rope, rope_base, ntk, alibi" "${T[@]}" --attention bigbird:window=8,global=2,random=2,nope
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
expect "attnlab: attention ring: split=diagonal is not a split; expected zigzag or contiguous" "${T[@]}" --attention ring:split=diagonal
expect "attnlab: attention ring: has no attention dropout (its blocks are folded on several ranks" "${T[@]}" --attention ring --attn-dropout 0.1
expect "attnlab: attention performer: features=0: expected a positive count, e.g. performer:features=64" "${T[@]}" --attention performer:features=0
expect "attnlab: attention performer: features=-1: expected a positive count, e.g. performer:features=64" "${T[@]}" --attention performer:features=-1
expect "attnlab: attention performer: unknown option 'window'; options: features, orthogonal, redraw, seed, rope, rope_base, ntk" "${T[@]}" --attention performer:window=4
expect "attnlab: attention performer: orthogonal=2: expected 0 (iid rows) or 1 (orthogonal blocks)" "${T[@]}" --attention performer:orthogonal=2
expect "attnlab: attention linformer: k=0: expected a positive count, e.g. linformer:k=32" "${T[@]}" --attention linformer:k=0
expect "attnlab: attention linformer: cannot run in a causal GPT: its projection E K mixes every position, future tokens included" "${T[@]}" --attention linformer:k=8
expect "attnlab: attention linear: has no attention dropout (linear attention never forms the probabilities to drop); --attn-dropout must be 0 for it, got 0.1" "${T[@]}" --attention linear --attn-dropout 0.1
# Chapter variants exist where the lessons are built (not in the sanitizer build).
if "$bin" variants | grep -q '^student:ring '; then
  expect "attnlab: attention student:ring: split=diagonal is not a split; expected zigzag or contiguous" "${T[@]}" --attention student:ring:split=diagonal
  expect "attnlab: attention student:ring: ranks=0: expected a number of simulated ranks from 1 to 64" "${T[@]}" --attention student:ring:ranks=0
fi
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
# Not a regular file, or over --max-corpus-bytes: refused at open, within a
# second (/dev/zero would be read without end; a pipe nobody writes to would
# block the open itself).
expect_fast() {
  local t0=$(date +%s%N)
  expect "$@"
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ] || fail "not refused within a second: ${*:2}"
}
expect_fast "attnlab: data: corpus '$dir' is a directory, not a regular file; --data expects a text file (save the text to one first, e.g. zcat corpus.gz > corpus.txt)" "${T[@]}" --data "$dir"
expect_fast "attnlab: data: corpus '/dev/zero' is a character device, not a regular file; --data expects a text file" "${T[@]}" --data /dev/zero
mkfifo "$dir/pipe"
expect_fast "attnlab: data: corpus '$dir/pipe' is a pipe (FIFO), not a regular file; --data expects a text file" "${T[@]}" --data "$dir/pipe"
expect_fast "' is a pipe (FIFO), not a regular file; --data expects a text file" "${T[@]}" --data <(cat "$dir/corpus.txt")
expect_fast "attnlab: data: corpus '$dir/corpus.txt' is 3360 bytes, more than --max-corpus-bytes 3000; use a smaller file, or raise --max-corpus-bytes (training holds about 5 bytes of memory per corpus byte)" "${T[@]}" --max-corpus-bytes 3000

# ---- output folders ----
printf 'my notes\n' > "$dir/notes.txt"
(cd "$dir" && sha256sum notes.txt) >> "$dir/before.sha256"
expect "attnlab: train: --out '$dir/notes.txt' is a file, expected a folder (the file was left as it was)" train "${common[@]}" --out "$dir/notes.txt"
expect "attnlab: train: --out '$dir/notes.txt/run': cannot create the folder: Not a directory" train "${common[@]}" --out "$dir/notes.txt/run"
expect "attnlab: compare: --out '$dir/notes.txt' is a file, expected a folder" compare "${common[@]}" --out "$dir/notes.txt" --attention mha
expect "attnlab: convert: --out '$dir/notes.txt' is a file, expected a folder" convert --ckpt "$run" --to mqa --out "$dir/notes.txt"
expect "attnlab: bench attention: --out '$dir/notes.txt' is a file, expected a folder" bench attention --out "$dir/notes.txt"

# ---- run folders: no silent overwrite, one writer at a time ----
# $run holds a run paused at step 10 of 20.
expect "attnlab: train: --out '$run' holds a run (step 10 of 20, attention mha); continue it with --resume $run --out $run, or start again in its place with --overwrite" train "${common[@]}" --out "$run" --steps 20
mkdir "$dir/fresh" && cp "$run/config.json" "$run/metrics.jsonl" "$dir/fresh/"   # as a run killed before its first checkpoint leaves it
remember fresh
expect "attnlab: train: --out '$dir/fresh' holds a run (no checkpoint yet, attention mha); start again in its place with --overwrite" train "${common[@]}" --out "$dir/fresh" --steps 20
expect "attnlab: train: --out '$dir/fresh' holds another run (no checkpoint yet, attention mha) than the one --resume continues; choose another --out, or replace it with --overwrite" train "${common[@]}" --resume "$run" --out "$dir/fresh" --steps 20
expect "attnlab: convert: --out '$run' holds a run (step 10 of 20, attention mha); choose another --out, or replace it with --overwrite" convert --ckpt "$run" --to mqa --out "$run"
expect "attnlab: compare: --out '$run' holds a train run (step 10 of 20, attention mha), not a comparison; choose another --out" compare "${common[@]}" --out "$run" --attention mha --steps 2
mkdir -p "$dir/cmp2/mha" && cp -r "$run" "$dir/cmp2/mha/seed-1337"
remember cmp2
expect "attnlab: compare: '$dir/cmp2/mha/seed-1337' holds a train run (step 10 of 20, attention mha) that is not part of a comparison; move it away, or choose another --out" compare "${common[@]}" --out "$dir/cmp2" --attention mha --steps 2
"$bin" compare "${common[@]}" --out "$dir/cmp3" --attention mha --steps 2 > /dev/null 2>&1
remember cmp3
expect "attnlab: compare: --out '$dir/cmp3' holds an earlier comparison with other settings ('mha/seed-1337' has lr 0.001 there, 0.002 now); run its command again to reuse its runs, choose another --out, or replace them with --overwrite" compare "${common[@]}" --out "$dir/cmp3" --attention mha --steps 2 --lr 0.002
msg=$(cd "$run" && timeout 30 "$bin" train "${common[@]}" --out . --steps 20 --overwrite 2>&1) &&
  fail "--overwrite of the current folder succeeded"
echo "$msg" | grep -qxF "attnlab: train: --overwrite cannot replace '.': it is the current folder or holds it; run attnlab from another folder" ||
  fail "--overwrite of the current folder: $msg"
unchanged "--overwrite of the current folder"
rows=$((rows + 1))
# A second writer, while the first holds the folder's lock (stopped here,
# so that it surely still does): refused, naming the holder.
"$bin" train "${common[@]}" --out "$dir/busy" --steps 1000000 --eval-every 1000000 > /dev/null 2>&1 &
busy=$!
for i in $(seq 1000); do [ -s "$dir/busy/.attnlab.lock" ] && break; sleep 0.01; done
kill -STOP "$busy"
[ "$(cat "$dir/busy/.attnlab.lock")" = "$busy" ] || fail "the lock file does not hold the writer's PID: $(cat "$dir/busy/.attnlab.lock")"
expect "attnlab: train: '$dir/busy' is being written by another attnlab process (PID $busy); wait until it ends, or choose another --out" train "${common[@]}" --out "$dir/busy" --steps 20 --overwrite
expect "attnlab: compare: '$dir/busy' is being written by another attnlab process (PID $busy)" compare "${common[@]}" --out "$dir/busy" --attention mha --steps 2
kill -9 "$busy"
wait "$busy" 2> /dev/null || true
mkdir -p "$dir/locked/.attnlab.lock"
expect "attnlab: train: cannot create the lock file '$dir/locked/.attnlab.lock': Is a directory" train "${common[@]}" --out "$dir/locked" --steps 2
msg=$( (ulimit -f 0; trap '' XFSZ; exec timeout 30 "$bin" train "${common[@]}" --out "$dir/nolock" --steps 2) 2>&1) &&
  fail "writing the lock file under a file-size limit of 0 succeeded"
echo "$msg" | grep -qF "attnlab: train: cannot write the lock file '$dir/nolock/.attnlab.lock': File too large" ||
  fail "lock file error: $msg"
[ ! -e "$dir/nolock" ] || fail "the refused run left its folder: $(ls -A "$dir/nolock")"
rows=$((rows + 1))
# Without --out: a new numbered folder each time, said on stderr.
mkdir "$dir/cwd"
for n in 1 2; do
  (cd "$dir/cwd" && "$bin" train "${common[@]}" --steps 2 > /dev/null 2> "$dir/numbered.err") || fail "train without --out failed"
  grep -qxF "train: no --out given: this run's folder is runs/$n" "$dir/numbered.err" || fail "numbered folder $n: $(cat "$dir/numbered.err")"
  [ -f "$dir/cwd/runs/$n/checkpoint.safetensors" ] || fail "runs/$n has no checkpoint"
done
rows=$((rows + 1))
mkdir "$dir/cwd3" && touch "$dir/cwd3/runs"
msg=$(cd "$dir/cwd3" && timeout 30 "$bin" train "${common[@]}" --steps 2 2>&1) && fail "train into a 'runs' that is a file succeeded"
echo "$msg" | grep -qF "attnlab: train: cannot create the folder 'runs' for runs without --out: " || fail "runs is a file: $msg"
rows=$((rows + 1))

# ---- out of memory (ATTNLAB_TEST_CPU_MEMORY_CAP caps the CPU allocator; tests only) ----
# A run paused at step 10 needs about 0.1 MB to load and 2 MB for a step of
# batch 64: continued under a cap of 0.4 MB, it meets the cap at step 11.
"$bin" train "${common[@]}" --batch 64 --out "$dir/oom" --steps 20 --stop-at 10 > /dev/null
remember oom
ATTNLAB_TEST_CPU_MEMORY_CAP=400000 expect "attnlab: train: out of memory at step 11 of 20 (device cpu: out of memory: asked for " train "${common[@]}" --batch 64 --out "$dir/oom" --resume "$dir/oom" --steps 20
ATTNLAB_TEST_CPU_MEMORY_CAP=400000 expect " cached; ATTNLAB_TEST_CPU_MEMORY_CAP allows 400000); lower --batch (now 64) or --block (now 16); the checkpoint of step 10 is intact" train "${common[@]}" --batch 64 --out "$dir/oom" --resume "$dir/oom" --steps 20
ATTNLAB_TEST_CPU_MEMORY_CAP=400000 expect "attnlab: train: out of memory at step 1 of 20 (" train "${common[@]}" --batch 64 --out "$dir/oom_new" --steps 20
ATTNLAB_TEST_CPU_MEMORY_CAP=400000 expect "; no checkpoint was saved yet" train "${common[@]}" --batch 64 --out "$dir/oom_new" --steps 20 --overwrite
ATTNLAB_TEST_CPU_MEMORY_CAP=lots expect "attnlab: ATTNLAB_TEST_CPU_MEMORY_CAP must be a whole number of bytes >= 1, got 'lots'" "${T[@]}"

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
# config.json: a file-size limit of 1 KiB (ulimit -f 1, SIGXFSZ ignored)
# makes its write fail part way, with EFBIG as a full disk's ENOSPC would.
# The run's folder has a long name, which config.json stores: it is over 1 KiB.
long=$dir/$(printf 'a%.0s' $(seq 200))/$(printf 'b%.0s' $(seq 200))
"$bin" train "${common[@]}" --out "$long" --steps 20 --stop-at 10 > /dev/null
[ "$(stat -c %s "$long/config.json")" -gt 1024 ] || fail "config.json is not over 1 KiB: this row needs a longer folder name"
remember "${long#$dir/}"
msg=$( (ulimit -f 1; trap '' XFSZ; exec timeout 30 "$bin" train "${common[@]}" --out "$long" --resume "$long" --steps 20) 2>&1) &&
  fail "writing config.json under a 1 KiB file-size limit succeeded"
echo "$msg" | grep -qF "attnlab: writing '$long/config.json.tmp-" || fail "full-disk error does not name the temporary file: $msg"
echo "$msg" | grep -qF "' failed: File too large; '$long/config.json' was left as it was" || fail "full-disk error: $msg"
unchanged "the failed write of config.json"
if ls -A "$long" | grep -q tmp; then fail "the failed write left a temporary file: $(ls -A "$long")"; fi
rows=$((rows + 1))
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

# ---- signals: Ctrl-C (SIGINT) and SIGTERM save and say how to continue ----
# start_long FOLDER [ARGS]: a long run in the background ($long_pid), once
# it has trained a step (it logs every step).
start_long() {
  local folder=$1; shift
  "$bin" train "${common[@]}" --out "$folder" --steps 100000 --eval-every 100000 --log-every 1 "$@" > /dev/null 2> "$folder.err" &
  long_pid=$!
  for i in $(seq 1000); do [ -s "$folder/metrics.jsonl" ] && return; sleep 0.01; done
  fail "the run in $folder did not start: $(cat "$folder.err")"
}
# The step a checkpoint holds (its safetensors metadata: "step":"N").
checkpoint_step() { grep -aoE '"step":"[0-9]+"' "$1/checkpoint.safetensors" | head -1 | grep -oE '[0-9]+'; }
for sig in INT TERM; do
  folder=$dir/sig_$sig
  start_long "$folder"
  kill -"$sig" "$long_pid"
  rc=0; wait "$long_pid" || rc=$?
  want_rc=$([ "$sig" = INT ] && echo 130 || echo 143)
  [ "$rc" = "$want_rc" ] || fail "SIG$sig: exit status $rc, expected $want_rc: $(cat "$folder.err")"
  step=$(checkpoint_step "$folder")
  [ -n "$step" ] || fail "SIG$sig left no checkpoint: $(ls -A "$folder")"
  last=$(grep -oE '"step":[0-9]+' "$folder/metrics.jsonl" | tail -1 | grep -oE '[0-9]+')
  [ "$last" = "$step" ] || fail "SIG$sig: the checkpoint holds step $step, the last step trained was $last"
  resume="$bin train --data $dir/corpus.txt --out $folder --resume $folder --steps 100000"
  grep -qxF "attnlab: SIG$sig: saved the run at step $step of 100000 in '$folder'; continue it with: $resume" "$folder.err" ||
    fail "SIG$sig message: $(cat "$folder.err")"
  [ "$sig" = INT ] && note="(Ctrl-C again stops at once)" || note="(a second signal stops at once)"
  grep -qxF "attnlab: SIG$sig: finishing the step in flight, then saving $note" "$folder.err" ||
    fail "SIG$sig notice: $(cat "$folder.err")"
  [ "$(wc -l < "$folder.err")" -le 2 ] || fail "SIG$sig said more than two lines: $(cat "$folder.err")"
  # The printed command continues the run (here only two steps further).
  $resume --stop-at $((step + 2)) --quiet > /dev/null || fail "the printed command failed: $resume"
  [ "$(checkpoint_step "$folder")" = $((step + 2)) ] || fail "the printed command did not continue the run"
  rows=$((rows + 2))
done
# A second signal while the first is being handled: out at once, nothing
# saved. Stopped, the process gets SIGINT and SIGTERM together when it
# continues, so the second surely arrives before the step ends.
folder=$dir/sig_twice
start_long "$folder"
kill -STOP "$long_pid"; kill -INT "$long_pid"; kill -TERM "$long_pid"; kill -CONT "$long_pid"
rc=0; wait "$long_pid" || rc=$?
[ "$rc" = 130 ] || [ "$rc" = 143 ] || fail "two signals: exit status $rc: $(cat "$folder.err")"
grep -qxF "attnlab: second signal: stopped at once, without saving; the run folder keeps its last checkpoint" "$folder.err" ||
  fail "second signal message: $(cat "$folder.err")"
[ ! -e "$folder/checkpoint.safetensors" ] || fail "the second signal still saved a checkpoint"
rows=$((rows + 1))
# compare: the run in flight is saved, the command to go on is printed.
folder=$dir/sig_cmp
"$bin" compare "${common[@]}" --out "$folder" --attention mha,mqa --steps 100000 --eval-every 100000 --log-every 1 \
  > /dev/null 2> "$folder.err" &
long_pid=$!
for i in $(seq 1000); do [ -s "$folder/mha/seed-1337/metrics.jsonl" ] && break; sleep 0.01; done
kill -INT "$long_pid"
rc=0; wait "$long_pid" || rc=$?
[ "$rc" = 130 ] || fail "compare after SIGINT: exit status $rc: $(cat "$folder.err")"
grep -qxF "attnlab: SIGINT: the run in flight is saved and the finished ones are kept; continue with: $bin compare ${common[*]} --out $folder --attention mha,mqa --steps 100000 --eval-every 100000 --log-every 1" "$folder.err" ||
  fail "compare's message: $(cat "$folder.err")"
[ -n "$(checkpoint_step "$folder/mha/seed-1337")" ] || fail "compare's run in flight was not saved"
rows=$((rows + 1))

echo "bad_inputs: all $rows rows passed"
