// Chapter 03 — your code. Replace each `throw` with an implementation.
// Read lessons/03_norms_and_blocks/README.md first; the shapes are in
// norms_blocks.h.
//
// If one of your functions calls another, qualify it: lesson03::layer_norm(...).
// Unqualified, C++ also finds attn::layer_norm (same arguments, found through
// the attn::Tensor arguments) and reports an ambiguous call.
#include "norms_blocks.h"

#include "autograd/ops.h"
#include "core/error.h"

namespace lesson03 {

using namespace attn;

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  (void)x;
  (void)weight;
  (void)bias;
  (void)eps;
  throw NotImplemented(
      "03 norms_and_blocks: implement layer_norm in lessons/03_norms_and_blocks/norms_blocks.cpp");
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  (void)x;
  (void)weight;
  (void)eps;
  throw NotImplemented(
      "03 norms_and_blocks: implement rms_norm in lessons/03_norms_and_blocks/norms_blocks.cpp");
}

Tensor batch_norm(const Tensor& x, float eps) {
  (void)x;
  (void)eps;
  throw NotImplemented(
      "03 norms_and_blocks: implement batch_norm in lessons/03_norms_and_blocks/norms_blocks.cpp");
}

Tensor pre_norm_residual(const Tensor& x, const Sublayer& norm, const Sublayer& f) {
  (void)x;
  (void)norm;
  (void)f;
  throw NotImplemented(
      "03 norms_and_blocks: implement pre_norm_residual in "
      "lessons/03_norms_and_blocks/norms_blocks.cpp");
}

Tensor post_norm_residual(const Tensor& x, const Sublayer& norm, const Sublayer& f) {
  (void)x;
  (void)norm;
  (void)f;
  throw NotImplemented(
      "03 norms_and_blocks: implement post_norm_residual in "
      "lessons/03_norms_and_blocks/norms_blocks.cpp");
}

Tensor block_forward(const Tensor& x, const Sublayer& norm1, const Sublayer& attn,
                     const Sublayer& norm2, const Sublayer& mlp, bool pre_norm) {
  (void)x;
  (void)norm1;
  (void)attn;
  (void)norm2;
  (void)mlp;
  (void)pre_norm;
  throw NotImplemented(
      "03 norms_and_blocks: implement block_forward in lessons/03_norms_and_blocks/norms_blocks.cpp");
}

}  // namespace lesson03
