// A few untimed training steps of every variant before a comparison times
// anything.
//
// The first steps a process takes pay once for things no later step pays
// for: the CPU thread pool's start, the allocator filling its caches, on a
// GPU the CUDA context, the cuBLAS handles and every kernel's first load.
// In `compare` they would all land inside the first run of each variant,
// most of them in the baseline's first seed: its tokens/s would read low,
// and under `--budget seconds` it would train fewer steps than the others
// in the same time. Warming up first leaves every run to be timed the same
// way. Nothing here touches a file or a generator a run uses, so the runs'
// results are bitwise what they would be without it.
#pragma once
#include <string>
#include <vector>

#include "train/trainer.h"

namespace attn {

// `steps` training steps (forward, cross-entropy, backward, AdamW) of each
// attention variant in `variants`, built as `base` builds its model (shape,
// dropout, precision, device) on random tokens, then discarded.
void warm_up(const TrainOptions& base, const std::vector<std::string>& variants, int steps = 2);

}  // namespace attn
