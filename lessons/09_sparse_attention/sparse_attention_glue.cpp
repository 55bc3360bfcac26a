// Chapter 09 glue: given code, compiled both with your sparse_attention.cpp and with
// the reference solution (solution/sparse_attention.cpp), so it is written once.
// It registers the variant "student:sparse".
// You do not need to change this file.

#include "sparse_attention.h"

#include <cstdint>
#include <memory>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

// ---- glue: your sparse patterns as a variant -----------------------------
// Registers the variant "student:sparse" with either pattern:
//     student:sparse:local=L,stride=S     your strided_mask
//     student:sparse:block=B              your block_sparse_mask
// The library's multi-head module builds q, k, v and calls YOUR
// sparse_attention with the pattern for the call's positions. The advanced
// suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:sparse",
      "chapter 09: multi-head attention through your sparse patterns; options local=L,stride=S "
      "or block=B",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"local", "stride", "block"});
        const int64_t local = attn::option_int(spec, "local", 0);
        const int64_t stride = attn::option_int(spec, "stride", 0);
        const int64_t block = attn::option_int(spec, "block", 0);
        const bool strided = local >= 1 && stride >= 1 && block == 0;
        attn::check(strided || (block >= 1 && local == 0 && stride == 0),
                    "attention student:sparse: give local=L,stride=S (strided) or block=B "
                    "(block-sparse), e.g. student:sparse:local=8,stride=8");
        auto kernel = [=](const attn::AttentionCall& call) {
          const int64_t tq = call.q.shape()[2], tk = call.k.shape()[2];
          // Your masks live on the CPU; the heads may not (a GPU build).
          const attn::Tensor keep = attn::to(
              strided ? lesson09::strided_mask(tq, tk, local, stride, call.offset)
                      : lesson09::block_sparse_mask(tq, tk, block, call.offset),
              call.q.device());
          attn::Tensor weights;
          const attn::Tensor out = lesson09::sparse_attention(
              call.q, call.k, call.v, keep, call.want_weights ? &weights : nullptr);
          if (call.want_weights) call.weights = weights;
          return out;
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
