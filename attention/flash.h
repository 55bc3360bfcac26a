// Flash attention as a differentiable op: the fused kernel of the device
// (core/cpu/flash_attention.cpp) forward, and its recomputing backward.
#pragma once
#include <vector>

#include "attention/kernel.h"

namespace attn {

struct FlashOptions {
  bool causal = true;
  int64_t offset = 0;        // position of q's first row
  int64_t window = 0;        // 0 = unlimited; else the last `window` keys (itself included)
  std::vector<float> alibi;  // slope per query head, or empty
  float scale = 0;           // 0 = 1/sqrt(d)
};

// q [B, H, Tq, d], k/v [B, Hkv, Tk, d] with Hkv dividing H -> [B, H, Tq, d].
// Also returns the per-row logsumexp through `lse_out` when non-null.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const FlashOptions& o,
                       Tensor* lse_out = nullptr);

// The multi-head kernel: flash attention for an AttentionCall, with an
// optional sliding window.
AttentionKernel flash_kernel(int64_t window);

}  // namespace attn
