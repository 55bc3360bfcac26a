// Chapter 04 glue: given code, compiled both with your gqa.cpp and with
// the reference solution (solution/gqa.cpp), so it is written once.
// It holds the module's constructor and registers the variant "student:gqa".
// You do not need to change this file.

#include "gqa.h"

#include <cmath>
#include <memory>

#include "attention/registry.h"
#include "core/error.h"

namespace lesson04 {

using namespace attn;

// ---- given: the constructor ------------------------------------------------
GroupedQueryAttention::GroupedQueryAttention(int64_t embd, int64_t heads, int64_t kv_heads,
                                             Generator& gen, bool bias, int64_t layers)
    : heads_(heads), kv_heads_(kv_heads) {
  check(heads > 0 && embd % heads == 0, "GroupedQueryAttention: heads=", heads,
        " must divide embd=", embd);
  check(kv_heads > 0 && heads % kv_heads == 0, "GroupedQueryAttention: kv_heads=", kv_heads,
        " must divide heads=", heads, " (every group needs the same number of query heads)");
  head_dim_ = embd / heads;
  // Queries keep all H heads; keys and values only have kv_heads of them.
  wq_ = register_module("wq", std::make_shared<Linear>(embd, embd, bias, gen));
  wk_ = register_module("wk", std::make_shared<Linear>(embd, kv_heads * head_dim_, bias, gen));
  wv_ = register_module("wv", std::make_shared<Linear>(embd, kv_heads * head_dim_, bias, gen));
  // GPT-2's smaller start for the projection that writes into the residual.
  const float out_std = 0.02f / std::sqrt(2.0f * static_cast<float>(layers));
  wo_ = register_module("wo", std::make_shared<Linear>(embd, embd, bias, gen, out_std));
}

}  // namespace lesson04

// ---- glue: your module as a variant --------------------------------------
// Registers your module as the attention variant "student:gqa:kv_heads=N"
// (kv_heads=1 is MQA, kv_heads=heads is MHA), so a GPT can be built on it;
// the advanced suite trains one.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:gqa", "chapter 04: your grouped-query attention; option kv_heads=N",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"kv_heads"});
        const int64_t kv_heads = attn::option_int(spec, "kv_heads", config.heads);
        return std::make_shared<lesson04::GroupedQueryAttention>(config.embd, config.heads, kv_heads,
                                                                 gen, config.bias, config.layers);
      });
  return true;
}();
}  // namespace
