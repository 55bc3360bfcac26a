// Chapter 05 glue: given code, compiled both with your kv_cache.cpp and with
// the reference solution (solution/kv_cache.cpp), so it is written once.
// It holds the cache's constructor and clear(), the decoder's pieces, and
// registers the variant "student:kv_cache".
// You do not need to change this file.

#include "kv_cache.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson05 {

using namespace attn;

// ---- given: the cache's constructor and clear() ----------------------------
KVCache::KVCache(int64_t layers) {
  check(layers >= 1, "KVCache: layers must be >= 1, got ", layers);
  k_.resize(layers);
  v_.resize(layers);
}

void KVCache::clear() {
  for (auto& t : k_) t = Tensor();
  for (auto& t : v_) t = Tensor();
}

// ---- given: the decoder's pieces -------------------------------------------
TinyDecoder::TinyDecoder(const DecoderConfig& c, uint64_t seed) : config_(c) {
  check(c.vocab >= 1 && c.block_size >= 1 && c.layers >= 1, "TinyDecoder: vocab, block_size and ",
        "layers must be >= 1");
  check(c.heads >= 1 && c.embd % c.heads == 0, "TinyDecoder: heads=", c.heads,
        " must divide embd=", c.embd);
  check(c.kv_heads >= 1 && c.heads % c.kv_heads == 0, "TinyDecoder: kv_heads=", c.kv_heads,
        " must divide heads=", c.heads);
  head_dim_ = c.embd / c.heads;
  Generator gen(seed);
  // Larger than GPT-2's 0.02: an untrained model whose attention is far from
  // uniform, so that a wrong position or a missing key shows in the output.
  const float std = 1.0f / std::sqrt(static_cast<float>(c.embd));
  wte_ = register_module("wte", std::make_shared<Embedding>(c.vocab, c.embd, gen, 1.0f));
  wpe_ = register_module("wpe", std::make_shared<Embedding>(c.block_size, c.embd, gen, 1.0f));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const int64_t kv_width = c.kv_heads * head_dim_;
    wq_.push_back(register_module(p + "wq", std::make_shared<Linear>(c.embd, c.embd, true, gen, std)));
    wk_.push_back(register_module(p + "wk", std::make_shared<Linear>(c.embd, kv_width, true, gen, std)));
    wv_.push_back(register_module(p + "wv", std::make_shared<Linear>(c.embd, kv_width, true, gen, std)));
    wo_.push_back(register_module(p + "wo", std::make_shared<Linear>(c.embd, c.embd, true, gen, std)));
  }
}

Tensor TinyDecoder::embed(const Tensor& ids, const Tensor& positions) const {
  check(ids.dim() == 2 && ids.dtype() == DType::Int64, "TinyDecoder: expected int64 ids [B, T], got ",
        shape_str(ids.shape()));
  check(positions.dim() == 1 && positions.dtype() == DType::Int64 &&
            positions.shape()[0] == ids.shape()[1],
        "TinyDecoder::embed: expected int64 positions [T] with T = ", ids.shape()[1], ", got ",
        shape_str(positions.shape()));
  for (int64_t p : positions.to_int_vector())
    check(p >= 0 && p < config_.block_size, "TinyDecoder: position ", p,
          " is outside 0..block_size-1 = ", config_.block_size - 1);
  return add(wte_->forward(ids), wpe_->forward(positions));
}

TinyDecoder::Heads TinyDecoder::project(int64_t l, const Tensor& x) const {
  const int64_t B = x.shape()[0], T = x.shape()[1];
  const int64_t H = config_.heads, Hkv = config_.kv_heads, d = head_dim_;
  // [B, T, heads * d] -> [B, T, heads, d] -> [B, heads, T, d]
  return {transpose(view(wq_[l]->forward(x), {B, T, H, d}), 1, 2),
          transpose(view(wk_[l]->forward(x), {B, T, Hkv, d}), 1, 2),
          transpose(view(wv_[l]->forward(x), {B, T, Hkv, d}), 1, 2)};
}

Tensor TinyDecoder::merge(int64_t l, const Tensor& o) const {
  const int64_t B = o.shape()[0], T = o.shape()[2];
  return wo_[l]->forward(reshape(transpose(o, 1, 2), {B, T, config_.embd}));
}

Tensor TinyDecoder::logits(const Tensor& x) const {
  return matmul(x, transpose(wte_->weight(), 0, 1));
}

}  // namespace lesson05

// ---- glue: your cached_attention as a variant ----------------------------
// Registers "student:kv_cache:kv_heads=N": the library's multi-head module
// (whose GPT decodes with the library's preallocated cache) running YOUR
// cached_attention as its kernel. The library hands the kernel every key so
// far; the glue puts the old ones into one of your caches and lets your
// cached_attention append the new ones. The advanced suite decodes with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:kv_cache",
      "chapter 05: multi-head attention whose kernel is your cached_attention; option kv_heads=N",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"kv_heads"});
        auto kernel = [](const attn::AttentionCall& call) {
          const int64_t tq = call.q.shape()[2];
          lesson05::KVCache cache(1);
          if (call.offset > 0)
            cache.append(0, attn::narrow(call.k, 2, 0, call.offset),
                         attn::narrow(call.v, 2, 0, call.offset));
          return lesson05::cached_attention(call.q, attn::narrow(call.k, 2, call.offset, tq),
                                            attn::narrow(call.v, 2, call.offset, tq), cache, 0);
        };
        return std::make_shared<attn::MultiHeadAttention>(
            config, attn::option_int(spec, "kv_heads", config.heads), gen, attn::PositionOptions{},
            kernel);
      });
  return true;
}();
}  // namespace
