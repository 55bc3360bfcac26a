// Chapter 05 — reference solution. The cache is written plainly (a growing
// cat along time; the library's attn::KVCache preallocates instead, see the
// README); cached_attention is a thin adapter over the library's dense
// causal kernel, which takes the queries' position offset.
#include "kv_cache.h"

#include <algorithm>
#include <cmath>

#include "attention/kernel.h"
#include "attention/kv_cache.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson05 {

using namespace attn;

std::pair<Tensor, Tensor> KVCache::append(int64_t layer, const Tensor& k_new, const Tensor& v_new) {
  check(layer >= 0 && layer < layers(), "KVCache::append: layer ", layer, " is outside 0..",
        layers() - 1);
  check(k_new.dim() == 4 && v_new.dim() == 4 && k_new.shape()[0] == v_new.shape()[0] &&
            k_new.shape()[1] == v_new.shape()[1] && k_new.shape()[2] == v_new.shape()[2],
        "KVCache::append: expected k [B, Hkv, T, d] and v [B, Hkv, T, dv], got ",
        shape_str(k_new.shape()), " and ", shape_str(v_new.shape()));
  Tensor& k = k_[layer];
  Tensor& v = v_[layer];
  if (!k.defined()) {
    // The first tokens of this layer: keep them as they are.
    k = k_new;
    v = v_new;
  } else {
    auto same_except_time = [](const Tensor& a, const Tensor& b) {
      return a.shape()[0] == b.shape()[0] && a.shape()[1] == b.shape()[1] && a.shape()[3] == b.shape()[3];
    };
    check(same_except_time(k, k_new) && same_except_time(v, v_new), "KVCache::append: layer ", layer,
          " holds k ", shape_str(k.shape()), " and v ", shape_str(v.shape()), "; new k ",
          shape_str(k_new.shape()), " and v ", shape_str(v_new.shape()),
          " differ in more than the time dim (2)");
    // Old tokens first, then the new ones, along time.
    k = cat({k, k_new}, 2);
    v = cat({v, v_new}, 2);
  }
  return {k, v};
}

int64_t KVCache::length(int64_t layer) const {
  check(layer >= 0 && layer < layers(), "KVCache::length: layer ", layer, " is outside 0..",
        layers() - 1);
  return k_[layer].defined() ? k_[layer].shape()[2] : 0;
}

std::size_t KVCache::bytes() const {
  std::size_t total = 0;
  for (const auto* slots : {&k_, &v_})
    for (const Tensor& t : *slots)
      if (t.defined()) total += static_cast<std::size_t>(t.numel()) * sizeof(float);
  return total;
}

Tensor cached_attention(const Tensor& q_new, const Tensor& k_new, const Tensor& v_new,
                        KVCache& cache, int64_t layer, Tensor* weights_out) {
  check(q_new.dim() == 4, "cached_attention: expected q_new [B, H, T_new, d], got ",
        shape_str(q_new.shape()));
  // Where the new tokens start: how many the cache held before them.
  const int64_t offset = cache.length(layer);
  // Append first, so that each new token also sees its own key.
  const auto [k, v] = cache.append(layer, k_new, v_new);
  AttentionCall call;
  call.q = q_new, call.k = k, call.v = v;
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q_new.shape()[3]));
  call.want_weights = weights_out != nullptr;
  // The library's kernel: repeat_kv (GQA), keep j <= offset + i, softmax.
  const Tensor out = dense_causal_attention(call);
  if (weights_out) *weights_out = call.weights;
  return out;
}

std::size_t bytes_per_token(const DecoderConfig& c) {
  check(c.heads >= 1 && c.embd % c.heads == 0 && c.kv_heads >= 1 && c.heads % c.kv_heads == 0,
        "bytes_per_token: heads=", c.heads, " must divide embd=", c.embd, " and kv_heads=",
        c.kv_heads, " must divide heads");
  const int64_t d = c.embd / c.heads;
  // The library's cache knows its per-token cost: K and V rows of the
  // kv_heads heads (not the query heads) in every layer, batch 1.
  return attn::KVCache(c.layers, 1, CacheLayout{c.kv_heads, d, d}, 1, Device::cpu()).bytes_per_token();
}

Tensor TinyDecoder::forward(const Tensor& ids, KVCache* cache) {
  check(ids.dim() == 2, "TinyDecoder: expected ids [B, T], got ", shape_str(ids.shape()));
  check(!cache || cache->layers() == config_.layers, "TinyDecoder: the cache has ",
        cache ? cache->layers() : 0, " layers, the model ", config_.layers);
  const int64_t T = ids.shape()[1];
  // The new tokens continue after the cached ones.
  const int64_t offset = cache ? cache->length() : 0;
  const Tensor positions = arange(static_cast<double>(offset), static_cast<double>(offset + T), 1,
                                  DType::Int64, ids.device());
  Tensor x = embed(ids, positions);
  // Without a cache, a throwaway one: an empty cache makes cached_attention
  // plain causal attention over the T tokens.
  KVCache scratch(config_.layers);
  KVCache& c = cache ? *cache : scratch;
  for (int64_t l = 0; l < config_.layers; ++l) {
    const Heads h = project(l, x);
    x = add(x, merge(l, cached_attention(h.q, h.k, h.v, c, l)));
  }
  return logits(x);
}

std::vector<int64_t> generate_greedy(TinyDecoder& model, const std::vector<int64_t>& prompt,
                                     int64_t new_tokens, KVCache* cache) {
  const int64_t P = static_cast<int64_t>(prompt.size());
  check(P >= 1, "generate_greedy: the prompt needs at least one token");
  check(new_tokens >= 1, "generate_greedy: new_tokens must be >= 1, got ", new_tokens);
  check(P + new_tokens - 1 <= model.config().block_size, "generate_greedy: ", P, " prompt tokens + ",
        new_tokens, " new ones need ", P + new_tokens - 1, " positions; block_size is ",
        model.config().block_size);
  check(!cache || cache->length() == 0, "generate_greedy: pass an empty cache (it holds ",
        cache ? cache->length() : 0, " tokens)");
  NoGradGuard no_grad;
  // The most likely next token after the last position of logits [1, T, V].
  auto next_token = [](const Tensor& logits) {
    const Tensor last = select(logits, 1, logits.shape()[1] - 1);  // [1, V]
    return argmax(last, -1).to_int_vector()[0];
  };
  std::vector<int64_t> seq = prompt, out;
  // Prefill: the whole prompt in one pass (it fills the cache, if any).
  Tensor logits = model.forward(from_ints(prompt, {1, P}), cache);
  for (int64_t i = 0; i < new_tokens; ++i) {
    const int64_t next = next_token(logits);
    out.push_back(next);
    seq.push_back(next);
    if (i + 1 == new_tokens) break;
    // Decode: with a cache only the new token runs; without, everything again.
    logits = cache ? model.forward(from_ints({next}, {1, 1}), cache)
                   : model.forward(from_ints(seq, {1, static_cast<int64_t>(seq.size())}));
  }
  return out;
}

}  // namespace lesson05
