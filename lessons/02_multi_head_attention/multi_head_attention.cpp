// Chapter 02 — your code. Replace each `throw` with an implementation.
// Read lessons/02_multi_head_attention/README.md first; the shapes are in
// multi_head_attention.h.
#include "multi_head_attention.h"

#include <cmath>

#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson02 {

using namespace attn;

Tensor split_heads(const Tensor& x, int64_t heads) {
  (void)x;
  (void)heads;
  throw NotImplemented(
      "02 multi_head_attention: implement split_heads in "
      "lessons/02_multi_head_attention/multi_head_attention.cpp");
}

Tensor merge_heads(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "02 multi_head_attention: implement merge_heads in "
      "lessons/02_multi_head_attention/multi_head_attention.cpp");
}

Tensor MultiHeadAttention::forward(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "02 multi_head_attention: implement MultiHeadAttention::forward in "
      "lessons/02_multi_head_attention/multi_head_attention.cpp");
}

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

// ---- glue, nothing to change here ----------------------------------------
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
