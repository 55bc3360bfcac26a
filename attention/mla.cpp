#include "attention/mla.h"

#include <cmath>

#include "attention/kv_cache.h"
#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

MultiHeadLatentAttention::MultiHeadLatentAttention(const AttentionConfig& c, int64_t latent,
                                                   int64_t rope_dim, Generator& gen)
    : Attention(c.dropout), heads_(c.heads), latent_(latent), rope_dim_(rope_dim) {
  check(c.heads > 0 && c.embd % c.heads == 0, "attention mla: heads=", c.heads,
        " must divide embd=", c.embd);
  check(latent >= 1, "attention mla: latent must be >= 1, got ", latent);
  check(rope_dim >= 2 && rope_dim % 2 == 0, "attention mla: rope_dim must be even and >= 2, got ",
        rope_dim);
  head_dim_ = c.embd / c.heads;
  scale_ = 1.0f / std::sqrt(static_cast<float>(head_dim_ + rope_dim_));
  wq_ = register_module("wq", std::make_shared<Linear>(c.embd, c.embd, c.bias, gen));
  wq_rope_ = register_module("wq_rope", std::make_shared<Linear>(c.embd, heads_ * rope_dim, c.bias, gen));
  w_down_kv_ = register_module("w_down_kv", std::make_shared<Linear>(c.embd, latent, c.bias, gen));
  w_k_rope_ = register_module("w_k_rope", std::make_shared<Linear>(c.embd, rope_dim, c.bias, gen));
  // Up-projections without bias: the absorption trick needs them linear.
  w_up_k_ = register_module("w_up_k", std::make_shared<Linear>(latent, c.embd, false, gen));
  w_up_v_ = register_module("w_up_v", std::make_shared<Linear>(latent, c.embd, false, gen));
  const float out_std = 0.02f / std::sqrt(2.0f * static_cast<float>(c.layers));
  wo_ = register_module("wo", std::make_shared<Linear>(c.embd, c.embd, c.bias, gen, out_std));
}

MultiHeadLatentAttention::Parts MultiHeadLatentAttention::project(const Tensor& x, int64_t offset) {
  check(x.dim() == 3, "attention mla: expected x of shape [B, T, C], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1];
  const RopeTables rope = rope_tables(T, rope_dim_, offset, 10000.0f, 1.0f, x.device());
  Parts p;
  p.q = transpose(view(wq_->forward(x), {B, T, heads_, head_dim_}), 1, 2);
  p.q_rope = apply_rope(transpose(view(wq_rope_->forward(x), {B, T, heads_, rope_dim_}), 1, 2), rope);
  p.latent = unsqueeze(w_down_kv_->forward(x), 1);
  p.k_rope = apply_rope(unsqueeze(w_k_rope_->forward(x), 1), rope);
  return p;
}

Tensor MultiHeadLatentAttention::finish(const Tensor& heads_out, int64_t B, int64_t T) {
  return wo_->forward(reshape(transpose(heads_out, 1, 2), {B, T, heads_ * head_dim_}));
}

Tensor MultiHeadLatentAttention::forward(const Tensor& x) {
  const int64_t B = x.shape()[0], T = x.shape()[1];
  const Parts p = project(x, 0);
  // Expand each head's K and V from the latent.
  const Tensor lat = squeeze(p.latent, 1);  // [B, T, latent]
  const Tensor k = transpose(view(w_up_k_->forward(lat), {B, T, heads_, head_dim_}), 1, 2);
  const Tensor v = transpose(view(w_up_v_->forward(lat), {B, T, heads_, head_dim_}), 1, 2);
  // The two-part score: content (q . k) plus position (q_rope . k_rope).
  const Tensor scores = mul(add(matmul(p.q, transpose(k, -2, -1)),
                                matmul(p.q_rope, transpose(p.k_rope, -2, -1))),
                            scale_);
  const Tensor keep = causal_mask(T, T, 0, x.device());
  const Tensor weights = softmax(masked_fill(scores, logical_not(keep), -INFINITY), -1);
  // Attention dropout while training (the decoding path below never drops).
  const Tensor out = matmul(drop_attention_weights(weights, next_dropout(), T, T), v);
  if (keep_weights) last_weights = weights.detach();
  return finish(out, B, T);
}

Tensor MultiHeadLatentAttention::forward_cached(const Tensor& x, KVCache& cache, int64_t layer) {
  const int64_t B = x.shape()[0], T = x.shape()[1], offset = cache.length();
  const Parts p = project(x, offset);
  const auto [latents, k_rope] = cache.append(layer, p.latent, p.k_rope);  // [B, 1, S, *]
  const int64_t S = latents.shape()[2];
  // W_uk is [C, latent] = [H * d, latent]: per head a [d, latent] block.
  const Tensor w_uk = view(w_up_k_->weight(), {heads_, head_dim_, latent_});
  // Absorb: q_h W_uk[h]^T -> a query in latent space, [B, H, T, latent].
  const Tensor q_lat = matmul(p.q, unsqueeze(w_uk, 0));
  const Tensor scores = mul(add(matmul(q_lat, transpose(latents, -2, -1)),
                                matmul(p.q_rope, transpose(k_rope, -2, -1))),
                            scale_);  // [B, H, T, S]
  const Tensor keep = causal_mask(T, S, offset, x.device());
  const Tensor probs = softmax(masked_fill(scores, logical_not(keep), -INFINITY), -1);
  // sum_j p_j c_j, then W_uv[h]: [B, H, T, latent] @ [H, latent, d].
  const Tensor mixed = matmul(probs, latents);
  const Tensor w_uv = transpose(view(w_up_v_->weight(), {heads_, head_dim_, latent_}), 1, 2);
  return finish(matmul(mixed, unsqueeze(w_uv, 0)), B, T);
}

}  // namespace attn
