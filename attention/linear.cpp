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
#include "attention/linear.h"

#include <algorithm>

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

Tensor linear_attention_causal_features(const Tensor& fq, const Tensor& fk_kv, const Tensor& v,
                                        int64_t chunk, float eps) {
  const char* op = "linear_attention_causal";
  check_qkv(op, fq, fk_kv, v);
  check(chunk >= 1, op, ": chunk must be >= 1, got ", chunk);
  const int64_t B = fq.shape()[0], H = fq.shape()[1], T = fq.shape()[2], d = fq.shape()[3];
  const int64_t dv = v.shape()[3];
  check(fk_kv.shape()[2] == T, op, ": causal linear attention needs as many keys as queries, got ",
        fk_kv.shape()[2], " keys for ", T, " queries");
  check(T > 0, op, ": no positions");
  const Tensor fk = repeat_kv(fk_kv, H);
  const Tensor vv = repeat_kv(v, H);
  Tensor state = zeros({B, H, d, dv}, DType::Float32, fq.device());  // S over earlier chunks
  Tensor norm = zeros({B, H, d, 1}, DType::Float32, fq.device());    // z over earlier chunks
  std::vector<Tensor> out;
  for (int64_t s = 0; s < T; s += chunk) {
    const int64_t n = std::min(chunk, T - s);
    const Tensor qc = narrow(fq, 2, s, n), kc = narrow(fk, 2, s, n), vc = narrow(vv, 2, s, n);
    // Inside the chunk the exact causal sum: tril keeps key j <= query i.
    // Forgetting it (or using the whole chunk) leaks the chunk's future.
    const Tensor a = tril(matmul(qc, transpose(kc, -2, -1)));  // [B, H, n, n]
    const Tensor numerator = add(matmul(qc, state), matmul(a, vc));
    const Tensor denominator = add(matmul(qc, norm), sum(a, {-1}, true));
    out.push_back(normalise(numerator, denominator, eps));
    // Only now, after the chunk's queries are done, do its keys join the state.
    state = add(state, matmul(transpose(kc, -2, -1), vc));
    norm = add(norm, transpose(sum(kc, {2}, true), -2, -1));
  }
  return out.size() == 1 ? out.front() : cat(out, 2);
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
