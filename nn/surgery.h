// Attention surgery: change the attention of a trained model.
//
// 1. replace_attention: every block gets a fresh attention of another
//    registered variant (its weights are new; the rest of the model keeps its
//    training). Fine-tuning then teaches the new attention its job.
// 2. mha_to_gqa: converts trained multi-head K/V projections into grouped
//    ones by averaging the K (and V) heads of each group, as in the GQA paper
//    ("uptraining"). The queries and everything else are kept as they are.
#pragma once
#include <string>

#include "nn/gpt.h"

namespace attn {

// Rebuilds every block's attention as `spec` (same embd/heads/block).
// Returns the number of parameters of the new attention layers.
int64_t replace_attention(GPT& model, const std::string& spec, uint64_t seed);

// A GPT like `source` but with attention `target_spec` (an MHA-family
// variant with fewer K/V heads: "gqa:kv_heads=N" or "mqa", with the same
// position options), whose K/V weights are the group means of the source's.
std::unique_ptr<GPT> mha_to_gqa(GPT& source, const std::string& target_spec);

}  // namespace attn
