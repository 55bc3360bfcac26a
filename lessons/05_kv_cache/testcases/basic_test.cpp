// Chapter 05, basic suite: the cache grows along time and counts its bytes,
// bytes per token for MHA/GQA/MQA by hand, cached attention by hand (the
// README's example), prefill + token-by-token decoding equal to one full
// pass (attention alone and the whole decoder; the reference is a loop
// here, not your code), greedy generation with and without the cache, and
// the mistakes of decoding: a forgotten position offset (in the mask and in
// the position embedding), the offset read after the append, appending
// after attending, a cache overwritten instead of grown, bytes counting only
// K or the query heads, and feeding the whole sequence again at every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "kv_cache.h"
#include "lesson_test.h"

using namespace attn;

namespace {

using lesson_test::close;
using lesson_test::rejects;
using lesson_test::values;

Tensor rnd(const Shape& s, uint64_t seed) { return lesson_test::random_tensor(s, seed); }

// Grouped causal attention in double with plain loops (not your code, not
// the library): queries at positions offset.. over all the keys given,
// query head h reads K/V head h / (H / Hkv), key j visible when j <= offset + i.
Tensor reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset = 0) {
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
  const int64_t Hkv = k.shape()[1], Tk = k.shape()[2], dv = v.shape()[3];
  const std::vector<double> Q = values(q), K = values(k), V = values(v);
  std::vector<float> out(B * H * Tq * dv);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t kh = b * Hkv + h / (H / Hkv), row = (b * H + h) * Tq + i;
        const int64_t seen = std::min(Tk, offset + i + 1);
        std::vector<double> w(seen);
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < seen; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += Q[row * d + c] * K[(kh * Tk + j) * d + c];
          mx = std::max(mx, w[j] = dot / std::sqrt(double(d)));
        }
        for (double& x : w) z += (x = std::exp(x - mx));
        for (int64_t c = 0; c < dv; ++c) {
          double o = 0;
          for (int64_t j = 0; j < seen; ++j) o += w[j] / z * V[(kh * Tk + j) * dv + c];
          out[row * dv + c] = static_cast<float>(o);
        }
      }
  return from_vector(out, {B, H, Tq, dv});
}

// The decoder's logits for one sequence at the given positions, from its
// given pieces and the loop attention above (not your forward).
Tensor reference_logits(lesson05::TinyDecoder& m, const std::vector<int64_t>& ids,
                        const std::vector<int64_t>& positions) {
  const int64_t T = static_cast<int64_t>(ids.size());
  Tensor x = m.embed(from_ints(ids, {1, T}), from_ints(positions, {T}));
  for (int64_t l = 0; l < m.config().layers; ++l) {
    const auto h = m.project(l, x);
    x = add(x, m.merge(l, reference_attention(h.q, h.k, h.v)));
  }
  return m.logits(x);
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  return p;
}

lesson05::DecoderConfig small_config(int64_t kv_heads = 2) {
  lesson05::DecoderConfig c;
  c.vocab = 11, c.block_size = 16, c.layers = 2, c.embd = 16, c.heads = 4, c.kv_heads = kv_heads;
  return c;
}

// The README's worked example, one head, d = 1: two cached tokens with
// k = [0, 1], v = [1, 3]; the new token has q = 1, k = 2, v = 5.
struct Example {
  Tensor q_prompt = from_vector({0, 0}, {1, 1, 2, 1});
  Tensor k_prompt = from_vector({0, 1}, {1, 1, 2, 1});
  Tensor v_prompt = from_vector({1, 3}, {1, 1, 2, 1});
  Tensor q_new = from_vector({1}, {1, 1, 1, 1});
  Tensor k_new = from_vector({2}, {1, 1, 1, 1});
  Tensor v_new = from_vector({5}, {1, 1, 1, 1});
};

}  // namespace

// -------------------------------------------------------------------- cache

TEST(Cache, StartsEmptyAndGrowsAlongTime) {
  lesson05::KVCache cache(2);
  EXPECT_EQ(cache.length(0), 0) << "a new cache holds no tokens";
  EXPECT_EQ(cache.bytes(), 0u) << "a new cache holds no bytes";
  const Tensor k1 = rnd({1, 2, 3, 4}, 1), v1 = rnd({1, 2, 3, 2}, 2);
  const auto [ka, va] = cache.append(0, k1, v1);
  EXPECT_EQ(cache.length(0), 3);
  EXPECT_TRUE(close("keys after the first append", ka, values(k1), {1, 2, 3, 4}));
  EXPECT_TRUE(close("values after the first append", va, values(v1), {1, 2, 3, 2}));
  const Tensor k2 = rnd({1, 2, 1, 4}, 3), v2 = rnd({1, 2, 1, 2}, 4);
  const auto [kb, vb] = cache.append(0, k2, v2);
  EXPECT_EQ(cache.length(0), 4) << "one more token";
  EXPECT_TRUE(close("keys after the second append (old tokens first, then the new one)", kb,
                       values(cat({k1, k2}, 2)), {1, 2, 4, 4}));
  EXPECT_TRUE(close("values after the second append", vb, values(cat({v1, v2}, 2)), {1, 2, 4, 2}));
}

TEST(Cache, LayersAreSeparate) {
  lesson05::KVCache cache(3);
  cache.append(1, rnd({1, 1, 2, 4}, 5), rnd({1, 1, 2, 4}, 6));
  EXPECT_EQ(cache.length(0), 0) << "appending to layer 1 must not touch layer 0";
  EXPECT_EQ(cache.length(1), 2);
  EXPECT_EQ(cache.length(2), 0);
}

TEST(Cache, BytesCountEveryCachedFloat) {
  // B = 2, Hkv = 2, d = 4, dv = 3: layer 0 holds 5 tokens, layer 1 holds 2.
  // (2*2*5*4 + 2*2*5*3 + 2*2*2*4 + 2*2*2*3) floats * 4 bytes = 784 bytes.
  lesson05::KVCache cache(2);
  cache.append(0, rnd({2, 2, 3, 4}, 7), rnd({2, 2, 3, 3}, 8));
  cache.append(0, rnd({2, 2, 2, 4}, 9), rnd({2, 2, 2, 3}, 10));
  cache.append(1, rnd({2, 2, 2, 4}, 11), rnd({2, 2, 2, 3}, 12));
  EXPECT_EQ(cache.bytes(), 784u) << "bytes() counts K and V of every layer, 4 bytes per float";
}

TEST(Cache, RejectsTokensThatDoNotFit) {
  EXPECT_TRUE(rejects(
      "append with a different number of K/V heads",
      [] {
        lesson05::KVCache cache(1);
        cache.append(0, rnd({1, 2, 3, 4}, 13), rnd({1, 2, 3, 4}, 14));
        cache.append(0, rnd({1, 1, 1, 4}, 15), rnd({1, 1, 1, 4}, 16));
      },
      "tokens from another model or batch would be glued onto this cache; check B, Hkv and d"));
  EXPECT_TRUE(rejects(
      "append to layer 2 of a 2-layer cache",
      [] {
        lesson05::KVCache cache(2);
        cache.append(2, rnd({1, 1, 1, 4}, 17), rnd({1, 1, 1, 4}, 18));
      },
      "indexing k_[2] of a 2-slot vector is undefined behaviour; check 0 <= layer < layers()"));
}

TEST(BytesPerToken, MHAGQAMQAByHand) {
  // 2 layers, 4 query heads of d = 32 / 4 = 8, float32:
  // 2 (K, V) * 2 layers * Hkv * 8 floats * 4 bytes = 128 * Hkv.
  for (const auto& [kv, want] : std::vector<std::pair<int64_t, std::size_t>>{{4, 512}, {2, 256}, {1, 128}})
    EXPECT_EQ(lesson05::bytes_per_token(lesson05::DecoderConfig{7, 32, 2, 32, 4, kv}), want)
        << "2 layers, 4 query heads of d = 8, " << kv << " K/V heads";
  // A 7B-class shape with GQA: 32 layers, 32 heads of 128, 8 K/V heads:
  // 2 * 32 * 8 * 128 * 4 = 262144 bytes (256 KiB) per token in float32.
  EXPECT_EQ(lesson05::bytes_per_token(lesson05::DecoderConfig{100, 4096, 32, 4096, 32, 8}), 262144u)
      << "32 layers, 32 query heads of d = 128, 8 K/V heads";
}

// --------------------------------------------------------- cached attention

TEST(CachedAttention, ReadmeWorkedExample) {
  // Scores of the new token: 1 * [0, 1, 2] = [0, 1, 2]; weights
  // [0.0900, 0.2447, 0.6652]; out 0.0900 * 1 + 0.2447 * 3 + 0.6652 * 5 = 4.1504.
  const Example e;
  lesson05::KVCache cache(1);
  lesson05::cached_attention(e.q_prompt, e.k_prompt, e.v_prompt, cache, 0);
  Tensor w;
  const Tensor out = lesson05::cached_attention(e.q_new, e.k_new, e.v_new, cache, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("weights of the new token", w, {0.0900306, 0.2447285, 0.6652410}, {1, 1, 1, 3}));
  EXPECT_TRUE(close("out of the new token", out, {4.1504208}, {1, 1, 1, 1}));
  EXPECT_EQ(cache.length(0), 3) << "the new token's K/V must be in the cache afterwards";
}

TEST(CachedAttention, PrefillIsCausalAttention) {
  const Tensor q = rnd({2, 4, 5, 4}, 20), k = rnd({2, 2, 5, 4}, 21), v = rnd({2, 2, 5, 3}, 22);
  lesson05::KVCache cache(1);
  EXPECT_TRUE(close("prefill of 5 tokens into an empty cache",
                       lesson05::cached_attention(q, k, v, cache, 0),
                       values(reference_attention(q, k, v)), {2, 4, 5, 3}))
      << "with an empty cache the offset is 0: plain causal attention";
}

TEST(CachedAttention, DecodingTokenByTokenEqualsTheFullPass) {
  // 3 prompt tokens, then 4 tokens one at a time: each step's output is the
  // corresponding row of causal attention over all 7.
  const Tensor q = rnd({1, 4, 7, 4}, 23), k = rnd({1, 2, 7, 4}, 24), v = rnd({1, 2, 7, 4}, 25);
  const Tensor full = reference_attention(q, k, v);
  lesson05::KVCache cache(1);
  EXPECT_TRUE(close("prefill (tokens 0..2)",
                       lesson05::cached_attention(narrow(q, 2, 0, 3), narrow(k, 2, 0, 3),
                                                  narrow(v, 2, 0, 3), cache, 0),
                       values(narrow(full, 2, 0, 3)), {1, 4, 3, 4}));
  for (int64_t t = 3; t < 7; ++t)
    EXPECT_TRUE(close("decode step for token " + std::to_string(t),
                         lesson05::cached_attention(narrow(q, 2, t, 1), narrow(k, 2, t, 1),
                                                    narrow(v, 2, t, 1), cache, 0),
                         values(narrow(full, 2, t, 1)), {1, 4, 1, 4}));
}

TEST(CachedAttention, ADecodeStepScoresOneRowNotAMatrix) {
  // With a cache, one step costs O(T): one query row against T keys.
  lesson05::KVCache cache(1);
  lesson05::cached_attention(rnd({1, 4, 5, 4}, 26), rnd({1, 1, 5, 4}, 27), rnd({1, 1, 5, 4}, 28),
                             cache, 0);
  Tensor w;
  lesson05::cached_attention(rnd({1, 4, 1, 4}, 29), rnd({1, 1, 1, 4}, 30), rnd({1, 1, 1, 4}, 31),
                             cache, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{1, 4, 1, 6})) << "one new query per head over the 6 cached keys";
}

// ------------------------------------------------------------------ decoder

TEST(Decoder, FullForwardMatchesTheReference) {
  lesson05::TinyDecoder m(small_config(), 40);
  const std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2};
  EXPECT_TRUE(close("logits of a 7-token sequence without a cache",
                       m.forward(from_ints(ids, {1, 7})), values(reference_logits(m, ids, iota(7))),
                       {1, 7, 11}));
}

TEST(Decoder, PrefillThenDecodeMatchesTheFullForward) {
  lesson05::TinyDecoder m(small_config(), 41);
  const std::vector<int64_t> ids = {2, 7, 1, 8, 2, 8, 1, 8};
  const std::vector<double> full = values(reference_logits(m, ids, iota(8)));
  lesson05::KVCache cache(2);
  const Tensor prefill = m.forward(from_ints({2, 7, 1, 8, 2}, {1, 5}), &cache);
  EXPECT_TRUE(close("prefill logits (tokens 0..4)", prefill,
                       std::vector<double>(full.begin(), full.begin() + 5 * 11), {1, 5, 11}));
  EXPECT_EQ(cache.length(), 5) << "after the prefill the cache holds the 5 prompt tokens";
  for (int64_t t = 5; t < 8; ++t) {
    const Tensor step = m.forward(from_ints({ids[t]}, {1, 1}), &cache);
    EXPECT_TRUE(close("decode logits for token " + std::to_string(t), step,
                         std::vector<double>(full.begin() + t * 11, full.begin() + (t + 1) * 11),
                         {1, 1, 11}));
    for (int64_t l = 0; l < 2; ++l)
      EXPECT_EQ(cache.length(l), t + 1) << "layer " << l << " after decoding token " << t;
  }
}

TEST(Decoder, PrefillInChunksEqualsOnePass) {
  lesson05::TinyDecoder m(small_config(1), 42);
  const std::vector<int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::vector<double> full = values(reference_logits(m, ids, iota(8)));
  lesson05::KVCache cache(2);
  std::vector<double> got;
  for (auto [start, len] : std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 4}, {7, 1}}) {
    const std::vector<int64_t> chunk(ids.begin() + start, ids.begin() + start + len);
    for (double x : values(m.forward(from_ints(chunk, {1, len}), &cache))) got.push_back(x);
  }
  ASSERT_EQ(got.size(), full.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], full[i], 1e-4 * (1 + std::fabs(full[i])))
        << "chunks of 3 + 4 + 1 tokens: logit " << i % 11 << " of token " << i / 11
        << " differs from one pass over all 8";
}

// ----------------------------------------------------------------- generate

TEST(Generate, SameTokensWithAndWithoutTheCache) {
  lesson05::TinyDecoder m(small_config(), 43);
  const std::vector<int64_t> prompt = {4, 0, 4};
  // The reference: greedy decoding by recomputing everything from library ops.
  std::vector<int64_t> seq = prompt, want;
  for (int i = 0; i < 6; ++i) {
    const std::vector<float> l = reference_logits(m, seq, iota(seq.size())).to_vector();
    const int64_t V = 11, last = static_cast<int64_t>(seq.size()) - 1;
    int64_t best = 0;
    for (int64_t t = 1; t < V; ++t)
      if (l[last * V + t] > l[last * V + best]) best = t;
    want.push_back(best);
    seq.push_back(best);
  }
  EXPECT_EQ(lesson05::generate_greedy(m, prompt, 6), want) << "greedy generation without a cache";
  lesson05::KVCache cache(2);
  EXPECT_EQ(lesson05::generate_greedy(m, prompt, 6, &cache), want) << "greedy generation with a cache";
}

// ----------------------------------------------------------------- mistakes

TEST(Mistakes, ForgotThePositionOffsetInTheMask) {
  // The new token is at position 2. With offset 0 its mask row is
  // causal_mask(1, 3, 0) = [1, 0, 0]: it sees key 0 only and returns v0 = 1.
  const Example e;
  lesson05::KVCache cache(1);
  lesson05::cached_attention(e.q_prompt, e.k_prompt, e.v_prompt, cache, 0);
  const float got = lesson05::cached_attention(e.q_new, e.k_new, e.v_new, cache, 0).item();
  EXPECT_NEAR(got, 4.1504208, 1e-4)
      << "the decoded token's output is " << got
      << (std::fabs(got - 1.0f) < 1e-4
              ? ": that is v0 alone, so the new token saw only key 0. It sits at position "
                "L = cache length before the append (2 here): build the mask with that offset, "
                "causal_mask(T_new, T_all, L)"
              : "");
}

TEST(Mistakes, AppendedAfterComputingAttention) {
  // Attending over the cache before appending hides the token from itself:
  // weights over keys [0, 1] only, out 0.2689 * 1 + 0.7311 * 3 = 2.4621.
  const Example e;
  lesson05::KVCache cache(1);
  lesson05::cached_attention(e.q_prompt, e.k_prompt, e.v_prompt, cache, 0);
  const float got = lesson05::cached_attention(e.q_new, e.k_new, e.v_new, cache, 0).item();
  EXPECT_NEAR(got, 4.1504208, 1e-4)
      << "the decoded token's output is " << got
      << (std::fabs(got - 2.4621172f) < 1e-4
              ? ": that is attention over the two OLD keys only. Append the new K/V to the "
                "cache first, then attend over everything it returns (a token sees itself)"
              : "");
}

TEST(Mistakes, PositionsRestartAtZeroWhenDecoding) {
  // Token 5 decoded after a 5-token prefill must get wpe[5], not wpe[0].
  lesson05::TinyDecoder m(small_config(), 44);
  const std::vector<int64_t> ids = {6, 2, 6, 5, 3, 5};
  lesson05::KVCache cache(2);
  m.forward(from_ints({6, 2, 6, 5, 3}, {1, 5}), &cache);
  const Tensor step = m.forward(from_ints({5}, {1, 1}), &cache);
  const Tensor right = select(reference_logits(m, ids, {0, 1, 2, 3, 4, 5}), 1, 5);
  const Tensor restarted = select(reference_logits(m, ids, {0, 1, 2, 3, 4, 0}), 1, 5);
  EXPECT_TRUE(close("decode logits of token 5", step, values(right), {1, 1, 11}))
      << (close("", step, values(restarted), {1, 1, 11})
              ? "these are the logits of token 5 placed at position 0: the positions of new "
                "tokens continue after the cached ones, offset = cache->length() (positions "
                "offset .. offset + T - 1)"
              : "");
}

TEST(Mistakes, GenerateFeedsTheWholeSequenceEveryStep) {
  // With a cache, the prompt goes in once and then one token per step: a
  // prompt of 4 and 5 new tokens leave 4 + 5 - 1 = 8 tokens in the cache.
  lesson05::TinyDecoder m(small_config(), 45);
  lesson05::KVCache cache(2);
  std::vector<int64_t> out;
  try {
    out = lesson05::generate_greedy(m, {1, 2, 3, 4}, 5, &cache);
  } catch (const NotImplemented&) {
    throw;
  } catch (const Error& e) {
    FAIL() << "generate_greedy(prompt of 4, 5 new tokens, cache) threw: " << e.what()
           << "\n(feeding the whole sequence again at each step overflows the 16 positions)";
  }
  EXPECT_EQ(out.size(), 5u);
  const int64_t got = cache.length();
  std::string hint;
  if (got > 9) hint = ": more than prompt + generated tokens, so whole sequences were fed again. "
                      "With a cache, feed only the token generated last";
  else if (got == 9) hint = ": the last generated token was fed too; nothing needs its K/V";
  else if (got == 4) hint = ": only the prompt went in. Feed each generated token through "
                            "forward(ids, cache) to get the next one's logits";
  EXPECT_EQ(got, 8) << "the cache holds " << got << " tokens after generating 5 from a prompt of 4"
                    << hint;
}

TEST(Mistakes, CacheOverwrittenInsteadOfAppended) {
  // Two appends of 3 and 2 tokens: the cache must hold all 5, old first.
  lesson05::KVCache cache(1);
  const Tensor k1 = rnd({1, 2, 3, 4}, 50), v1 = rnd({1, 2, 3, 4}, 51);
  const Tensor k2 = rnd({1, 2, 2, 4}, 52), v2 = rnd({1, 2, 2, 4}, 53);
  cache.append(0, k1, v1);
  const auto [k, v] = cache.append(0, k2, v2);
  ASSERT_TRUE(k.defined() && v.defined()) << "append must return the cached K and V";
  std::string hint;
  if (k.shape() == k2.shape())
    hint = ": append returned only the 2 new tokens, the 3 old ones are gone. Keep the old "
           "tensor and cat the new tokens after it: k = cat({k, k_new}, 2)";
  else if (k.shape() == Shape{1, 4, 3, 4} || k.shape() == Shape{2, 2, 3, 4} || k.shape() == Shape{1, 2, 3, 8})
    hint = ": the cat went along the wrong dim. Time is dim 2 of [B, Hkv, T, d]";
  EXPECT_EQ(k.shape(), (Shape{1, 2, 5, 4})) << "keys after appending 3 then 2 tokens" << hint;
  EXPECT_EQ(cache.length(0), 5) << "3 + 2 tokens" << hint;
  if (k.shape() == Shape{1, 2, 5, 4}) {
    const bool reversed = close("", k, values(cat({k2, k1}, 2)), {1, 2, 5, 4});
    EXPECT_TRUE(close("keys after appending 3 then 2 tokens", k, values(cat({k1, k2}, 2)), {1, 2, 5, 4}))
        << (reversed ? ": the new tokens came first. Old tokens first: position j is row j" : "");
    EXPECT_TRUE(close("values after appending 3 then 2 tokens", v, values(cat({v1, v2}, 2)), {1, 2, 5, 4}));
  }
}

TEST(Mistakes, OffsetReadAfterTheAppend) {
  // L is the cache length BEFORE the new tokens go in. Read after the
  // append, L = T_all and every query sees every key, its future included.
  // In a prefill of 3 tokens, query 0 must see key 0 only.
  const Tensor q = rnd({1, 1, 3, 2}, 60), k = rnd({1, 1, 3, 2}, 61), v = rnd({1, 1, 3, 2}, 62);
  lesson05::KVCache cache(1);
  Tensor w;
  const Tensor out = lesson05::cached_attention(q, k, v, cache, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  const std::vector<double> weights = values(w);
  const bool saw_future = weights.size() == 9 && (weights[1] > 1e-6 || weights[2] > 1e-6);
  EXPECT_TRUE(close("prefill of 3 tokens", out, values(reference_attention(q, k, v)), {1, 1, 3, 2}))
      << (saw_future ? ": query 0 gave weight to keys 1 and 2, its future. The offset of a prefill "
                       "into an empty cache is 0: read L = cache.length(layer) before the append"
                     : "");
}

TEST(Mistakes, BytesPerTokenCountsOnlyK) {
  // K and V both take a row per token: 2 * layers * kv_heads * d * 4.
  const lesson05::DecoderConfig c{7, 32, 2, 32, 4, 2};
  const std::size_t got = lesson05::bytes_per_token(c);
  EXPECT_EQ(got, 256u) << "bytes_per_token for 2 layers, 2 K/V heads of d = 8"
                       << (got == 128 ? ": that is K alone. V is cached too: the factor 2" : "");
  // The same mistake in KVCache::bytes(): d = 4 for K, dv = 2 for V.
  lesson05::KVCache cache(1);
  cache.append(0, rnd({1, 2, 3, 4}, 63), rnd({1, 2, 3, 2}, 64));
  const std::size_t held = cache.bytes();
  EXPECT_EQ(held, (24u + 12u) * 4) << "KVCache::bytes() for 3 tokens, 2 heads, d = 4, dv = 2"
                                   << (held == 24 * 4 ? ": only the keys were counted, add the values"
                                                      : "");
}

TEST(Mistakes, BytesPerTokenCountsQueryHeads) {
  // GQA caches its kv_heads K/V heads; the query heads are never cached.
  const lesson05::DecoderConfig c{7, 32, 2, 32, 4, 1};  // MQA: 4 query heads, 1 K/V head
  const std::size_t got = lesson05::bytes_per_token(c);
  EXPECT_EQ(got, 128u) << "bytes_per_token for MQA (4 query heads, 1 K/V head of d = 8, 2 layers)"
                       << (got == 512 ? ": that is 4x too much, the MHA number. Count kv_heads "
                                        "(what the cache stores), not heads"
                                      : "");
}
