// Chapter 12 — your code. Replace each `throw` with an implementation.
// Read lessons/12_mla/README.md first; the shapes are in latent_attention.h.
#include "latent_attention.h"

#include <algorithm>
#include <cmath>

#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson12 {

using namespace attn;

Tensor up_project(const Tensor& latent, const Tensor& w_up, int64_t heads) {
  (void)latent, (void)w_up, (void)heads;
  throw NotImplemented("lesson 12 (MLA): up_project is not implemented yet - see lessons/12_mla/README.md");
}

Tensor mla_attention(const Tensor& q, const Tensor& q_rope, const Tensor& k, const Tensor& k_rope,
                     const Tensor& v, int64_t offset, Tensor* weights_out) {
  (void)q, (void)q_rope, (void)k, (void)k_rope, (void)v, (void)offset, (void)weights_out;
  throw NotImplemented("lesson 12 (MLA): mla_attention is not implemented yet - see lessons/12_mla/README.md");
}

Tensor mla_attention_absorbed(const Tensor& q, const Tensor& q_rope, const Tensor& latents,
                              const Tensor& k_rope, const Tensor& w_up_k, const Tensor& w_up_v,
                              int64_t offset, Tensor* weights_out) {
  (void)q, (void)q_rope, (void)latents, (void)k_rope, (void)w_up_k, (void)w_up_v, (void)offset,
      (void)weights_out;
  throw NotImplemented("lesson 12 (MLA): mla_attention_absorbed is not implemented yet - see lessons/12_mla/README.md");
}

int64_t mla_cache_bytes_per_token(int64_t layers, int64_t latent, int64_t rope_dim,
                                  int64_t bytes_per_value) {
  (void)layers, (void)latent, (void)rope_dim, (void)bytes_per_value;
  throw NotImplemented("lesson 12 (MLA): mla_cache_bytes_per_token is not implemented yet - see lessons/12_mla/README.md");
}

LatentAttention::Parts LatentAttention::project(const Tensor& x, int64_t offset) {
  (void)x, (void)offset;
  throw NotImplemented("lesson 12 (MLA): LatentAttention::project is not implemented yet - see lessons/12_mla/README.md");
}

Tensor LatentAttention::forward(const Tensor& x) {
  (void)x;
  throw NotImplemented("lesson 12 (MLA): LatentAttention::forward is not implemented yet - see lessons/12_mla/README.md");
}

Tensor LatentAttention::forward_cached(const Tensor& x, KVCache& cache, int64_t layer) {
  (void)x, (void)cache, (void)layer;
  throw NotImplemented("lesson 12 (MLA): LatentAttention::forward_cached is not implemented yet - see lessons/12_mla/README.md");
}

CacheLayout LatentAttention::cache_layout() const {
  throw NotImplemented("lesson 12 (MLA): LatentAttention::cache_layout is not implemented yet - see lessons/12_mla/README.md");
}

// ---- given: the constructor and merge() ------------------------------------
LatentAttention::LatentAttention(int64_t embd, int64_t heads, int64_t latent, int64_t rope_dim,
                                 Generator& gen, bool bias, int64_t layers)
    : heads_(heads), latent_(latent), rope_dim_(rope_dim) {
  check(heads > 0 && embd % heads == 0, "LatentAttention: heads=", heads, " must divide embd=", embd);
  check(latent >= 1, "LatentAttention: latent must be >= 1, got ", latent);
  check(rope_dim >= 2 && rope_dim % 2 == 0, "LatentAttention: rope_dim must be even and >= 2, got ",
        rope_dim);
  head_dim_ = embd / heads;
  wq_ = register_module("wq", std::make_shared<Linear>(embd, embd, bias, gen));
  wq_rope_ = register_module("wq_rope", std::make_shared<Linear>(embd, heads * rope_dim, bias, gen));
  w_down_kv_ = register_module("w_down_kv", std::make_shared<Linear>(embd, latent, bias, gen));
  // ONE RoPE key per token (r outputs), not one per head.
  w_k_rope_ = register_module("w_k_rope", std::make_shared<Linear>(embd, rope_dim, bias, gen));
  // No bias on the up-projections: absorption needs them purely linear.
  w_up_k_ = register_module("w_up_k", std::make_shared<Linear>(latent, embd, false, gen));
  w_up_v_ = register_module("w_up_v", std::make_shared<Linear>(latent, embd, false, gen));
  const float out_std = 0.02f / std::sqrt(2.0f * static_cast<float>(layers));
  wo_ = register_module("wo", std::make_shared<Linear>(embd, embd, bias, gen, out_std));
}

Tensor LatentAttention::merge(const Tensor& o) const {
  const int64_t B = o.shape()[0], T = o.shape()[2];
  return wo_->forward(reshape(transpose(o, 1, 2), {B, T, heads_ * head_dim_}));
}

}  // namespace lesson12

// ---- glue, nothing to change here ---------------------------------------
// Registers your module as "student:mla:latent=N,rope_dim=R" (defaults as
// the library's "mla": latent = embd / 4, rope_dim = half the head size,
// rounded down to even, at least 2). GPT training runs forward; generation
// (GPT::forward_cached, `attnlab sample`) runs your forward_cached.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:mla", "chapter 12: your multi-head latent attention; options latent=N, rope_dim=R",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"latent", "rope_dim"});
        const int64_t head_dim = config.heads > 0 ? config.embd / config.heads : 0;
        const int64_t latent = attn::option_int(spec, "latent", std::max<int64_t>(config.embd / 4, 1));
        const int64_t rope_dim =
            attn::option_int(spec, "rope_dim", std::max<int64_t>(head_dim / 2 / 2 * 2, 2));
        return std::make_shared<lesson12::LatentAttention>(config.embd, config.heads, latent,
                                                           rope_dim, gen, config.bias, config.layers);
      });
  return true;
}();
}  // namespace
