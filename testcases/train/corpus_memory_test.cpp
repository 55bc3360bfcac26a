// What a corpus byte costs in memory at the peak of a run (README, "Memory"):
// at most 6 bytes, measured as bench/corpus_memory.sh does, from the peak
// resident set of a process that trains one step, minus the same for a tiny
// corpus (the program and the model).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "train/trainer.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {

// The peak resident set (KiB) of a child process that trains one step on `corpus`.
long peak_kib_training_on(const fs::path& corpus, const fs::path& out) {
  TrainOptions o;
  o.data = corpus.string();
  o.out = out.string();
  o.steps = 1;
  o.batch = 4;
  o.eval_batches = 1;
  o.sample_tokens = 0;
  o.quiet = true;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.embd = 16;
  o.model.block_size = 16;
  const pid_t pid = fork();
  if (pid == 0) {
    try {
      train(o);
      _exit(0);
    } catch (...) {
      _exit(3);
    }
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "training on " << corpus << " failed";
  return usage.ru_maxrss;
}

}  // namespace

TEST(CorpusMemory, AtMostSixBytesPerCorpusByte) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine are not the program's";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine are not the program's";
#endif
#endif
  const fs::path dir = fs::temp_directory_path() / ("attnlab_corpus_memory_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // ASCII: one 4-byte id per byte, the most ids a byte can cost.
  const std::string line = "call me ishmael. some years ago, never mind how long precisely.\n";
  std::string text;
  while (text.size() < (std::size_t{24} << 20)) text += line;
  std::ofstream(dir / "big.txt") << text;
  std::ofstream(dir / "small.txt") << text.substr(0, 4096);
  const long big = peak_kib_training_on(dir / "big.txt", dir / "big");
  const long small = peak_kib_training_on(dir / "small.txt", dir / "small");
  const double per_byte = static_cast<double>(big - small) * 1024.0 / static_cast<double>(text.size() - 4096);
  std::printf("[ memory   ] %.2f bytes per corpus byte (peak %ld KiB for %zu bytes, %ld KiB for 4 KiB)\n", per_byte,
              big, text.size(), small);
  EXPECT_LE(per_byte, 6.0);
  fs::remove_all(dir);
}
