// Options and output of `attnlab compare` and `attnlab eval` (compare_cli.h).
#include "train/compare_cli.h"

#include <cstdio>

#include "core/comm/communicator.h"
#include "train/cli_text.h"
#include "train/stats.h"
#include "train/stop_signals.h"

namespace attn {

void add_compare_options(CLI::App* cmd, CompareOptions& o) {
  cmd->add_option("--seeds", o.seeds, "runs per variant, with seeds --seed, --seed + 1, ... (3 or more for a "
                                      "significance test)")->capture_default_str();
  cmd->add_option("--budget", o.budget,
                  "tokens: every run trains --steps steps; seconds: every run trains until --seconds of training "
                  "time are spent (evaluations not counted), at most --steps steps, the LR schedule still laid out "
                  "over --steps")->capture_default_str();
  cmd->add_option("--seconds", o.seconds, "training seconds per run, with --budget seconds");
  cmd->add_option("--extrapolate", o.extrapolate,
                  "also evaluate every model at these multiples of --block, e.g. 2,4 (length generalisation)")
      ->delimiter(',');
  cmd->add_option("--eval-windows", o.eval_windows, "at most this many val windows per length for --extrapolate")
      ->capture_default_str();
}

CLI::App* add_eval_command(CLI::App& app, EvalOptions& o) {
  CLI::App* cmd = app.add_subcommand("eval", "evaluate a trained model on the val text at several lengths");
  cmd->add_option("--ckpt", o.ckpt, "run folder or checkpoint file")->required();
  cmd->add_option("--lengths", o.lengths, "window lengths, e.g. 128,256,512 (default: 1, 2 and 4 x the block)")
      ->delimiter(',');
  cmd->add_option("--data", o.data, "corpus (default: the one the run trained on; its last 10 % is read)");
  cmd->add_option("--windows", o.windows, "at most this many windows per length")->capture_default_str();
  cmd->add_option("--plot", o.plot, "write loss against position to this PNG");
  cmd->add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--max-corpus-bytes", o.max_corpus_bytes, "refuse a corpus larger than this")->capture_default_str();
  cmd->add_flag("--stream", o.stream, "streaming loss (chapter 18): streams of --lengths tokens (default 4 x the "
                                      "block) through a sliding cache, sinks + window, and recomputation");
  cmd->add_option("--sinks", o.sinks, "with --stream: first tokens kept for good")->capture_default_str();
  cmd->add_option("--window", o.window, "with --stream: newest tokens kept (default: the block size - sinks)");
  return cmd;
}

int run_compare(const CompareOptions& o) {
  const StopOnSignals stop_on_signals;
  const CompareResult r = compare(o);
  // Data parallel: rank 0 reports, the other ranks only trained.
  if (comm::world().rank() != 0) return r.interrupted_by != 0 ? exit_status_for(r.interrupted_by) : 0;
  if (r.interrupted_by != 0) {
    std::fprintf(stderr, "attnlab: %s: the run in flight is saved and the finished ones are kept; continue with: %s\n",
                 signal_name(r.interrupted_by), r.command.c_str());
    return exit_status_for(r.interrupted_by);
  }
  if (!r.finished) {
    std::printf("paused at --stop-at %lld: run the same command without --stop-at to continue (its folder: --out %s)\n",
                static_cast<long long>(o.base.stop_at), shell_quote(r.out).c_str());
    return 0;
  }
  for (const VariantReport& v : r.variants) {
    std::vector<double> final_val, tps;
    for (const SeedRun& run : v.runs) {
      final_val.push_back(run.final_val);
      tps.push_back(run.train_seconds > 0 ? double(run.tokens) / run.train_seconds : 0);
    }
    const stats::Summary loss = stats::summarize(final_val);
    std::printf("%-28s val loss %.4f +- %.4f (%d seed%s)  %8.0f tokens/s  KV cache %zu B/token\n", v.spec.c_str(),
                loss.mean, loss.std, loss.n, loss.n == 1 ? "" : "s", stats::summarize(tps).mean,
                v.kv_bytes_per_token);
  }
  std::printf("report: %s/report.md\n", r.out.c_str());
  return 0;
}

}  // namespace attn
