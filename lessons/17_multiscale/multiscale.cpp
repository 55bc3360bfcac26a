// Chapter 17 — your code. Replace each `throw` with an implementation.
// Read lessons/17_multiscale/README.md first; the shapes are in multiscale.h.
// The given code (you do not write it) is in multiscale_glue.cpp.
#include "multiscale.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "core/error.h"

namespace lesson17 {

using namespace attn;

std::vector<ScaleGroup> scale_groups(int64_t heads, const std::vector<int64_t>& windows) {
  (void)heads, (void)windows;
  throw NotImplemented("17 multiscale: implement scale_groups in lessons/17_multiscale/multiscale.cpp");
}

Tensor multiscale_mask(const std::vector<ScaleGroup>& groups, int64_t tq, int64_t tk, int64_t offset) {
  (void)groups, (void)tq, (void)tk, (void)offset;
  throw NotImplemented("17 multiscale: implement multiscale_mask in lessons/17_multiscale/multiscale.cpp");
}

Tensor multiscale_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const std::vector<ScaleGroup>& groups, int64_t offset,
                                   Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)groups, (void)offset, (void)weights_out;
  throw NotImplemented(
      "17 multiscale: implement multiscale_attention_masked in lessons/17_multiscale/multiscale.cpp");
}

void WindowedCache::append(const Tensor& k, const Tensor& v) {
  (void)k, (void)v;
  throw NotImplemented(
      "17 multiscale: implement WindowedCache::append in lessons/17_multiscale/multiscale.cpp");
}

}  // namespace lesson17
