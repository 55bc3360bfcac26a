// Chapter 12: multi-head latent attention (MLA, DeepSeek-V2).
//
// You implement, in latent_attention.cpp: up_project, mla_attention,
// mla_attention_absorbed, mla_cache_bytes_per_token, and the module's
// project, forward, forward_cached and cache_layout. The module's
// constructor and merge() are given.
//
// Names: B batch, H heads, C = H * d model width, d head size of the
// content ("nope") part, r the size of the RoPE part (even), L the latent
// size, T new tokens, S tokens cached (keys).
//
// Weights are stored as attn::Linear stores them, [out, in] (y = x W^T + b):
//   W_dkv  [L, C]      x -> latent c               (w_down_kv)
//   W_uk   [H*d, L]    c -> per-head keys          (w_up_k, no bias)
//   W_uv   [H*d, L]    c -> per-head values        (w_up_v, no bias)
//   W_kr   [r, C]      x -> ONE RoPE key per token (w_k_rope)
//   W_q    [C, C]      x -> per-head queries       (wq)
//   W_qr   [H*r, C]    x -> per-head RoPE queries  (wq_rope)
// Head h owns rows h*d .. h*d+d-1 of W_uk and W_uv.
#pragma once
#include <cstdint>
#include <memory>

#include "attention/attention.h"
#include "attention/kv_cache.h"
#include "nn/linear.h"

namespace lesson12 {

using attn::Tensor;

// Re-expands per-head keys (or values) from the latent:
//   latent [B, T, L], w_up [H*d, L]  ->  [B, H, T, d],
//   out[b, h, t, :] = latent[b, t, :] @ w_up[h*d : h*d+d, :]^T.
// w_up.shape()[0] % heads != 0 throws attn::Error.
Tensor up_project(const Tensor& latent, const Tensor& w_up, int64_t heads);

// The explicit MLA attention (training and prefill):
//   q [B, H, T, d], q_rope [B, H, T, r]       queries: content part, RoPE part
//   k [B, H, S, d], k_rope [B, 1, S, r]       keys: per head, and ONE shared RoPE key
//   v [B, H, S, dv]
//   score_h(i, j) = (q_h,i . k_h,j + q_rope_h,i . k_rope_j) / sqrt(d + r)
// i.e. ordinary attention on the concatenations [q, q_rope] and
// [k, k_rope] (k_rope broadcast to every head), scaled by the size of the
// concatenation. Causal: the queries sit at positions offset .. offset+T-1,
// the keys at 0 .. S-1; query i sees key j when j <= offset + i.
// Returns [B, H, T, dv]; weights_out (when non-null) gets [B, H, T, S].
// q_rope and k_rope arrive already rotated (project() rotates them).
Tensor mla_attention(const Tensor& q, const Tensor& q_rope, const Tensor& k, const Tensor& k_rope,
                     const Tensor& v, int64_t offset = 0, Tensor* weights_out = nullptr);

// The absorbed MLA attention (decoding), straight from the cache:
//   latents [B, 1, S, L], k_rope [B, 1, S, r]   what the cache holds
//   w_up_k [H*d, L], w_up_v [H*dv, L]
// Returns exactly what
//   mla_attention(q, q_rope, up_project(latents, w_up_k, H), k_rope,
//                 up_project(latents, w_up_v, H), offset, weights_out)
// returns, without ever building a per-head K or V of the S cached tokens:
//   q_lat_h  = q_h @ W_uk[h]               [B, H, T, L]   (W_uk[h] is [d, L])
//   score_h  = (q_lat_h . c_j + q_rope_h . k_rope_j) / sqrt(d + r)
//   out_h    = (sum_j p_j c_j) @ W_uv[h]^T  [B, H, T, dv]
Tensor mla_attention_absorbed(const Tensor& q, const Tensor& q_rope, const Tensor& latents,
                              const Tensor& k_rope, const Tensor& w_up_k, const Tensor& w_up_v,
                              int64_t offset = 0, Tensor* weights_out = nullptr);

// Bytes one more token adds to an MLA cache (one sequence): a latent of L
// values and a shared RoPE key of r values in every layer,
//     layers * (latent + rope_dim) * bytes_per_value.
// No factor 2 and no heads: nothing per head is cached.
int64_t mla_cache_bytes_per_token(int64_t layers, int64_t latent, int64_t rope_dim,
                                  int64_t bytes_per_value = 4);

// Causal multi-head latent attention, x [B, T, C] -> [B, T, C], with the
// same parameter names as the library's attn::MultiHeadLatentAttention
// (wq, wq_rope, w_down_kv, w_k_rope, w_up_k, w_up_v, wo): the two load each
// other's state_dict.
class LatentAttention : public attn::Attention {
 public:
  // Given: checks the sizes and registers the seven projections.
  LatentAttention(int64_t embd, int64_t heads, int64_t latent, int64_t rope_dim,
                  attn::Generator& gen, bool bias = true, int64_t layers = 1);

  // What one step of x produces, for tokens at positions offset..offset+T-1:
  struct Parts {
    Tensor q;       // [B, H, T, d]   x W_q^T + b, split into heads, NOT rotated
    Tensor q_rope;  // [B, H, T, r]   x W_qr^T + b, split into heads, rotated
    Tensor latent;  // [B, 1, T, L]   x W_dkv^T + b, NOT rotated (the cache's layout: one "head")
    Tensor k_rope;  // [B, 1, T, r]   x W_kr^T + b, rotated, shared by all heads
  };
  // Rotation: attn::rope_tables(T, r, offset, 10000.0f, 1.0f, x.device())
  // and attn::apply_rope, on q_rope and k_rope only.
  Parts project(const Tensor& x, int64_t offset);

  // Explicit path: K and V expanded from the latent, mla_attention, merge().
  Tensor forward(const Tensor& x) override;
  // Absorbed path: the new tokens sit at positions cache.length() ..;
  // append their (latent, k_rope) to `cache` at `layer` (the caller commits
  // the length afterwards), then mla_attention_absorbed over everything
  // cached, then merge().
  Tensor forward_cached(const Tensor& x, attn::KVCache& cache, int64_t layer) override;
  // What one token of this layer caches: {heads, k_dim, v_dim} of the two
  // slots of an attn::KVCache. MLA puts its latent in the first slot and its
  // RoPE key in the second.
  attn::CacheLayout cache_layout() const override;
  // RoPE carries the positions: the GPT adds no position embedding.
  bool encodes_positions() const override { return true; }

  // Given: o [B, H, T, d] -> heads side by side -> wo -> [B, T, C].
  Tensor merge(const Tensor& o) const;

  int64_t heads() const { return heads_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t latent() const { return latent_; }
  int64_t rope_dim() const { return rope_dim_; }
  attn::Linear& w_up_k() { return *w_up_k_; }
  attn::Linear& w_up_v() { return *w_up_v_; }

 private:
  int64_t heads_, head_dim_, latent_, rope_dim_;
  std::shared_ptr<attn::Linear> wq_, wq_rope_, w_down_kv_, w_k_rope_, w_up_k_, w_up_v_, wo_;
};

}  // namespace lesson12
