// Chapter 01: softmax and scaled dot-product attention.
//
// You implement the four functions below in softmax_attention.cpp, using the
// differentiable ops of autograd/ops.h (max, sub, exp, sum, div, matmul,
// transpose, masked_fill, where, ...). Because every step is an autograd op,
// backward() works on your code without you writing a single derivative.
//
// Conventions used everywhere in this course:
//   B batch, H heads, Tq queries, Tk keys, d head size (of q and k), dv value size.
//   A "keep" mask is a bool tensor: true = this query may look at this key.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson01 {

using attn::Tensor;

// Softmax over the last dim, the numerically stable way:
//   m   = max_j x_j                      (per row)
//   y_i = exp(x_i - m) / sum_j exp(x_j - m)
// x: float32 [..., N] -> [..., N]; every row of the result sums to 1.
// Subtracting m changes nothing mathematically, but keeps exp() from
// overflowing: exp(1000) is inf in float32, exp(1000 - 1000) is 1.
// A row may contain -inf entries (they get weight 0) as long as it has at
// least one finite entry.
Tensor softmax(const Tensor& x);

// The causal mask for a sequence of T tokens: keep[i, j] = (j <= i).
// Returns bool [T, T]. Query i may look at itself and at the past only.
Tensor causal_mask(int64_t t);

// The padding mask for a batch of sequences padded at the end to T tokens.
// lengths: int64 [B], the number of real tokens of each sequence (0..T).
// Returns bool [B, 1, 1, T] with keep[b, 0, 0, j] = (j < lengths[b]), a shape
// that broadcasts over heads and queries against scores [B, H, Tq, T].
Tensor padding_mask(const Tensor& lengths, int64_t t);

// Scaled dot-product attention:
//   scores  = q @ k^T / sqrt(d)                 [B, H, Tq, Tk]
//   scores  = -inf where keep is false           (mask BEFORE the softmax)
//   weights = softmax(scores) over the keys      [B, H, Tq, Tk]
//   out     = weights @ v                        [B, H, Tq, dv]
// q [B, H, Tq, d], k [B, H, Tk, d], v [B, H, Tk, dv].
// keep: bool, broadcastable to [B, H, Tq, Tk] (e.g. causal_mask [Tq, Tk], or
// padding_mask [B, 1, 1, Tk], or both combined with logical_and); an
// undefined Tensor means every key is allowed.
// A query row with no allowed key at all gets zero weights and a zero
// output (not NaN).
// weights_out: when non-null, receives the weights [B, H, Tq, Tk].
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep = Tensor(), Tensor* weights_out = nullptr);

}  // namespace lesson01
