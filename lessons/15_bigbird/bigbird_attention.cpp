// Chapter 15 — your code. Replace each `throw` with an implementation.
// Read lessons/15_bigbird/README.md first; the rules and shapes are in
// bigbird_attention.h. The given code (random_below and the registration
// of student:bigbird) is in bigbird_attention_glue.cpp.
#include "bigbird_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "core/error.h"

namespace lesson15 {

using namespace attn;

std::vector<int64_t> random_blocks(const Pattern& pattern, int64_t query_block) {
  (void)pattern, (void)query_block;
  throw NotImplemented("lesson 15 (bigbird): random_blocks is not implemented yet - see lessons/15_bigbird/README.md");
}

Tensor bigbird_mask(const Pattern& pattern, int64_t tq, int64_t tk, int64_t offset) {
  (void)pattern, (void)tq, (void)tk, (void)offset;
  throw NotImplemented("lesson 15 (bigbird): bigbird_mask is not implemented yet - see lessons/15_bigbird/README.md");
}

int64_t pair_count(const Pattern& pattern, int64_t t) {
  (void)pattern, (void)t;
  throw NotImplemented("lesson 15 (bigbird): pair_count is not implemented yet - see lessons/15_bigbird/README.md");
}

Tensor bigbird_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Pattern& pattern,
                         int64_t offset) {
  (void)q, (void)k, (void)v, (void)pattern, (void)offset;
  throw NotImplemented("lesson 15 (bigbird): bigbird_attention is not implemented yet - see lessons/15_bigbird/README.md");
}

}  // namespace lesson15
