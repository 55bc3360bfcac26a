// `compare` and `convert` end to end on a tiny corpus.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/compare.h"
#include "train/convert.h"

using namespace attn;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("attnlab_compare_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TrainOptions tiny(const fs::path& dir) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "a stitch in time saves nine; look before you leap.\n";
  std::ofstream(dir / "corpus.txt") << text;
  TrainOptions o;
  o.data = (dir / "corpus.txt").string();
  o.steps = 10;
  o.batch = 4;
  o.eval_every = 5;
  o.eval_batches = 2;
  o.sample_tokens = 0;
  o.quiet = true;
  o.model.block_size = 16;
  o.model.layers = 1;
  o.model.heads = 4;
  o.model.embd = 16;
  return o;
}
}  // namespace

TEST(Compare, SplitsVariantListsWithOptions) {
  EXPECT_EQ(split_variants("mha,gqa:kv_heads=2,rope,mqa"),
            (std::vector<std::string>{"mha", "gqa:kv_heads=2,rope", "mqa"}));
  EXPECT_EQ(split_variants("flash:kv_heads=2,window=8,mla:latent=4"),
            (std::vector<std::string>{"flash:kv_heads=2,window=8", "mla:latent=4"}));
  EXPECT_EQ(split_variants("mha"), (std::vector<std::string>{"mha"}));
  EXPECT_EQ(folder_name("gqa:kv_heads=2,rope"), "gqa_kv_heads-2_rope");
}

TEST(Compare, TrainsEachVariantAndWritesTheReport) {
  const fs::path dir = temp_dir("report");
  CompareOptions c;
  c.base = tiny(dir);
  c.base.out = (dir / "cmp").string();
  c.variants = {"mha", "mqa"};
  c.prompt = "a stitch";
  const auto reports = compare(c);
  ASSERT_EQ(reports.size(), 2u);
  // 4 heads share one K/V head in MQA: a 4x smaller cache.
  EXPECT_EQ(reports[0].kv_bytes_per_token, 4 * reports[1].kv_bytes_per_token);
  EXPECT_LT(reports[1].result.parameters, reports[0].result.parameters);
  std::ifstream f(dir / "cmp" / "report.md");
  const std::string md((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("| `mha` |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `mqa` |"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir / "cmp" / "mha" / "checkpoint.safetensors"));
  CompareOptions twice = c;
  twice.variants = std::vector<std::string>{"mha", "mha"};
  EXPECT_THROW(compare(twice), Error);
  fs::remove_all(dir);
}

TEST(Convert, PoolsHeadsAndFineTunes) {
  const fs::path dir = temp_dir("convert");
  TrainOptions o = tiny(dir);
  o.out = (dir / "mha").string();
  o.steps = 30;
  o.eval_every = 30;
  train(o);
  ConvertOptions co;
  co.ckpt = o.out;
  co.to = "gqa:kv_heads=2";
  co.out = (dir / "gqa").string();
  co.finetune_steps = 10;
  co.quiet = true;
  const ConvertResult r = convert(co);
  EXPECT_LT(r.params_after, r.params_before);
  EXPECT_GT(r.before, 0);
  EXPECT_TRUE(std::isfinite(r.after_conversion));
  EXPECT_TRUE(fs::exists(dir / "gqa" / "convert.md"));
  EXPECT_TRUE(fs::exists(dir / "gqa" / "checkpoint.safetensors"));
  co.to = "mqa";
  co.ckpt = (dir / "gqa").string();
  EXPECT_THROW(convert(co), Error);  // the source is no longer plain MHA
  fs::remove_all(dir);
}
