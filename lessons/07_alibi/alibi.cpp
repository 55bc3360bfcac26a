// Chapter 07 — your code. Replace each `throw` with an implementation.
// Read lessons/07_alibi/README.md first; the shapes are in alibi.h.
// The given code (you do not write it) is in alibi_glue.cpp.
#include "alibi.h"

#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson07 {

using namespace attn;

std::vector<float> alibi_slopes(int64_t heads) {
  (void)heads;
  throw NotImplemented("lesson 07 (ALiBi): alibi_slopes is not implemented yet - see lessons/07_alibi/README.md");
}

Tensor alibi_bias(int64_t heads, int64_t tq, int64_t tk, int64_t offset) {
  (void)heads, (void)tq, (void)tk, (void)offset;
  throw NotImplemented("lesson 07 (ALiBi): alibi_bias is not implemented yet - see lessons/07_alibi/README.md");
}

Tensor alibi_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                       Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)offset, (void)weights_out;
  throw NotImplemented("lesson 07 (ALiBi): alibi_attention is not implemented yet - see lessons/07_alibi/README.md");
}

std::unique_ptr<GPT> extend_context(GPT& model, int64_t block_size) {
  (void)model, (void)block_size;
  throw NotImplemented("lesson 07 (ALiBi): extend_context is not implemented yet - see lessons/07_alibi/README.md");
}

}  // namespace lesson07
