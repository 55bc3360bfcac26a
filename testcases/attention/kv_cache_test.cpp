// The KV cache: decoding token by token with the cache gives the same
// logits as running the whole prefix again, and its size is the formula.
#include <gtest/gtest.h>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"

using namespace attn;

namespace {
GPTConfig config(const std::string& attention) {
  GPTConfig c;
  c.vocab = 13;
  c.block_size = 10;
  c.layers = 2;
  c.heads = 4;
  c.embd = 16;
  c.attention = attention;
  return c;
}
}  // namespace

class KvCacheEquivalence : public ::testing::TestWithParam<const char*> {};

TEST_P(KvCacheEquivalence, PrefillThenDecodeMatchesFullForward) {
  GPT model(config(GetParam()), 4);
  NoGradGuard ng;
  model.eval();
  const std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  const auto full = model.forward(from_ints(ids, {1, 8})).to_vector();
  KVCache cache = model.make_cache(1);
  // Prefill 3 tokens, then decode the other 5 one at a time.
  std::vector<float> got = model.forward_cached(from_ints({3, 1, 4}, {1, 3}), cache).to_vector();
  for (size_t t = 3; t < ids.size(); ++t) {
    const auto step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache).to_vector();
    got.insert(got.end(), step.begin(), step.end());
  }
  ASSERT_EQ(got.size(), full.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], full[i], 1e-4) << GetParam() << ": position " << i / 13;
  EXPECT_EQ(cache.length(), 8);
}

INSTANTIATE_TEST_SUITE_P(Variants, KvCacheEquivalence,
                         ::testing::Values("mha", "gqa:kv_heads=2", "mqa", "mha:rope", "gqa:kv_heads=2,alibi"));

TEST(KvCache, BytesPerTokenFollowTheFormula) {
  // 2 (K, V) x layers x kv_heads x head_dim x 4 bytes; head_dim = 16 / 4.
  for (auto [spec, kv] : std::vector<std::pair<const char*, int64_t>>{{"mha", 4}, {"gqa:kv_heads=2", 2}, {"mqa", 1}}) {
    GPT model(config(spec), 0);
    KVCache cache = model.make_cache(1);
    EXPECT_EQ(cache.bytes_per_token(), static_cast<size_t>(2 * 2 * kv * 4 * 4)) << spec;
    NoGradGuard ng;
    model.forward_cached(from_ints({1, 2, 3}, {1, 3}), cache);
    EXPECT_EQ(cache.bytes(), 3 * cache.bytes_per_token());
  }
}

TEST(KvCache, OverflowAndShapeErrors) {
  KVCache cache(1, 1, CacheLayout{2, 4, 4}, 3, Device::cpu());
  const Tensor kv = zeros({1, 2, 2, 4});
  cache.append(0, kv, kv);
  cache.commit(2);
  try {
    cache.append(0, kv, kv);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 cached + 2 new tokens exceed the capacity of 3"), std::string::npos);
  }
  EXPECT_THROW(cache.append(0, zeros({1, 3, 1, 4}), zeros({1, 3, 1, 4})), Error);
  EXPECT_THROW(cache.append(5, kv, kv), Error);
}
