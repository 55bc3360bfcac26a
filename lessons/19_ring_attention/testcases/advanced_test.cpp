// Chapter 19, advanced suite: random shapes, rank counts and splits against
// a double-precision loop oracle, gradcheck through the simulated ring, the
// work of each rank (contiguous r + 1 pairs, zigzag 2N + 1 on every rank),
// the online softmax with huge scores that rise around the ring, causality
// across ranks, the same ring on CUDA tensors (where a GPU exists), and a
// tiny GPT trained on your ring through "student:ring".
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "lesson_test.h"
#include "ring_attention.h"
#include "ring_oracle.h"
#include "tiny_training.h"

using namespace attn;
using namespace lesson_test;
using lesson19::Fold;
using lesson19::Split;

namespace {

struct Case {
  int64_t B, H, T, d;
  int ranks;
  Split split;
  bool causal;
};

std::string describe(const Case& c) {
  return "B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " T=" + std::to_string(c.T) +
         " d=" + std::to_string(c.d) + " on " + std::to_string(c.ranks) + " ranks, " +
         ring_oracle::split_name(c.split) + (c.causal ? ", causal" : ", not causal");
}

// The folds of a ring with T tokens, causal, d = 1 (the work does not depend on the values).
std::vector<Fold> log_of(int64_t T, int ranks, Split split, bool causal) {
  std::vector<Fold> log;
  const Tensor x = random_tensor({1, 1, T, 1}, 7);
  lesson19::ring_attention_simulated(x, x, x, ranks, split, causal, &log);
  return log;
}

}  // namespace

// ------------------------------------------------------------------ sweeps

TEST(Oracle, RandomShapesRanksAndSplits) {
  const std::vector<Case> cases = {
      {1, 1, 1, 3, 1, Split::Contiguous, true},  {1, 1, 2, 1, 1, Split::Zigzag, true},
      {2, 3, 7, 5, 3, Split::Contiguous, true},  {1, 2, 13, 4, 3, Split::Zigzag, true},
      {2, 1, 10, 8, 5, Split::Zigzag, false},    {1, 4, 9, 2, 4, Split::Contiguous, false},
      {3, 2, 17, 3, 6, Split::Contiguous, true}, {1, 3, 12, 6, 6, Split::Zigzag, true},
      {2, 2, 5, 4, 2, Split::Zigzag, true},      {1, 1, 31, 4, 7, Split::Zigzag, true},
  };
  uint64_t seed = 200;
  for (const Case& c : cases) {
    const Tensor q = random_tensor({c.B, c.H, c.T, c.d}, seed++), k = random_tensor({c.B, c.H, c.T, c.d}, seed++),
                 v = random_tensor({c.B, c.H, c.T, c.d}, seed++);
    EXPECT_TRUE(close(describe(c), lesson19::ring_attention_simulated(q, k, v, c.ranks, c.split, c.causal),
                      ring_oracle::attention(q.to_vector(), k.to_vector(), v.to_vector(), c.B * c.H, c.T, c.d,
                                             c.causal),
                      {c.B, c.H, c.T, c.d}));
  }
}

TEST(Gradcheck, ThroughTheSimulatedRing) {
  // Uneven lengths: 7 tokens as 6 zigzag pieces of 2, 1, 1, 1, 1, 1 over 3 ranks; 5 tokens over 2 ranks.
  for (const Case& c : {Case{1, 2, 7, 3, 3, Split::Zigzag, true}, Case{1, 1, 5, 2, 2, Split::Contiguous, false}}) {
    const Tensor q = random_tensor({c.B, c.H, c.T, c.d}, 31).set_requires_grad();
    const Tensor k = random_tensor({c.B, c.H, c.T, c.d}, 32).set_requires_grad();
    const Tensor v = random_tensor({c.B, c.H, c.T, c.d}, 33).set_requires_grad();
    const GradcheckResult r = gradcheck(
        [c](const auto& in) {
          return lesson19::ring_attention_simulated(in[0], in[1], in[2], c.ranks, c.split, c.causal);
        },
        {q, k, v});
    EXPECT_TRUE(r.ok) << describe(c) << ": " << r.message;
  }
}

// ------------------------------------------------------------------ work per rank

TEST(Work, ContiguousRankRFoldsRPlusOnePairs) {
  // Causal and in order: rank r's queries see the blocks of ranks 0 .. r.
  for (int n = 1; n <= 5; ++n) {
    std::vector<int64_t> want;
    for (int r = 0; r < n; ++r) want.push_back(r + 1);
    EXPECT_EQ(lesson19::pairs_per_rank(log_of(4 * n + 1, n, Split::Contiguous, true), n), want)
        << "contiguous, causal, " << n << " ranks: rank r folds r + 1 blocks, the last rank N";
    EXPECT_EQ(lesson19::pairs_per_rank(log_of(4 * n + 1, n, Split::Contiguous, false), n), std::vector<int64_t>(n, n))
        << "contiguous, not causal, " << n << " ranks: every rank folds all N blocks";
  }
}

TEST(Work, ZigzagGivesEveryRankTwoNPlusOnePairs) {
  // Query piece r sees pieces 0 .. r (r + 1 pairs), query piece 2N - 1 - r
  // sees pieces 0 .. 2N - 1 - r (2N - r pairs): 2N + 1 of the 4N pairs.
  for (int n = 1; n <= 5; ++n) {
    EXPECT_EQ(lesson19::pairs_per_rank(log_of(4 * n + 3, n, Split::Zigzag, true), n),
              std::vector<int64_t>(n, 2 * n + 1))
        << "zigzag, causal, " << n << " ranks";
    EXPECT_EQ(lesson19::pairs_per_rank(log_of(4 * n + 3, n, Split::Zigzag, false), n), std::vector<int64_t>(n, 4 * n))
        << "zigzag, not causal, " << n << " ranks: 2 query pieces x 2 key pieces x N steps";
  }
}

TEST(Work, ZigzagBalancesTheScoredEntries) {
  // What a rank really computes: query x key entries of the pairs it folds.
  // T = 64 over 4 ranks. Contiguous: r + 1 blocks of 16 x 16 (the diagonal
  // is computed whole, then masked). Zigzag: 2N + 1 = 9 pairs of 8 x 8
  // pieces on every rank. The total is about the same; its spread is not.
  auto entries = [](const std::vector<Fold>& log, int ranks) {
    std::vector<int64_t> n(ranks, 0);
    for (const Fold& f : log) n[f.rank] += f.queries.length() * f.keys.length();
    return n;
  };
  const std::vector<int64_t> contiguous = entries(log_of(64, 4, Split::Contiguous, true), 4);
  const std::vector<int64_t> zigzag = entries(log_of(64, 4, Split::Zigzag, true), 4);
  EXPECT_EQ(contiguous, (std::vector<int64_t>{256, 512, 768, 1024})) << "contiguous: (r + 1) blocks of 16 x 16";
  EXPECT_EQ(zigzag, std::vector<int64_t>(4, 9 * 64)) << "zigzag: 2N + 1 = 9 pairs of 8 x 8 pieces on every rank";
}

TEST(Work, NoFoldIsWhollyInTheFutureAndEveryDiagonalIsFolded) {
  for (Split split : {Split::Contiguous, Split::Zigzag}) {
    const std::vector<Fold> log = log_of(23, 3, split, true);
    int diagonals = 0;
    for (const Fold& f : log) {
      EXPECT_LE(f.keys.begin, f.queries.end - 1)
          << ring_oracle::split_name(split) << ": rank " << f.rank << " folded keys [" << f.keys.begin << ", "
          << f.keys.end << ") into queries [" << f.queries.begin << ", " << f.queries.end
          << "): every key is in their future, the pair must be skipped";
      diagonals += f.keys == f.queries ? 1 : 0;
    }
    EXPECT_EQ(diagonals, split == Split::Zigzag ? 6 : 3)
        << ring_oracle::split_name(split) << ": each query chunk meets itself once (its causal triangle)";
  }
}

// ------------------------------------------------------------------ stability

TEST(Stability, HugeScoresThatRiseAroundTheRing) {
  // Keys grow along the sequence, so the largest score of every query row
  // rises with each block that arrives (scores up to about 2000): the
  // running sums must be rescaled at every step, never exp() of a score.
  const int64_t T = 16, d = 4;
  const Tensor q = random_tensor({1, 2, T, d}, 61, 10.0f);
  std::vector<float> growth;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < d; ++e) growth.push_back(1.0f + 3.0f * static_cast<float>(t));
  const Tensor k = mul(random_tensor({1, 2, T, d}, 62, 10.0f), from_vector(growth, {1, 1, T, d}));
  const Tensor v = random_tensor({1, 2, T, d}, 63);
  for (Split split : {Split::Contiguous, Split::Zigzag})
    for (bool causal : {true, false}) {
      const Tensor out = lesson19::ring_attention_simulated(q, k, v, 4, split, causal);
      EXPECT_TRUE(close("scores up to ~2000, " + ring_oracle::split_name(split) + (causal ? ", causal" : ""), out,
                        ring_oracle::attention(q.to_vector(), k.to_vector(), v.to_vector(), 2, T, d, causal),
                        {1, 2, T, d}, 1e-3));
    }
}

// ------------------------------------------------------------------ causality

TEST(Causality, LaterTokensOnOtherRanksChangeNothing) {
  // Changing tokens 9..11 must leave outputs 0..8 alone, on whichever rank
  // those queries live (with zigzag, tokens 0..1 share a rank with 10..11).
  const Tensor q = random_tensor({1, 2, 12, 3}, 71), k = random_tensor({1, 2, 12, 3}, 72),
               v = random_tensor({1, 2, 12, 3}, 73);
  const Tensor k2 = cat({narrow(k, 2, 0, 9), random_tensor({1, 2, 3, 3}, 74)}, 2);
  const Tensor v2 = cat({narrow(v, 2, 0, 9), random_tensor({1, 2, 3, 3}, 75)}, 2);
  for (Split split : {Split::Contiguous, Split::Zigzag}) {
    const Tensor a = lesson19::ring_attention_simulated(q, k, v, 3, split, true);
    const Tensor b = lesson19::ring_attention_simulated(q, k2, v2, 3, split, true);
    EXPECT_TRUE(close(ring_oracle::split_name(split) + ": outputs 0..8 after changing keys and values 9..11",
                      narrow(b, 2, 0, 9), narrow(a, 2, 0, 9), 1e-6));
  }
}

// ------------------------------------------------------------------ devices

TEST(GpuParity, RingOnCudaTensors) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  EXPECT_TRUE(same_on_both_devices(
      "ring over 3 ranks, zigzag, causal (T = 11)",
      [](const std::vector<Tensor>& in) {
        return lesson19::ring_attention_simulated(in[0], in[1], in[2], 3, Split::Zigzag, true);
      },
      {random_tensor({2, 2, 11, 4}, 81), random_tensor({2, 2, 11, 4}, 82), random_tensor({2, 2, 11, 4}, 83)},
      {"q", "k", "v"}));
}

// ------------------------------------------------------------------ training

TEST(Training, YourRingTrainsATinyGPT) {
  // "student:ring" is the library's multi-head module running your
  // ring_attention_simulated, causal, over 4 simulated ranks with the zigzag
  // split: blocks of 8 tokens become 8 pieces of one token.
  const TinyTraining t = train_previous_token("student:ring:ranks=4");
  ASSERT_TRUE(std::isfinite(t.first_loss) && std::isfinite(t.last_loss)) << "the loss became NaN or inf";
  EXPECT_LT(t.last_loss, 0.5f * t.first_loss) << "the loss went from " << t.first_loss << " to " << t.last_loss
                                              << " in 60 steps";
}
