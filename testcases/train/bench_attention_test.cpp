// The attention benchmark runs every method on small lengths, skips the
// quadratic ones above the memory cap, and writes its report.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "train/bench_attention.h"

using namespace attn;

TEST(BenchAttention, RunsEveryMethodAndSkipsQuadraticOnesOverTheCap) {
  BenchAttentionOptions o;
  o.lengths = {32, 64};
  o.heads = 2;  // multiscale splits them: one windowed, one full
  o.dim = 8;
  o.window = 8;
  o.repeats = 1;
  o.max_dense_gib = 4.0 * 2 * 32 * 32 * 4 / (1 << 30) * 1.5;  // room for T=32, not T=64
  o.out = (std::filesystem::temp_directory_path() / ("attnlab_bench_" + std::to_string(::getpid()))).string();
  const auto rows = bench_attention(o);
  EXPECT_EQ(rows.size(), 2 * bench_attention_methods().size());
  for (const BenchRow& r : rows) {
    const bool skipped = r.forward_ms < 0;
    if (r.method == "dense" || r.method == "sparse-masked" || r.method == "blocksparse-masked")
      EXPECT_EQ(skipped, r.length == 64) << r.method;
    else EXPECT_FALSE(skipped) << r.method << " " << r.length;
  }
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(o.out) / "report.md"));
  std::filesystem::remove_all(o.out);
  o.methods = {"nope"};
  EXPECT_THROW(bench_attention(o), Error);
}
