// Crash safety: a training run killed with SIGKILL at random moments (even
// while it writes a checkpoint) and resumed each time ends with exactly the
// parameters of an unbroken run. Stopped with SIGINT or SIGTERM instead, it
// saves the step it was on (abandoning an evaluation in progress), and the
// resumed run ends with the parameters and the metrics of an unbroken one.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

using namespace attn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

TrainOptions run_options(const fs::path& dir, const std::string& out) {
  TrainOptions o;
  o.data = (dir / "corpus.txt").string();
  o.out = (dir / out).string();
  o.steps = 120;
  o.batch = 4;
  o.eval_every = 20;
  o.eval_batches = 1;
  o.checkpoint_every = 3;
  o.sample_tokens = 0;
  o.quiet = true;
  o.model.block_size = 16;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.embd = 16;
  o.model.dropout = 0.1f;
  return o;
}

fs::path make_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("attnlab_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream f(dir / "corpus.txt");
  for (int i = 0; i < 40; ++i) f << "all work and no play makes jack a dull boy.\n";
  return dir;
}

// How a child run ended.
struct End {
  bool finished = false;  // exited 0 by itself
  int signal = 0;         // the signal that stopped it (SIGKILL: killed; SIGINT/SIGTERM: saved and exited)
};

// Runs (or resumes) the run in a child process and sends it `signal` after
// `after_us` (0 = let it finish). A run killed before its first checkpoint
// left a config.json: starting again in its folder takes --overwrite. The
// child handles SIGINT and SIGTERM as `attnlab train` does (stop_signals.h).
End run_child(TrainOptions o, useconds_t after_us, int signal = SIGKILL) {
  if (fs::exists(fs::path(o.out) / "checkpoint.safetensors")) o.resume = o.out;
  else o.overwrite = true;
  // Blocked until the child's handlers are in place, so that even an early
  // signal reaches them rather than the default action.
  sigset_t stops, before;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigprocmask(SIG_BLOCK, &stops, &before);
  const pid_t pid = fork();
  if (pid == 0) {
    int status = 3;
    try {
      const StopOnSignals stop_on_signals;
      sigprocmask(SIG_SETMASK, &before, nullptr);
      const TrainResult r = train(o);
      status = r.interrupted_by != 0 ? exit_status_for(r.interrupted_by) : 0;
    } catch (...) {
    }
    _exit(status);
  }
  sigprocmask(SIG_SETMASK, &before, nullptr);
  if (after_us > 0) {
    usleep(after_us);
    kill(pid, signal);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, 0};
  if (WIFSIGNALED(status)) return {false, WTERMSIG(status)};
  EXPECT_TRUE(WIFEXITED(status) && (WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 143))
      << "the run failed instead of finishing or saving (exit status " << WEXITSTATUS(status) << ")";
  return {false, WEXITSTATUS(status) - 128};
}

int64_t whole_run_us(const TrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(run_child(o, 0).finished);
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
}

void expect_same_weights(const fs::path& a, const fs::path& b, const std::string& how) {
  const auto x = load_checkpoint(checkpoint_path(a.string()));
  const auto y = load_checkpoint(checkpoint_path(b.string()));
  EXPECT_EQ(y.step, x.step);
  for (const auto& [name, t] : x.model)
    EXPECT_EQ(t.to_vector(), y.model.at(name).to_vector()) << name << " differs " << how;
}

// The rows of metrics.jsonl without the clock: step, split and loss.
std::vector<std::string> logged_losses(const fs::path& run) {
  std::vector<std::string> rows;
  std::ifstream f(run / "metrics.jsonl");
  for (std::string line; std::getline(f, line);) {
    const json j = json::parse(line);
    rows.push_back(j["split"].get<std::string>() + " " + j["step"].dump() + " " + j["loss"].dump());
  }
  return rows;
}

}  // namespace

TEST(CrashSafety, KilledAndResumedRunEndsLikeAnUnbrokenOne) {
  const fs::path dir = make_dir("crash");
  const int64_t whole_us = whole_run_us(run_options(dir, "straight"));

  // Kill at random moments within the time a whole run takes (seeded; the
  // step that is hit still depends on timing), at most 8 times, then let
  // the run finish.
  Generator gen(42);
  int kills = 0;
  bool finished = false;
  // Timing decides which step a kill hits; if a whole attempt ends with
  // fewer than 2 kills (a fast machine), start the killed run over.
  for (int round = 0; round < 5 && kills < 2; ++round) {
    fs::remove_all(dir / "killed");
    kills = 0;
    finished = false;
    for (int attempt = 0; attempt < 12 && !finished; ++attempt) {
      const useconds_t delay =
          attempt < 8 ? static_cast<useconds_t>(whole_us / 20 + gen.below(whole_us / 2 + 1)) : 0;
      finished = run_child(run_options(dir, "killed"), delay).finished;
      kills += !finished;
    }
  }
  ASSERT_TRUE(finished) << "the run never completed";
  std::printf("[ crash    ] the run was killed %d times and resumed\n", kills);
  expect_same_weights(dir / "straight", dir / "killed", "after " + std::to_string(kills) + " kills");
  fs::remove_all(dir);
}

// SIGINT and SIGTERM at random moments: each time the child saves the step
// it was on and exits 130 or 143; resumed until it finishes, the run ends
// bitwise equal to an unbroken one, and its metrics (every step's loss, every
// evaluation, none twice or missing) are the unbroken run's.
TEST(CrashSafety, InterruptedAndResumedRunEndsLikeAnUnbrokenOne) {
  const fs::path dir = make_dir("interrupt");
  // Frequent, long evaluations, so that some signals land inside one; no
  // checkpoints but the evaluations' and the signals'; every step logged.
  auto options = [&](const std::string& out) {
    TrainOptions o = run_options(dir, out);
    o.eval_every = 10;
    o.eval_batches = 8;
    o.checkpoint_every = 0;
    o.log_every = 1;
    return o;
  };
  const int64_t whole_us = whole_run_us(options("straight"));
  Generator gen(7);
  for (int signal : {SIGINT, SIGTERM}) {
    const std::string name = signal == SIGINT ? "sigint" : "sigterm";
    int stops = 0;
    bool finished = false;
    for (int attempt = 0; attempt < 12 && !finished; ++attempt) {
      const useconds_t delay = attempt < 8 ? static_cast<useconds_t>(whole_us / 20 + gen.below(whole_us / 3 + 1)) : 0;
      const End end = run_child(options(name), delay, signal);
      finished = end.finished;
      if (finished) break;
      ++stops;
      EXPECT_EQ(end.signal, signal);
      // The step in flight was finished and saved, and no step after it.
      const auto saved = load_checkpoint(checkpoint_path((dir / name).string()));
      const std::vector<std::string> rows = logged_losses(dir / name);
      std::string last_step;
      for (const std::string& r : rows)
        if (r.rfind("train_step ", 0) == 0) last_step = r.substr(11, r.find(' ', 11) - 11);
      EXPECT_EQ(last_step, std::to_string(saved.step)) << name << ": the checkpoint is not the last step trained";
    }
    ASSERT_TRUE(finished) << name << ": the run never completed";
    std::printf("[ signals  ] %s stopped the run %d times; it was resumed each time\n", name.c_str(), stops);
    expect_same_weights(dir / "straight", dir / name, "after " + std::to_string(stops) + " stops by " + name);
    EXPECT_EQ(logged_losses(dir / name), logged_losses(dir / "straight")) << name;
  }
  fs::remove_all(dir);
}

// A signal that arrives before an evaluation skips it (the step is saved
// without it), and the resumed run evaluates that step first. Raised before
// training, the signal stops the run after its first step, an evaluation
// step here: no timing involved.
TEST(CrashSafety, ASkippedEvaluationIsDoneByTheResumedRun) {
  const fs::path dir = make_dir("skipped_eval");
  auto options = [&](const std::string& out) {
    TrainOptions o = run_options(dir, out);
    o.steps = 6;
    o.eval_every = 1;
    o.checkpoint_every = 0;
    o.log_every = 1;
    return o;
  };
  ASSERT_TRUE(run_child(options("straight"), 0).finished);
  const pid_t pid = fork();
  if (pid == 0) {
    const StopOnSignals stop_on_signals;
    raise(SIGINT);  // only sets the flag
    TrainOptions o = options("stopped");
    const TrainResult r = train(o);
    _exit(r.interrupted_by == SIGINT && r.steps == 1 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the run did not stop after its first step";
  EXPECT_EQ(load_checkpoint(checkpoint_path((dir / "stopped").string())).step, 1);
  EXPECT_EQ(logged_losses(dir / "stopped").size(), 1u) << "only step 1's loss, no evaluation";
  ASSERT_TRUE(run_child(options("stopped"), 0).finished);
  EXPECT_EQ(logged_losses(dir / "stopped"), logged_losses(dir / "straight"));
  expect_same_weights(dir / "straight", dir / "stopped", "after a skipped evaluation");
  fs::remove_all(dir);
}

// The second signal does not wait for the step: the process ends at once,
// with the first signal's status. raise() runs the handler before it
// returns, so this needs no timing.
TEST(StopSignals, ASecondSignalEndsTheProcessAtOnce) {
  for (auto [first, second] : {std::pair{SIGINT, SIGINT}, std::pair{SIGTERM, SIGINT}}) {
    const pid_t pid = fork();
    if (pid == 0) {
      const StopOnSignals stop_on_signals;
      raise(first);
      if (stop_signal() != first) _exit(2);  // the first only asks to stop
      raise(second);
      _exit(0);  // not reached: the second ends the process
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 128 + first) << "signals " << first << " then " << second;
  }
}
