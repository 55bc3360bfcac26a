// Chapter 18 — your code. Replace each `throw` with an implementation.
// Read lessons/18_attention_sinks/README.md first; the shapes are in
// sink_cache.h. The given code (you do not write it) is in sink_cache_glue.cpp.
#include "sink_cache.h"

#include <algorithm>
#include <cmath>

#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson18 {

using namespace attn;

void SinkCache::append(const Tensor& k, const Tensor& v) {
  (void)k, (void)v;
  throw NotImplemented("18 attention sinks: implement SinkCache::append in lessons/18_attention_sinks/sink_cache.cpp");
}

std::vector<int64_t> SinkCache::kept_tokens() const {
  throw NotImplemented(
      "18 attention sinks: implement SinkCache::kept_tokens in lessons/18_attention_sinks/sink_cache.cpp");
}

Tensor sink_attention(const Tensor& q, const SinkCache& cache, float rope_base, Tensor* weights_out) {
  (void)q, (void)cache, (void)rope_base, (void)weights_out;
  throw NotImplemented("18 attention sinks: implement sink_attention in lessons/18_attention_sinks/sink_cache.cpp");
}

}  // namespace lesson18
