// Multi-head latent attention (MLA, from DeepSeek-V2).
//
// MQA and GQA shrink the KV cache by sharing K/V heads, at some cost in
// quality. MLA keeps every head distinct but caches only a small latent
// vector per token, c = x W_dkv (latent << 2 * heads * head_dim), from which
// each head's K and V are re-expanded:  k_h = c W_uk[h],  v_h = c W_uv[h].
//
// RoPE cannot sit inside k_h = c W_uk[h] (the rotation depends on the
// position and would not commute with the absorption below), so position
// travels on a separate, "decoupled" part: a small RoPE key shared by all
// heads, k_rope = RoPE(x W_kr), cached too, and a RoPE part of each query.
//   score_h(i, j) = (q_h,i . k_h,j + q_rope_h,i . k_rope_j) / sqrt(head_dim + rope_dim)
//
// Decoding absorbs the up-projections: q_h . (c W_uk[h]) = (q_h W_uk[h]^T) . c,
// and sum_j p_j (c_j W_uv[h]) = (sum_j p_j c_j) W_uv[h]; so per new token the
// model works on the latents directly and never rebuilds K or V.
// Cache per token and layer: (latent + rope_dim) floats.
#pragma once
#include "attention/attention.h"
#include "nn/linear.h"

namespace attn {

class MultiHeadLatentAttention : public Attention {
 public:
  MultiHeadLatentAttention(const AttentionConfig& config, int64_t latent, int64_t rope_dim,
                           Generator& gen);
  // Training / prefill path: expands K and V explicitly.
  Tensor forward(const Tensor& x) override;
  // Decoding path: caches latents and RoPE keys, attends with absorbed weights.
  Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t layer) override;
  bool encodes_positions() const override { return true; }
  CacheLayout cache_layout() const override { return {1, latent_, rope_dim_}; }

 private:
  struct Parts {
    Tensor q, q_rope;      // [B, H, T, d], [B, H, T, r]
    Tensor latent, k_rope;  // [B, 1, T, latent], [B, 1, T, r]
  };
  Parts project(const Tensor& x, int64_t offset);
  Tensor finish(const Tensor& heads_out, int64_t B, int64_t T);  // [B, H, T, d] -> [B, T, C]
  int64_t heads_, head_dim_, latent_, rope_dim_;
  float scale_;
  std::shared_ptr<Linear> wq_, wq_rope_, w_down_kv_, w_k_rope_, w_up_k_, w_up_v_, wo_;
};

}  // namespace attn
