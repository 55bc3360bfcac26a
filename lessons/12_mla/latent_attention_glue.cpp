// Chapter 12 glue: given code, compiled both with your latent_attention.cpp and with
// the reference solution (solution/latent_attention.cpp), so it is written once.
// It holds the module's constructor and merge(), and registers the variant
// "student:mla".
// You do not need to change this file.

#include "latent_attention.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson12 {

using namespace attn;

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

// ---- glue: your module as a variant --------------------------------------
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
