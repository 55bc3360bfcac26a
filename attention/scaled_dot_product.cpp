// Scaled dot-product attention, the readable way:
//   scores  = q @ k^T / sqrt(d)       [B, H, Tq, Tk]
//   scores  = -inf where not allowed
//   weights = softmax(scores, -1)
//   out     = weights @ v             [B, H, Tq, d]
// Dividing by sqrt(d) keeps the scores' variance near 1 whatever the head
// size, so softmax does not saturate into a one-hot at initialisation.
#include <cmath>
#include <limits>

#include "attention/attention.h"
#include "attention/kernel.h"
#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

Tensor causal_mask(int64_t tq, int64_t tk, int64_t offset, const Device& device) {
  const Tensor i = reshape(arange(static_cast<double>(offset), static_cast<double>(offset + tq), 1,
                                  DType::Float32, device), {tq, 1});
  const Tensor j = reshape(arange(0, static_cast<double>(tk), 1, DType::Float32, device), {1, tk});
  return logical_not(gt(j, i));
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep, float scale, Tensor* weights_out,
                                    const Tensor& bias) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "scaled_dot_product_attention: expected q, k, v of shape [B, H, T, d], got ",
        shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  const Tensor weights = attention_weights(q, k, keep, scale, bias);
  if (weights_out) *weights_out = weights;
  return matmul(weights, v);
}

Tensor attention_weights(const Tensor& q, const Tensor& k, const Tensor& keep, float scale,
                         const Tensor& bias) {
  check(q.dim() == 4 && k.dim() == 4, "attention_weights: expected q, k of shape [B, H, T, d], got ",
        shape_str(q.shape()), ", ", shape_str(k.shape()));
  Tensor scores = mul(matmul(q, transpose(k, -2, -1)), scale);
  if (bias.defined()) scores = add(scores, bias);
  Tensor weights;
  if (keep.defined()) {
    scores = masked_fill(scores, logical_not(keep), -std::numeric_limits<float>::infinity());
    // A row with every key masked has no distribution to speak of: output
    // zeros for it (softmax of all -inf would be 0/0).
    const Tensor one = ones({}, DType::Float32, q.device()), zero = zeros({}, DType::Float32, q.device());
    const Tensor row_has_key = ne(sum(where(keep, one, zero), {-1}, true), 0.0);
    weights = where(row_has_key, softmax(scores, -1), zero);
  } else {
    weights = softmax(scores, -1);
  }
  return weights;
}

}  // namespace attn

namespace attn {

Tensor Attention::forward_cached(const Tensor&, KVCache&, int64_t) {
  fail("attention: this variant does not support a KV cache; generate without one");
}

Tensor repeat_kv(const Tensor& kv, int64_t heads) {
  const int64_t kv_heads = kv.shape()[1];
  check(heads % kv_heads == 0, "repeat_kv: ", kv_heads, " K/V heads do not divide ", heads,
        " query heads");
  // Each K/V head is repeated in place (k0 k0 k1 k1), matching h / group;
  // a plain repeat (k0 k1 k0 k1) would pair query heads with the wrong K/V.
  return kv_heads == heads ? kv : repeat_interleave(kv, heads / kv_heads, 1);
}

Tensor AttentionCall::bias() const {
  if (alibi.empty()) return Tensor();
  return alibi_bias(alibi, q.shape()[2], k.shape()[2], offset, q.device());
}

// The same computation as scaled_dot_product_attention with a causal mask
// and the ALiBi bias, but the scaling, the bias, the mask and the softmax are
// one fused op (causal_softmax): one pass over the [B, H, Tq, Tk] scores
// instead of five, and only the weights are kept for the backward.
// Attention dropout (training) drops some of the weights in the same pass
// (causal_softmax_dropout), unless the caller wants the undropped weights
// to look at.
Tensor dense_causal_attention(const AttentionCall& c) {
  const int64_t heads = c.q.shape()[1];
  const Tensor scores = matmul(c.q, transpose(repeat_kv(c.k, heads), -2, -1));
  if (c.dropout.p > 0 && !c.want_weights)
    return matmul(causal_softmax_dropout(scores, c.scale, c.offset, c.alibi, c.dropout), repeat_kv(c.v, heads));
  const Tensor weights = causal_softmax(scores, c.scale, c.offset, c.alibi);
  if (c.want_weights) c.weights = weights;
  return matmul(c.drop(weights), repeat_kv(c.v, heads));
}

}  // namespace attn
