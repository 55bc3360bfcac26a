// Chapter 17 — reference solution. The groups, the mask and the masked path
// are thin adapters over the library (attention/multiscale.cpp); the cache
// is written out here.
#include "multiscale.h"

#include <algorithm>
#include <cmath>

#include "attention/kernel.h"
#include "attention/multiscale.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson17 {

using namespace attn;

std::vector<ScaleGroup> scale_groups(int64_t heads, const std::vector<int64_t>& windows) {
  return attn::scale_groups(heads, windows);
}

Tensor multiscale_mask(const std::vector<ScaleGroup>& groups, int64_t tq, int64_t tk, int64_t offset) {
  return attn::multiscale_mask(groups, tq, tk, offset, Device::cpu());
}

Tensor multiscale_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const std::vector<ScaleGroup>& groups, int64_t offset,
                                   Tensor* weights_out) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "multiscale: expected q, k, v of shape ",
        "[B, H, T, d], got ", shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  AttentionCall call;
  call.q = q, call.k = k, call.v = v;
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape().back()));
  call.want_weights = weights_out != nullptr;
  const Tensor out = attn::multiscale_attention_masked(call, groups);
  if (weights_out) *weights_out = call.weights;
  return out;
}

void WindowedCache::append(const Tensor& k, const Tensor& v) {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const ScaleGroup& group = groups_[g];
    // clone(): the cache owns a copy of its heads, so it does not keep the
    // caller's whole [B, H, T, d] tensors alive.
    const Tensor k_new = narrow(k.detach(), 1, group.first_head, group.heads).clone();
    const Tensor v_new = narrow(v.detach(), 1, group.first_head, group.heads).clone();
    if (!k_[g].defined()) {
      k_[g] = k_new, v_[g] = v_new;
      continue;
    }
    // A query at position p >= length() reaches back to p - W + 1 >= length() - W + 1:
    // of the old keys, only the W - 1 newest stay reachable.
    const int64_t kept = k_[g].shape()[2];
    const int64_t keep = group.window == 0 ? kept : std::min(kept, group.window - 1);
    const Tensor k_old = narrow(k_[g], 2, kept - keep, keep), v_old = narrow(v_[g], 2, kept - keep, keep);
    k_[g] = keep == 0 ? k_new : cat({k_old, k_new}, 2);
    v_[g] = keep == 0 ? v_new : cat({v_old, v_new}, 2);
  }
  length_ += k.shape()[2];
}

}  // namespace lesson17
