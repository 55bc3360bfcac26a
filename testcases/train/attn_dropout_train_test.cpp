// Attention dropout through the trainer: stored in the run, bitwise exact
// across --resume (the masks are keyed by the stream, not drawn from a
// state), left out for variants without attention probabilities when it is
// only inherited from --dropout (said once), refused when explicit, and never
// drawn by sampling.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/compare.h"
#include "train/sampling.h"
#include "train/trainer.h"

using namespace attn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("attnlab_attn_drop_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TrainOptions tiny_run(const fs::path& dir, const std::string& out, const std::string& attention) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the cat sat on the mat. the dog sat on the log.\n";
  const fs::path corpus = dir / "corpus.txt";
  std::ofstream(corpus) << text;
  TrainOptions o;
  o.data = corpus.string();
  o.out = (dir / out).string();
  o.steps = 8;
  o.batch = 4;
  o.lr = 3e-3f;
  o.warmup = 2;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.log_every = 2;
  o.sample_tokens = 10;
  o.quiet = true;
  o.model.block_size = 16;
  o.model.layers = 2;
  o.model.heads = 2;
  o.model.embd = 16;
  o.model.attention = attention;
  o.model.dropout = 0.1f;
  o.model.attn_dropout = 0.2f;
  return o;
}

std::map<std::string, std::vector<float>> weights(const std::string& run) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : load_checkpoint(checkpoint_path(run)).model) out[name] = t.to_vector();
  return out;
}

float stored_attn_dropout(const std::string& run) {
  std::ifstream f(fs::path(run) / "config.json");
  return json::parse(f).at("model").at("attn_dropout").get<float>();
}

}  // namespace

TEST(AttnDropoutTraining, StoredAndResumedBitwise) {
  for (const char* attention : {"mha", "flash"}) {
    SCOPED_TRACE(attention);
    const fs::path dir = temp_dir(std::string("resume_") + attention);
    TrainOptions o = tiny_run(dir, "whole", attention);
    train(o);
    EXPECT_EQ(stored_attn_dropout(o.out), 0.2f);
    TrainOptions part = tiny_run(dir, "parts", attention);
    part.stop_at = 4;
    train(part);
    TrainOptions rest;
    rest.out = part.out;
    rest.resume = part.out;
    rest.steps = 8;
    rest.quiet = true;
    train(rest);
    EXPECT_EQ(weights(o.out), weights(part.out));  // same masks on both sides of the break
    // And the attention dropout did something: without it the weights differ.
    TrainOptions none = tiny_run(dir, "none", attention);
    none.model.attn_dropout = 0;
    train(none);
    EXPECT_NE(weights(o.out), weights(none.out));
    fs::remove_all(dir);
  }
}

TEST(AttnDropoutTraining, InheritedValueSkipsVariantsWithoutProbabilities) {
  const fs::path dir = temp_dir("inherited");
  TrainOptions o = tiny_run(dir, "linear", "linear");
  o.model.attn_dropout = o.model.dropout;  // what the command line does without --attn-dropout
  o.attn_dropout_inherited = true;
  testing::internal::CaptureStderr();
  train(o);
  const std::string err = testing::internal::GetCapturedStderr();
  const std::string notice = "train: attention 'linear' has no attention dropout (linear attention never "
                             "forms the probabilities to drop): it trains without it; --dropout 0.1 applies "
                             "to the rest of the model\n";
  EXPECT_EQ(err, notice);  // once
  EXPECT_EQ(stored_attn_dropout(o.out), 0.0f);
  // Given explicitly, it is refused before anything is written.
  TrainOptions explicit_value = tiny_run(dir, "linear_explicit", "linear");
  EXPECT_THROW(train(explicit_value), Error);
  EXPECT_FALSE(fs::exists(explicit_value.out));
  fs::remove_all(dir);
}

TEST(AttnDropoutTraining, CompareInheritsPerVariant) {
  const fs::path dir = temp_dir("compare");
  CompareOptions co;
  co.base = tiny_run(dir, "cmp", "mha");
  co.base.steps = 2;
  co.base.eval_every = 2;
  co.base.model.attn_dropout = co.base.model.dropout;
  co.base.attn_dropout_inherited = true;
  co.variants = {"mha", "linear"};
  testing::internal::CaptureStderr();
  compare(co);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("attention 'linear' has no attention dropout"), std::string::npos) << err;
  // Every run folder of the comparison stores what its variant trained with.
  std::map<std::string, float> stored;
  for (const auto& entry : fs::recursive_directory_iterator(dir / "cmp"))
    if (entry.path().filename() == "config.json") {
      std::ifstream f(entry.path());
      const json model = json::parse(f).at("model");
      stored[model.at("attention").get<std::string>()] = model.at("attn_dropout").get<float>();
    }
  EXPECT_EQ(stored, (std::map<std::string, float>{{"mha", 0.1f}, {"linear", 0.0f}}));
  fs::remove_all(dir);
}

TEST(AttnDropoutTraining, SamplingDrawsNothing) {
  GPTConfig c;
  c.vocab = 7;
  c.block_size = 12;
  c.layers = 2;
  c.heads = 2;
  c.embd = 8;
  c.dropout = 0.2f;
  c.attn_dropout = 0.5f;
  GPT model(c, 3);
  c.dropout = c.attn_dropout = 0;
  GPT plain(c, 3);
  for (bool cache : {true, false}) {
    SampleOptions so;
    so.tokens = 15;  // past the block: the context is cropped
    so.use_cache = cache;
    model.train();  // generate switches to evaluation itself
    Generator g1(5), g2(5);
    EXPECT_EQ(generate(model, {1, 2, 3}, so, g1), generate(plain, {1, 2, 3}, so, g2)) << "cache " << cache;
    EXPECT_EQ(model.dropout_source().offset, 0u) << "cache " << cache;
  }
}
