// Attention dropout's keep decisions, shared by every kernel that drops
// attention probabilities: the dense path (autograd's dropout op on the
// [B, H, Tq, Tk] weights), the banded window path, and the flash kernels on
// the CPU and the GPU, forward and backward.
//
// Probability P[b, h, i, j] (batch row b, query head h, query i, key j of
// an attention with Tq queries and Tk keys) is element
//     (h * Tq + i) * Tk + j
// of sample first_sample + b of the Philox stream (seed, offset): exactly
// what dropout() on a contiguous [B, H, Tq, Tk] tensor with rows as samples
// draws (core/philox.h). So every path drops the same entries for the same
// stream, and a flash kernel can recompute any tile's decisions on its own,
// in the forward and again in the backward, without a stored T x T mask.
//
// Compiled by the host compiler and by nvcc (C++17, no Tensor).
#pragma once
#include <cstdint>

#include "core/philox.h"

namespace attn {

// One attention call's dropout: p = 0 means none.
struct AttentionDropoutArgs {
  uint64_t seed = 0, offset = 0;
  int64_t first_sample = 0;  // the data-order index of batch row 0
  float p = 0;
  // The call's head 0 is head first_head of the attention: a kernel call
  // over one group of heads (multi-scale attention's, attention/flash.h)
  // draws the decisions its heads have in the whole attention.
  int64_t first_head = 0;
};

namespace attention_dropout {

// The element index of P[., h, i, j] within its sample (64-bit: H Tq Tk
// passes 2^32 at long sequences), h counted within the call.
ATTN_HOST_DEVICE uint64_t element(const AttentionDropoutArgs& a, int64_t h, int64_t i, int64_t j,
                                  int64_t tq, int64_t tk) {
  const uint64_t head = static_cast<uint64_t>(a.first_head + h);
  return (head * static_cast<uint64_t>(tq) + static_cast<uint64_t>(i)) * static_cast<uint64_t>(tk) +
         static_cast<uint64_t>(j);
}

// What a kept probability is multiplied by: 1 / (1 - p), the same float
// expression as the dropout op's, so that the paths agree to the bit here.
ATTN_HOST_DEVICE float keep_scale(const AttentionDropoutArgs& a) { return 1.0f / (1.0f - a.p); }

// Whether element e of batch row b is kept (philox::keep, spelled out).
ATTN_HOST_DEVICE bool keep(const AttentionDropoutArgs& a, int64_t b, uint64_t e) {
  return philox::keep({a.seed, a.offset}, static_cast<uint64_t>(a.first_sample + b), e, a.p);
}

// The decisions of elements e0 .. e0 + 31 of batch row b as bits (bit k:
// element e0 + k kept). One Philox evaluation gives four consecutive
// elements, so this takes 8 evaluations (9 when e0 is not a multiple of 4)
// instead of 32; the loops unroll so every word index is a constant (on the
// GPU a computed index would put the four words in local memory).
ATTN_HOST_DEVICE uint32_t keep_bits32(const AttentionDropoutArgs& a, int64_t b, uint64_t e0) {
  const philox::Stream stream{a.seed, a.offset};
  const uint64_t sample = static_cast<uint64_t>(a.first_sample + b);
  const int skip = static_cast<int>(e0 & 3);  // elements of the first group before e0
  uint32_t bits = 0;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int q = 0; q < 9; ++q) {
    if (q == 8 && skip == 0) break;
    const philox::Words w = philox::group_at(stream, sample, (e0 >> 2) + static_cast<uint64_t>(q));
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int m = 0; m < 4; ++m) {
      const int k = 4 * q + m - skip;
      if (k >= 0 && k < 32 && philox::uniform(w.w[m]) >= a.p) bits |= 1u << k;
    }
  }
  return bits;
}

}  // namespace attention_dropout
}  // namespace attn
