// Chapter 08 — your code. Replace each `throw` with an implementation.
// Read lessons/08_sliding_window/README.md first; the shapes are in
// sliding_window.h.
// The given code (you do not write it) is in sliding_window_glue.cpp.
#include "sliding_window.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson08 {

using namespace attn;

Tensor window_mask(int64_t tq, int64_t tk, int64_t window, int64_t offset) {
  (void)tq, (void)tk, (void)window, (void)offset;
  throw NotImplemented(
      "08 sliding_window: implement window_mask in lessons/08_sliding_window/sliding_window.cpp");
}

Tensor window_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                               int64_t offset, Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)window, (void)offset, (void)weights_out;
  throw NotImplemented(
      "08 sliding_window: implement window_attention_masked in "
      "lessons/08_sliding_window/sliding_window.cpp");
}

Tensor window_attention_banded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                               int64_t chunk, int64_t offset) {
  (void)q, (void)k, (void)v, (void)window, (void)chunk, (void)offset;
  throw NotImplemented(
      "08 sliding_window: implement window_attention_banded in "
      "lessons/08_sliding_window/sliding_window.cpp");
}

}  // namespace lesson08
