// Chapter 03 — reference solution. The norms call the library's fused ops
// (autograd/ops_norm.cpp, whose kernels compute exactly the formulas in
// norms_blocks.h); BatchNorm is the library's BatchNorm1d in training mode
// with its identity affine; the residual wiring is written plainly (the
// library's version is Block::run in nn/gpt.cpp).
#include "norms_blocks.h"

#include "autograd/ops.h"
#include "core/error.h"
#include "nn/layers.h"

namespace lesson03 {

using namespace attn;

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  return attn::layer_norm(x, weight, bias, eps);
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  return attn::rms_norm(x, weight, eps);
}

Tensor batch_norm(const Tensor& x, float eps) {
  check(x.dim() >= 2, "batch_norm: expected at least [N, C], got ", shape_str(x.shape()));
  // A fresh module: weight 1, bias 0, training mode (batch statistics).
  BatchNorm1d bn(x.shape().back(), /*momentum=*/0.1f, eps);
  bn.to(x.device());  // its weight, bias and running statistics start on the CPU
  return bn.forward(x);
}

Tensor pre_norm_residual(const Tensor& x, const Sublayer& norm, const Sublayer& f) {
  // The residual stream x passes through untouched; only the branch sees
  // the normalised input.
  return add(x, f(norm(x)));
}

Tensor post_norm_residual(const Tensor& x, const Sublayer& norm, const Sublayer& f) {
  return norm(add(x, f(x)));
}

Tensor block_forward(const Tensor& x, const Sublayer& norm1, const Sublayer& attn,
                     const Sublayer& norm2, const Sublayer& mlp, bool pre_norm) {
  if (pre_norm) {
    const Tensor h = pre_norm_residual(x, norm1, attn);
    return pre_norm_residual(h, norm2, mlp);
  }
  const Tensor h = post_norm_residual(x, norm1, attn);
  return post_norm_residual(h, norm2, mlp);
}

}  // namespace lesson03
