// Attention through a *pattern*: a bool mask [Tq, Tk] that says which
// (query, key) pairs may interact. Causal, sliding-window, strided and
// block-sparse attention are all patterns; this file holds what they share.
//
// Applying a pattern as a mask is the readable way and costs what dense
// attention costs: O(T^2) time and memory, because the full score matrix is
// still formed before the masked entries are thrown away. The win of a
// sparse pattern only shows up when a kernel skips the masked blocks (see
// window_attention_banded in attention/window.h for one that does).
#pragma once
#include <functional>

#include "attention/block_sparsity.h"
#include "attention/kernel.h"

namespace attn {

// Scaled dot-product attention for `call` with `keep` ([Tq, Tk], bool) as
// the allowed pairs: K/V heads repeated to the query heads, ALiBi added when
// the call has it, the weights filled when the call wants them. A query row
// with no allowed key outputs zeros.
Tensor attention_with_pattern(const AttentionCall& call, const Tensor& keep);

// Fraction of the Tq x Tk pairs the pattern allows, in [0, 1]. Causal
// attention over T tokens has (T + 1) / (2T), just over one half; a sparse
// pattern is worth it when its density falls far below that.
double pattern_density(const Tensor& keep);

// The kernel of a pattern: the block-skipping flash kernel (attention/flash.h,
// CPU or CUDA) over the blocks `compile` makes for each (Tq, Tk, offset),
// compiled once per shape, with K and V laid out by `gather` (identity
// unless the blocks run over gathered keys); when the caller wants the
// weights, or when v's head dim is not q's (or above 128 on CUDA),
// attention through `mask`.
using MaskOf = std::function<Tensor(const AttentionCall&)>;
using GatherKeys = std::function<Tensor(const Tensor& kv)>;
AttentionKernel pattern_kernel(BlockSparsityCache::Compile compile, MaskOf mask,
                               GatherKeys gather = {});

}  // namespace attn
