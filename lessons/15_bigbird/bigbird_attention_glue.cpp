// Chapter 15 glue: given code, compiled both with your bigbird_attention.cpp
// and with the reference solution, so it is written once. It supplies
// random_below and registers the variant "student:bigbird".
// You do not need to change this file.
#include <cstdint>
#include <memory>

#include "attention/bigbird.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "bigbird_attention.h"
#include "core/error.h"

namespace lesson15 {

// The library's draw (Philox keyed by the seed, counter = (block, draw)):
// the same numbers the `bigbird` variant uses.
uint64_t random_below(uint64_t seed, int64_t query_block, int64_t draw, uint64_t n) {
  return attn::bigbird_draw_below(seed, query_block, draw, n);
}

}  // namespace lesson15

// ---- glue: your block-sparse kernel as a variant --------------------------
// "student:bigbird:window=W,global=G,random=R" (options block=B, default 16
// as in the library's variant, and seed=S): the library's multi-head module
// runs YOUR bigbird_attention on its heads. The advanced suite trains a
// tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:bigbird",
      "chapter 15: multi-head attention through your bigbird_attention; options window=W, "
      "global=G, random=R, block=B (default 16), seed=S",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"window", "global", "random", "block", "seed"});
        attn::check(spec.options.count("window") && spec.options.count("global") &&
                        spec.options.count("random"),
                    "attention student:bigbird: give window=W,global=G,random=R, e.g. "
                    "student:bigbird:window=4,global=1,random=1");
        lesson15::Pattern pattern;
        pattern.window = attn::option_int(spec, "window", 0);
        pattern.global = attn::option_int(spec, "global", 0);
        pattern.random = attn::option_int(spec, "random", 0);
        pattern.block = attn::option_int(spec, "block", 16);
        pattern.seed = static_cast<uint64_t>(attn::option_int(spec, "seed", 0));
        auto kernel = [pattern](const attn::AttentionCall& call) {
          return lesson15::bigbird_attention(call.q, call.k, call.v, pattern, call.offset);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
