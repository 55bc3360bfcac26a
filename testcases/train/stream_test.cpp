// Streaming generation and its evaluation (chapter 18): `attnlab sample
// --stream` decodes past the block with memory that stays flat (read from
// the allocator), its bad options are one-line errors, and the four modes
// of `eval --stream` agree while a stream still fits the cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "core/allocator.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "train/sampling.h"
#include "train/stream_eval.h"

using namespace attn;

namespace {

GPTConfig small_gpt(const std::string& attention) {
  GPTConfig c;
  c.vocab = 9;
  c.block_size = 16;
  c.layers = 2;
  c.heads = 2;
  c.embd = 16;
  c.attention = attention;
  return c;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// The allocator's peak while generating `tokens` tokens, above what was
// live before.
std::size_t generation_peak(GPT& model, int64_t tokens) {
  SampleOptions o;
  o.stream = true, o.sinks = 2, o.window = 6, o.tokens = tokens, o.temperature = 1.0f;
  Generator gen(1);
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  const std::vector<int64_t> out = generate(model, {1, 2, 3}, o, gen);
  EXPECT_EQ(static_cast<int64_t>(out.size()), tokens);
  return cpu_allocator().stats().peak - before;
}

}  // namespace

TEST(StreamingSample, PeakMemoryDoesNotGrowFromNTo4NTokens) {
  // 40 and 160 tokens with a block of 16: both far past the block; the
  // rolling cache holds 8 tokens whatever the length.
  GPT model(small_gpt("mha:rope"), 2);
  const std::size_t peak_n = generation_peak(model, 40), peak_4n = generation_peak(model, 160);
  EXPECT_GT(peak_n, 0u);
  EXPECT_LE(peak_4n, peak_n) << "peak bytes " << peak_n << " for 40 tokens, " << peak_4n << " for 160";
}

TEST(StreamingSample, BadOptionsAreOneLineErrorsNamingTheOption) {
  GPT rope(small_gpt("mha:rope"), 1), learned(small_gpt("mha"), 1), linear(small_gpt("linear"), 1);
  auto sample = [](GPT& model, int64_t sinks, int64_t window) {
    return error_of([&] {
      SampleOptions o;
      o.stream = true, o.sinks = sinks, o.window = window, o.tokens = 3;
      Generator gen(0);
      generate(model, {1}, o, gen);
    });
  };
  EXPECT_EQ(sample(rope, -1, 4), "sample: --sinks must be >= 0, got -1");
  EXPECT_EQ(sample(rope, 2, 0), "sample: --window must be >= 1 (tokens kept after the sinks), got 0");
  EXPECT_EQ(sample(rope, 4, 13), "sample: --sinks 4 + --window 13 = 17 exceeds the model's block size 16 "
                                 "(positions inside the cache must stay ones the model trained on)");
  EXPECT_EQ(sample(rope, 16, -1), "sample: --sinks 16 leaves no room for a window in the block size 16");
  EXPECT_EQ(sample(linear, 2, 4).rfind("sample: --stream: model: attention 'linear' has no KV cache", 0), 0u)
      << sample(linear, 2, 4);
  EXPECT_EQ(sample(learned, 2, 4).rfind("sample: --stream: model: attention 'mha' uses learned positions", 0), 0u)
      << sample(learned, 2, 4);
}

TEST(StreamEval, AllFourModesAgreeWhileTheStreamFitsTheCache) {
  // Streams of 10 tokens, cache of 3 sinks + 7: nothing is evicted, every
  // position is one the model trained on, so (a) .. (d) read the same.
  GPT model(small_gpt("mha:rope"), 3);
  std::vector<int64_t> tokens;
  for (int64_t t = 0; t < 200; ++t) tokens.push_back((t * t + 3 * t) % 9);
  int64_t streams = 0;
  const std::vector<StreamLoss> r = evaluate_streams(model, tokens, 10, 4, 3, 7, &streams);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(streams, 4);
  for (std::size_t m = 1; m < r.size(); ++m)
    for (std::size_t t = 0; t < 10; ++t)
      ASSERT_NEAR(r[m].per_position[t], r[0].per_position[t], 1e-4) << r[m].mode << " vs " << r[0].mode << " at " << t;
}

TEST(StreamEval, SinksChangeTheLossOnlyOnceTheCacheRolls) {
  // Streams of 24 tokens, cache of 2 sinks + 6: the first 8 positions agree
  // between (a) and (b); after that they read different tokens.
  GPT model(small_gpt("mha:rope"), 4);
  std::vector<int64_t> tokens;
  for (int64_t t = 0; t < 200; ++t) tokens.push_back((5 * t + t / 3) % 9);
  const std::vector<StreamLoss> r = evaluate_streams(model, tokens, 24, 3, 2, 6);
  for (std::size_t t = 0; t < 8; ++t) ASSERT_NEAR(r[0].per_position[t], r[1].per_position[t], 1e-4) << "at " << t;
  double apart = 0;
  for (std::size_t t = 8; t < 24; ++t) apart += std::fabs(r[0].per_position[t] - r[1].per_position[t]);
  EXPECT_GT(apart, 1e-4);
}

TEST(StreamEval, FirstTokenShareOfAnEvenSpreadIsTheUniformShare) {
  // With every query projection zero, all scores are 0: query i spreads
  // its weight evenly over keys 0..i, giving the first token 1 / (i + 1).
  // Every layer's share must then be the mean of 1 / (i + 1) over the
  // second half of the block (rows 8..15): computed here by hand.
  GPT model(small_gpt("mha:rope"), 5);
  for (auto& [name, p] : model.named_parameters())
    if (name.find(".attn.wq.") != std::string::npos) std::fill(p->data<float>(), p->data<float>() + p->numel(), 0.0f);
  std::vector<int64_t> tokens;
  for (int64_t t = 0; t < 100; ++t) tokens.push_back((3 * t + 1) % 9);
  const FirstTokenShare share = first_token_share(model, tokens, 4);
  double uniform = 0;
  for (int i = 8; i < 16; ++i) uniform += 1.0 / (i + 1);
  uniform /= 8;
  EXPECT_NEAR(share.uniform, uniform, 1e-12);
  ASSERT_EQ(share.per_layer.size(), 2u);
  for (double s : share.per_layer) EXPECT_NEAR(s, uniform, 1e-5);
}
