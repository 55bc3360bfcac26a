// Chapter 19 — your code. Replace each `throw` with an implementation.
// Read lessons/19_ring_attention/README.md first; the shapes are in ring_attention.h.
// The given code (you do not write it) is in ring_attention_glue.cpp.
#include "ring_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "core/error.h"

namespace lesson19 {

using namespace attn;

Shard shard_of(int64_t tokens, int rank, int ranks, Split split) {
  (void)tokens, (void)rank, (void)ranks, (void)split;
  throw NotImplemented("19 ring attention: implement shard_of in lessons/19_ring_attention/ring_attention.cpp");
}

bool sees_any(Chunk queries, Chunk keys, bool causal) {
  (void)queries, (void)keys, (void)causal;
  throw NotImplemented("19 ring attention: implement sees_any in lessons/19_ring_attention/ring_attention.cpp");
}

Tensor future_mask(Chunk queries, Chunk keys) {
  (void)queries, (void)keys;
  throw NotImplemented("19 ring attention: implement future_mask in lessons/19_ring_attention/ring_attention.cpp");
}

void fold(RunningSoftmax& state, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& hidden,
          float scale) {
  (void)state, (void)q, (void)k, (void)v, (void)hidden, (void)scale;
  throw NotImplemented("19 ring attention: implement fold in lessons/19_ring_attention/ring_attention.cpp");
}

Tensor ring_attention_simulated(const Tensor& q, const Tensor& k, const Tensor& v, int ranks, Split split,
                                bool causal, std::vector<Fold>* log) {
  (void)q, (void)k, (void)v, (void)ranks, (void)split, (void)causal, (void)log;
  throw NotImplemented(
      "19 ring attention: implement ring_attention_simulated in lessons/19_ring_attention/ring_attention.cpp");
}

}  // namespace lesson19
