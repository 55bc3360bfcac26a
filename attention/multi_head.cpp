#include "attention/multi_head.h"

#include <cmath>
#include <tuple>

#include "attention/kv_cache.h"
#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

MultiHeadAttention::MultiHeadAttention(const AttentionConfig& c, int64_t kv_heads, Generator& gen,
                                       PositionOptions positions, AttentionKernel kernel)
    : Attention(c.dropout), pos_(positions), kernel_(std::move(kernel)), heads_(c.heads),
      kv_heads_(kv_heads) {
  check(!(positions.rope && positions.alibi), "attention: choose rope or alibi, not both");
  check(c.heads > 0 && c.embd % c.heads == 0, "attention: heads=", c.heads,
        " must divide embd=", c.embd);
  check(kv_heads > 0, "attention: kv_heads=", kv_heads, " must be >= 1 (and divide heads=", c.heads, ")");
  check(c.heads % kv_heads == 0, "attention: kv_heads=", kv_heads,
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

Tensor MultiHeadAttention::forward(const Tensor& x) { return attend(x, 0, nullptr, 0); }

Tensor MultiHeadAttention::forward_cached(const Tensor& x, KVCache& cache, int64_t layer) {
  return attend(x, cache.length(), &cache, layer);
}

Tensor MultiHeadAttention::attend(const Tensor& x, int64_t offset, KVCache* cache, int64_t layer) {
  check(x.dim() == 3, "attention: expected x of shape [B, T, C], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1], C = x.shape()[2];
  // [B, T, C] -> [B, T, heads, d] -> [B, heads, T, d]
  AttentionCall call;
  call.q = transpose(view(wq_->forward(x), {B, T, heads_, head_dim_}), 1, 2);
  call.k = transpose(view(wk_->forward(x), {B, T, kv_heads_, head_dim_}), 1, 2);
  call.v = transpose(view(wv_->forward(x), {B, T, kv_heads_, head_dim_}), 1, 2);
  // A rolling cache (streaming) renumbers what it keeps: keys are stored
  // unrotated and rotated below by their position inside the cache.
  const bool rotate_kept = pos_.rope && cache && cache->is_rolling();
  if (pos_.rope) {
    // Rotate by position; only the difference survives in q.k.
    const RopeTables tables =
        rope_tables(T, head_dim_, offset, pos_.rope_base, pos_.ntk_scale, x.device());
    call.q = apply_rope(call.q, tables);
    if (!rotate_kept) call.k = apply_rope(call.k, tables);
  }
  if (cache) std::tie(call.k, call.v) = cache->append(layer, call.k, call.v);
  if (rotate_kept)
    call.k = apply_rope(call.k, rope_tables(call.k.shape()[2], head_dim_, 0, pos_.rope_base,
                                            pos_.ntk_scale, x.device()));
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  if (pos_.alibi) call.alibi = alibi_slopes(heads_);
  call.want_weights = keep_weights;
  // Attention dropout in training only; decoding with a cache never drops.
  if (!cache) call.dropout = next_dropout();
  const Tensor out = kernel_(call);
  if (keep_weights) last_weights = call.weights.defined() ? call.weights.detach() : Tensor();
  // [B, heads, T, d] -> [B, T, heads, d] -> [B, T, C]
  return wo_->forward(reshape(transpose(out, 1, 2), {B, T, C}));
}

}  // namespace attn
