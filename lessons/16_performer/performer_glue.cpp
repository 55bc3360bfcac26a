// Chapter 16 glue: given code, compiled both with your performer.cpp and with
// the reference solution (solution/performer.cpp), so it is written once.
// It registers the variant "student:performer". You do not need to change
// this file.
#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "core/error.h"
#include "core/random.h"
#include "performer.h"

// ---- glue: your causal FAVOR+ as a variant --------------------------------
// Registers "student:performer:features=M[,seed=S]": the library's multi-head
// module running YOUR favor_attention (causal) with a fixed projection from
// YOUR gaussian_projection (orthogonal), one draw per layer. Like the
// library's `performer`, it has no KV cache: generation reruns the prefix.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:performer",
      "chapter 16: multi-head attention running your causal favor_attention; options features=M "
      "(default 64), seed=S",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"features", "seed"});
        const int64_t features = attn::option_int(spec, "features", 64);
        attn::check(features >= 1 && features <= 16384, "attention student:performer: features=",
                    features, ": expected a positive count up to 16384");
        attn::check(config.heads > 0 && config.embd % config.heads == 0, "attention: heads=",
                    config.heads, " must divide embd=", config.embd);
        const uint64_t seed = static_cast<uint64_t>(attn::option_int(spec, "seed", 0)) ^ gen.next_u64();
        const attn::Tensor w =
            lesson16::gaussian_projection(features, config.embd / config.heads, true, seed);
        auto kernel = [w](const attn::AttentionCall& call) {
          attn::check(call.offset == 0 && call.k.shape()[2] == call.q.shape()[2],
                      "attention student:performer: no KV cache; generate without one");
          return lesson16::favor_attention(call.q, call.k, call.v, w.to(call.q.device()), true);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
