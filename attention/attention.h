// The attention interface every variant implements, and its configuration.
//
// An attention layer maps x [B, T, C] to [B, T, C], causally: position t may
// look at positions <= t only. Variants differ in how they compute that
// (heads sharing K/V, positions by rotation or bias, windows, kernels...).
#pragma once
#include <map>
#include <memory>
#include <string>

#include "attention/kv_cache.h"
#include "nn/module.h"

namespace attn {

struct AttentionConfig {
  int64_t embd = 0;        // C, the model width
  int64_t heads = 0;       // query heads
  int64_t block_size = 0;  // the longest sequence the model is trained on
  int64_t layers = 1;      // depth, for the scaled init of output projections
  float dropout = 0;       // on the attention weights, while training
  bool bias = true;        // biases in the projections
};


class Attention : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  // Decoding with a cache: x holds the new tokens only ([B, T_new, C]);
  // their K/V go into `cache` at `layer`. Variants without a cache say so.
  virtual Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t layer);
  // What one cached token of this layer holds (heads 0: no cache).
  virtual CacheLayout cache_layout() const { return {}; }
  // True when the variant encodes positions itself (RoPE, ALiBi): the model
  // then adds no learned position embedding.
  virtual bool encodes_positions() const { return false; }
  // Keep the attention weights of the next forward ([B, H, T, T]) for
  // heatmaps; variants without explicit weights leave them undefined.
  bool keep_weights = false;
  Tensor last_weights;
};

// Causal scaled dot-product attention on [B, H, T, d] tensors.
// `keep` (bool, broadcastable to [B, H, Tq, Tk]) marks the allowed pairs;
// undefined means "no mask". Rows with no allowed key give zeros, not NaN.
// Returns the output and, through `weights_out` when non-null, the weights.
// `bias` (optional, broadcastable to the scores) is added before masking:
// ALiBi's distance penalty.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep, float scale, Tensor* weights_out = nullptr,
                                    const Tensor& bias = Tensor());

// keep[i, j] = j <= i + offset: the causal mask for Tq queries that sit at
// positions offset..offset+Tq-1 over Tk keys. Shape [Tq, Tk].
Tensor causal_mask(int64_t tq, int64_t tk, int64_t offset, const Device& device);

}  // namespace attn
