// Crash safety: a training run killed with SIGKILL at random moments (even
// while it writes a checkpoint) and resumed each time ends with exactly the
// parameters of an unbroken run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace attn;
namespace fs = std::filesystem;

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

// Runs (or resumes) the run in a child process; kills it after `kill_after_us`
// (0 = let it finish). Returns true when the child finished by itself. A
// run killed before its first checkpoint left a config.json: starting
// again in its folder takes --overwrite.
bool run_child(TrainOptions o, useconds_t kill_after_us) {
  if (fs::exists(fs::path(o.out) / "checkpoint.safetensors")) o.resume = o.out;
  else o.overwrite = true;
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      train(o);
      _exit(0);
    } catch (...) {
      _exit(3);
    }
  }
  if (kill_after_us > 0) {
    usleep(kill_after_us);
    kill(pid, SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the run failed instead of finishing";
    return true;
  }
  return false;
}

}  // namespace

TEST(CrashSafety, KilledAndResumedRunEndsLikeAnUnbrokenOne) {
  const fs::path dir = fs::temp_directory_path() / ("attnlab_crash_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "corpus.txt");
    for (int i = 0; i < 40; ++i) f << "all work and no play makes jack a dull boy.\n";
  }
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_child(run_options(dir, "straight"), 0));
  const auto whole_us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - t0).count();

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
      finished = run_child(run_options(dir, "killed"), delay);
      kills += !finished;
    }
  }
  ASSERT_TRUE(finished) << "the run never completed";
  std::printf("[ crash    ] the run was killed %d times and resumed\n", kills);
  const auto a = load_checkpoint(checkpoint_path((dir / "straight").string()));
  const auto b = load_checkpoint(checkpoint_path((dir / "killed").string()));
  EXPECT_EQ(b.step, 120);
  for (const auto& [name, t] : a.model)
    EXPECT_EQ(t.to_vector(), b.model.at(name).to_vector()) << name << " differs after " << kills << " kills";
  fs::remove_all(dir);
}
