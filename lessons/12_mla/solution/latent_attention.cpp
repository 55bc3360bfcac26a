// Chapter 12 — reference solution. Written plainly on the library's pieces:
// attn::scaled_dot_product_attention and attn::causal_mask (chapter 01),
// attn::rope_tables / attn::apply_rope (chapter 06) and attn::KVCache
// (chapter 05). The library's own module, attn::MultiHeadLatentAttention
// (attention/mla.cpp), computes the same thing; the suites compare the two.
#include "latent_attention.h"

#include <algorithm>
#include <cmath>

#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson12 {

using namespace attn;

Tensor up_project(const Tensor& latent, const Tensor& w_up, int64_t heads) {
  check(latent.dim() == 3, "up_project: expected latent [B, T, L], got ", shape_str(latent.shape()));
  check(w_up.dim() == 2 && w_up.shape()[1] == latent.shape()[2], "up_project: w_up ",
        shape_str(w_up.shape()), " does not fit latent ", shape_str(latent.shape()),
        " (expected [H*d, L])");
  check(heads >= 1 && w_up.shape()[0] % heads == 0, "up_project: ", w_up.shape()[0],
        " output rows do not split into ", heads, " heads");
  const int64_t B = latent.shape()[0], T = latent.shape()[1], d = w_up.shape()[0] / heads;
  // [B, T, L] @ [L, H*d] -> [B, T, H, d] -> [B, H, T, d]
  const Tensor kv = matmul(latent, transpose(w_up, 0, 1));
  return transpose(view(kv, {B, T, heads, d}), 1, 2);
}

Tensor mla_attention(const Tensor& q, const Tensor& q_rope, const Tensor& k, const Tensor& k_rope,
                     const Tensor& v, int64_t offset, Tensor* weights_out) {
  check(q.dim() == 4 && q_rope.dim() == 4 && k.dim() == 4 && k_rope.dim() == 4 && v.dim() == 4,
        "mla_attention: expected 4-D q, q_rope, k, k_rope, v");
  const int64_t B = k.shape()[0], H = k.shape()[1], S = k.shape()[2];
  const int64_t d = q.shape()[3], r = q_rope.shape()[3];
  check(k_rope.shape()[1] == 1, "mla_attention: k_rope must have ONE head shared by all, got ",
        shape_str(k_rope.shape()));
  // The concatenation view: [content | rope] on both sides; the shared RoPE
  // key is broadcast to every head (a view, no copy until cat).
  const Tensor qf = cat({q, q_rope}, -1);                                // [B, H, T, d + r]
  const Tensor kf = cat({k, expand(k_rope, {B, H, S, r})}, -1);          // [B, H, S, d + r]
  const float scale = 1.0f / std::sqrt(static_cast<float>(d + r));       // the library's choice
  const Tensor keep = causal_mask(q.shape()[2], S, offset, q.device());
  return scaled_dot_product_attention(qf, kf, v, keep, scale, weights_out);
}

Tensor mla_attention_absorbed(const Tensor& q, const Tensor& q_rope, const Tensor& latents,
                              const Tensor& k_rope, const Tensor& w_up_k, const Tensor& w_up_v,
                              int64_t offset, Tensor* weights_out) {
  check(q.dim() == 4 && q_rope.dim() == 4 && latents.dim() == 4 && k_rope.dim() == 4,
        "mla_attention_absorbed: expected 4-D q, q_rope, latents, k_rope");
  check(latents.shape()[1] == 1 && k_rope.shape()[1] == 1,
        "mla_attention_absorbed: latents and k_rope are cached once per token ([B, 1, S, *]), got ",
        shape_str(latents.shape()), " and ", shape_str(k_rope.shape()));
  const int64_t H = q.shape()[1], d = q.shape()[3], r = q_rope.shape()[3];
  const int64_t L = latents.shape()[3], dv = w_up_v.shape()[0] / H;
  check(w_up_k.shape()[0] == H * d && w_up_k.shape()[1] == L && w_up_v.shape()[1] == L &&
            w_up_v.shape()[0] % H == 0,
        "mla_attention_absorbed: w_up_k ", shape_str(w_up_k.shape()), " / w_up_v ",
        shape_str(w_up_v.shape()), " do not fit ", H, " heads of ", d, " and a latent of ", L);
  // Head h's block of W_uk is rows h*d..h*d+d-1: [H, d, L]. q_h @ W_uk[h]
  // moves the query into latent space, where it meets the cached c_j.
  const Tensor q_lat = matmul(q, unsqueeze(view(w_up_k, {H, d, L}), 0));   // [B, H, T, L]
  // Absorbed, MLA is multi-query attention in latent space: one shared key
  // [c_j, k_rope_j] and one shared value c_j for all heads. The scale stays
  // 1/sqrt(d + r): the scores are the same numbers as the explicit path's.
  const Tensor mixed = scaled_dot_product_attention(
      cat({q_lat, q_rope}, -1), cat({latents, k_rope}, -1), latents,
      causal_mask(q.shape()[2], latents.shape()[2], offset, q.device()),
      1.0f / std::sqrt(static_cast<float>(d + r)), weights_out);             // [B, H, T, L]
  // (sum_j p_j c_j) @ W_uv[h]^T: [B, H, T, L] @ [1, H, L, dv].
  const Tensor w_uv = transpose(view(w_up_v, {H, dv, L}), 1, 2);
  return matmul(mixed, unsqueeze(w_uv, 0));
}

int64_t mla_cache_bytes_per_token(int64_t layers, int64_t latent, int64_t rope_dim,
                                  int64_t bytes_per_value) {
  // One latent and one shared RoPE key per layer; nothing per head.
  return layers * (latent + rope_dim) * bytes_per_value;
}

LatentAttention::Parts LatentAttention::project(const Tensor& x, int64_t offset) {
  check(x.dim() == 3, "LatentAttention: expected x [B, T, C], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1];
  const RopeTables rope = rope_tables(T, rope_dim_, offset, 10000.0f, 1.0f, x.device());
  Parts p;
  p.q = transpose(view(wq_->forward(x), {B, T, heads_, head_dim_}), 1, 2);
  p.q_rope = apply_rope(transpose(view(wq_rope_->forward(x), {B, T, heads_, rope_dim_}), 1, 2), rope);
  // The latent is never rotated: W_uk must be able to fold into the query.
  p.latent = unsqueeze(w_down_kv_->forward(x), 1);
  p.k_rope = apply_rope(unsqueeze(w_k_rope_->forward(x), 1), rope);
  return p;
}

Tensor LatentAttention::forward(const Tensor& x) {
  const Parts p = project(x, 0);
  const Tensor c = squeeze(p.latent, 1);  // [B, T, L]
  const Tensor k = up_project(c, w_up_k_->weight(), heads_);
  const Tensor v = up_project(c, w_up_v_->weight(), heads_);
  return merge(mla_attention(p.q, p.q_rope, k, p.k_rope, v));
}

Tensor LatentAttention::forward_cached(const Tensor& x, KVCache& cache, int64_t layer) {
  const int64_t offset = cache.length();
  const Parts p = project(x, offset);
  // The cache keeps (latent, k_rope): L + r floats per token, whatever H is.
  const auto [latents, k_rope] = cache.append(layer, p.latent, p.k_rope);
  return merge(mla_attention_absorbed(p.q, p.q_rope, latents, k_rope, w_up_k_->weight(),
                                      w_up_v_->weight(), offset));
}

CacheLayout LatentAttention::cache_layout() const { return {1, latent_, rope_dim_}; }

}  // namespace lesson12
