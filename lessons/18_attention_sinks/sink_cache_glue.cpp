// Chapter 18 glue: given code, compiled both with your sink_cache.cpp and
// with the reference solution (solution/sink_cache.cpp), so it is written
// once. You do not need to change this file.
//
// No "student:" variant here: a sink cache changes nothing in training (a
// model trained "with" it is mha:rope), only how a trained model decodes.
// The suites run your cache and attention token by token over streams many
// times longer than the cache; README.md says how the library's version
// plugs into `attnlab sample --stream`.
#include "sink_cache.h"

#include "core/error.h"

namespace lesson18 {

using namespace attn;

SinkCache::SinkCache(int64_t sinks, int64_t window) : sinks_(sinks), window_(window) {
  check(sinks >= 0, "SinkCache: sinks=", sinks, ": expected 0 or more tokens");
  check(window >= 1, "SinkCache: window=", window, ": expected at least 1 token");
}

int64_t SinkCache::kept() const { return k_.defined() ? k_.shape()[2] : 0; }

std::size_t SinkCache::bytes() const {
  return k_.defined() ? static_cast<std::size_t>(k_.numel() + v_.numel()) * sizeof(float) : 0;
}

}  // namespace lesson18
