// Multi-head attention with a kv_heads knob: MHA, GQA and MQA are one module.
//   kv_heads == heads      -> MHA: every query head has its own K and V
//   1 < kv_heads < heads   -> GQA: groups of heads/kv_heads query heads share one K/V head
//   kv_heads == 1          -> MQA: all query heads share a single K/V head
// Fewer K/V heads means a proportionally smaller KV cache when decoding.
#pragma once
#include "attention/attention.h"
#include "attention/kernel.h"
#include "nn/linear.h"

namespace attn {

// How the module knows where tokens are (none: the model adds learned
// position embeddings to its input).
struct PositionOptions {
  bool rope = false;
  float rope_base = 10000.0f;
  float ntk_scale = 1.0f;  // > 1 stretches RoPE's context (NTK-aware)
  bool alibi = false;
};

class MultiHeadAttention : public Attention {
 public:
  // `kernel` is what the variant computes on the heads (dense by default).
  MultiHeadAttention(const AttentionConfig& config, int64_t kv_heads, Generator& gen,
                     PositionOptions positions = {}, AttentionKernel kernel = dense_causal_attention);
  Tensor forward(const Tensor& x) override;
  Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t layer) override;
  CacheLayout cache_layout() const override { return {kv_heads_, head_dim_, head_dim_}; }
  bool supports_rolling_cache() const override { return true; }
  bool encodes_positions() const override { return pos_.rope || pos_.alibi; }
  int64_t heads() const { return heads_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }

 private:
  // Shared by forward and forward_cached: x holds tokens at positions
  // offset..offset+T-1; `cache` (optional) supplies and stores K/V.
  Tensor attend(const Tensor& x, int64_t offset, KVCache* cache, int64_t layer);
  PositionOptions pos_;
  AttentionKernel kernel_;
  int64_t heads_, kv_heads_, head_dim_;
  std::shared_ptr<Linear> wq_, wk_, wv_, wo_;
};

}  // namespace attn
