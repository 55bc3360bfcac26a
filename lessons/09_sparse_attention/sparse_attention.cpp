// Chapter 09 — your code. Replace each `throw` with an implementation.
// Read lessons/09_sparse_attention/README.md first; the rules and shapes are
// in sparse_attention.h.
// The given code (you do not write it) is in sparse_attention_glue.cpp.
#include "sparse_attention.h"

#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson09 {

using namespace attn;

Tensor strided_mask(int64_t tq, int64_t tk, int64_t local, int64_t stride, int64_t offset) {
  (void)tq, (void)tk, (void)local, (void)stride, (void)offset;
  throw NotImplemented("lesson 09 (sparse attention): strided_mask is not implemented yet - see lessons/09_sparse_attention/README.md");
}

Tensor block_sparse_mask(int64_t tq, int64_t tk, int64_t block, int64_t offset) {
  (void)tq, (void)tk, (void)block, (void)offset;
  throw NotImplemented("lesson 09 (sparse attention): block_sparse_mask is not implemented yet - see lessons/09_sparse_attention/README.md");
}

int64_t attended_pairs(const Tensor& keep) {
  (void)keep;
  throw NotImplemented("lesson 09 (sparse attention): attended_pairs is not implemented yet - see lessons/09_sparse_attention/README.md");
}

double density(const Tensor& keep) {
  (void)keep;
  throw NotImplemented("lesson 09 (sparse attention): density is not implemented yet - see lessons/09_sparse_attention/README.md");
}

Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keep,
                        Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)keep, (void)weights_out;
  throw NotImplemented("lesson 09 (sparse attention): sparse_attention is not implemented yet - see lessons/09_sparse_attention/README.md");
}

}  // namespace lesson09
