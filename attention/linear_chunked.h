// Causal linear attention as one autograd op: every chunk at once, as a few
// batched matrix products and one scan, forward and backward (see
// linear_chunked.cpp). linear_attention_causal_features (linear.h) is this op;
// attention/linear.h explains the math it computes.
#pragma once
#include "core/tensor.h"

namespace attn {

// fq = phi(q) [B, H, T, m], fk = phi(k) [B, Hkv, T, m], v [B, Hkv, T, d_v]
// -> [B, H, T, d_v], with Hkv dividing H (query head h reads K/V head
// h / (H / Hkv)) and any feature width m. Query i sees keys j <= i:
//   out_i = sum_{j<=i} (fq_i . fk_j) v_j / (sum_{j<=i} fq_i . fk_j + eps)
// computed in chunks of `chunk` positions (>= 1; a chunk longer than T
// becomes T). Errors name `op`.
Tensor linear_attention_chunked(const Tensor& fq, const Tensor& fk, const Tensor& v,
                                int64_t chunk, float eps, const char* op = "linear_attention_causal");

}  // namespace attn
