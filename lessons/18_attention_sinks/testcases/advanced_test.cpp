// Chapter 18, advanced suite: long streams in chunks against a
// double-precision loop oracle that attends over exactly the kept tokens
// with RoPE at cache positions; gradcheck through the queries; huge scores;
// what an evicted token and a sink can still change; memory measured by the
// allocator, flat from N to 4N tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/positions.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "lesson_test.h"
#include "sink_cache.h"

using namespace attn;
using namespace lesson_test;
using lesson18::SinkCache;

namespace {

// The stream tokens kept after `seen` tokens: all while they fit, else the
// first `sinks` and the last `window`.
std::vector<int64_t> kept_after(int64_t seen, int64_t sinks, int64_t window) {
  std::vector<int64_t> kept;
  for (int64_t t = 0; t < seen; ++t)
    if (seen <= sinks + window || t < sinks || t >= seen - window) kept.push_back(t);
  return kept;
}

// Rotates the pair (x[i], x[i + d/2]) of a d-vector by pos * base^(-2i/d).
std::vector<double> rotate(const float* x, int64_t d, int64_t pos) {
  std::vector<double> r(d);
  for (int64_t i = 0; i < d / 2; ++i) {
    const double a = static_cast<double>(pos) * std::pow(10000.0, -2.0 * i / d);
    r[i] = x[i] * std::cos(a) - x[i + d / 2] * std::sin(a);
    r[i + d / 2] = x[i] * std::sin(a) + x[i + d / 2] * std::cos(a);
  }
  return r;
}

// Output of stream tokens first..first+n-1 (their queries in q, the whole
// stream's k and v [B, H, T, d]) after they were appended as one chunk:
// query of stream token s attends to the kept tokens up to s, each rotated
// by its index among the kept (its cache position). Plain loops in double.
std::vector<double> oracle(const Tensor& q, const Tensor& k, const Tensor& v, int64_t first, int64_t n,
                           int64_t sinks, int64_t window) {
  const int64_t B = k.shape()[0], H = k.shape()[1], T = k.shape()[2], d = k.shape()[3];
  const std::vector<float> qv = q.contiguous().to_vector(), kv = k.to_vector(), vv = v.to_vector();
  const std::vector<int64_t> kept = kept_after(first + n, sinks, window);
  const int64_t m = static_cast<int64_t>(kept.size());
  std::vector<double> out(B * H * n * d, 0.0);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot_of_query = m - n + i;
      const std::vector<double> qr = rotate(&qv[(bh * n + i) * d], d, slot_of_query);
      std::vector<double> s;
      for (int64_t j = 0; j <= slot_of_query; ++j) {
        const std::vector<double> kr = rotate(&kv[(bh * T + kept[j]) * d], d, j);
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += qr[e] * kr[e];
        s.push_back(dot / std::sqrt(static_cast<double>(d)));
      }
      const double top = *std::max_element(s.begin(), s.end());
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - top));
      for (int64_t j = 0; j <= slot_of_query; ++j)
        for (int64_t e = 0; e < d; ++e) out[(bh * n + i) * d + e] += s[j] / z * vv[(bh * T + kept[j]) * d + e];
    }
  return out;
}

struct Stream {
  int64_t B, H, d, sinks, window;
  std::vector<int64_t> chunks;  // tokens appended per step
};

}  // namespace

// ------------------------------------------------------------------ oracle

TEST(Oracle, LongStreamsInChunksOverExactlyTheKeptTokens) {
  const std::vector<Stream> streams = {
      {1, 1, 2, 1, 2, {1, 1, 1, 1, 1, 1, 1, 1}},
      {2, 3, 4, 2, 5, {5, 1, 1, 1, 2, 3, 1, 1, 4, 1, 1, 1, 1}},
      {1, 2, 8, 4, 4, {4, 4, 1, 1, 1, 1, 1, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1}},
      {1, 2, 6, 0, 3, {3, 1, 2, 1, 1, 1, 1, 1}},  // no sinks: a plain sliding window
      {2, 1, 4, 3, 1, {1, 1, 1, 1, 1, 1, 1, 1}},  // a window of one token
  };
  uint64_t seed = 100;
  for (const Stream& s : streams) {
    int64_t T = 0;
    for (int64_t c : s.chunks) T += c;
    const Tensor q = random_tensor({s.B, s.H, T, s.d}, seed++), k = random_tensor({s.B, s.H, T, s.d}, seed++),
                 v = random_tensor({s.B, s.H, T, s.d}, seed++);
    SinkCache cache(s.sinks, s.window);
    int64_t at = 0;
    for (int64_t c : s.chunks) {
      cache.append(narrow(k, 2, at, c), narrow(v, 2, at, c));
      const std::string what = "sinks " + std::to_string(s.sinks) + ", window " + std::to_string(s.window) +
                               ", d " + std::to_string(s.d) + ": tokens " + std::to_string(at) + ".." +
                               std::to_string(at + c - 1);
      ASSERT_TRUE(close(what, lesson18::sink_attention(narrow(q, 2, at, c), cache),
                        oracle(narrow(q, 2, at, c), k, v, at, c, s.sinks, s.window), {s.B, s.H, c, s.d}));
      at += c;
    }
  }
}

TEST(Oracle, HugeScoresStayFinite) {
  // Scores near +-1000 after the stream rolled: a softmax without the max
  // subtracted overflows.
  const Tensor q = random_tensor({1, 2, 12, 4}, 7, 30.0f), k = random_tensor({1, 2, 12, 4}, 8, 30.0f),
               v = random_tensor({1, 2, 12, 4}, 9);
  SinkCache cache(2, 3);
  for (int64_t t = 0; t < 12; ++t) cache.append(narrow(k, 2, t, 1), narrow(v, 2, t, 1));
  EXPECT_TRUE(close("token 11 with scores near +-1000", lesson18::sink_attention(narrow(q, 2, 11, 1), cache),
                    oracle(narrow(q, 2, 11, 1), k, v, 11, 1, 2, 3), {1, 2, 1, 4}, 1e-3));
}

TEST(Gradcheck, ThroughTheQueriesAfterTheCacheRolled) {
  // The cache holds values; the queries carry the graph (a model decoding
  // under training would need it): rotation, scores and softmax backward.
  SinkCache cache(1, 3);
  for (int64_t t = 0; t < 7; ++t) cache.append(random_tensor({1, 2, 1, 4}, 50 + t), random_tensor({1, 2, 1, 4}, 60 + t));
  const Tensor q = random_tensor({1, 2, 2, 4}, 70).set_requires_grad();
  // The last two tokens' queries (cache positions 2 and 3).
  const GradcheckResult r = gradcheck([&cache](const auto& in) { return lesson18::sink_attention(in[0], cache); }, {q});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Oracle, WithoutSinksRenumberingChangesNothing) {
  // Sinks 0: the cache is a sliding window of the last W tokens. RoPE sees
  // only distances, and a window without a gap keeps them, so cache
  // positions give the same outputs as stream positions: windowed causal
  // attention with RoPE at 0..T-1 over the whole sequence.
  const int64_t T = 16, W = 5, d = 4;
  const Tensor q = random_tensor({1, 2, T, d}, 111), k = random_tensor({1, 2, T, d}, 112), v = random_tensor({1, 2, T, d}, 113);
  const RopeTables r = rope_tables(T, d, 0, 10000.0f, 1.0f, Device::cpu());
  std::vector<bool> band;
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j) band.push_back(j <= i && j > i - W);
  const Tensor whole = scaled_dot_product_attention(apply_rope(q, r), apply_rope(k, r), v, from_bools(band, {T, T}),
                                                    1.0f / std::sqrt(float(d)));
  SinkCache cache(0, W);
  for (int64_t t = 0; t < T; ++t) {
    cache.append(narrow(k, 2, t, 1), narrow(v, 2, t, 1));
    ASSERT_TRUE(close("token " + std::to_string(t) + " (sinks 0, window 5)",
                      lesson18::sink_attention(narrow(q, 2, t, 1), cache), narrow(whole, 2, t, 1)));
  }
}

TEST(Causality, ALaterTokenOfAChunkChangesNoEarlierOutput) {
  // A chunk of 3 after the cache rolled: the first two outputs must not
  // depend on the third token's key and value.
  const Tensor q = random_tensor({1, 2, 3, 4}, 121);
  auto chunk_output = [&q](uint64_t last_seed) {
    SinkCache cache(2, 4);
    for (int64_t t = 0; t < 9; ++t) cache.append(random_tensor({1, 2, 1, 4}, 130 + t), random_tensor({1, 2, 1, 4}, 150 + t));
    const Tensor k = cat({random_tensor({1, 2, 2, 4}, 170), random_tensor({1, 2, 1, 4}, last_seed)}, 2);
    const Tensor v = cat({random_tensor({1, 2, 2, 4}, 171), random_tensor({1, 2, 1, 4}, last_seed + 1)}, 2);
    cache.append(k, v);
    return narrow(lesson18::sink_attention(q, cache), 2, 0, 2);
  };
  EXPECT_TRUE(close("the chunk's first two outputs with another third token", chunk_output(180), chunk_output(190)))
      << "query i of a chunk sees slots 0 .. kept - Tq + i: mask the chunk's later tokens";
}

// ------------------------------------------------------------------ what still matters

TEST(Eviction, AnEvictedTokenChangesNothingASinkAlwaysDoes) {
  // Sinks 1, window 3, 10 tokens: token 4 is gone when token 9 reads, token
  // 0 is not. Changing token 4's key and value leaves token 9's output alone;
  // changing token 0's moves it.
  const Tensor q = random_tensor({1, 2, 10, 4}, 81), k = random_tensor({1, 2, 10, 4}, 82), v = random_tensor({1, 2, 10, 4}, 83);
  auto last_output = [&q](const Tensor& kk, const Tensor& vv) {
    SinkCache cache(1, 3);
    for (int64_t t = 0; t < 10; ++t) cache.append(narrow(kk, 2, t, 1), narrow(vv, 2, t, 1));
    return lesson18::sink_attention(narrow(q, 2, 9, 1), cache).to_vector();
  };
  auto with_token_changed = [](const Tensor& x, int64_t t, uint64_t seed) {
    std::vector<bool> at(10, false);
    at[t] = true;
    return where(from_bools(at, {1, 1, 10, 1}), random_tensor({1, 2, 10, 4}, seed), x);
  };
  const std::vector<float> base = last_output(k, v);
  const std::vector<float> evicted = last_output(with_token_changed(k, 4, 90), with_token_changed(v, 4, 91));
  const std::vector<float> sink = last_output(with_token_changed(k, 0, 92), with_token_changed(v, 0, 93));
  double moved = 0;
  for (std::size_t i = 0; i < base.size(); ++i) {
    ASSERT_NEAR(base[i], evicted[i], 1e-6) << "token 9 changed when only the evicted token 4 changed";
    moved += std::fabs(base[i] - sink[i]);
  }
  EXPECT_GT(moved, 1e-4) << "token 9 must still read the sink, token 0";
}

// ------------------------------------------------------------------ memory

TEST(Memory, FlatFromNTo4NTokensMeasuredByTheAllocator) {
  // Sinks 4, window 12, 2 heads of d = 8, one token per step with its
  // attention. Live bytes after N = 64 and after 4N = 256 tokens are the
  // same, and the peak of steps N..4N is no higher than that of steps 0..N.
  NoGradGuard no_grad;
  SinkCache cache(4, 12);
  auto step = [&cache](int64_t t) {
    cache.append(random_tensor({1, 2, 1, 8}, 1000 + t), random_tensor({1, 2, 1, 8}, 2000 + t));
    lesson18::sink_attention(random_tensor({1, 2, 1, 8}, 3000 + t), cache);
  };
  cpu_allocator().reset_peak();
  const std::size_t before = cpu_allocator().stats().current;
  for (int64_t t = 0; t < 64; ++t) step(t);
  const std::size_t live_n = cpu_allocator().stats().current - before, peak_n = cpu_allocator().stats().peak;
  cpu_allocator().reset_peak();
  for (int64_t t = 64; t < 256; ++t) step(t);
  const std::size_t live_4n = cpu_allocator().stats().current - before, peak_4n = cpu_allocator().stats().peak;
  // 16 slots x 2 heads x 8 floats x 2 (K and V) x 4 bytes.
  EXPECT_EQ(cache.bytes(), 16u * 2u * 8u * 2u * 4u) << "the cache holds sinks + window tokens";
  EXPECT_EQ(live_4n, live_n) << "live bytes grew from " << live_n << " after 64 tokens to " << live_4n
                             << " after 256: something keeps old tokens (or views of them) alive";
  EXPECT_LE(peak_4n, peak_n) << "the peak of steps 64..255 (" << peak_4n << " B) is above that of steps 0..63 ("
                             << peak_n << " B): the working memory grows with the stream";
}
