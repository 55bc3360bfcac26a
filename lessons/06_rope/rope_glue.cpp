// Chapter 06 glue: given code, compiled both with your rope.cpp and with
// the reference solution (solution/rope.cpp), so it is written once.
// It registers the variant "student:rope".
// You do not need to change this file.

#include "rope.h"

#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"

// ---- glue: your rope_attention as a variant ------------------------------
// Registers "student:rope" (options kv_heads=N, rope_base=B, ntk=S): the
// library's multi-head module whose kernel is YOUR rope_attention. It rotates
// the queries at their positions and every key so far at 0..Tk-1 on each
// call, so it also decodes with the library's KV cache (which then stores
// unrotated keys). The model adds no learned position embedding: RoPE is
// the only source of positions.
namespace {
class StudentRope : public attn::MultiHeadAttention {
 public:
  using attn::MultiHeadAttention::MultiHeadAttention;
  bool encodes_positions() const override { return true; }
};

[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:rope",
      "chapter 06: multi-head attention with your rope_attention; options kv_heads=N, "
      "rope_base=B, ntk=S",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"kv_heads", "rope_base", "ntk"});
        const double base = attn::option_float(spec, "rope_base", 10000.0f);
        const double ntk = attn::option_float(spec, "ntk", 1.0f);
        auto kernel = [base, ntk](const attn::AttentionCall& call) {
          attn::Tensor weights;
          attn::Tensor out = lesson06::rope_attention(call.q, call.k, call.v, call.offset, base, ntk,
                                                call.want_weights ? &weights : nullptr);
          if (call.want_weights) call.weights = weights;
          return out;
        };
        return std::make_shared<StudentRope>(config, attn::option_int(spec, "kv_heads", config.heads),
                                             gen, attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
