// Chapter 04 — your code. Replace each `throw` with an implementation.
// Read lessons/04_gqa/README.md first; the shapes are in gqa.h.
// The given code (you do not write it) is in gqa_glue.cpp.
#include "gqa.h"

#include <cmath>

#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson04 {

using namespace attn;

Tensor repeat_kv(const Tensor& kv, int64_t heads) {
  (void)kv, (void)heads;
  throw NotImplemented("04 gqa: implement repeat_kv in lessons/04_gqa/gqa.cpp");
}

Tensor grouped_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                         Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)offset, (void)weights_out;
  throw NotImplemented("04 gqa: implement grouped_attention in lessons/04_gqa/gqa.cpp");
}

int64_t kv_cache_bytes_per_token(int64_t layers, int64_t kv_heads, int64_t head_dim,
                                 int64_t bytes_per_value) {
  (void)layers, (void)kv_heads, (void)head_dim, (void)bytes_per_value;
  throw NotImplemented("04 gqa: implement kv_cache_bytes_per_token in lessons/04_gqa/gqa.cpp");
}

Tensor GroupedQueryAttention::forward(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "04 gqa: implement GroupedQueryAttention::forward in lessons/04_gqa/gqa.cpp");
}

}  // namespace lesson04
