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
#include "core/attention_dropout.h"
#include "nn/module.h"

namespace attn {

struct DropoutSource;  // nn/layers.h: the model's dropout random numbers

struct AttentionConfig {
  int64_t embd = 0;        // C, the model width
  int64_t heads = 0;       // query heads
  int64_t block_size = 0;  // the longest sequence the model is trained on
  int64_t layers = 1;      // depth, for the scaled init of output projections
  float dropout = 0;       // attention dropout: on the attention probabilities, while training
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
  // True when forward_cached works with a rolling cache (KVCache::rolling):
  // it must read positions as slots of the cache, renumbered as it rolls.
  virtual bool supports_rolling_cache() const { return false; }
  // True when the variant encodes positions itself (RoPE, ALiBi): the model
  // then adds no learned position embedding.
  virtual bool encodes_positions() const { return false; }
  // Keep the attention weights of the next forward ([B, H, T, T]) for
  // heatmaps; variants without explicit weights leave them undefined.
  // They are the weights before dropout.
  bool keep_weights = false;
  Tensor last_weights;

  // Attention dropout drops probabilities only while training, with the
  // config's dropout > 0, once the model has handed over its random numbers
  // here (the GPT does for every block; nullptr = none). Each training
  // forward takes one stream from the source (next()): the same numbers on
  // any device, thread count or attention path. Evaluation, sampling and
  // forward_cached never drop and draw nothing.
  void set_dropout_source(DropoutSource* source) { dropout_source_ = source; }

 protected:
  Attention() = default;
  explicit Attention(float dropout);
  // This forward's dropout: p and a fresh stream when it applies (see
  // above), else p = 0 and nothing drawn.
  AttentionDropoutArgs next_dropout();

 private:
  float dropout_ = 0;
  DropoutSource* dropout_source_ = nullptr;
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
// Its weights alone, softmax(scale q k^T + bias) over the kept pairs
// ([B, H, Tq, Tk]), for callers that drop some of them before the product
// with v.
Tensor attention_weights(const Tensor& q, const Tensor& k, const Tensor& keep, float scale,
                         const Tensor& bias = Tensor());

// Attention dropout on weights [B, H, rows, cols] that hold query rows
// row0.. and keys col0.. of a [B, H, tq, tk] attention matrix: each kept
// weight is scaled by 1 / (1 - p), the rest become 0, as
// core/attention_dropout.h decides for its (b, h, i, j). The whole matrix is
// exactly dropout(weights, p, stream, first_sample) (autograd/ops.h), rows
// along dim 0 being the samples. Returns the weights as they are when p = 0.
Tensor drop_attention_weights(const Tensor& weights, const AttentionDropoutArgs& dropout, int64_t tq,
                              int64_t tk, int64_t row0 = 0, int64_t col0 = 0);

// keep[i, j] = j <= i + offset: the causal mask for Tq queries that sit at
// positions offset..offset+Tq-1 over Tk keys. Shape [Tq, Tk].
Tensor causal_mask(int64_t tq, int64_t tk, int64_t offset, const Device& device);

}  // namespace attn
