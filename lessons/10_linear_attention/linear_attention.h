// Chapter 10: linear attention ("Transformers are RNNs").
//
// You implement the three functions below in linear_attention.cpp with the
// differentiable ops of autograd/ops.h (elu, add, matmul, transpose, sum,
// div, tril, narrow, cat, zeros, ...); backward() then works for free.
//
// Softmax attention weighs key j for query i by exp(q_i . k_j). Linear
// attention uses a product of feature maps instead,
//     sim(q_i, k_j) = phi(q_i) . phi(k_j),   phi(x) = elu(x) + 1  (> 0),
// and because that similarity factorises, the sums over keys can be done
// once, as a d x dv matrix S = sum_j phi(k_j) v_j^T and a d-vector
// z = sum_j phi(k_j), instead of once per query:
//     out_i = phi(q_i)^T S / (phi(q_i) . z + eps)
// No softmax: no 1/sqrt(d) scale and no attention weights are formed.
//
// Shapes: B batch, H heads, T queries, Tk keys, d the size of q and k, dv
// the size of v. k and v have the same number of heads as q.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson10 {

using attn::Tensor;

// phi(x) = elu(x) + 1, elementwise: x + 1 for x > 0, exp(x) for x <= 0.
// Always positive, so every similarity and every denominator is positive.
// Any shape -> the same shape.
Tensor elu_feature_map(const Tensor& x);

// Every query sees every key (an encoder):
//   S = phi(K)^T V          [B, H, d, dv]   (one state for all queries)
//   z = sum_j phi(k_j)      [B, H, 1, d]
//   out = phi(Q) S / (phi(Q) . z + eps)
// q [B, H, T, d], k [B, H, Tk, d], v [B, H, Tk, dv] -> [B, H, T, dv].
// Time O(T d dv + Tk d dv); never a T x Tk matrix.
Tensor linear_attention_noncausal(const Tensor& q, const Tensor& k, const Tensor& v,
                                  float eps = 1e-6f);

// Causal: query i may only use keys j <= i, so S and z become prefix sums
//   S_i = sum_{j<=i} phi(k_j) v_j^T,   z_i = sum_{j<=i} phi(k_j)
//   out_i = phi(q_i)^T S_i / (phi(q_i) . z_i + eps)
// computed chunk by chunk: `chunk` positions at a time, exactly inside the
// chunk with a small chunk x chunk matrix masked by tril, and through the
// running (S, z) of all earlier chunks. chunk = 1 is the pure RNN form.
// q, k [B, H, T, d], v [B, H, T, dv] -> [B, H, T, dv]. chunk >= 1.
// Memory O(T): never a T x T matrix.
Tensor linear_attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk,
                               float eps = 1e-6f);

}  // namespace lesson10
