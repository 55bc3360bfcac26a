// Chapter 01 glue: given code, compiled both with your softmax_attention.cpp and with
// the reference solution (solution/softmax_attention.cpp), so it is written once.
// It registers the variant "student:sdpa".
// You do not need to change this file.

#include "softmax_attention.h"

#include <cstdint>
#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"

// ---- glue: your attention as a variant -----------------------------------
// Registers a multi-head attention that runs YOUR scaled_dot_product_attention
// on its heads, as the variant "student:sdpa" (see attention/registry.h).
// The advanced suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:sdpa", "chapter 01: multi-head attention running your scaled_dot_product_attention",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        auto kernel = [](const attn::AttentionCall& call) {
          const int64_t tq = call.q.shape()[2], tk = call.k.shape()[2];
          return lesson01::scaled_dot_product_attention(
              call.q, call.k, call.v, attn::causal_mask(tq, tk, call.offset, call.q.device()));
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
