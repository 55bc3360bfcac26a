// Chapter 05: the KV cache — prefill a prompt once, then decode one token at
// a time without recomputing the past.
//
// You implement, in kv_cache.cpp: KVCache::append, KVCache::length,
// KVCache::bytes, cached_attention, bytes_per_token, TinyDecoder::forward
// and generate_greedy. The KVCache constructor and the TinyDecoder's pieces
// (embeddings, projections, output, LM head) are given.
//
// Shapes: B batch, H query heads, Hkv K/V heads (chapter 04: H % Hkv == 0),
// T_new new tokens, T_all tokens cached after the append, d head size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/module.h"

namespace lesson05 {

using attn::Tensor;

// Keys and values of the tokens seen so far, one slot per layer. A slot
// starts empty; each append concatenates the new tokens along the time
// dimension (dim 2). Decoding runs under attn::NoGradGuard, so the cached
// tensors are plain values, not graph.
class KVCache {
 public:
  // Given: `layers` empty slots.
  explicit KVCache(int64_t layers);

  // Appends k_new [B, Hkv, T_new, d] and v_new [B, Hkv, T_new, dv] to slot
  // `layer` and returns everything cached there, old tokens first:
  // ([B, Hkv, T_all, d], [B, Hkv, T_all, dv]).
  // A layer outside 0..layers-1, or new tokens whose B, Hkv, d or dv differ
  // from what the slot holds, throw attn::Error.
  std::pair<Tensor, Tensor> append(int64_t layer, const Tensor& k_new, const Tensor& v_new);

  // Tokens cached in `layer` (0 while the slot is empty).
  int64_t length(int64_t layer = 0) const;

  // Bytes held by every cached K and V tensor (number of elements * 4).
  std::size_t bytes() const;

  // Given.
  int64_t layers() const { return static_cast<int64_t>(k_.size()); }
  void clear();

 private:
  std::vector<Tensor> k_, v_;  // undefined while a slot is empty
};

// One layer's attention for T_new new tokens:
//   q_new [B, H, T_new, d], k_new [B, Hkv, T_new, d], v_new [B, Hkv, T_new, dv]
// The new tokens sit at positions L .. L + T_new - 1, where L is the number
// of tokens `cache` held in `layer` before this call. Append k_new, v_new
// to the cache FIRST (a token attends to itself), then let query i see keys
// 0 .. L + i (the causal mask with offset L), scale 1/sqrt(d).
// Returns [B, H, T_new, dv]; weights_out (when non-null) gets
// [B, H, T_new, T_all]. With an empty cache this is plain causal attention
// (the prefill); with T_new = 1 it is one decoding step.
Tensor cached_attention(const Tensor& q_new, const Tensor& k_new, const Tensor& v_new,
                        KVCache& cache, int64_t layer, Tensor* weights_out = nullptr);

struct DecoderConfig {
  int64_t vocab = 8;
  int64_t block_size = 32;  // the most positions the model has embeddings for
  int64_t layers = 2;
  int64_t embd = 32;
  int64_t heads = 4;
  int64_t kv_heads = 4;     // chapter 04's knob: heads = MHA, 1 = MQA
};

// What one more token adds to a TinyDecoder's cache (one sequence,
// float32): a K row and a V row of d = embd / heads floats for each of the
// kv_heads K/V heads, in every layer:
//     2 * layers * kv_heads * d * 4 bytes
// MHA (kv_heads = heads), GQA and MQA (kv_heads = 1) differ only in kv_heads.
std::size_t bytes_per_token(const DecoderConfig& config);

// An attention-only decoder (no norms, no MLP: the cache is the point):
//   x = wte[ids] + wpe[positions]                       [B, T, C]
//   for each layer l:  x = x + merge_l(attention_l(x))   [B, T, C]
//   logits = x wte^T                                     [B, T, vocab]
class TinyDecoder : public attn::Module {
 public:
  // Given: the embeddings and each layer's wq, wk, wv, wo.
  TinyDecoder(const DecoderConfig& config, uint64_t seed);

  // ids int64 [B, T] -> logits [B, T, vocab].
  // cache == nullptr: ids is the whole sequence, at positions 0 .. T-1.
  // cache != nullptr: ids are only the NEW tokens; they sit at positions
  //   cache->length() .. cache->length() + T - 1, and every layer appends
  //   their K/V to `cache` (through cached_attention).
  // Positions past block_size - 1 throw attn::Error (embed() checks).
  Tensor forward(const Tensor& ids, KVCache* cache = nullptr);

  const DecoderConfig& config() const { return config_; }

  // ---- given pieces, for forward ----
  // wte[ids] + wpe[positions]; ids int64 [B, T], positions int64 [T].
  Tensor embed(const Tensor& ids, const Tensor& positions) const;
  struct Heads {
    Tensor q;     // [B, H, T, d]
    Tensor k, v;  // [B, Hkv, T, d]
  };
  // Layer `layer`'s projections of x [B, T, C], split into heads.
  Heads project(int64_t layer, const Tensor& x) const;
  // o [B, H, T, d] -> merged heads through layer `layer`'s wo: [B, T, C].
  Tensor merge(int64_t layer, const Tensor& o) const;
  // x [B, T, C] -> logits [B, T, vocab] (the LM head shares wte).
  Tensor logits(const Tensor& x) const;

 private:
  DecoderConfig config_;
  int64_t head_dim_;
  std::shared_ptr<attn::Embedding> wte_, wpe_;
  std::vector<std::shared_ptr<attn::Linear>> wq_, wk_, wv_, wo_;
};

// Greedy generation (always the most likely next token) of `new_tokens`
// (>= 1) tokens after `prompt` (at least one token, batch 1). Returns only
// the new tokens.
//   cache == nullptr: every step runs the whole sequence so far again.
//   cache != nullptr (empty when passed in): prefill the prompt once, then
//     feed each generated token alone. A token is fed only if another one
//     must be generated after it, so the cache ends with
//     prompt.size() + new_tokens - 1 tokens.
// Runs under attn::NoGradGuard: nothing here needs gradients, and a graph
// would keep every old version of the cache alive.
// prompt.size() + new_tokens - 1 > block_size throws attn::Error.
std::vector<int64_t> generate_greedy(TinyDecoder& model, const std::vector<int64_t>& prompt,
                                     int64_t new_tokens, KVCache* cache = nullptr);

}  // namespace lesson05
