// Linear attention (Katharopoulos et al., "Transformers are RNNs"): replace
// the softmax similarity exp(q . k) by a product of feature maps
// phi(q) . phi(k), here phi(x) = elu(x) + 1 (positive, so every weight is
// positive and the normaliser never vanishes).
//
// Softmax attention for query i:   out_i = sum_j w_ij v_j,  w_ij ~ exp(q_i.k_j)
// Linear attention:                out_i = phi(q_i)^T S / (phi(q_i) . z)
//   with S = sum_j phi(k_j) v_j^T   ([d, d_v], the same for every query)
//    and z = sum_j phi(k_j)         ([d])
// Associativity is the whole trick: (phi(Q) phi(K)^T) V, a T x T matrix,
// equals phi(Q) (phi(K)^T V), a d x d one. Time O(T d^2) instead of
// O(T^2 d); memory no T x T at all.
//
// Causal: query i may only use keys j <= i, so S and z become prefix sums
//   S_i = sum_{j<=i} phi(k_j) v_j^T,   z_i = sum_{j<=i} phi(k_j)
//   out_i = phi(q_i)^T S_i / (phi(q_i) . z_i + eps)
// Using the non-causal S (all keys) in a language model is the classic
// "causal leak": the model then reads the future and its loss is a lie.
//
// The causal form is computed in chunks of c positions (see linear.cpp):
// exact inside a chunk with a small c x c matrix, and through the running
// state (S, z) for everything before the chunk. Time O(T c d + T d^2).
// All chunks go at once, as batched products and one scan over the chunks
// (linear_chunked.cpp), so the cost per token does not grow with T.
// Memory: O(T c + T d + d^2 T/c) (the c x c blocks and the T/c states,
// kept for the backward). Never T x T, never [T, d, d].
//
// No softmax means no attention weights (call.weights stays undefined), no
// 1/sqrt(d) scale (phi is applied to q and k as they are) and no ALiBi
// (there are no scores to bias). Decoding could carry (S, z) as an O(d^2)
// "cache", but that is not a K/V cache, so this variant has none: generation
// recomputes the prefix.
#pragma once
#include "attention/kernel.h"
#include "attention/multi_head.h"

namespace attn {

// phi(x) = elu(x) + 1: x + 1 for x > 0, exp(x) for x <= 0. Always > 0.
Tensor elu_feature_map(const Tensor& x);

// Every query sees every key (an encoder, or a test oracle for the last
// row). q [B, H, T, d], k/v [B, Hkv, Tk, d] -> [B, H, T, d].
Tensor linear_attention_noncausal(const Tensor& q, const Tensor& k, const Tensor& v,
                                  float eps = 1e-6f);

// Causal, in chunks of `chunk` positions. q [B, H, T, d], k/v [B, Hkv, T, d].
Tensor linear_attention_causal(const Tensor& q, const Tensor& k, const Tensor& v,
                               int64_t chunk = 64, float eps = 1e-6f);

// The same two paths for any positive feature map, applied by the caller:
// fq = phi(q) [B, H, T, m], fk = phi(k) [B, Hkv, Tk, m], v [B, Hkv, Tk, d_v]
// -> [B, H, T, d_v]. The feature width m need not be d: Performer's random
// features (attention/performer.h) have m = the number of features.
Tensor linear_attention_noncausal_features(const Tensor& fq, const Tensor& fk, const Tensor& v,
                                           float eps = 1e-6f);
Tensor linear_attention_causal_features(const Tensor& fq, const Tensor& fk, const Tensor& v,
                                        int64_t chunk = 64, float eps = 1e-6f);

// The kernel of the `linear` variant: causal, no K/V cache (offset 0 and
// Tk == Tq), no ALiBi; call.weights stays undefined.
Tensor linear_attention(const AttentionCall& call);

// Multi-head attention with the linear kernel and no K/V cache: generation
// then runs the whole prefix each step instead of decoding with a cache.
class LinearMultiHeadAttention : public MultiHeadAttention {
 public:
  LinearMultiHeadAttention(const AttentionConfig& config, int64_t kv_heads, Generator& gen,
                           PositionOptions positions = {});
  Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t layer) override;
  CacheLayout cache_layout() const override { return {}; }
};

}  // namespace attn
