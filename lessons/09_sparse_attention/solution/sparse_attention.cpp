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
