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

// ---- given: the constructor ------------------------------------------------
MultiHeadAttention::MultiHeadAttention(int64_t embd, int64_t heads, Generator& gen, bool bias,
                                       int64_t layers)
    : heads_(heads) {
  check(heads > 0 && embd % heads == 0, "MultiHeadAttention: heads=", heads,
        " must divide embd=", embd);
  head_dim_ = embd / heads;
  // Linear(in, out) keeps weight [out, in] and computes x W^T + b, like
  // torch.nn.Linear. All four map C -> C: the heads live inside the C
  // features, d = C / heads each.
  wq_ = register_module("wq", std::make_shared<Linear>(embd, embd, bias, gen));
  wk_ = register_module("wk", std::make_shared<Linear>(embd, embd, bias, gen));
  wv_ = register_module("wv", std::make_shared<Linear>(embd, embd, bias, gen));
  const float out_std = 0.02f / std::sqrt(2.0f * static_cast<float>(layers));
  wo_ = register_module("wo", std::make_shared<Linear>(embd, embd, bias, gen, out_std));
}

}  // namespace lesson02

// ---- glue, the same as in the stub ---------------------------------------
// Registers this module as the attention variant "student:mha".
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:mha", "chapter 02: the lesson's causal multi-head attention",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        return std::make_shared<lesson02::MultiHeadAttention>(config.embd, config.heads, gen,
                                                              config.bias, config.layers);
      });
  return true;
}();
}  // namespace
