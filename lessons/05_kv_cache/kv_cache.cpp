// Chapter 05 — your code. Replace each `throw` with an implementation.
// Read lessons/05_kv_cache/README.md first; the shapes are in kv_cache.h.
// The given code (you do not write it) is in kv_cache_glue.cpp.
#include "kv_cache.h"

#include <algorithm>
#include <cmath>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson05 {

using namespace attn;

std::pair<Tensor, Tensor> KVCache::append(int64_t layer, const Tensor& k_new, const Tensor& v_new) {
  (void)layer, (void)k_new, (void)v_new;
  throw NotImplemented(
      "lesson 05 (KV cache): KVCache::append is not implemented yet - see lessons/05_kv_cache/README.md");
}

int64_t KVCache::length(int64_t layer) const {
  (void)layer;
  throw NotImplemented(
      "lesson 05 (KV cache): KVCache::length is not implemented yet - see lessons/05_kv_cache/README.md");
}

std::size_t KVCache::bytes() const {
  throw NotImplemented(
      "lesson 05 (KV cache): KVCache::bytes is not implemented yet - see lessons/05_kv_cache/README.md");
}

Tensor cached_attention(const Tensor& q_new, const Tensor& k_new, const Tensor& v_new,
                        KVCache& cache, int64_t layer, Tensor* weights_out) {
  (void)q_new, (void)k_new, (void)v_new, (void)cache, (void)layer, (void)weights_out;
  throw NotImplemented(
      "lesson 05 (KV cache): cached_attention is not implemented yet - see lessons/05_kv_cache/README.md");
}

std::size_t bytes_per_token(const DecoderConfig& config) {
  (void)config;
  throw NotImplemented(
      "lesson 05 (KV cache): bytes_per_token is not implemented yet - see lessons/05_kv_cache/README.md");
}

Tensor TinyDecoder::forward(const Tensor& ids, KVCache* cache) {
  (void)ids, (void)cache;
  throw NotImplemented(
      "lesson 05 (KV cache): TinyDecoder::forward is not implemented yet - see lessons/05_kv_cache/README.md");
}

std::vector<int64_t> generate_greedy(TinyDecoder& model, const std::vector<int64_t>& prompt,
                                     int64_t new_tokens, KVCache* cache) {
  (void)model, (void)prompt, (void)new_tokens, (void)cache;
  throw NotImplemented(
      "lesson 05 (KV cache): generate_greedy is not implemented yet - see lessons/05_kv_cache/README.md");
}

}  // namespace lesson05
