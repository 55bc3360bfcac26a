// Chapter 10 — your code. Replace each `throw` with an implementation.
// Read lessons/10_linear_attention/README.md first; the shapes are in
// linear_attention.h.
// The given code (you do not write it) is in linear_attention_glue.cpp.
#include "linear_attention.h"

#include <algorithm>
#include <vector>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson10 {

using namespace attn;

Tensor elu_feature_map(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "10 linear_attention: implement elu_feature_map in "
      "lessons/10_linear_attention/linear_attention.cpp");
}

Tensor linear_attention_noncausal(const Tensor& q, const Tensor& k, const Tensor& v, float eps) {
  (void)q, (void)k, (void)v, (void)eps;
  throw NotImplemented(
      "10 linear_attention: implement linear_attention_noncausal in "
      "lessons/10_linear_attention/linear_attention.cpp");
}

Tensor linear_attention_causal(const Tensor& q, const Tensor& k, const Tensor& v, int64_t chunk,
                               float eps) {
  (void)q, (void)k, (void)v, (void)chunk, (void)eps;
  throw NotImplemented(
      "10 linear_attention: implement linear_attention_causal in "
      "lessons/10_linear_attention/linear_attention.cpp");
}

}  // namespace lesson10
