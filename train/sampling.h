// Text generation from a trained model, one token at a time.
#pragma once
#include <vector>

#include "nn/gpt.h"

namespace attn {

struct SampleOptions {
  int64_t tokens = 200;      // how many new tokens
  float temperature = 1.0f;  // < 1 sharpens the distribution, > 1 flattens it; 0 = greedy
  int64_t top_k = 0;         // keep only the k most likely tokens (0 = all)
  bool use_cache = true;     // decode with a KV cache where the attention has one
  // Streaming (chapter 18): a rolling cache of the first `sinks` tokens and
  // the last `window` (-1: the rest of the block), so generation goes past
  // the block size with memory that stays flat.
  bool stream = false;
  int64_t sinks = 4;
  int64_t window = -1;
};

// The streaming options checked against the model, one line per problem
// ("sample: --window must be >= 1 ..."); returns the window to use.
int64_t stream_window(const GPT& model, const SampleOptions& options);

// Continues `prompt` (token ids, at least one) and returns only the new ids.
// The context is cropped to the model's block size.
std::vector<int64_t> generate(GPT& model, const std::vector<int64_t>& prompt,
                              const SampleOptions& options, Generator& gen);

}  // namespace attn
