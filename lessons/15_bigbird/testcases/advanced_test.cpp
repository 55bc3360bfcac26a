// Chapter 15, advanced suite: the mask for many patterns and offsets
// against the rule written as loops, the pair-count formula against a count
// and against T (W + G + R B), attention and its gradients against a
// double-precision oracle under the same mask, gradcheck, scores near
// +-1000, causality, the memory of the block-sparse kernel measured from the
// allocator (below one T x T matrix, growing linearly), how random blocks
// shrink the number of hops between tokens, and a tiny GPT trained on your
// "student:bigbird" variant.
#include <gtest/gtest.h>

#include <algorithm>
#include <bitset>
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "bigbird_attention.h"
#include "bigbird_oracle.h"
#include "core/allocator.h"
#include "core/error.h"
#include "lesson_test.h"
#include "tiny_training.h"
#include "nn/gpt.h"

using namespace attn;
using lesson_test::close;
using lesson_test::TinyTraining;
using lesson_test::train_previous_token;

namespace {

lesson15::Pattern pattern(int64_t window, int64_t global, int64_t random, int64_t block, uint64_t seed = 0) {
  lesson15::Pattern p;
  p.window = window, p.global = global, p.random = random, p.block = block, p.seed = seed;
  return p;
}

Tensor rnd(const Shape& s, uint64_t seed, float scale = 1.0f) {
  return lesson_test::random_tensor(s, seed, scale);
}

struct Case {
  int64_t B, H, Tq, d, dv, offset;
  lesson15::Pattern p;
  const char* name;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
class MaskSweep : public ::testing::TestWithParam<Case> {};
class AttentionSweep : public ::testing::TestWithParam<Case> {};

const std::vector<Case> kCases = {
    {1, 1, 1, 2, 2, 0, pattern(1, 0, 1, 1, 3), "T1"},
    {1, 2, 16, 4, 3, 0, pattern(3, 2, 1, 2, 7), "readme_pattern"},
    {2, 3, 33, 4, 2, 0, pattern(4, 3, 2, 4, 1), "T33_last_block_short"},
    {1, 2, 40, 3, 3, 0, pattern(1, 0, 3, 1, 2), "blocks_of_one_token"},
    {1, 1, 24, 2, 2, 0, pattern(30, 1, 2, 4, 4), "window_longer_than_T"},
    {2, 2, 20, 4, 4, 0, pattern(2, 20, 1, 4, 5), "globals_everywhere"},
    {1, 3, 24, 4, 2, 0, pattern(5, 1, 99, 3, 6), "random_takes_every_candidate"},
    {1, 2, 7, 4, 3, 21, pattern(3, 2, 2, 4, 8), "after_cache_mid_block"},
    {2, 2, 1, 4, 2, 37, pattern(2, 1, 2, 4, 9), "decode_one_at_37"},
};

// Extra bytes the allocator handed out at the peak of f(), relative to
// before it ran. Whatever f returns is dropped inside (with its graph).
template <class F>
double peak_extra_bytes(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  { const Tensor out = f(); }
  return static_cast<double>(cpu_allocator().stats().peak - before);
}

}  // namespace

// ------------------------------------------------------- the mask vs rules

TEST_P(MaskSweep, MatchesTheRule) {
  const Case c = GetParam();
  const int64_t tk = c.offset + c.Tq;
  EXPECT_TRUE(oracle::mask_is(std::string(c.name) + ": bigbird_mask", lesson15::bigbird_mask(c.p, c.Tq, tk, c.offset),
                              oracle::mask(c.p, c.Tq, tk, c.offset), c.Tq, tk, c.offset));
}

INSTANTIATE_TEST_SUITE_P(Patterns, MaskSweep, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ counts

TEST(Counting, FormulaAgainstTheCount) {
  for (int64_t T : {1, 9, 40, 100})
    for (const lesson15::Pattern& p : {pattern(1, 0, 0, 1), pattern(3, 2, 1, 2, 7), pattern(8, 3, 2, 4, 1),
                                       pattern(5, 9, 3, 3, 2), pattern(20, 0, 4, 2, 3), pattern(2, 1, 50, 1, 4)}) {
      const int64_t counted = oracle::count(oracle::mask(p, T, T));
      EXPECT_EQ(lesson15::pair_count(p, T), counted)
          << "T = " << T << ", W = " << p.window << ", G = " << p.global << ", R = " << p.random
          << ", B = " << p.block << ": the formula against a count of the rule";
    }
}

TEST(Counting, DensityFallsAsTGrows) {
  // W = 32, G = 2, R = 2 blocks of 16: each query reads at most
  // W + G + R B = 66 keys, so the pairs stay below T (W + G + R B) and the
  // density (pairs / T^2) falls like 1 / T.
  const lesson15::Pattern p = pattern(32, 2, 2, 16, 0);
  double last = 1;
  for (int64_t T : {256, 1024, 4096}) {
    const int64_t pairs = lesson15::pair_count(p, T);
    const double density = double(pairs) / (double(T) * double(T));
    std::cout << "  T = " << T << ": " << pairs << " pairs, density " << density << " (causal "
              << double(T + 1) / (2.0 * T) << ")\n";
    EXPECT_LE(pairs, T * (32 + 2 + 2 * 16)) << "at T = " << T << " some query reads more than W + G + R B keys";
    EXPECT_GE(pairs, (T - 64) * (32 + 2 + 2 * 16)) << "at T = " << T << " the queries far from the start read W + G + R B keys each";
    EXPECT_LT(density, last) << "density must fall as T grows";
    last = density;
  }
  EXPECT_EQ(oracle::count(oracle::mask(p, 256, 256)), lesson15::pair_count(p, 256));
}

// ------------------------------------------------------ attention vs oracle

TEST_P(AttentionSweep, OutputAndGradientsMatchTheDoubleOracle) {
  const Case c = GetParam();
  const int64_t tk = c.offset + c.Tq;
  const Tensor q = rnd({c.B, c.H, c.Tq, c.d}, 100 + c.Tq).set_requires_grad(),
               k = rnd({c.B, c.H, tk, c.d}, 200 + tk).set_requires_grad(),
               v = rnd({c.B, c.H, tk, c.dv}, 300 + c.dv).set_requires_grad();
  const Tensor w = rnd({c.B, c.H, c.Tq, c.dv}, 400);
  const std::vector<double> dout = lesson_test::values(w);
  const oracle::Result want = oracle::attention(q, k, v, oracle::mask(c.p, c.Tq, tk, c.offset), &dout);
  const Tensor out = lesson15::bigbird_attention(q, k, v, c.p, c.offset);
  EXPECT_TRUE(close(std::string(c.name) + ": out", out, want.out, {c.B, c.H, c.Tq, c.dv}));
  sum(mul(out, w)).backward();
  ASSERT_TRUE(q.grad().defined() && k.grad().defined() && v.grad().defined())
      << "q/k/v.grad undefined after backward(): build the output from autograd ops";
  EXPECT_TRUE(close(std::string(c.name) + ": q.grad", q.grad(), want.dq, q.shape()));
  EXPECT_TRUE(close(std::string(c.name) + ": k.grad", k.grad(), want.dk, k.shape()));
  EXPECT_TRUE(close(std::string(c.name) + ": v.grad", v.grad(), want.dv, v.shape()));
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionSweep, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(Gradients, Gradcheck) {
  const lesson15::Pattern p = pattern(2, 1, 1, 2, 3);
  const Tensor q = rnd({1, 2, 10, 3}, 420).set_requires_grad(), k = rnd({1, 2, 10, 3}, 421).set_requires_grad(),
               v = rnd({1, 2, 10, 2}, 422).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [&p](const std::vector<Tensor>& in) { return lesson15::bigbird_attention(in[0], in[1], in[2], p); }, {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through bigbird_attention (0 = q, 1 = k, 2 = v):\n" << r.message;
}

// ------------------------------------------------------------- stability

TEST(Stability, ScoresNearPlusAndMinus1000) {
  const lesson15::Pattern p = pattern(3, 2, 1, 2, 7);
  const float c = std::sqrt(2000.0f);  // q.k / sqrt(4) ~ +-1000
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> qv = rnd({1, 2, 16, 4}, 440).to_vector(), kv = rnd({1, 2, 16, 4}, 441).to_vector();
    for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = sign * c;
    for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
    const Tensor q = from_vector(qv, {1, 2, 16, 4}), k = from_vector(kv, {1, 2, 16, 4}), v = rnd({1, 2, 16, 3}, 442);
    EXPECT_TRUE(close(sign > 0 ? "scores near +1000" : "scores near -1000", lesson15::bigbird_attention(q, k, v, p),
                      oracle::attention(q, k, v, oracle::mask(p, 16, 16)).out, {1, 2, 16, 3}, 1e-3))
        << "(NaN or inf: exp() overflowed; let softmax subtract the row max)";
  }
}

// ------------------------------------------------------------- causality

TEST(Causality, FutureKeysDoNotMatter) {
  // Tokens 13..23 change; outputs 0..12 must not. Position 13 is the second
  // token of block 6 (blocks of 2): query 12 shares its block, so a kernel
  // that forgets j <= p inside the block reads it.
  const lesson15::Pattern p = pattern(3, 2, 2, 2, 1);
  const int64_t T = 24, cut = 13;
  const Tensor q = rnd({1, 2, T, 4}, 450), k = rnd({1, 2, T, 4}, 451), v = rnd({1, 2, T, 3}, 452);
  std::vector<bool> fut(T);
  for (int64_t t = cut; t < T; ++t) fut[t] = true;
  const Tensor future = from_bools(fut, {1, 1, T, 1});
  const Tensor k2 = where(future, rnd({1, 2, T, 4}, 453, 5.0f), k), v2 = where(future, rnd({1, 2, T, 3}, 454, 5.0f), v);
  EXPECT_TRUE(close("tokens 0..12 after changing tokens 13..23",
                    contiguous(narrow(lesson15::bigbird_attention(q, k2, v2, p), 2, 0, cut)),
                    contiguous(narrow(lesson15::bigbird_attention(q, k, v, p), 2, 0, cut)), 1e-6))
      << "a token must not read keys after it, not even inside its own block: mask with j <= p";
}

// ------------------------------------------------------------------ memory

TEST(Memory, TheBlockKernelNeverHoldsATxTMatrix) {
  // T = 2048, blocks of 16, W = 16, G = 16, R = 2: each block scores at most
  // 16 x (16 + 16 + 15 + 32) keys. With the graph kept for backward, all
  // blocks together hold a few T x 79 matrices, far below one T x T.
  const int64_t T = 2048;
  const lesson15::Pattern p = pattern(16, 16, 2, 16, 0);
  const Tensor q = rnd({1, 1, T, 8}, 84).set_requires_grad(), k = rnd({1, 1, T, 8}, 85).set_requires_grad(),
               v = rnd({1, 1, T, 8}, 86).set_requires_grad();
  const double txt = double(T) * T * 4;  // one T x T float matrix: 16 MiB
  const double with_graph = peak_extra_bytes([&] { return lesson15::bigbird_attention(q, k, v, p); });
  std::cout << "  T = 2048: peak " << with_graph / 1048576.0 << " MiB with the graph, one T x T matrix is "
            << txt / 1048576.0 << " MiB\n";
  EXPECT_LT(with_graph, txt / 4) << "bigbird_attention at T = 2048 peaked at " << with_graph
                                 << " extra bytes; one T x T float matrix is " << txt
                                 << ". Score each query block against its gathered keys only";
  NoGradGuard no_grad;
  const double without_graph = peak_extra_bytes([&] { return lesson15::bigbird_attention(q, k, v, p); });
  std::cout << "  T = 2048: peak " << without_graph / 1048576.0 << " MiB without a graph\n";
  EXPECT_LT(without_graph, txt / 16) << "without a graph bigbird_attention peaked at " << without_graph
                                     << " extra bytes at T = 2048";
}

TEST(Memory, GrowsLinearlyInT) {
  const lesson15::Pattern p = pattern(16, 16, 2, 16, 0);
  auto bytes_at = [&](int64_t T) {
    const Tensor q = rnd({1, 1, T, 8}, 87).set_requires_grad(), k = rnd({1, 1, T, 8}, 88).set_requires_grad(),
                 v = rnd({1, 1, T, 8}, 89).set_requires_grad();
    return peak_extra_bytes([&] { return lesson15::bigbird_attention(q, k, v, p); });
  };
  const double m1 = bytes_at(1024), m2 = bytes_at(2048);
  std::cout << "  peak " << m1 / 1048576.0 << " MiB at T = 1024, " << m2 / 1048576.0 << " MiB at T = 2048\n";
  EXPECT_LT(m2 / m1, 2.6) << "memory went from " << m1 << " B at T = 1024 to " << m2 << " B at T = 2048 (x"
                          << m2 / m1 << "); O(T (W + G + R B)) means about x2";
}

// ---------------------------------------------------------------- hops

TEST(Reach, RandomBlocksShrinkTheHopCount) {
  // Layers needed before every key j <= p has reached every query p, with
  // the pattern as the graph of one layer. A window of 4 alone needs
  // (T - 1) / 3 hops; random blocks give long jumps and cut that sharply.
  const int64_t T = 256;
  auto hops = [&](const lesson15::Pattern& p) {
    const std::vector<int64_t> f = lesson15::bigbird_mask(p, T, T).to_int_vector();
    std::vector<std::bitset<256>> one(T), reach(T);
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = 0; j < T; ++j) one[i][j] = f[i * T + j] != 0;
    reach = one;
    for (int64_t h = 1; h <= T; ++h) {
      bool all = true;
      for (int64_t i = 0; i < T && all; ++i) all = reach[i].count() == static_cast<size_t>(i + 1);
      if (all) return h;
      std::vector<std::bitset<256>> next(T);
      for (int64_t i = 0; i < T; ++i)
        for (int64_t m = 0; m < T; ++m)
          if (one[i][m]) next[i] |= reach[m];
      reach = next;
    }
    return int64_t{-1};
  };
  const int64_t window_only = hops(pattern(4, 0, 0, 4)), with_random = hops(pattern(4, 0, 2, 4, 1));
  std::cout << "  T = 256, W = 4: " << window_only << " hops with the window alone, " << with_random
            << " with 2 random blocks of 4 per query block\n";
  EXPECT_EQ(window_only, 85) << "a window of 4 moves information 3 positions per hop: ceil(255 / 3)";
  EXPECT_GT(with_random, 0) << "with random blocks some query never hears of some earlier key";
  EXPECT_LE(with_random, window_only / 4) << "2 random blocks per query block should cut the hops by far";
}

// ---------------------------------------------------------------- training

TEST(Training, YourBigBirdTrainsATinyGPT) {
  // "Repeat the previous token": the previous token is always in a window
  // of 2, so the loss falls when the kernel lets each query read it.
  const TinyTraining t = train_previous_token("student:bigbird:window=2,global=1,random=1,block=2", 2, 16);
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with working attention it more than halves";
}
