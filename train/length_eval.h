// Length generalisation: a trained model evaluated on held-out text at
// sequence lengths other than the block it trained on (`attnlab eval
// --lengths`, `compare --extrapolate`).
//
// A model trained on windows of T tokens has only ever seen positions
// 0..T-1. Whether it can read longer windows depends on how it encodes
// positions: a learned position table has no row for position T (n/a);
// RoPE and ALiBi encode relative distance inside the attention, so a longer
// window is at least computable, and the loss per position shows whether
// the extra context helps, or whether positions past T confuse the model.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "train/tokenizer.h"

namespace attn {

struct LengthLoss {
  int64_t length = 0;
  // Why there is no number ("learned positions", a val split too short for
  // one window); empty when measured.
  std::string unavailable;
  double loss = 0;                   // mean over every position of every window, nats/char
  int64_t windows = 0;               // windows evaluated
  std::vector<double> per_position;  // mean loss at position 0..length-1 over the windows
};

// Starts of consecutive windows of `length` inputs (plus the next token as
// the last target; neighbours share one) in n tokens: at most max_windows
// of them, spread evenly, so a cap still samples the whole text.
std::vector<int64_t> window_starts(int64_t n, int64_t length, int64_t max_windows);

// The model's loss on windows of each length cut from `tokens` (the val
// split): consecutive, non-overlapping windows (length inputs and the next
// token as the last target), at most `max_windows` of them spread evenly
// over the text, so every length reads the same text.
std::vector<LengthLoss> evaluate_lengths(GPT& model, const std::vector<int64_t>& tokens,
                                         const std::vector<int64_t>& lengths, int64_t max_windows);

// "n/a (learned positions)" or the loss with 4 decimals.
std::string loss_cell(const LengthLoss& l);

// A per-position curve averaged over bins of equal width, at most
// `max_points` of them: x = the bin's mean context length (position + 1), y
// = its mean loss. Single positions are too noisy to read.
void bin_positions(const std::vector<double>& per_position, int max_points, std::vector<double>& x,
                   std::vector<double>& y);

// `attnlab eval`: a checkpoint evaluated at the given lengths.
struct EvalOptions {
  std::string ckpt;             // run folder or checkpoint file
  std::string data;             // corpus; default: the one the run trained on
  std::string device = "cpu";
  std::vector<int64_t> lengths;  // default: 1, 2 and 4 times the training block
  int64_t windows = 256;        // at most this many windows per length
  std::string plot;             // PNG of loss against position ("" = none)
  int64_t max_corpus_bytes = kDefaultMaxCorpusBytes;
  // --stream (train/stream_eval.h): streams of lengths.front() tokens
  // (default 4 x the block) read through a rolling cache.
  bool stream = false;
  int64_t sinks = 4, window = -1;  // -1: the rest of the block
  void validate() const;
};
std::vector<LengthLoss> eval_checkpoint(const EvalOptions& options, int64_t* block_size = nullptr);
// What both evaluations read: the checkpoint's model on options.device and
// the val split of its corpus (or of --data).
struct EvalInputs {
  std::unique_ptr<GPT> model;
  std::vector<int64_t> val;
};
EvalInputs load_eval_inputs(const EvalOptions& options);
// Prints a table (and writes the plot); returns the exit status.
int run_eval(const EvalOptions& options);

}  // namespace attn
