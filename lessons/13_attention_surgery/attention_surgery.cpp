// Chapter 13 — your code. Replace each `throw` with an implementation.
// Read lessons/13_attention_surgery/README.md first; the shapes are in
// attention_surgery.h.
// The given code (you do not write it) is in attention_surgery_glue.cpp.
#include "attention_surgery.h"

#include <map>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson13 {

using namespace attn;

Tensor pool_kv_heads(const Tensor& w, int64_t heads, int64_t groups) {
  (void)w, (void)heads, (void)groups;
  throw NotImplemented("lesson 13 (attention surgery): pool_kv_heads is not implemented yet - see lessons/13_attention_surgery/README.md");
}

std::shared_ptr<MultiHeadAttention> gqa_from_mha(MultiHeadAttention& mha,
                                                 const AttentionConfig& config, int64_t groups,
                                                 const PositionOptions& positions) {
  (void)mha, (void)config, (void)groups, (void)positions;
  throw NotImplemented("lesson 13 (attention surgery): gqa_from_mha is not implemented yet - see lessons/13_attention_surgery/README.md");
}

void mha_to_gqa(GPT& model, int64_t groups) {
  (void)model, (void)groups;
  throw NotImplemented("lesson 13 (attention surgery): mha_to_gqa is not implemented yet - see lessons/13_attention_surgery/README.md");
}

}  // namespace lesson13
