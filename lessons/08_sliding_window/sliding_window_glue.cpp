// Chapter 08 glue: given code, compiled both with your sliding_window.cpp and with
// the reference solution (solution/sliding_window.cpp), so it is written once.
// It registers the variant "student:window".
// You do not need to change this file.

#include "sliding_window.h"

#include <algorithm>
#include <cstdint>
#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "core/error.h"

// ---- glue: your banded path as a variant ---------------------------------
// Registers the variant "student:window:size=W": the library's multi-head
// module running YOUR window_attention_banded on its heads (chunks of about
// W rows, like the library). The advanced suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:window",
      "chapter 08: multi-head attention running your window_attention_banded; option size=W",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"size"});
        const int64_t w = attn::option_int(spec, "size", 0);
        attn::check(w >= 1, "attention student:window: needs size=W with W >= 1, e.g. "
                            "student:window:size=16");
        auto kernel = [w](const attn::AttentionCall& call) {
          return lesson08::window_attention_banded(call.q, call.k, call.v, w,
                                                   std::clamp<int64_t>(w, 16, 256), call.offset);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
