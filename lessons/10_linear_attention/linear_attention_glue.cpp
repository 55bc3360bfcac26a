// Chapter 10 glue: given code, compiled both with your linear_attention.cpp and with
// the reference solution (solution/linear_attention.cpp), so it is written once.
// It registers the variant "student:linear".
// You do not need to change this file.

#include "linear_attention.h"

#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "core/error.h"

// ---- glue: your causal form as a variant ---------------------------------
// Registers the variant "student:linear": the library's multi-head module
// running YOUR linear_attention_causal on its heads (chunks of 64). Like
// the library's `linear`, it has no KV cache: generation reruns the prefix.
// The advanced suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:linear", "chapter 10: multi-head attention running your linear_attention_causal",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        auto kernel = [](const attn::AttentionCall& call) {
          attn::check(call.offset == 0 && call.k.shape()[2] == call.q.shape()[2],
                      "attention student:linear: no KV cache; generate without one");
          return lesson10::linear_attention_causal(call.q, call.k, call.v, 64);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
