// Chapter 18, basic suite: which tokens the rolling cache keeps, by hand;
// the README's worked example; equivalence with plain causal RoPE attention
// while the stream still fits; and the classic mistakes. Expected numbers
// are worked out in the README or in a comment beside them.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attention/positions.h"
#include "autograd/ops.h"
#include "lesson_test.h"
#include "sink_cache.h"

using namespace attn;
using namespace lesson_test;
using lesson18::SinkCache;

namespace {

std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "{";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "}";
}

// Token t's key and value: every element equal to t (and -t), so the slots
// show which tokens stayed. [1, 1, 1, 2].
Tensor key_of(int64_t t) { return full({1, 1, 1, 2}, static_cast<float>(t)); }
Tensor value_of(int64_t t) { return full({1, 1, 1, 2}, -static_cast<float>(t)); }

// The README's worked example: d = 2, every raw query and key [1, 0], so
// after RoPE a score is cos(cache distance) / sqrt(2); values v0..v3.
const std::vector<std::vector<float>> kValues = {{1, 0}, {0, 1}, {2, 2}, {4, 0}};

Tensor feed_example(SinkCache& cache) {
  Tensor out;
  for (int64_t t = 0; t < 4; ++t) {
    cache.append(from_vector({1, 0}, {1, 1, 1, 2}), from_vector(kValues[t], {1, 1, 1, 2}));
    out = lesson18::sink_attention(from_vector({1, 0}, {1, 1, 1, 2}), cache);
  }
  return out;  // token 3's output
}

// Plain causal attention over the whole sequence with RoPE at positions
// 0..T-1: what the cache must give while nothing has been evicted.
Tensor causal_rope(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t T = q.shape()[2], d = q.shape()[3];
  const RopeTables r = rope_tables(T, d, 0, 10000.0f, 1.0f, Device::cpu());
  const Tensor s = mul(matmul(apply_rope(q, r), transpose(apply_rope(k, r), -2, -1)), 1.0f / std::sqrt(float(d)));
  return matmul(softmax(masked_fill(s, eq(tril(ones({T, T})), 0.0), -INFINITY), -1), v);
}

}  // namespace

// ------------------------------------------------------------------ which tokens stay

TEST(KeptTokens, TwoSinksWindowThreeByHand) {
  // After t tokens: all of them while t <= 5, then 0, 1 and the last three.
  SinkCache cache(2, 3);
  const std::vector<std::vector<int64_t>> want = {
      {0}, {0, 1}, {0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}, {0, 1, 3, 4, 5}, {0, 1, 4, 5, 6}, {0, 1, 5, 6, 7}};
  for (int64_t t = 0; t < 8; ++t) {
    cache.append(key_of(t), value_of(t));
    EXPECT_EQ(cache.kept_tokens(), want[t]) << "after " << t + 1 << " tokens: expected "
                                            << list_str(want[t]) << ", got " << list_str(cache.kept_tokens());
  }
}

TEST(Append, SlotsHoldTheSinksThenTheWindowInStreamOrder) {
  SinkCache cache(2, 3);
  for (int64_t t = 0; t < 8; ++t) cache.append(key_of(t), value_of(t));
  ASSERT_EQ(cache.kept(), 5);
  EXPECT_TRUE(close("keys after 8 tokens (sinks 2, window 3)", cache.keys(), {0, 0, 1, 1, 5, 5, 6, 6, 7, 7},
                    {1, 1, 5, 2}));
  EXPECT_TRUE(close("values after 8 tokens", cache.values(), {0, 0, -1, -1, -5, -5, -6, -6, -7, -7}, {1, 1, 5, 2}));
}

TEST(Append, AChunkEvictsJustEnoughBeforeItIsAdded) {
  // Sinks 1, window 3: 4 tokens fill the cache; a chunk of 2 evicts tokens
  // 1 and 2 (the oldest after the sink), never token 0.
  SinkCache cache(1, 3);
  cache.append(cat({key_of(0), key_of(1), key_of(2)}, 2), cat({value_of(0), value_of(1), value_of(2)}, 2));
  cache.append(key_of(3), value_of(3));
  cache.append(cat({key_of(4), key_of(5)}, 2), cat({value_of(4), value_of(5)}, 2));
  EXPECT_EQ(cache.kept_tokens(), (std::vector<int64_t>{0, 3, 4, 5}));
  EXPECT_TRUE(close("keys", cache.keys(), {0, 0, 3, 3, 4, 4, 5, 5}, {1, 1, 4, 2}));
  EXPECT_EQ(cache.seen(), 6);
}

TEST(Append, RejectsMoreNewTokensThanTheWindow) {
  SinkCache cache(2, 3);
  EXPECT_TRUE(rejects("append(4 tokens) with window 3", [&] {
    cache.append(random_tensor({1, 1, 4, 2}, 1), random_tensor({1, 1, 4, 2}, 2));
  }, "4 new tokens cannot all be kept by a window of 3"));
}

// ------------------------------------------------------------------ attention

TEST(WorkedExample, SinkOneWindowTwoMatchesTheReadme) {
  // Token 3 sees tokens 0 (sink, cache position 0), 2 (1) and 3 (2), from
  // cache position 2: scores cos(2, 1, 0) / sqrt(2).
  SinkCache cache(1, 2);
  Tensor weights;
  Tensor out;
  for (int64_t t = 0; t < 4; ++t) {
    cache.append(from_vector({1, 0}, {1, 1, 1, 2}), from_vector(kValues[t], {1, 1, 1, 2}));
    out = lesson18::sink_attention(from_vector({1, 0}, {1, 1, 1, 2}), cache, 10000.0f, &weights);
  }
  EXPECT_TRUE(close("token 3's weights over tokens 0, 2, 3", weights, {0.175786, 0.345714, 0.478500}, {1, 1, 1, 3}));
  EXPECT_TRUE(close("token 3's output", out, {2.781215, 0.691429}, {1, 1, 1, 2}));
}

TEST(Equivalence, WhileTheStreamFitsItIsCausalRopeAttention) {
  // Sinks 2, window 6: 8 tokens fit, so nothing is evicted and cache
  // positions are stream positions. One token at a time.
  const Tensor q = random_tensor({2, 2, 8, 4}, 11), k = random_tensor({2, 2, 8, 4}, 12), v = random_tensor({2, 2, 8, 4}, 13);
  const Tensor whole = causal_rope(q, k, v);
  SinkCache cache(2, 6);
  for (int64_t t = 0; t < 8; ++t) {
    cache.append(narrow(k, 2, t, 1), narrow(v, 2, t, 1));
    ASSERT_TRUE(close("token " + std::to_string(t) + " through the cache vs the whole sequence",
                      lesson18::sink_attention(narrow(q, 2, t, 1), cache), narrow(whole, 2, t, 1)));
  }
}

TEST(Equivalence, APrefillIsCausalAmongItsTokens) {
  // Five tokens appended at once: query i sees slots 0..i only.
  const Tensor q = random_tensor({1, 2, 5, 4}, 21), k = random_tensor({1, 2, 5, 4}, 22), v = random_tensor({1, 2, 5, 4}, 23);
  SinkCache cache(1, 5);
  cache.append(k, v);
  EXPECT_TRUE(close("a prefill of 5 tokens", lesson18::sink_attention(q, cache), causal_rope(q, k, v)));
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, EvictingTheSinks) {
  // A plain "keep the newest sinks + window" cache loses token 0.
  SinkCache cache(1, 3);
  for (int64_t t = 0; t < 10; ++t) cache.append(key_of(t), value_of(t));
  EXPECT_EQ(cache.kept_tokens(), (std::vector<int64_t>{0, 7, 8, 9}))
      << "the first `sinks` tokens never leave: evict the oldest token AFTER them";
  EXPECT_TRUE(close("keys after 10 tokens (sinks 1, window 3)", cache.keys(), {0, 0, 7, 7, 8, 8, 9, 9}, {1, 1, 4, 2}))
      << "slot 0 must still hold token 0";
}

TEST(Mistakes, WindowOffByOne) {
  // Window 4 keeps exactly the last 4 tokens, itself included: not 3, not 5.
  SinkCache cache(2, 4);
  for (int64_t t = 0; t < 12; ++t) cache.append(key_of(t), value_of(t));
  EXPECT_EQ(cache.kept(), 6) << "sinks 2 + window 4 = 6 slots once the stream is longer";
  EXPECT_EQ(cache.kept_tokens(), (std::vector<int64_t>{0, 1, 8, 9, 10, 11}))
      << "kept_tokens: the last `window` tokens are seen-window .. seen-1";
}

TEST(Mistakes, StreamPositionsInsteadOfCachePositions) {
  // The worked example with token 0 rotated by its stream distance (3, not
  // 2) gives [2.8922, 0.7345]; positions inside the cache give the README's
  // [2.7812, 0.6914]. On a long stream, stream positions run past every
  // length the model trained on.
  SinkCache cache(1, 2);
  EXPECT_TRUE(close("token 3's output", feed_example(cache), {2.781215, 0.691429}, {1, 1, 1, 2}))
      << "rotate the kept keys by their slot (0 .. kept-1) and the query by kept-1, not by stream positions";
}

TEST(Mistakes, KeysRotatedTwiceOrStoredRotated) {
  // The cache stores keys as appended (unrotated): rotating them on the way
  // in and again in sink_attention turns each key twice.
  SinkCache cache(1, 3);
  const Tensor k = random_tensor({1, 1, 3, 4}, 31), v = random_tensor({1, 1, 3, 4}, 32);
  cache.append(k, v);
  EXPECT_TRUE(close("keys() right after one append", cache.keys(), k))
      << "store the keys unrotated; sink_attention rotates what is kept, once, at every step";
  const Tensor q = random_tensor({1, 1, 3, 4}, 33);
  EXPECT_TRUE(close("attention of the 3 tokens", lesson18::sink_attention(q, cache), causal_rope(q, k, v)));
}

TEST(Mistakes, CacheGrowsWithoutBound) {
  // After 50 tokens with sinks 2, window 4, heads of d = 2: 6 slots x 2
  // floats x 2 (K and V) x 4 bytes = 96 bytes, as after 6 tokens.
  SinkCache cache(2, 4);
  for (int64_t t = 0; t < 50; ++t) cache.append(key_of(t), value_of(t));
  EXPECT_EQ(cache.bytes(), 96u) << "evict before adding: the cache holds sinks + window tokens, no more";
}

TEST(Mistakes, CacheKeepsViewsOfTheCallersTensors) {
  SinkCache cache(1, 4);
  const Tensor k = random_tensor({1, 2, 3, 2}, 41), v = random_tensor({1, 2, 3, 2}, 42);
  cache.append(k, v);
  const float* kept = cache.keys().data<float>();
  const float* begin = k.data<float>();
  EXPECT_FALSE(kept >= begin && kept < begin + k.numel())
      << "the cache must own a copy (.clone()) of what it keeps, not a view into the caller's k";
}
