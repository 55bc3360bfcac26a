#!/usr/bin/env bash
# The recipe as the benchmark: nanoGPT's shakespeare_char recipe trained end
# to end on the GPU, by attnlab (`flash`) and by PyTorch (eager fp32, SDPA),
# one seed of each side per call:
#
#   bash bench/run_recipe_bench.sh ATTNLAB_BINARY CORPUS OUT_DIR [SEED]
#
# Both sides: 6 layers, 6 heads, embd 384, block 256, batch 64, no biases,
# dropout 0.2 (embeddings, residual branches) and attention dropout 0.2,
# AdamW lr 1e-3 with 100 warmup steps and cosine decay to 1e-4, betas
# (0.9, 0.99), weight decay 0.1 on matrices, grad clip 1.0, 5000 steps,
# evaluation over 200 batches of each split every 500 steps with a
# checkpoint each time, fp32 (TF32 off on both sides). STEPS=N shortens it;
# PRECISION=bf16 trains both sides under bfloat16 autocast, and
# TORCH_COMPILE=1 adds torch.compile to PyTorch's side.
#
# Writes OUT_DIR/ours.log, torch.log and recipe.jsonl (one JSON line per
# side: wall time, train time, ms per step, peak memory, best val loss).
# Run the two sides in one call so they share the machine's state; GPU
# timings from different calls are compared only through ratios.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1 corpus=$2 out=$3 seed=${4:-1}
steps=${STEPS:-5000}
precision=${PRECISION:-fp32}
compile_flag=$([ "${TORCH_COMPILE:-0}" = 1 ] && echo --compile || true)
mkdir -p "$out"

start=$(date +%s%N)
"$bin" train --data "$corpus" --out "$out/ours_seed$seed" --device cuda --seed "$seed" \
  --attention flash --layers 6 --heads 6 --embd 384 --block 256 --batch 64 --bias false \
  --dropout 0.2 --attn-dropout 0.2 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta1 0.9 --beta2 0.99 \
  --weight-decay 0.1 --grad-clip 1.0 --steps "$steps" --eval-every 500 --eval-batches 200 \
  --sample-tokens 200 --precision "$precision" --quiet --overwrite > "$out/ours.log" 2>&1
wall=$(( ($(date +%s%N) - start) / 1000000 ))e-3  # seconds, from nanoseconds
# "best val loss B; T s in N steps (M ms/step), W s in all; peak P MiB"
python3 - "$out/ours.log" "$wall" "$seed" "$steps" "$precision" >> "$out/recipe.jsonl" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"best val loss ([\d.]+); ([\d.]+) s in (\d+) steps \(([\d.]+) ms/step\), [\d.]+ s in all; peak (\d+) MiB", text)
print(json.dumps({"impl": "attnlab flash " + sys.argv[5], "seed": int(sys.argv[3]), "steps": int(sys.argv[4]),
                  "wall_s": round(float(sys.argv[2]), 1), "train_s": float(m[2]),
                  "ms_per_step": float(m[4]), "peak_mib": float(m[5]), "best_val": float(m[1])}))
EOF

python3 "$root/bench/recipe_torch.py" --data "$corpus" --out "$out/torch_seed$seed" --seed "$seed" \
  --steps "$steps" --precision "$precision" $compile_flag > "$out/torch.log" 2>&1
grep '^{' "$out/torch.log" | tail -n 1 >> "$out/recipe.jsonl"
cat "$out/recipe.jsonl"
