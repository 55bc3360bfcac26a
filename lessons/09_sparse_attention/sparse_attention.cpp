// Chapter 09 — your code. Replace each `throw` with an implementation.
// Read lessons/09_sparse_attention/README.md first; the rules and shapes are
// in sparse_attention.h.
#include "sparse_attention.h"

#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson09 {

using namespace attn;

Tensor strided_mask(int64_t tq, int64_t tk, int64_t local, int64_t stride, int64_t offset) {
  (void)tq, (void)tk, (void)local, (void)stride, (void)offset;
  throw NotImplemented("lesson 09 (sparse attention): strided_mask is not implemented yet - see lessons/09_sparse_attention/README.md");
}

Tensor block_sparse_mask(int64_t tq, int64_t tk, int64_t block, int64_t offset) {
  (void)tq, (void)tk, (void)block, (void)offset;
  throw NotImplemented("lesson 09 (sparse attention): block_sparse_mask is not implemented yet - see lessons/09_sparse_attention/README.md");
}

int64_t attended_pairs(const Tensor& keep) {
  (void)keep;
  throw NotImplemented("lesson 09 (sparse attention): attended_pairs is not implemented yet - see lessons/09_sparse_attention/README.md");
}

double density(const Tensor& keep) {
  (void)keep;
  throw NotImplemented("lesson 09 (sparse attention): density is not implemented yet - see lessons/09_sparse_attention/README.md");
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keep,
                        Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)keep, (void)weights_out;
  throw NotImplemented("lesson 09 (sparse attention): sparse_attention is not implemented yet - see lessons/09_sparse_attention/README.md");
}

}  // namespace lesson09

// ---- glue, nothing to change here ----------------------------------------
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
