// Chapter 06 — your code. Replace each `throw` with an implementation.
// Read lessons/06_rope/README.md first; the shapes are in rope.h.
// The given code (you do not write it) is in rope_glue.cpp.
#include "rope.h"

#include <cmath>
#include <vector>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson06 {

using namespace attn;

double ntk_base(double base, double scale, int64_t head_dim) {
  (void)base, (void)scale, (void)head_dim;
  throw NotImplemented(
      "lesson 06 (RoPE): ntk_base is not implemented yet - see lessons/06_rope/README.md");
}

RopeTables rope_tables(int64_t positions, int64_t head_dim, int64_t offset, double base,
                       double ntk_scale) {
  (void)positions, (void)head_dim, (void)offset, (void)base, (void)ntk_scale;
  throw NotImplemented(
      "lesson 06 (RoPE): rope_tables is not implemented yet - see lessons/06_rope/README.md");
}

Tensor apply_rope(const Tensor& x, const RopeTables& tables) {
  (void)x, (void)tables;
  throw NotImplemented(
      "lesson 06 (RoPE): apply_rope is not implemented yet - see lessons/06_rope/README.md");
}

Tensor rope_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                      double base, double ntk_scale, Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)offset, (void)base, (void)ntk_scale, (void)weights_out;
  throw NotImplemented(
      "lesson 06 (RoPE): rope_attention is not implemented yet - see lessons/06_rope/README.md");
}

}  // namespace lesson06
