// Chapter 02 — your code. Replace each `throw` with an implementation.
// Read lessons/02_multi_head_attention/README.md first; the shapes are in
// multi_head_attention.h.
// The given code (you do not write it) is in multi_head_attention_glue.cpp.
#include "multi_head_attention.h"

#include <cmath>

#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson02 {

using namespace attn;

Tensor split_heads(const Tensor& x, int64_t heads) {
  (void)x;
  (void)heads;
  throw NotImplemented(
      "02 multi_head_attention: implement split_heads in "
      "lessons/02_multi_head_attention/multi_head_attention.cpp");
}

Tensor merge_heads(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "02 multi_head_attention: implement merge_heads in "
      "lessons/02_multi_head_attention/multi_head_attention.cpp");
}

Tensor MultiHeadAttention::forward(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "02 multi_head_attention: implement MultiHeadAttention::forward in "
      "lessons/02_multi_head_attention/multi_head_attention.cpp");
}

}  // namespace lesson02
