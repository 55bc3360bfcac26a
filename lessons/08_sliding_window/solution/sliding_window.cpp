// Chapter 08 — reference solution: thin adapters over the library
// (attention/window.cpp), which implements exactly this chapter's contract.
#include "sliding_window.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "attention/kernel.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "attention/window.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson08 {

using namespace attn;

namespace {

// The library's kernels take one AttentionCall: q, k, v, where the queries
// sit (offset) and the 1/sqrt(d) scale.
AttentionCall make_call(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "sliding window: expected q, k, v of shape [B, H, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
  AttentionCall call;
  call.q = q, call.k = k, call.v = v;
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape().back()));
  return call;
}

}  // namespace

Tensor window_mask(int64_t tq, int64_t tk, int64_t window, int64_t offset) {
  return attn::window_mask(tq, tk, offset, window, Device::cpu());
}

Tensor window_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                               int64_t offset, Tensor* weights_out) {
  AttentionCall call = make_call(q, k, v, offset);
  call.want_weights = weights_out != nullptr;
  const Tensor out = attn::window_attention_masked(call, window);
  if (weights_out) *weights_out = call.weights;
  return out;
}

Tensor window_attention_banded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                               int64_t chunk, int64_t offset) {
  // The library reads chunk = 0 as "choose for me"; this chapter asks for one.
  check(chunk >= 1, "window_attention_banded: chunk must be >= 1, got ", chunk);
  return attn::window_attention_banded(make_call(q, k, v, offset), window, chunk);
}

}  // namespace lesson08
