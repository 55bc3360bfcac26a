// Chapter 16: approximating softmax with kernels — Performer and Linformer.
//
// Performer (FAVOR+) replaces exp(q . k / sqrt(d)) by phi(q) . phi(k) with
// M positive random features
//   phi(x)_m = exp(w_m . x' - |x'|^2 / 2 - c) / sqrt(M),   x' = x / d^(1/4),
// w_m the rows of a random [M, d] projection and c a stabiliser that
// cancels (per row for queries, one value for all keys). Then attention is
// linear attention (chapter 10) with phi: no T x T matrix, O(T M d).
//
// Linformer projects K and V along the sequence with E, F [k, T]: every
// projected row mixes all positions, so it is bidirectional attention only.
//
// Shapes: B batch, H heads, T positions, d the head size, M features.
// q, k, v [B, H, T, d]; w [M, d]; e, f [k, Tmax] with Tmax >= T.
//
// You implement the four functions below in performer.cpp with the ops of
// autograd/ops.h (plain C++ loops for the projection). The variant
// student:performer:features=M (performer_glue.cpp) runs your code in a GPT.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson16 {

using attn::Tensor;

// The random projection [M, d], from `seed` alone (seed an attn::Generator
// with it; the same seed must give the same matrix).
//   orthogonal = false: every entry an independent N(0, 1) (gen.normal()).
//   orthogonal = true:  blocks of d rows (the last block only the rows still
//     needed). In each block, Gram-Schmidt makes the rows of a d x d
//     Gaussian matrix orthonormal; then each row is multiplied by the norm
//     of a fresh N(0, I_d) vector, so that its length is chi_d-distributed
//     like an iid Gaussian row's. Throws attn::Error for features < 1 or
//     dim < 1 ("performer: features=0: expected a positive count").
Tensor gaussian_projection(int64_t features, int64_t dim, bool orthogonal, uint64_t seed);

// phi(x): x [..., T, d] as it comes (unscaled), w [M, d] -> [..., T, M]:
// x' = x * d^(-1/4), a = x' w^T - |x'|^2 / 2, then exp(a - c) / sqrt(M) with
//   queries (is_query): c = the max of a over the M features, per row;
//   keys:               c = the max of a over the last two dims [T, M].
// c is a constant (detach() it): it cancels in the attention.
Tensor favor_features(const Tensor& x, const Tensor& w, bool is_query);

// FAVOR+ attention with your features, -> [B, H, T, d_v]:
//   out_i = phi(q_i)^T S / (phi(q_i) . z)
// non-causal: S = sum_j phi(k_j) v_j^T [M, d], z = sum_j phi(k_j) [M];
// causal: the same with prefix sums over j <= i (cumsum along T).
// v may be wider than d ([B, H, T, d_v]). Add 1e-12 to the denominator: it
// only guards 0/0 when every feature of a prefix underflowed.
Tensor favor_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w,
                       bool causal);

// Bidirectional Linformer: K' = E K, V' = F V along the sequence (the first
// T columns of e and f), out = softmax(q K'^T / sqrt(d)) V' -> [B, H, T, d].
// Throws attn::Error when e and f are not [k, Tmax] with Tmax >= T.
Tensor linformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e,
                           const Tensor& f);

}  // namespace lesson16
