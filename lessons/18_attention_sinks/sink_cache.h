// Chapter 18: attention sinks and streaming generation.
//
// A rolling KV cache for one attention layer keeps the first `sinks` tokens
// of the stream for good and the last `window` tokens, so decoding can go on
// for ever with memory that stays flat. Positions are counted INSIDE the
// cache: the kept tokens sit at cache positions 0 .. kept-1 (slot order),
// whatever their place in the stream, so no position ever reaches
// sinks + window, a length the model trained on.
//
// For that, the cache stores keys BEFORE RoPE, and the attention rotates the
// kept keys by their cache positions at every step (a key's cache position
// changes as the window rolls; its stream position never would).
//
// Shapes: B batch, H heads, T new tokens, d the head size (even, for RoPE).
// Keys and values [B, H, T, d]; queries [B, H, Tq, d].
//
// You implement, in sink_cache.cpp: SinkCache::append, SinkCache::kept_tokens
// and sink_attention. The rest of SinkCache is given (sink_cache_glue.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lesson18 {

using attn::Tensor;

class SinkCache {
 public:
  // Given. sinks >= 0 and window >= 1, else attn::Error.
  SinkCache(int64_t sinks, int64_t window);

  // YOUR PART. Appends k, v [B, H, T, d] (keys NOT rotated): the stream's
  // tokens seen() .. seen() + T - 1. T > window throws attn::Error (the
  // new tokens alone would not fit), with a message naming T and window.
  // Evict first, then add: when kept() + T would exceed sinks + window,
  // drop the oldest tokens AFTER the sinks (the sinks never leave), just
  // enough that the new ones fit; keep the slots in stream order. The cache
  // owns what it keeps (no views of the caller's tensors). Advances seen().
  void append(const Tensor& k, const Tensor& v);

  // YOUR PART. The stream index of the token in each slot, in slot order:
  // slot i holds stream token kept_tokens()[i] at cache position i.
  // sinks 2, window 3, after 8 tokens: {0, 1, 5, 6, 7}. Computed from
  // seen(), sinks() and window() alone.
  std::vector<int64_t> kept_tokens() const;

  // Given. The kept keys (unrotated) and values [B, H, kept(), d].
  const Tensor& keys() const { return k_; }
  const Tensor& values() const { return v_; }
  int64_t kept() const;                   // tokens held now (0 before the first append)
  int64_t seen() const { return seen_; }  // tokens appended since construction
  int64_t sinks() const { return sinks_; }
  int64_t window() const { return window_; }
  // Bytes of the kept keys and values (elements x 4).
  std::size_t bytes() const;

 private:
  int64_t sinks_, window_;
  Tensor k_, v_;  // undefined before the first append
  int64_t seen_ = 0;
};

// YOUR PART. Attention of the newest Tq tokens over what the cache keeps.
// q [B, H, Tq, d], NOT rotated: the queries of the last Tq tokens appended.
// Rotate (attn::rope_tables + attn::apply_rope, base rope_base, no NTK
// scaling) the kept keys by their cache positions 0 .. kept-1 and the
// queries by kept-Tq .. kept-1; query i sees the slots 0 .. kept-Tq+i
// (causal among the new tokens); scores scaled by 1/sqrt(d); softmax; times
// the values. Returns [B, H, Tq, d]. weights_out, when non-null, receives
// the weights [B, H, Tq, kept].
Tensor sink_attention(const Tensor& q, const SinkCache& cache, float rope_base = 10000.0f,
                      Tensor* weights_out = nullptr);

}  // namespace lesson18
