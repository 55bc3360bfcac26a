// The KV cache: when generating one token at a time, the keys and values of
// earlier tokens never change, so each layer keeps them instead of
// recomputing them for the whole prefix at every step.
//
//   prefill: run the prompt (T tokens) once, storing its K and V
//   decode:  run 1 new token, append its K and V, attend over all of them
//
// Memory per token = 2 (K and V) x layers x kv_heads x head_dim x 4 bytes:
// this is the number GQA and MQA shrink by sharing K/V heads, and MLA by
// caching a small latent instead.
//
// A rolling cache (chapter 18, streaming generation) keeps only the first
// `sinks` tokens and the last `window` ones, so decoding can go on past the
// block size with memory that stays flat. Positions then count inside the
// cache (0 .. sinks + window - 1, never more), so attention that rotates its
// keys (RoPE) stores them unrotated and rotates what is kept at every step.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace attn {

// What one layer caches per token: `heads` rows of k_dim for the first
// tensor ("K") and of v_dim for the second ("V"). MHA/GQA cache K and V;
// MLA caches its latent and its shared RoPE key in the same two slots.
struct CacheLayout {
  int64_t heads = 0, k_dim = 0, v_dim = 0;
};

class KVCache {
 public:
  // Room for `capacity` tokens of `batch` sequences in each of `layers` layers.
  KVCache(int64_t layers, int64_t batch, const CacheLayout& layout, int64_t capacity,
          const Device& device);
  // A rolling cache: room for sinks + window tokens; once full, each new
  // token evicts the oldest token after the sinks (make_room).
  static KVCache rolling(int64_t layers, int64_t batch, const CacheLayout& layout, int64_t sinks,
                         int64_t window, const Device& device);

  // Appends [B, heads, T, k_dim] keys and [B, heads, T, v_dim] values to
  // `layer`'s cache; returns views of everything cached so far.
  std::pair<Tensor, Tensor> append(int64_t layer, const Tensor& k, const Tensor& v);

  // Tokens cached (the same for every layer once a forward pass is done).
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  // Advances the length after all layers appended one forward pass.
  void commit(int64_t tokens);
  void clear() { length_ = 0, seen_ = 0; }

  // Rolling caches only (no-op otherwise): before a forward pass of
  // `tokens` new tokens, evicts the oldest non-sink tokens of every layer
  // so that they fit. Needs tokens <= window.
  void make_room(int64_t tokens);
  bool is_rolling() const { return rolling_; }
  int64_t sinks() const { return sinks_; }
  // Tokens committed since the last clear(), evicted ones included.
  int64_t seen() const { return seen_; }

  // Bytes held by the cached tokens, and bytes one more token costs.
  std::size_t bytes() const;
  std::size_t bytes_per_token() const;

 private:
  int64_t layers_, batch_;
  CacheLayout layout_;
  int64_t capacity_, length_ = 0;
  bool rolling_ = false;
  int64_t sinks_ = 0, seen_ = 0;
  std::vector<Tensor> k_, v_;  // one [B, heads, capacity, dim] buffer each per layer
};

}  // namespace attn
