// Run folders (run_folder.h, run_lock.h): a folder that holds a run is never
// written into by accident, --overwrite replaces a run whole (and a crash
// before the new run's first checkpoint leaves the old one whole), one
// process writes a folder at a time, and running out of memory names the
// step and leaves the run as it was.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/allocator.h"
#include "core/error.h"
#include "testcases/error_of.h"
#include "train/checkpoint.h"
#include "train/run_folder.h"
#include "train/run_lock.h"
#include "train/trainer.h"

using namespace attn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("attnlab_runs_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
    std::ofstream f(path / "corpus.txt");
    for (int i = 0; i < 60; ++i) f << "the cat sat on the mat. the dog sat on the log.\n";
  }
  ~TempDir() { fs::remove_all(path); }
};

TrainOptions tiny(const fs::path& dir, const std::string& out = "run") {
  TrainOptions o;
  o.data = (dir / "corpus.txt").string();
  o.out = (dir / out).string();
  o.steps = 8;
  o.batch = 2;
  o.eval_every = 4;
  o.eval_batches = 1;
  o.log_every = 1;
  o.sample_tokens = 10;
  o.quiet = true;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.embd = 16;
  o.model.block_size = 8;
  return o;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Every file under `dir` with its bytes, but the lock file: a writer's PID
// is in it while it writes, and kill -9 leaves it (unlocked) behind.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != RunLock::kFileName)
      files[fs::relative(e.path(), dir).string()] = read_bytes(e.path());
  return files;
}

json config_of(const fs::path& run) { return json::parse(read_bytes(run / "config.json")); }

std::vector<int64_t> logged_steps(const fs::path& run) {
  std::vector<int64_t> steps;
  std::istringstream lines(read_bytes(run / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) steps.push_back(json::parse(line)["step"].get<int64_t>());
  return steps;
}

}  // namespace

TEST(RunFolders, TrainIntoARunIsRefusedAndChangesNothing) {
  TempDir dir("refused");
  const TrainOptions o = tiny(dir.path);
  train(o);
  const auto before = snapshot(dir.path);
  EXPECT_EQ(error_of([&] { train(o); }),
            "train: --out '" + o.out + "' holds a run (step 8 of 8, attention mha); continue it with --resume " + o.out +
                " --out " + o.out + ", or start again in its place with --overwrite");
  TrainOptions other = tiny(dir.path, "other");
  other.resume = o.out;
  other.out = o.out;
  fs::create_directories(dir.path / "killed");
  fs::copy_file(fs::path(o.out) / "config.json", dir.path / "killed" / "config.json");
  const auto with_killed = snapshot(dir.path);
  TrainOptions again = tiny(dir.path, "killed");
  EXPECT_EQ(error_of([&] { train(again); }), "train: --out '" + again.out +
                                                 "' holds a run (no checkpoint yet, attention mha); start again in its "
                                                 "place with --overwrite");
  again.resume = o.out;
  EXPECT_EQ(error_of([&] { train(again); }).rfind("train: --out '" + again.out + "' holds another run (", 0), 0u);
  EXPECT_TRUE(snapshot(dir.path) == with_killed) << "a refused run changed a file";
  fs::remove_all(dir.path / "killed");
  EXPECT_TRUE(snapshot(dir.path) == before);
}

// --overwrite: the folder ends holding the new run and nothing of the old
// (config, metrics, checkpoint, sample) but the user's own file, and no
// replacement is left beside it.
TEST(RunFolders, OverwriteReplacesTheRunWhole) {
  TempDir dir("overwrite");
  TrainOptions old_run = tiny(dir.path);
  old_run.steps = 12;
  train(old_run);
  std::ofstream(fs::path(old_run.out) / "notes.md") << "lr 1e-3 was too low\n";  // the user's, not the run's
  TrainOptions new_run = tiny(dir.path);
  new_run.seed = 99;
  new_run.model.layers = 2;
  new_run.overwrite = true;
  train(new_run);
  EXPECT_EQ(config_of(new_run.out)["seed"], 99);
  const CheckpointData d = load_checkpoint(checkpoint_path(new_run.out));
  EXPECT_EQ(d.step, 8);
  EXPECT_TRUE(d.model.count("blocks.1.attn.q.weight") + d.model.count("blocks.1.norm1.weight") > 0)
      << "the checkpoint is not the new 2-layer model";
  for (int64_t step : logged_steps(new_run.out)) EXPECT_LE(step, 8) << "a row of the old 12-step run is left";
  EXPECT_EQ(read_bytes(fs::path(new_run.out) / "notes.md"), "lr 1e-3 was too low\n") << "the user's file was lost";
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"corpus.txt", "run"}));
  EXPECT_FALSE(fs::exists(fs::path(new_run.out) / RunLock::kFileName)) << "the lock outlived the run";
}

// kill -9 while --overwrite builds the new run, before its first
// checkpoint: the folder still holds the old run, byte for byte. The next
// run in the folder removes the abandoned replacement.
TEST(RunFolders, OverwriteKilledBeforeItsFirstCheckpointLeavesTheOldRunWhole) {
  TempDir dir("overwrite_killed");
  const TrainOptions old_run = tiny(dir.path);
  train(old_run);
  const auto before = snapshot(dir.path / "run");
  TrainOptions new_run = tiny(dir.path);
  new_run.steps = 100000;
  new_run.eval_every = 100000;  // no checkpoint for a long while
  new_run.overwrite = true;
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      train(new_run);
    } catch (...) {
    }
    _exit(0);
  }
  const fs::path building = dir.path / (".run.attnlab-swap-" + std::to_string(pid));
  for (int i = 0; i < 2000 && !(fs::exists(building / "metrics.jsonl") && fs::file_size(building / "metrics.jsonl") > 0); ++i)
    usleep(5000);
  ASSERT_TRUE(fs::exists(building / "config.json")) << "the new run was not being built beside the old one";
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  EXPECT_TRUE(snapshot(dir.path / "run") == before) << "the old run changed before the new one's first checkpoint";
  EXPECT_EQ(load_checkpoint(checkpoint_path(old_run.out)).step, 8);
  TrainOptions resumed = tiny(dir.path);
  resumed.resume = resumed.out;
  resumed.steps = 10;
  train(resumed);
  EXPECT_FALSE(fs::exists(building)) << "the abandoned replacement is still there";
}

// A second writer is refused, naming the first's PID, and changes nothing:
// the first (stopped meanwhile, so that it surely holds the lock) finishes
// exactly as if alone. A reader (load_checkpoint, as sample does) works
// while the run trains.
TEST(RunFolders, ASecondWriterIsRefusedWhileTheFirstFinishes) {
  TempDir dir("writers");
  TrainOptions first = tiny(dir.path);
  first.steps = 300;
  first.checkpoint_every = 2;
  TrainOptions alone = first;
  alone.out = (dir.path / "alone").string();
  train(alone);
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      train(first);
      _exit(0);
    } catch (...) {
      _exit(3);
    }
  }
  const fs::path lock = fs::path(first.out) / RunLock::kFileName;
  for (int i = 0; i < 2000 && !(fs::exists(fs::path(first.out) / "checkpoint.safetensors") && fs::exists(lock)); ++i)
    usleep(2000);
  kill(pid, SIGSTOP);
  ASSERT_TRUE(fs::exists(lock)) << "the first run did not take the lock";
  TrainOptions second = tiny(dir.path);
  second.seed = 2;
  second.overwrite = true;
  EXPECT_EQ(error_of([&] { train(second); }), "train: '" + first.out + "' is being written by another attnlab process (PID " +
                                                  std::to_string(pid) + "); wait until it ends, or choose another --out");
  EXPECT_GE(load_checkpoint(checkpoint_path(first.out)).step, 2);  // readers need no lock
  kill(pid, SIGCONT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the first run did not finish";
  EXPECT_EQ(config_of(first.out)["seed"], 1337);
  EXPECT_EQ(logged_steps(first.out), logged_steps(alone.out));
  const CheckpointData a = load_checkpoint(checkpoint_path(alone.out));
  const CheckpointData b = load_checkpoint(checkpoint_path(first.out));
  for (const auto& [name, t] : a.model) EXPECT_EQ(t.to_vector(), b.model.at(name).to_vector()) << name;
  EXPECT_EQ(read_bytes(fs::path(first.out) / "sample.txt"), read_bytes(fs::path(alone.out) / "sample.txt"));
}

// The lock is the process's until it lets go: a second take in the same
// process is refused too (flock locks belong to the open file), and the
// file is gone once released.
TEST(RunFolders, TheLockIsHeldUntilReleased) {
  TempDir dir("lock");
  {
    const RunLock held = RunLock::take(dir.path, "test");
    EXPECT_EQ(read_bytes(dir.path / RunLock::kFileName), std::to_string(::getpid()) + "\n");
    EXPECT_EQ(error_of([&] { RunLock::take(dir.path, "test"); }),
              "test: '" + dir.path.string() + "' is being written by another attnlab process (PID " +
                  std::to_string(::getpid()) + "); wait until it ends, or choose another --out");
  }
  EXPECT_FALSE(fs::exists(dir.path / RunLock::kFileName));
  EXPECT_TRUE(RunLock::take(dir.path, "test").held());
}

// The allocator refuses a step's memory mid-run: one line with the step and
// what to lower, the run folder as it was.
TEST(RunFolders, OutOfMemoryNamesTheStepAndKeepsTheRun) {
  TempDir dir("oom");
  TrainOptions o = tiny(dir.path);
  o.batch = 64;
  o.model.block_size = 16;
  o.stop_at = 4;
  train(o);
  const auto before = snapshot(dir.path);
  TrainOptions more = o;
  more.stop_at = 0;
  more.resume = o.out;
  // Loading the run takes about 0.1 MB, a step of batch 64 about 2 MB.
  cpu_allocator().set_limit(400000);
  const std::string msg = error_of([&] { train(more); });
  cpu_allocator().set_limit(0);
  EXPECT_EQ(msg.rfind("train: out of memory at step 5 of 8 (device cpu: out of memory: asked for ", 0), 0u) << msg;
  EXPECT_NE(msg.find("); lower --batch (now 64) or --block (now 16); the checkpoint of step 4 is intact"), std::string::npos)
      << msg;
  EXPECT_TRUE(snapshot(dir.path) == before) << "running out of memory changed the run";
  EXPECT_NO_THROW(train(more));  // with the memory back, the run goes on
}
