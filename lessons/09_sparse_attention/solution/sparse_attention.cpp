// Chapter 09 — reference solution: thin adapters over the library
// (attention/sparse.h builds both patterns with exactly this chapter's
// rules, attention/pattern.h measures their density, and the library's
// scaled_dot_product_attention applies a mask with zeros for empty rows);
// attended_pairs is a plain count.
#include "sparse_attention.h"

#include <cmath>
#include <limits>

#include "attention/attention.h"
#include "attention/multi_head.h"
#include "attention/pattern.h"
#include "attention/registry.h"
#include "attention/sparse.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson09 {

using namespace attn;

Tensor strided_mask(int64_t tq, int64_t tk, int64_t local, int64_t stride, int64_t offset) {
  // The library checks local >= 1 and stride >= 1.
  return attn::strided_sparse_mask(tq, tk, offset, local, stride, Device::cpu());
}

Tensor block_sparse_mask(int64_t tq, int64_t tk, int64_t block, int64_t offset) {
  return attn::block_sparse_mask(tq, tk, offset, block, Device::cpu());
}

int64_t attended_pairs(const Tensor& keep) {
  check(keep.dtype() == DType::Bool, "attended_pairs: expected a bool mask, got ",
        dtype_name(keep.dtype()));
  // Integers on the host: exact at any size (a float sum of ones is not,
  // past 2^24 pairs).
  int64_t n = 0;
  for (int64_t flag : keep.to_int_vector()) n += flag != 0;
  return n;
}

double density(const Tensor& keep) { return attn::pattern_density(keep); }

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keep,
                        Tensor* weights_out) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "sparse_attention: expected q, k, v of shape [B, H, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
  const int64_t tq = q.shape()[2], tk = k.shape()[2];
  check(keep.defined() && keep.dtype() == DType::Bool && keep.shape() == Shape{tq, tk},
        "sparse_attention: expected a bool mask of shape [", tq, ", ", tk, "], got ",
        keep.defined() ? dtype_name(keep.dtype()) : "nothing", " ",
        keep.defined() ? shape_str(keep.shape()) : "");
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  // Masks with -inf before the softmax; rows without a key give zeros.
  return scaled_dot_product_attention(q, k, v, keep, scale, weights_out);
}

}  // namespace lesson09

// ---- glue, the same as in the stub ----------------------------------------
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
