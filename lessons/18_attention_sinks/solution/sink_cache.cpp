// Chapter 18 — reference solution.
#include "sink_cache.h"

#include <algorithm>
#include <cmath>

#include "attention/attention.h"
#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson18 {

using namespace attn;

void SinkCache::append(const Tensor& k, const Tensor& v) {
  check(k.dim() == 4 && k.shape()[2] <= window_, "SinkCache::append: expected k [B, H, T, d] with T <= window=",
        window_, ", got ", shape_str(k.shape()));
  const int64_t t = k.shape()[2];
  // clone(): the cache owns its copy, not a view that keeps the caller's
  // tensors (and their graph) alive.
  const Tensor k_new = k.detach().clone(), v_new = v.detach().clone();
  if (!k_.defined()) {
    k_ = k_new, v_ = v_new, seen_ = t;
    return;
  }
  // Evict first: the oldest tokens after the sinks leave, just enough for
  // the new ones to fit in sinks + window slots.
  const int64_t kept = k_.shape()[2];
  const int64_t drop = std::max<int64_t>(0, kept + t - (sinks_ + window_));
  std::vector<Tensor> ks, vs;
  const int64_t head = std::min(kept, sinks_);  // the sinks (fewer while the stream is short)
  if (head > 0) ks.push_back(narrow(k_, 2, 0, head)), vs.push_back(narrow(v_, 2, 0, head));
  const int64_t rest = kept - head - drop;      // the window's survivors, in order
  if (rest > 0)
    ks.push_back(narrow(k_, 2, head + drop, rest)), vs.push_back(narrow(v_, 2, head + drop, rest));
  ks.push_back(k_new), vs.push_back(v_new);
  k_ = cat(ks, 2), v_ = cat(vs, 2);
  seen_ += t;
}

std::vector<int64_t> SinkCache::kept_tokens() const {
  // While the stream fits, every token is kept; after that the sinks and
  // the last `window` tokens.
  std::vector<int64_t> tokens;
  if (seen_ <= sinks_ + window_) {
    for (int64_t i = 0; i < seen_; ++i) tokens.push_back(i);
    return tokens;
  }
  for (int64_t i = 0; i < sinks_; ++i) tokens.push_back(i);
  for (int64_t i = seen_ - window_; i < seen_; ++i) tokens.push_back(i);
  return tokens;
}

Tensor sink_attention(const Tensor& q, const SinkCache& cache, float rope_base, Tensor* weights_out) {
  check(q.dim() == 4, "sink_attention: expected q [B, H, Tq, d], got ", shape_str(q.shape()));
  check(cache.kept() >= q.shape()[2], "sink_attention: ", q.shape()[2], " queries but the cache keeps ",
        cache.kept(), " tokens; append their keys and values first");
  const int64_t tq = q.shape()[2], n = cache.kept(), d = q.shape()[3];
  // Positions inside the cache: keys at slots 0 .. n-1, the queries at the
  // last tq slots. Never more than sinks + window - 1.
  const Tensor k = apply_rope(cache.keys(), rope_tables(n, d, 0, rope_base, 1.0f, q.device()));
  const Tensor qr = apply_rope(q, rope_tables(tq, d, n - tq, rope_base, 1.0f, q.device()));
  const Tensor keep = causal_mask(tq, n, n - tq, q.device());
  return scaled_dot_product_attention(qr, k, cache.values(), keep, 1.0f / std::sqrt(static_cast<float>(d)),
                                      weights_out);
}

}  // namespace lesson18
