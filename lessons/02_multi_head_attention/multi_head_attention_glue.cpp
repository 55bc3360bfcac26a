// Chapter 02 glue: given code, compiled both with your multi_head_attention.cpp and with
// the reference solution (solution/multi_head_attention.cpp), so it is written once.
// It holds the module's constructor and registers the variant "student:mha".
// You do not need to change this file.

#include "multi_head_attention.h"

#include <cmath>
#include <memory>

#include "attention/registry.h"
#include "core/error.h"

namespace lesson02 {

using namespace attn;

// ---- given: the constructor ------------------------------------------------
MultiHeadAttention::MultiHeadAttention(int64_t embd, int64_t heads, Generator& gen, bool bias,
                                       int64_t layers)
    : heads_(heads) {
  check(heads > 0 && embd % heads == 0, "MultiHeadAttention: heads=", heads,
        " must divide embd=", embd);
  head_dim_ = embd / heads;
  // Linear(in, out) keeps weight [out, in] and computes x W^T + b, like
  // torch.nn.Linear. All four map C -> C: the heads live inside the C
  // features, d = C / heads each.
  wq_ = register_module("wq", std::make_shared<Linear>(embd, embd, bias, gen));
  wk_ = register_module("wk", std::make_shared<Linear>(embd, embd, bias, gen));
  wv_ = register_module("wv", std::make_shared<Linear>(embd, embd, bias, gen));
  const float out_std = 0.02f / std::sqrt(2.0f * static_cast<float>(layers));
  wo_ = register_module("wo", std::make_shared<Linear>(embd, embd, bias, gen, out_std));
}

}  // namespace lesson02

// ---- glue: your module as a variant --------------------------------------
// Registers your module as the attention variant "student:mha", so a GPT can
// be built on it (the advanced suite trains one).
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:mha", "chapter 02: your causal multi-head attention",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        return std::make_shared<lesson02::MultiHeadAttention>(config.embd, config.heads, gen,
                                                              config.bias, config.layers);
      });
  return true;
}();
}  // namespace
