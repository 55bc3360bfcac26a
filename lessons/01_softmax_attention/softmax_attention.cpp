// Chapter 01 — your code. Replace each `throw` with an implementation.
// Read lessons/01_softmax_attention/README.md first; the shapes are in
// softmax_attention.h.
// The given code (you do not write it) is in softmax_attention_glue.cpp.
#include "softmax_attention.h"

#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson01 {

using namespace attn;

Tensor softmax(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "01 softmax_attention: implement softmax in lessons/01_softmax_attention/softmax_attention.cpp");
}

Tensor causal_mask(int64_t t) {
  (void)t;
  throw NotImplemented(
      "01 softmax_attention: implement causal_mask in lessons/01_softmax_attention/softmax_attention.cpp");
}

Tensor padding_mask(const Tensor& lengths, int64_t t) {
  (void)lengths;
  (void)t;
  throw NotImplemented(
      "01 softmax_attention: implement padding_mask in lessons/01_softmax_attention/softmax_attention.cpp");
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep, Tensor* weights_out) {
  (void)q;
  (void)k;
  (void)v;
  (void)keep;
  (void)weights_out;
  throw NotImplemented(
      "01 softmax_attention: implement scaled_dot_product_attention in "
      "lessons/01_softmax_attention/softmax_attention.cpp");
}

}  // namespace lesson01
