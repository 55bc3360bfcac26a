#include "attention/multi_head.h"

#include <cmath>

#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

MultiHeadAttention::MultiHeadAttention(const AttentionConfig& c, int64_t kv_heads, Generator& gen,
                                       PositionOptions positions)
    : pos_(positions), heads_(c.heads), kv_heads_(kv_heads) {
  check(!(positions.rope && positions.alibi), "attention: choose rope or alibi, not both");
  check(c.heads > 0 && c.embd % c.heads == 0, "attention: heads=", c.heads,
        " must divide embd=", c.embd);
  check(kv_heads > 0 && c.heads % kv_heads == 0, "attention: kv_heads=", kv_heads,
        " must divide heads=", c.heads);
  head_dim_ = c.embd / c.heads;
  const int64_t kv_width = kv_heads * head_dim_;
  wq_ = register_module("wq", std::make_shared<Linear>(c.embd, c.embd, c.bias, gen));
  wk_ = register_module("wk", std::make_shared<Linear>(c.embd, kv_width, c.bias, gen));
  wv_ = register_module("wv", std::make_shared<Linear>(c.embd, kv_width, c.bias, gen));
  // GPT-2: the projection that writes into the residual stream starts
  // smaller, by 1/sqrt(2 * layers), so the stream's variance does not grow
  // with depth.
  const float out_std = 0.02f / std::sqrt(2.0f * static_cast<float>(c.layers));
  wo_ = register_module("wo", std::make_shared<Linear>(c.embd, c.embd, c.bias, gen, out_std));
}

Tensor MultiHeadAttention::forward(const Tensor& x) {
  check(x.dim() == 3, "attention: expected x of shape [B, T, C], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1], C = x.shape()[2];
  // [B, T, C] -> [B, T, heads, d] -> [B, heads, T, d]
  Tensor q = transpose(view(wq_->forward(x), {B, T, heads_, head_dim_}), 1, 2);
  Tensor k = transpose(view(wk_->forward(x), {B, T, kv_heads_, head_dim_}), 1, 2);
  Tensor v = transpose(view(wv_->forward(x), {B, T, kv_heads_, head_dim_}), 1, 2);
  if (pos_.rope) {
    const RopeTables tables = rope_tables(T, head_dim_, 0, pos_.rope_base, pos_.ntk_scale, x.device());
    q = apply_rope(q, tables);
    k = apply_rope(k, tables);
  }
  if (kv_heads_ < heads_) {
    // Query head h uses K/V head h / group: repeat each K/V head `group`
    // times in place (k0 k0 k1 k1, not k0 k1 k0 k1).
    const int64_t group = heads_ / kv_heads_;
    k = repeat_interleave(k, group, 1);
    v = repeat_interleave(v, group, 1);
  }
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  Tensor weights;
  const Tensor bias = pos_.alibi ? alibi_bias(heads_, T, T, 0, x.device()) : Tensor();
  const Tensor out = scaled_dot_product_attention(q, k, v, causal_mask(T, T, 0, x.device()), scale,
                                                  keep_weights ? &weights : nullptr, bias);
  if (keep_weights) last_weights = weights.detach();
  // [B, heads, T, d] -> [B, T, heads, d] -> [B, T, C]
  return wo_->forward(reshape(transpose(out, 1, 2), {B, T, C}));
}

}  // namespace attn
