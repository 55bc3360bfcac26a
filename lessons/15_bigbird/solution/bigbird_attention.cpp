// Chapter 15 — reference solution: thin adapters over the library
// (attention/bigbird.h implements exactly this chapter's rules and draw).
#include "bigbird_attention.h"

#include <cmath>

#include "attention/bigbird.h"
#include "attention/kernel.h"
#include "core/error.h"

namespace lesson15 {

using namespace attn;

namespace {

BigBirdPattern library_pattern(const Pattern& p) {
  BigBirdPattern b;
  b.window = p.window, b.global = p.global, b.random = p.random, b.block = p.block, b.seed = p.seed;
  return b;
}

}  // namespace

std::vector<int64_t> random_blocks(const Pattern& pattern, int64_t query_block) {
  return bigbird_random_blocks(library_pattern(pattern), query_block);
}

Tensor bigbird_mask(const Pattern& pattern, int64_t tq, int64_t tk, int64_t offset) {
  return attn::bigbird_mask(library_pattern(pattern), tq, tk, offset, Device::cpu());
}

int64_t pair_count(const Pattern& pattern, int64_t t) {
  return bigbird_pair_count(library_pattern(pattern), t);
}

Tensor bigbird_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Pattern& pattern,
                         int64_t offset) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "bigbird_attention: expected q, k, v of shape [B, H, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
  AttentionCall call;
  call.q = q, call.k = k, call.v = v;
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  return attn::bigbird_attention(call, library_pattern(pattern));
}

}  // namespace lesson15
