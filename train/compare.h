// `attnlab compare`: the same model trained per attention variant, with
// several seeds each, and a report that says which differences are real.
//
// Every variant gets the same data, model size, optimizer and budget (equal
// steps, so equal tokens, or equal training seconds); only the attention
// differs. Each variant trains once per seed (init, batches and dropout all
// follow the seed), so the spread between seeds shows how much of a
// difference between variants is noise.
//
//   <out>/<variant>/seed-<s>/   one full run folder per variant and seed,
//                               plus compare.json (what the run is, whether
//                               it finished), so that the same command run
//                               again reuses finished runs and resumes an
//                               interrupted one from its checkpoint
//   <out>/report.md             table, significance sentences, plots, the
//                               command and the machine
//   <out>/loss_steps.png        val loss against step, mean +- std over seeds
//   <out>/loss_time.png         the same against training seconds
//   <out>/extrapolation.png     loss against position past the block (--extrapolate)
//   <out>/attention_<variant>.png   layer-0 attention weights on a fixed prompt
#pragma once
#include <string>
#include <vector>

#include "train/length_eval.h"
#include "train/trainer.h"

namespace attn {

struct CompareOptions {
  TrainOptions base;                  // model.attention is ignored; base.seed is the first seed
  std::vector<std::string> variants;  // registry specs; the first is the baseline
  std::string prompt = "Call me Ishmael.";
  int64_t seeds = 1;                  // runs per variant, seeds base.seed, base.seed + 1, ...
  // "tokens": every run trains base.steps steps (equal tokens). "seconds":
  // every run trains until `seconds` of training time are spent, at most
  // base.steps steps, over which the LR schedule is laid out.
  std::string budget = "tokens";
  double seconds = 0;
  std::vector<double> extrapolate;    // evaluate at these multiples of the block too (e.g. 2, 4)
  int64_t eval_windows = 256;         // at most this many val windows per length
  std::string command;                // the command line that reproduces the report
  void validate() const;
};

// One variant trained with one seed.
struct SeedRun {
  uint64_t seed = 0;
  std::string folder;                 // relative to the compare's --out
  std::string how;                    // trained | resumed | reused
  bool finished = false;              // reached its budget (not paused by --stop-at)
  int64_t steps = 0, tokens = 0, parameters = 0;
  double train_seconds = 0;           // forward, backward, update: no evaluation
  double final_val = 0, best_val = 0, final_train = 0;
  std::size_t peak_bytes = 0;         // of the last invocation that trained it
  int interrupted_by = 0;             // a signal stopped it (saved; the same command resumes it)
  std::vector<double> eval_steps, eval_seconds, eval_loss;  // the val curve
  std::vector<LengthLoss> lengths;    // 1x, then each --extrapolate factor
};

struct VariantReport {
  std::string spec, folder;
  std::vector<SeedRun> runs;
  std::size_t kv_bytes_per_token = 0;  // 0 when the variant has no cache
  bool learned_positions = false;
};

struct CompareResult {
  std::vector<VariantReport> variants;  // with the runs done so far when interrupted
  bool finished = false;  // every run finished: the report was written
  double seconds = 0;     // wall time of this call
  std::string out;        // the comparison's folder (a runs/<N> when none was named)
  std::string command;    // CompareOptions::command, naming --out
  int interrupted_by = 0; // SIGINT or SIGTERM stopped it (stop_signals.h)
};

// "mha,gqa:kv_heads=2,rope,mqa" -> {"mha", "gqa:kv_heads=2,rope", "mqa"}: a
// piece that is not a variant name continues the options of the one before.
std::vector<std::string> split_variants(const std::string& list);

// Refuses (one line) a --out that holds a plain train run, a run folder in
// it that holds one, and runs of a comparison with other settings unless
// base.overwrite. Holds the lock of --out (run_lock.h) while it works.
CompareResult compare(const CompareOptions& options);

// A folder name for a spec: "gqa:kv_heads=2" -> "gqa_kv_heads-2".
std::string folder_name(const std::string& spec);

}  // namespace attn
