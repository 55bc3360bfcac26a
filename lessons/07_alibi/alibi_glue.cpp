// Chapter 07 glue: given code, compiled both with your alibi.cpp and with
// the reference solution (solution/alibi.cpp), so it is written once.
// It registers the variant "student:alibi".
// You do not need to change this file.

#include "alibi.h"

#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"

// ---- glue: your alibi_attention as a variant -----------------------------
// Registers the variant "student:alibi": the library's multi-head module
// running YOUR alibi_attention on its heads. It is built with the alibi
// position option so that the model knows positions live in the attention
// and adds no learned position table (that is what lets extend_context
// work); the slopes the library would pass along are ignored: your
// alibi_attention makes its own. The advanced suite trains a tiny GPT with
// it and runs it past its training length.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:alibi", "chapter 07: multi-head attention running your alibi_attention",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        attn::PositionOptions positions;
        positions.alibi = true;
        auto kernel = [](const attn::AttentionCall& call) {
          attn::Tensor weights;
          const attn::Tensor out = lesson07::alibi_attention(call.q, call.k, call.v, call.offset,
                                                             call.want_weights ? &weights : nullptr);
          if (call.want_weights) call.weights = weights;
          return out;
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen, positions,
                                                          kernel);
      });
  return true;
}();
}  // namespace
