// Chapter 06 — your code. Replace each `throw` with an implementation.
// Read lessons/06_rope/README.md first; the shapes are in rope.h.
#include "rope.h"

#include <cmath>
#include <vector>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson06 {

using namespace attn;

double ntk_base(double base, double scale, int64_t head_dim) {
  (void)base, (void)scale, (void)head_dim;
  throw NotImplemented(
      "lesson 06 (RoPE): ntk_base is not implemented yet - see lessons/06_rope/README.md");
}

RopeTables rope_tables(int64_t positions, int64_t head_dim, int64_t offset, double base,
                       double ntk_scale) {
  (void)positions, (void)head_dim, (void)offset, (void)base, (void)ntk_scale;
  throw NotImplemented(
      "lesson 06 (RoPE): rope_tables is not implemented yet - see lessons/06_rope/README.md");
}

Tensor apply_rope(const Tensor& x, const RopeTables& tables) {
  (void)x, (void)tables;
  throw NotImplemented(
      "lesson 06 (RoPE): apply_rope is not implemented yet - see lessons/06_rope/README.md");
}

Tensor rope_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                      double base, double ntk_scale, Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)offset, (void)base, (void)ntk_scale, (void)weights_out;
  throw NotImplemented(
      "lesson 06 (RoPE): rope_attention is not implemented yet - see lessons/06_rope/README.md");
}

}  // namespace lesson06

// ---- glue, nothing to change here ----------------------------------------
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
