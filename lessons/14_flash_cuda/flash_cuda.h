// Chapter 14 glue (you do not write this): your kernel as a differentiable
// Tensor op. The forward runs your flash_forward_launch (flash_kernel.cu);
// the backward is the library's recomputing flash backward, which needs only
// what your forward leaves behind: q, k, v, the output and the logsumexp.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson14 {

struct FlashCudaOptions {
  bool causal = true;
  int64_t offset = 0;  // position of q's first row
  int64_t window = 0;  // 0 = every earlier key; else the last `window` keys
  float scale = 0;     // 0 = 1/sqrt(d)
};

// q [B, H, Tq, d], k/v [B, Hkv, Tk, d] on a CUDA device -> [B, H, Tq, d];
// the per-row logsumexp [B, H, Tq] through lse_out when non-null. Waits for
// the kernel, so that a fault inside it is reported here, as attn::Error.
attn::Tensor flash_attention_cuda(const attn::Tensor& q, const attn::Tensor& k,
                                  const attn::Tensor& v, const FlashCudaOptions& options = {},
                                  attn::Tensor* lse_out = nullptr);

}  // namespace lesson14
