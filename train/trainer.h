// The training loop and the run folder it writes.
//
//   <out>/config.json        the options and model config of the run
//   <out>/metrics.jsonl      one JSON object per log/eval point
//   <out>/checkpoint.safetensors   model + optimizer + RNG + data position
//   <out>/loss.png           train and val loss against step
//   <out>/sample.txt         text sampled at the end
//   <out>/.attnlab.lock      while the run writes: the one-writer lock (run_lock.h)
//
// A folder that already holds a run is refused unless the run continues it
// (--resume) or replaces it (--overwrite): run_folder.h.
#pragma once
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "train/tokenizer.h"

namespace attn {

class RunFolder;

struct TrainOptions {
  std::string data;                 // corpus file
  std::string out;                  // run folder; "" = the --resume folder, else a new runs/<N>
  std::string resume;               // run folder or checkpoint file to continue
  bool overwrite = false;           // may replace a run that `out` holds (not stored)
  // Refuse a corpus larger than this (--max-corpus-bytes): a limit of the
  // invocation, like --threads, not stored.
  int64_t max_corpus_bytes = kDefaultMaxCorpusBytes;
  std::string device = "cpu";
  std::string optimizer = "adamw";  // adamw | sgd
  // The matrix products' precision: fp32; tf32 (the GPU's tensor cores on
  // float32); bf16 (operands rounded to bfloat16, float32 accumulation and
  // float32 everywhere else: autograd/autocast.h).
  std::string precision = "fp32";
  int64_t steps = 500;
  int64_t stop_at = 0;              // end this invocation after that step (0 = run to `steps`)
  // End the run once this much training time (forward, backward, update;
  // evaluations and checkpoints not counted) is spent, summed over resumes;
  // 0 = off. The LR schedule still runs over `steps`, an upper bound then.
  // Like stop_at, a limit of the invocation (compare --budget seconds), not stored.
  double max_seconds = 0;
  uint64_t seed = 1337;
  int64_t batch = 16;
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int64_t warmup = 50;
  float weight_decay = 0.1f;
  // AdamW's moment decays (--beta1, --beta2). 0.95 rather than Adam's 0.999
  // for beta2, as GPT-3 and nanoGPT use: a shorter memory of the gradient
  // scale adapts faster when it changes, which keeps training stable. Runs
  // stored before these were options trained with 0.9 and 0.95.
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float grad_clip = 1.0f;           // 0 = off
  int64_t eval_every = 100;
  int64_t eval_batches = 10;
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;     // 0 = at eval points and at the end
  int64_t sample_tokens = 300;
  std::string sample_prompt = "\n";
  bool quiet = false;               // no progress output
  GPTConfig model;                  // vocab is filled in from the corpus
  // The options the user named (e.g. "--layers"), filled in by the command
  // line. With --resume, each of them must agree with the stored run, which
  // decides everything but --steps, --stop-at, --out, --device and --quiet.
  std::vector<std::string> given;
  // True when model.attn_dropout was not given and took --dropout's value
  // (the command line's default for new runs): a variant without attention
  // dropout (linear, student:) then trains without it and says so, where
  // an explicit value is an error. Not stored: the run stores the result.
  bool attn_dropout_inherited = false;

  void validate() const;
  std::string to_json() const;
  static TrainOptions from_json(const std::string& text);
  // --resume continues the stored run as it was: an option in `given` that
  // disagrees with `stored` (read from checkpoint `path`) is an error.
  void check_agrees_with(const TrainOptions& stored, const std::string& path) const;
};

struct TrainResult {
  int64_t steps = 0;      // the step the run ended at
  int64_t steps_run = 0;  // steps trained by this call (fewer when it resumed)
  int64_t parameters = 0;
  float final_train_loss = 0, final_val_loss = 0;
  double tokens_per_second = 0;
  double seconds = 0;
  double train_seconds = 0;      // in the steps alone: no evaluation, checkpoint or sample
  float best_val_loss = 0;       // the lowest val loss of any evaluation of this run
  std::size_t peak_bytes = 0;  // allocator peak during training
  std::string out;             // the run folder (a runs/<N> when none was named)
  int64_t planned_steps = 0;   // the run's --steps
  // SIGINT or SIGTERM when a signal stopped the run (stop_signals.h): it
  // saved a checkpoint at `steps`, and --resume continues it. 0 otherwise.
  int interrupted_by = 0;
};

// Opens the run folder (checks and locks it, run_folder.h) once the inputs
// are known good, and trains into it.
TrainResult train(const TrainOptions& options);
// Trains into a folder the caller opened (convert and compare write their
// own files into it first); options.out is then ignored.
TrainResult train(const TrainOptions& options, RunFolder& folder);

// Mean val loss of `model` on the corpus o.data, tokenized with the
// tokenizer stored as JSON, over o.eval_batches fixed batches: the same
// batches train() evaluates on.
float validation_loss(GPT& model, const TrainOptions& o, const std::string& tokenizer_json);

}  // namespace attn
