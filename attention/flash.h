// Flash attention as a differentiable op: the fused kernel of the device
// (core/cpu/flash_attention.cpp) forward, and its recomputing backward.
#pragma once
#include <functional>
#include <vector>

#include "attention/block_sparsity.h"
#include "attention/kernel.h"
#include "core/backend.h"

namespace attn {

struct FlashOptions {
  bool causal = true;
  int64_t offset = 0;        // position of q's first row
  int64_t window = 0;        // 0 = unlimited; else the last `window` keys (itself included)
  std::vector<float> alibi;  // slope per query head, or empty
  float scale = 0;           // 0 = 1/sqrt(d)
  // Attention dropout (p = 0: none), regenerated in the backward; not with
  // a forward kernel passed in (chapter 14's has no dropout).
  AttentionDropoutArgs dropout;
  // A sparse pattern compiled to blocks (attention/block_sparsity.h), for
  // these very Tq, Tk and offset: only its blocks are visited, and it alone
  // masks (causal and window are ignored). null = dense.
  std::shared_ptr<const BlockSparsity> blocks;
};

// A forward kernel: fills a.out and a.lse from a.q, a.k, a.v (FlashArgs in
// core/backend.h). The backward only needs what it leaves behind, so any
// correct forward pairs with the device's recomputing backward.
using FlashForward = std::function<void(const FlashArgs& a)>;

// A range of query heads and the window they attend with (0 = unlimited).
// Multi-scale attention (attention/multiscale.h) gives each range its own.
struct HeadGroup {
  int64_t first_head = 0, heads = 0, window = 0;
};

// q [B, H, Tq, d], k/v [B, Hkv, Tk, d] with Hkv dividing H -> [B, H, Tq, d].
// Also returns the per-row logsumexp through `lse_out` when non-null.
// `forward` replaces the device's forward kernel (lesson 14 plugs the
// student's CUDA kernel in here); empty = the device's own.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const FlashOptions& o,
                       Tensor* lse_out = nullptr, const FlashForward& forward = {});

// Flash attention with a window per group of heads: one kernel call per
// group, each reading its heads where they lie in q, k, v (a head offset,
// never a copy) and writing them into the one output. The groups must tile
// heads 0..H-1 in order, each a whole number of K/V groups (H / Hkv query
// heads); o.window is ignored. Attention dropout draws each head's numbers
// as in one call over every head (AttentionDropoutArgs::first_head). CPU
// only: the CUDA backward clears dq as one dense block per call.
Tensor flash_attention_groups(const Tensor& q, const Tensor& k, const Tensor& v,
                              const FlashOptions& o, const std::vector<HeadGroup>& groups);

// The multi-head kernel: flash attention for an AttentionCall, with an
// optional sliding window.
AttentionKernel flash_kernel(int64_t window);

}  // namespace attn
