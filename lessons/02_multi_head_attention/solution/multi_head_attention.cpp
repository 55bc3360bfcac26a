// Chapter 02 — reference solution. The head bookkeeping is written plainly
// (the library does the same inline in attention/multi_head.cpp); the
// attention itself is the library's scaled_dot_product_attention.
#include "multi_head_attention.h"

#include <cmath>

#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson02 {

using namespace attn;

Tensor split_heads(const Tensor& x, int64_t heads) {
  check(x.dim() == 3, "split_heads: expected x of shape [B, T, C], got ", shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1], C = x.shape()[2];
  check(heads > 0 && C % heads == 0, "split_heads: heads=", heads, " must divide C=", C);
  // [B, T, C] -> [B, T, heads, d]: each token's features cut into slices,
  // then [B, heads, T, d]: a free view with swapped strides.
  return transpose(reshape(x, {B, T, heads, C / heads}), 1, 2);
}

Tensor merge_heads(const Tensor& x) {
  check(x.dim() == 4, "merge_heads: expected x of shape [B, heads, T, d], got ",
        shape_str(x.shape()));
  const int64_t B = x.shape()[0], H = x.shape()[1], T = x.shape()[2], d = x.shape()[3];
  // Back to [B, T, heads, d]; that view is not contiguous, so reshape copies
  // (PyTorch: .transpose(1, 2).contiguous().view(B, T, C)).
  return reshape(transpose(x, 1, 2), {B, T, H * d});
}

Tensor MultiHeadAttention::forward(const Tensor& x) {
  check(x.dim() == 3, "MultiHeadAttention: expected x of shape [B, T, C], got ",
        shape_str(x.shape()));
  const int64_t T = x.shape()[1];
  const Tensor q = split_heads(wq_->forward(x), heads_);
  const Tensor k = split_heads(wk_->forward(x), heads_);
  const Tensor v = split_heads(wv_->forward(x), heads_);
  // The library's scaled dot-product attention (chapter 01) on every head at once.
  const Tensor keep = causal_mask(T, T, /*offset=*/0, x.device());
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
  const Tensor o = scaled_dot_product_attention(q, k, v, keep, scale);
  return wo_->forward(merge_heads(o));
}

}  // namespace lesson02
