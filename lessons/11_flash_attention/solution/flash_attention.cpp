// Chapter 11 — reference solution. The online softmax update is written
// plainly (it is the idea of the chapter); the tiled forward is a thin
// adapter over attnlab's flash kernel (core/cpu/flash_attention.cpp, the
// same loops), which also returns the logsumexp.
#include "flash_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/flash.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace lesson11 {

using namespace attn;

float online_softmax_update(RowStats& stats, const float* scores, int64_t n) {
  float m_new = stats.m;
  for (int64_t j = 0; j < n; ++j) m_new = std::max(m_new, scores[j]);
  // Still no finite score: nothing to fold in (and exp(-inf - -inf) is NaN).
  if (m_new == -INFINITY) return 1.0f;
  // exp(m_old - m_new) <= 1; exactly 0 on the first tile (m_old = -inf).
  const float alpha = std::exp(stats.m - m_new);
  float l = stats.l * alpha;  // the old terms, re-expressed against the new max
  for (int64_t j = 0; j < n; ++j) l += std::exp(scores[j] - m_new);
  stats.m = m_new;
  stats.l = l;
  return alpha;
}

FlashResult flash_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                          int64_t tile, int64_t offset) {
  check(tile >= 1, "flash_forward: tile must be >= 1, got ", tile);
  // The library's kernel uses its own tile (64 keys). The result does not
  // depend on the tile size: that is the point of the online softmax.
  FlashOptions o;
  o.causal = causal;
  o.offset = offset;
  NoGradGuard no_graph;  // a forward only: the glue records the op itself
  FlashResult r;
  r.out = attn::flash_attention(q, k, v, o, &r.lse);
  return r;
}

}  // namespace lesson11
