// Chapter 13 glue: given code, compiled both with your attention_surgery.cpp and with
// the reference solution (solution/attention_surgery.cpp), so it is written once.
// It holds the helpers attention_config, position_options and gqa_spec,
// and registers the variant "student:pooled_gqa".
// You do not need to change this file.

#include "attention_surgery.h"

#include <memory>
#include <string>

#include "attention/registry.h"
#include "core/error.h"

namespace lesson13 {

using namespace attn;

// ---- given: helpers you use, nothing to write here --------------------------

AttentionConfig attention_config(const GPTConfig& c) {
  return c.attention_config();  // what each block of the GPT gets (nn/gpt.h)
}

PositionOptions position_options(const std::string& spec) {
  const VariantSpec s = parse_variant(spec);
  PositionOptions p;
  p.rope = option_flag(s, "rope");
  p.alibi = option_flag(s, "alibi");
  p.rope_base = option_float(s, "rope_base", p.rope_base);
  p.ntk_scale = option_float(s, "ntk", p.ntk_scale);
  return p;
}

std::string gqa_spec(const std::string& spec, int64_t groups) {
  VariantSpec s = parse_variant(spec);
  check(s.name == "mha", "gqa_spec: the model's attention is '", spec,
        "'; only an \"mha\" model (one K/V head per query head) can have its heads pooled");
  s.name = "gqa";
  s.options["kv_heads"] = std::to_string(groups);  // position options stay as they are
  return s.str();
}

}  // namespace lesson13

// ---- glue: your gqa_from_mha as a variant --------------------------------
// Registers the variant "student:pooled_gqa:kv_heads=N": a GQA module that
// starts from a freshly initialised MHA converted by YOUR gqa_from_mha (its
// K/V weights are group means, so they start sqrt(H/N) times smaller). The
// advanced suite trains a tiny GPT with it; `attnlab train --attention
// student:pooled_gqa:kv_heads=2` runs it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:pooled_gqa",
      "chapter 13: GQA initialised from an MHA by your gqa_from_mha; option kv_heads=N",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen)
          -> std::shared_ptr<attn::Attention> {
        attn::check_options(spec, {"kv_heads"});
        const int64_t kv_heads = attn::option_int(spec, "kv_heads", config.heads);
        attn::MultiHeadAttention mha(config, config.heads, gen);
        return lesson13::gqa_from_mha(mha, config, kv_heads);
      });
  return true;
}();
}  // namespace
