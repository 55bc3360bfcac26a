// Chapter 01 — reference solution.
// softmax is written plainly with ops (the lesson is how); the masks and the
// attention call the library (attention/scaled_dot_product.cpp).
#include "softmax_attention.h"

#include <cmath>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson01 {

using namespace attn;

Tensor softmax(const Tensor& x) {
  // The row max is a constant shift: softmax(x - m) == softmax(x) exactly, so
  // no gradient needs to flow through m (detach keeps the graph small).
  const Tensor m = max(x, -1, /*keepdim=*/true).detach();
  const Tensor e = exp(sub(x, m));  // every exponent is <= 0: no overflow
  return div(e, sum(e, {-1}, /*keepdim=*/true));
}

Tensor causal_mask(int64_t t) {
  return attn::causal_mask(t, t, /*offset=*/0, Device::cpu());
}

Tensor padding_mask(const Tensor& lengths, int64_t t) {
  check(lengths.dim() == 1 && lengths.dtype() == DType::Int64,
        "padding_mask: lengths must be int64 [B], got ", shape_str(lengths.shape()));
  const int64_t batch = lengths.shape()[0];
  const Tensor positions = reshape(arange(t, DType::Int64, lengths.device()), {1, t});
  const Tensor keep = lt(positions, reshape(lengths, {batch, 1}));  // [B, T]
  return reshape(keep, {batch, 1, 1, t});
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep, Tensor* weights_out) {
  // The library's version (attention/scaled_dot_product.cpp) is exactly this
  // chapter's contract: scale 1/sqrt(d), mask before softmax, zero rows.
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.shape().back()));
  return attn::scaled_dot_product_attention(q, k, v, keep, scale, weights_out);
}

}  // namespace lesson01
