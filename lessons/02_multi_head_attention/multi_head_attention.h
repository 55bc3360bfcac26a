// Chapter 02: multi-head attention.
//
// You implement split_heads, merge_heads and MultiHeadAttention::forward in
// multi_head_attention.cpp. The constructor (which creates the four
// projections) is given. For the attention itself call the library's
//   attn::scaled_dot_product_attention(q, k, v, keep, scale)
// (attention/attention.h): it is what you wrote in chapter 01.
#pragma once
#include <cstdint>
#include <memory>

#include "attention/attention.h"
#include "nn/linear.h"

namespace lesson02 {

using attn::Tensor;

// [B, T, C] -> [B, heads, T, C / heads].
// Each token's C features are cut into `heads` slices of d = C / heads:
// head h gets features h*d .. h*d + d - 1. View as [B, T, heads, d] (free),
// then swap the T and heads dims so each head is a [T, d] matrix.
Tensor split_heads(const Tensor& x, int64_t heads);

// [B, heads, T, d] -> [B, T, heads * d], contiguous: the inverse of
// split_heads. Swap heads and T back first, then flatten the last two dims.
Tensor merge_heads(const Tensor& x);

// Causal multi-head self-attention, x [B, T, C] -> [B, T, C]:
//   q, k, v = x Wq^T + bq, x Wk^T + bk, x Wv^T + bv      [B, T, C] each
//   split each into heads                                [B, H, T, d]
//   o = softmax(q k^T / sqrt(d) + causal mask) v          [B, H, T, d]
//   merge the heads and project: merge(o) Wo^T + bo      [B, T, C]
// Its parameters are named like the library's attn::MultiHeadAttention
// (wq, wk, wv, wo, each with .weight [C, C] and .bias [C]), so the two can
// load each other's state_dict.
class MultiHeadAttention : public attn::Attention {
 public:
  // Given (not part of the exercise): checks that heads divides embd and
  // registers the four projections. `layers` only shrinks wo's initial
  // weights by 1/sqrt(2 layers), as GPT-2 (and the library) do.
  MultiHeadAttention(int64_t embd, int64_t heads, attn::Generator& gen, bool bias = true,
                     int64_t layers = 1);

  // x [B, T, C] -> [B, T, C], causal (token t sees tokens 0..t).
  Tensor forward(const Tensor& x) override;

  int64_t heads() const { return heads_; }
  int64_t head_dim() const { return head_dim_; }

 private:
  int64_t heads_, head_dim_;
  std::shared_ptr<attn::Linear> wq_, wk_, wv_, wo_;
};

}  // namespace lesson02
