// Streaming evaluation (`attnlab eval --stream`, chapter 18): the loss of
// a trained model over held-out streams longer than its block, read token
// by token the way streaming generation reads them.
//
//   (a) sliding window    a rolling cache of the last sinks + window tokens,
//                         no sinks: the first tokens are evicted
//   (b) sinks + window    the first `sinks` tokens stay, then the last `window`
//   (c) recompute         every token runs the model again over the last
//                         sinks + window tokens, positions from 0: the
//                         reference (quadratic in the window, per token)
//   (d) no eviction       the whole stream at once, RoPE/ALiBi positions
//                         running past the block the model trained on
//
// (a) and (b) hold the same number of tokens, so they differ only in
// whether the first ones are kept.
#pragma once
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "train/length_eval.h"

namespace attn {

struct StreamLoss {
  std::string mode;                  // "(a) sliding window, last 64", ...
  std::string label;                 // the plot's legend: "(a) sliding", ...
  double loss = 0;                   // mean over every token of every stream, nats/char
  double loss_after_fill = 0;        // over tokens past the first sinks + window
  std::vector<double> per_position;  // mean loss at stream position 0..length-1
};

// The four modes over at most `max_streams` consecutive, non-overlapping
// streams of `length` tokens (and their next token as the last target) cut
// from `tokens`, spread evenly over the text. The model must take a
// rolling cache (GPT::make_rolling_cache).
std::vector<StreamLoss> evaluate_streams(GPT& model, const std::vector<int64_t>& tokens, int64_t length,
                                         int64_t max_streams, int64_t sinks, int64_t window,
                                         int64_t* streams_read = nullptr);

// Why sinks matter or not: per layer, the mean attention weight that the
// queries in the second half of a block put on the block's first token
// (all heads, at most min(max_streams, 64) blocks of the val text), and what a
// uniform spread over the visible keys would give it, the mean of
// 1 / (i + 1). A layer far above uniform uses the first token as a sink.
struct FirstTokenShare {
  std::vector<double> per_layer;
  double uniform = 0;
};
FirstTokenShare first_token_share(GPT& model, const std::vector<int64_t>& tokens, int64_t max_streams);

// `attnlab eval --stream`: prints the table (and writes the plot); returns
// the exit status.
int run_stream_eval(const EvalOptions& options);

}  // namespace attn
