// Linear attention, non-causal and causal-chunked: see linear.h.
//
// The chunked causal form. Cut the T positions into chunks of c. For the
// chunk [s, s + c) with phi(q), phi(k), v rows Qc, Kc, Vc:
//
//   before the chunk:  S = sum_{j<s} phi(k_j) v_j^T,  z = sum_{j<s} phi(k_j)
//   inside the chunk:  A = tril(Qc Kc^T)   (c x c: query i, key j <= i)
//   numerator   = Qc S + A Vc             [c, d_v]
//   denominator = Qc z + rowsum(A)        [c, 1]   (z as a [d, 1] column)
//   then fold the chunk in:  S += Kc^T Vc,  z += colsum(Kc)^T
//
// Why chunks rather than one cumsum over T outer products phi(k_j) v_j^T:
// that cumsum is a [T, d, d] tensor (T d^2 floats, kept for backward); the
// chunks keep only T/c states of d x d plus c x c blocks. Time is
// O(T c d + T d^2), still linear in T.
//
// Written chunk by chunk that is a loop of a dozen small ops per chunk
// (chapter 10's task). The library runs every chunk at once instead: the
// per-chunk products as batched ones, and the running S and z as one scan
// over the chunks' Kc^T Vc (linear_chunked.cpp, one autograd op with its
// own backward).
#include "attention/linear.h"

#include "attention/linear_chunked.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

namespace {

void check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.shape()[2] == v.shape()[2] &&
            k.shape()[1] == v.shape()[1] && q.shape()[3] == k.shape()[3],
        op, ": expected q [B, H, T, d] and k, v [B, Hkv, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
}

// numerator / (denominator + eps): eps only guards against 0/0 in float;
// phi > 0 keeps the denominator positive anyway.
Tensor normalise(const Tensor& numerator, const Tensor& denominator, float eps) {
  return div(numerator, add(denominator, eps));
}

}  // namespace

Tensor elu_feature_map(const Tensor& x) { return add(elu(x), 1.0f); }

Tensor linear_attention_noncausal(const Tensor& q, const Tensor& k, const Tensor& v, float eps) {
  check_qkv("linear_attention_noncausal", q, k, v);
  return linear_attention_noncausal_features(elu_feature_map(q), elu_feature_map(k), v, eps);
}

Tensor linear_attention_noncausal_features(const Tensor& fq, const Tensor& fk, const Tensor& v,
                                           float eps) {
  check_qkv("linear_attention_noncausal", fq, fk, v);
  const int64_t heads = fq.shape()[1];
  const Tensor fkr = repeat_kv(fk, heads);
  const Tensor state = matmul(transpose(fkr, -2, -1), repeat_kv(v, heads));  // [B, H, m, d_v]
  const Tensor z = sum(fkr, {2}, true);                                       // [B, H, 1, m]
  return normalise(matmul(fq, state), sum(mul(fq, z), {-1}, true), eps);
}

Tensor linear_attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk,
                               float eps) {
  check_qkv("linear_attention_causal", q, k, v);
  return linear_attention_causal_features(elu_feature_map(q), elu_feature_map(k), v, chunk, eps);
}

Tensor linear_attention_causal_features(const Tensor& fq, const Tensor& fk, const Tensor& v,
                                        int64_t chunk, float eps) {
  return linear_attention_chunked(fq, fk, v, chunk, eps, "linear_attention_causal");
}

Tensor linear_attention(const AttentionCall& c) {
  check(c.alibi.empty(), "attention linear: ALiBi biases scores, and linear attention has none");
  check(c.offset == 0 && c.k.shape()[2] == c.q.shape()[2],
        "attention linear: no K/V cache (offset ", c.offset, ", ", c.k.shape()[2], " keys for ",
        c.q.shape()[2], " queries); run it on the whole sequence");
  return linear_attention_causal(c.q, c.k, c.v);
}

LinearMultiHeadAttention::LinearMultiHeadAttention(const AttentionConfig& config,
                                                   int64_t kv_heads, Generator& gen,
                                                   PositionOptions positions)
    : MultiHeadAttention(config, kv_heads, gen, positions, linear_attention) {
  // phi(q) (sum phi(k) v^T) never forms the probabilities attention dropout drops.
  check(config.dropout == 0, "attention linear: has no attention probabilities to drop; "
        "--attn-dropout must be 0 for it, got ", config.dropout);
}

Tensor LinearMultiHeadAttention::forward_cached(const Tensor&, KVCache&, int64_t) {
  fail("attention linear: no K/V cache (its state is sum phi(k) v^T, not K and V); ",
       "generate without a cache");
}

}  // namespace attn
