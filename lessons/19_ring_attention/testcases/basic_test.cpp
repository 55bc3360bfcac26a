// Chapter 19, basic suite: the split rule by hand (uneven lengths too),
// which chunk pairs meet and their masks, one fold against a double loop,
// the README's worked example, the ring against plain softmax attention for
// 1 to 4 ranks, the ring's direction, and the classic mistakes. Each
// Mistakes test writes the wrong version as a small function, shows that
// the suite's check catches it, then runs the same check on your code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/ops.h"
#include "lesson_test.h"
#include "ring_attention.h"
#include "ring_oracle.h"

using namespace attn;
using namespace lesson_test;
using lesson19::Chunk;
using lesson19::Fold;
using lesson19::RunningSoftmax;
using lesson19::Shard;
using lesson19::Split;

namespace {

std::string chunks_str(const Shard& s) {
  std::string out = "{";
  for (const Chunk& c : s.chunks)
    out += (out.size() > 1 ? ", [" : "[") + std::to_string(c.begin) + ", " + std::to_string(c.end) + ")";
  return out + "}";
}

::testing::AssertionResult holds(const Shard& got, const std::vector<Chunk>& want, const std::string& what) {
  if (got.chunks == want) return ::testing::AssertionSuccess();
  Shard w;
  w.chunks = want;
  return ::testing::AssertionFailure() << what << ": expected " << chunks_str(w) << ", got " << chunks_str(got);
}

// ---- the fold's check: the state after folding blocks one by one equals
// m, l, acc computed over all their keys at once, in double.

using FoldFn = std::function<void(RunningSoftmax&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, float)>;

struct Block {
  Tensor k, v, hidden;  // hidden: [nq, nk] bool or undefined
};

::testing::AssertionResult folds_match_oracle(const FoldFn& fold, const Tensor& q, const std::vector<Block>& blocks,
                                              float scale, const std::string& what) {
  RunningSoftmax state;
  for (const Block& b : blocks) fold(state, q, b.k, b.v, b.hidden, scale);
  const int64_t BH = q.size(0) * q.size(1), nq = q.size(2), d = q.size(3);
  std::vector<double> m(BH * nq, -INFINITY), l(BH * nq, 0), acc(BH * nq * d, 0);
  const std::vector<float> qv = q.to_vector();
  auto scores_of = [&](const Block& b, int64_t bh, int64_t i) {
    const std::vector<float> kv = b.k.to_vector();
    const std::vector<float> hidden = b.hidden.defined() ? b.hidden.to_vector() : std::vector<float>();
    const int64_t nk = b.k.size(2);
    std::vector<double> s(nk, -INFINITY);
    for (int64_t j = 0; j < nk; ++j) {
      if (!hidden.empty() && hidden[i * nk + j] != 0) continue;
      double dot = 0;
      for (int64_t e = 0; e < d; ++e) dot += double(qv[(bh * nq + i) * d + e]) * kv[(bh * nk + j) * d + e];
      s[j] = scale * dot;
    }
    return s;
  };
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t i = 0; i < nq; ++i) {
      for (const Block& b : blocks)
        for (double s : scores_of(b, bh, i)) m[bh * nq + i] = std::max(m[bh * nq + i], s);
      for (const Block& b : blocks) {
        const std::vector<float> vv = b.v.to_vector();
        const std::vector<double> s = scores_of(b, bh, i);
        const int64_t nk = b.k.size(2);
        for (int64_t j = 0; j < nk; ++j) {
          const double p = std::exp(s[j] - m[bh * nq + i]);
          l[bh * nq + i] += p;
          for (int64_t e = 0; e < d; ++e) acc[(bh * nq + i) * d + e] += p * vv[(bh * nk + j) * d + e];
        }
      }
    }
  std::vector<double> out(acc.size());
  for (std::size_t x = 0; x < acc.size(); ++x) out[x] = acc[x] / l[x / d];
  const Shape row{q.size(0), q.size(1), nq, 1};
  const Tensor output = state.acc.defined() && state.l.defined() ? div(state.acc, state.l) : Tensor();
  for (const ::testing::AssertionResult& r :
       {close(what + ": m", state.m, m, row), close(what + ": l", state.l, l, row),
        close(what + ": acc", state.acc, acc, q.shape()), close(what + ": acc / l", output, out, q.shape())})
    if (!r) return r;
  return ::testing::AssertionSuccess();
}

// Three blocks whose largest score rises, then falls: a fold that forgets
// to rescale, or rescales by the wrong max, is caught by one or the other.
struct ThreeBlocks {
  Tensor q = random_tensor({1, 2, 3, 4}, 1);
  std::vector<Block> blocks = {
      {random_tensor({1, 2, 2, 4}, 2), random_tensor({1, 2, 2, 4}, 3), Tensor()},
      {random_tensor({1, 2, 3, 4}, 4, 4.0f), random_tensor({1, 2, 3, 4}, 5),
       from_bools({false, true, true, false, false, true, false, false, false}, {3, 3})},
      {random_tensor({1, 2, 2, 4}, 6, 0.3f), random_tensor({1, 2, 2, 4}, 7), Tensor()},
  };
};

::testing::AssertionResult fold_is_right(const FoldFn& fold) {
  const ThreeBlocks t;
  return folds_match_oracle(fold, t.q, t.blocks, 0.5f, "three blocks, max rising then falling");
}

Tensor masked_scores(const Tensor& q, const Tensor& k, const Tensor& hidden, float scale) {
  Tensor s = mul(matmul(q, transpose(k, 2, 3)), scale);
  return hidden.defined() ? masked_fill(s, hidden, -std::numeric_limits<float>::infinity()) : s;
}

// ---- the mask's check: by global positions, against every pair.

::testing::AssertionResult future_mask_is_right(const std::function<Tensor(Chunk, Chunk)>& mask) {
  const std::vector<std::pair<Chunk, Chunk>> pairs = {
      {{4, 7}, {0, 3}}, {{0, 3}, {4, 6}}, {{2, 5}, {2, 5}}, {{3, 6}, {1, 5}}, {{6, 8}, {5, 9}}};
  for (const auto& [q, k] : pairs) {
    std::vector<double> want;
    for (int64_t i = q.begin; i < q.end; ++i)
      for (int64_t j = k.begin; j < k.end; ++j) want.push_back(j > i ? 1 : 0);
    const std::string what = "future_mask(queries [" + std::to_string(q.begin) + ", " + std::to_string(q.end) +
                             "), keys [" + std::to_string(k.begin) + ", " + std::to_string(k.end) + "))";
    const Tensor got = mask(q, k);
    if (got.defined() && got.dtype() != DType::Bool)
      return ::testing::AssertionFailure() << what << ": expected a bool tensor (true = hidden)";
    const ::testing::AssertionResult r = close(what, got, want, {q.length(), k.length()});
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

// ---- which pairs meet: against every pair of positions.

::testing::AssertionResult sees_any_is_right(const std::function<bool(Chunk, Chunk, bool)>& sees) {
  const std::vector<Chunk> chunks = {{0, 1}, {0, 3}, {1, 2}, {2, 4}, {3, 6}, {4, 5}, {5, 8}, {6, 7}};
  for (const Chunk& q : chunks)
    for (const Chunk& k : chunks)
      for (bool causal : {true, false}) {
        bool any = false;
        for (int64_t i = q.begin; i < q.end; ++i)
          for (int64_t j = k.begin; j < k.end; ++j) any = any || !causal || j <= i;
        if (sees(q, k, causal) != any)
          return ::testing::AssertionFailure()
                 << "sees_any(queries [" << q.begin << ", " << q.end << "), keys [" << k.begin << ", " << k.end
                 << "), " << (causal ? "causal" : "not causal") << "): expected " << (any ? "true" : "false")
                 << (any && q == k ? " (a chunk against itself: each query sees its own key)" : "");
      }
  return ::testing::AssertionSuccess();
}

// ---- the ring's direction: held[r][s] = the rank whose block rank r holds
// at step s. Each rank starts with its own; then each step's block is the
// one the previous rank (r - 1) held a step before: blocks only ever move
// to the next rank.

using Held = std::vector<std::vector<int>>;

::testing::AssertionResult follows_the_ring(const Held& held) {
  const int n = static_cast<int>(held.size());
  for (int r = 0; r < n; ++r) {
    if (static_cast<int>(held[r].size()) != n)
      return ::testing::AssertionFailure() << "rank " << r << " took " << held[r].size() << " steps, expected " << n;
    if (held[r][0] != r)
      return ::testing::AssertionFailure() << "rank " << r << " starts with the block of rank " << held[r][0]
                                           << ", expected its own";
    for (int s = 0; s + 1 < n; ++s)
      if (held[r][s + 1] != held[(r - 1 + n) % n][s])
        return ::testing::AssertionFailure()
               << "at step " << s + 1 << " rank " << r << " holds the block of rank " << held[r][s + 1]
               << ", but its left neighbour (rank " << (r - 1 + n) % n << ") held the block of rank "
               << held[(r - 1 + n) % n][s] << " at step " << s
               << ": blocks go to the next rank, so at step s rank r holds the block of rank (r - s) mod N";
  }
  return ::testing::AssertionSuccess();
}

// What the log says rank r held at each step (every step folds something
// when the attention is not causal).
Held held_from_log(const std::vector<Fold>& log, int ranks) {
  Held held(ranks, std::vector<int>(ranks, -1));
  for (const Fold& f : log)
    if (f.rank >= 0 && f.rank < ranks && f.step >= 0 && f.step < ranks) held[f.rank][f.step] = f.from;
  return held;
}

::testing::AssertionResult ring_equals_attention(int64_t B, int64_t H, int64_t T, int64_t d, int ranks, Split split,
                                                 bool causal, uint64_t seed) {
  const Tensor q = random_tensor({B, H, T, d}, seed), k = random_tensor({B, H, T, d}, seed + 1),
               v = random_tensor({B, H, T, d}, seed + 2);
  const std::string what = "ring over " + std::to_string(ranks) + " ranks, " + ring_oracle::split_name(split) +
                           (causal ? ", causal" : ", not causal") + ", T=" + std::to_string(T);
  return close(what, lesson19::ring_attention_simulated(q, k, v, ranks, split, causal),
               ring_oracle::attention(q.to_vector(), k.to_vector(), v.to_vector(), B * H, T, d, causal),
               {B, H, T, d});
}

}  // namespace

// ------------------------------------------------------------------ the split

TEST(ShardOf, ContiguousEvenAndUneven) {
  for (int r = 0; r < 4; ++r)
    EXPECT_TRUE(holds(lesson19::shard_of(8, r, 4, Split::Contiguous), {{2 * r, 2 * r + 2}},
                      "shard_of(8 tokens, rank " + std::to_string(r) + " of 4, contiguous)"));
  // 10 = 4 x 2 + 2: the first two ranks take one token more.
  const std::vector<Chunk> want = {{0, 3}, {3, 6}, {6, 8}, {8, 10}};
  for (int r = 0; r < 4; ++r)
    EXPECT_TRUE(holds(lesson19::shard_of(10, r, 4, Split::Contiguous), {want[r]},
                      "shard_of(10 tokens, rank " + std::to_string(r) + " of 4, contiguous)"));
}

TEST(ShardOf, ZigzagEvenAndUneven) {
  // 2 ranks, 4 pieces: rank 0 takes pieces 0 and 3, rank 1 pieces 1 and 2.
  EXPECT_TRUE(holds(lesson19::shard_of(8, 0, 2, Split::Zigzag), {{0, 2}, {6, 8}}, "shard_of(8, rank 0 of 2, zigzag)"));
  EXPECT_TRUE(holds(lesson19::shard_of(8, 1, 2, Split::Zigzag), {{2, 4}, {4, 6}}, "shard_of(8, rank 1 of 2, zigzag)"));
  // 11 = 4 x 2 + 3: pieces of 3, 3, 3, 2 tokens.
  EXPECT_TRUE(holds(lesson19::shard_of(11, 0, 2, Split::Zigzag), {{0, 3}, {9, 11}}, "shard_of(11, rank 0 of 2, zigzag)"));
  EXPECT_TRUE(holds(lesson19::shard_of(11, 1, 2, Split::Zigzag), {{3, 6}, {6, 9}}, "shard_of(11, rank 1 of 2, zigzag)"));
  // A rank stores its tokens chunk by chunk: rank 0 of the README's example holds 0, then 3.
  EXPECT_EQ(lesson19::shard_of(4, 0, 2, Split::Zigzag).positions(), (std::vector<int64_t>{0, 3}));
}

TEST(ShardOf, EveryTokenOnExactlyOneRank) {
  for (Split split : {Split::Contiguous, Split::Zigzag})
    for (int ranks = 1; ranks <= 4; ++ranks)
      for (int64_t T = 2 * ranks; T <= 2 * ranks + 7; ++T)
        ASSERT_TRUE(ring_oracle::covers_every_token_once(lesson19::shard_of, T, ranks, split));
}

TEST(ShardOf, RejectsTooFewTokensAndABadRank) {
  EXPECT_TRUE(rejects("shard_of(5 tokens, rank 0 of 3, zigzag)", [] { lesson19::shard_of(5, 0, 3, Split::Zigzag); },
                      "zigzag needs 2N pieces of at least one token"));
  EXPECT_TRUE(rejects("shard_of(2 tokens, rank 0 of 3, contiguous)",
                      [] { lesson19::shard_of(2, 0, 3, Split::Contiguous); }, "every rank needs a token"));
  EXPECT_TRUE(rejects("shard_of(8 tokens, rank 4 of 4)", [] { lesson19::shard_of(8, 4, 4, Split::Contiguous); },
                      "ranks are numbered 0 .. N - 1"));
}

// ------------------------------------------------------------------ which pairs meet

TEST(SeesAny, AgreesWithEveryPairOfPositions) { EXPECT_TRUE(sees_any_is_right(lesson19::sees_any)); }

TEST(FutureMask, ByGlobalPositionsByHand) {
  // Queries 2, 3 against keys 1, 2, 3: query 2 may not see key 3.
  EXPECT_TRUE(close("future_mask(queries [2, 4), keys [1, 4))", lesson19::future_mask({2, 4}, {1, 4}),
                    {0, 0, 1, /**/ 0, 0, 0}, {2, 3}));
  EXPECT_TRUE(future_mask_is_right(lesson19::future_mask));
}

// ------------------------------------------------------------------ the fold

TEST(Fold, OneBlockIntoAnEmptyState) {
  const Tensor q = random_tensor({2, 1, 3, 2}, 11);
  const Block block{random_tensor({2, 1, 4, 2}, 12), random_tensor({2, 1, 4, 2}, 13), Tensor()};
  EXPECT_TRUE(folds_match_oracle(lesson19::fold, q, {block}, 0.7f, "one block"));
}

TEST(Fold, ASecondBlockRescalesTheFirst) {
  // The second block's scores are larger (keys x 5): its max replaces the first.
  const Tensor q = random_tensor({1, 2, 2, 3}, 21);
  const std::vector<Block> blocks = {
      {random_tensor({1, 2, 3, 3}, 22), random_tensor({1, 2, 3, 3}, 23), Tensor()},
      {random_tensor({1, 2, 2, 3}, 24, 5.0f), random_tensor({1, 2, 2, 3}, 25),
       from_bools({false, true, false, false}, {2, 2})}};
  EXPECT_TRUE(folds_match_oracle(lesson19::fold, q, blocks, 1.0f, "two blocks, the second with the larger max"));
}

// ------------------------------------------------------------------ the ring

TEST(WorkedExample, ZigzagOverTwoRanksMatchesTheReadme) {
  // T = 4, d = 1, q = 1, k = [1, 2, 5, 3]; the two value columns
  // [1, 0, 1, 2] and [0, 1, 1, 0] are two heads. Rank 0 holds positions 0
  // and 3, rank 1 positions 1 and 2.
  const Tensor q = ones({1, 2, 4, 1});
  const Tensor k = from_vector({1, 2, 5, 3, /**/ 1, 2, 5, 3}, {1, 2, 4, 1});
  const Tensor v = from_vector({1, 0, 1, 2, /**/ 0, 1, 1, 0}, {1, 2, 4, 1});
  std::vector<Fold> log;
  const Tensor out = lesson19::ring_attention_simulated(q, k, v, 2, Split::Zigzag, true, &log);
  EXPECT_TRUE(close("out", out, {1, 0.268941, 0.953387, 1.071087, /**/ 0, 0.731059, 0.982852, 0.872323}, {1, 2, 4, 1}));
  // Rank 0's folds: step 0 its own block (query 0 with key 0; query 3 with
  // keys 0 and 3), step 1 rank 1's block (query 3 with keys 1 and 2); query
  // 0 never meets keys 1, 2, 3: they are in its future.
  using Pair = std::tuple<int, int, int64_t, int64_t>;  // step, from, query chunk begin, key chunk begin
  std::multiset<Pair> rank0;
  for (const Fold& f : log)
    if (f.rank == 0) rank0.insert({f.step, f.from, f.queries.begin, f.keys.begin});
  EXPECT_EQ(rank0, (std::multiset<Pair>{{0, 0, 0, 0}, {0, 0, 3, 0}, {0, 0, 3, 3}, {1, 1, 3, 1}, {1, 1, 3, 2}}))
      << "rank 0 must fold exactly the 5 pairs of the README's table";
  EXPECT_EQ(lesson19::pairs_per_rank(log, 2), (std::vector<int64_t>{5, 5})) << "zigzag: 2N + 1 = 5 pairs on each rank";
}

TEST(Ring, EqualsSoftmaxAttentionForOneToFourRanks) {
  uint64_t seed = 100;
  for (int ranks = 1; ranks <= 4; ++ranks)
    for (Split split : {Split::Contiguous, Split::Zigzag})
      for (bool causal : {true, false})
        for (int64_t T : {int64_t{8} * ranks, int64_t{8} * ranks + 3}) {
          ASSERT_TRUE(ring_equals_attention(2, 2, T, 4, ranks, split, causal, seed));
          seed += 3;
        }
}

TEST(Ring, BlocksTravelToTheNextRank) {
  std::vector<Fold> log;
  const Tensor x = random_tensor({1, 1, 12, 2}, 31);
  lesson19::ring_attention_simulated(x, x, x, 4, Split::Zigzag, false, &log);
  EXPECT_TRUE(follows_the_ring(held_from_log(log, 4)));
}

TEST(Ring, RejectsZeroRanksAndMismatchedShapes) {
  const Tensor x = random_tensor({1, 1, 8, 2}, 41), longer = random_tensor({1, 1, 9, 2}, 42);
  EXPECT_TRUE(rejects("ring_attention_simulated(ranks = 0)",
                      [&] { lesson19::ring_attention_simulated(x, x, x, 0, Split::Zigzag, true); },
                      "a ring has at least one rank"));
  EXPECT_TRUE(rejects("ring_attention_simulated(q [1,1,8,2], k and v [1,1,9,2])",
                      [&] { lesson19::ring_attention_simulated(x, longer, longer, 2, Split::Zigzag, true); },
                      "one sequence: q, k and v of one shape"));
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, FoldWithoutRescalingTheRunningSum) {
  // Adding the new block's exp(s - m_new) to sums made under the old max.
  const FoldFn wrong = [](RunningSoftmax& st, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& hidden,
                          float scale) {
    const Tensor s = masked_scores(q, k, hidden, scale);
    const Tensor m = st.m.defined() ? maximum(st.m, max(s, 3, true)) : max(s, 3, true);
    const Tensor p = exp(sub(s, m));
    st.l = st.l.defined() ? add(st.l, sum(p, {3}, true)) : sum(p, {3}, true);
    st.acc = st.acc.defined() ? add(st.acc, matmul(p, v)) : matmul(p, v);
    st.m = m;
  };
  EXPECT_FALSE(fold_is_right(wrong)) << "the suite's check must catch a fold without rescaling";
  EXPECT_TRUE(fold_is_right(lesson19::fold))
      << "when the max grows, multiply l and acc by exp(m_old - m_new) before adding the new block";
}

TEST(Mistakes, RescaleByTheWrongMax) {
  // The new block's weights taken against its own max, not the running one.
  const FoldFn wrong = [](RunningSoftmax& st, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& hidden,
                          float scale) {
    const Tensor s = masked_scores(q, k, hidden, scale);
    const Tensor block_max = max(s, 3, true);
    const Tensor m = st.m.defined() ? maximum(st.m, block_max) : block_max;
    const Tensor p = exp(sub(s, block_max));
    const Tensor rescale = st.m.defined() ? exp(sub(st.m, m)) : Tensor();
    st.l = st.l.defined() ? add(mul(st.l, rescale), sum(p, {3}, true)) : sum(p, {3}, true);
    st.acc = st.acc.defined() ? add(mul(st.acc, rescale), matmul(p, v)) : matmul(p, v);
    st.m = m;
  };
  EXPECT_FALSE(fold_is_right(wrong)) << "the suite's check must catch weights taken against the block's own max";
  EXPECT_TRUE(fold_is_right(lesson19::fold))
      << "every term of l and acc is exp(s - m) with the SAME m, the running max after this block";
}

TEST(Mistakes, MaskByLocalInsteadOfGlobalPositions) {
  // Row i and column j of the block compared as if both chunks began at 0.
  const auto wrong = [](Chunk q, Chunk k) {
    std::vector<bool> hidden;
    for (int64_t i = 0; i < q.length(); ++i)
      for (int64_t j = 0; j < k.length(); ++j) hidden.push_back(j > i);
    return from_bools(hidden, {q.length(), k.length()});
  };
  EXPECT_FALSE(future_mask_is_right(wrong)) << "the suite's check must catch a mask by local positions";
  EXPECT_TRUE(future_mask_is_right(lesson19::future_mask))
      << "compare global positions: key keys.begin + j is hidden from query queries.begin + i when it is larger";
}

TEST(Mistakes, ZigzagPairsRWithNMinus1MinusR) {
  // Rank r takes pieces r and N - 1 - r: both from the first half, so the
  // second half is held by no one and some pieces by two ranks.
  const ring_oracle::ShardFn wrong = [](int64_t tokens, int rank, int ranks, Split) {
    const int64_t pieces = 2 * ranks, size = tokens / pieces;
    Shard s;
    s.chunks = {{rank * size, (rank + 1) * size}, {(ranks - 1 - rank) * size, (ranks - rank) * size}};
    return s;
  };
  EXPECT_FALSE(ring_oracle::covers_every_token_once(wrong, 16, 4, Split::Zigzag))
      << "the suite's check must catch zigzag pieces r and N - 1 - r";
  EXPECT_TRUE(ring_oracle::covers_every_token_once(lesson19::shard_of, 16, 4, Split::Zigzag))
      << "zigzag: rank r holds pieces r and 2N - 1 - r of 2N";
  const std::vector<int64_t> work = ring_oracle::causal_pairs(lesson19::shard_of, 16, 4, Split::Zigzag);
  EXPECT_EQ(work, std::vector<int64_t>(4, 9)) << "with pieces r and 2N - 1 - r every rank does 2N + 1 = 9 pairs";
}

TEST(Mistakes, SkipTheDiagonalBlock) {
  // Skipping every block that is not wholly in the past drops the block
  // against itself: the first query of the sequence is left with no key.
  const auto wrong = [](Chunk q, Chunk k, bool causal) { return !causal || k.end <= q.begin; };
  EXPECT_FALSE(sees_any_is_right(wrong)) << "the suite's check must catch a skipped diagonal";
  EXPECT_TRUE(sees_any_is_right(lesson19::sees_any))
      << "a chunk against itself is seen (under its causal triangle); skip only blocks wholly in the future";
}

TEST(Mistakes, BlocksTravelTheWrongWay) {
  // Rank r taking the block of rank r + s at step s: every rank still meets
  // every block once, but no ring delivers it, since rank r receives from r - 1.
  Held wrong(4, std::vector<int>(4));
  for (int r = 0; r < 4; ++r)
    for (int s = 0; s < 4; ++s) wrong[r][s] = (r + s) % 4;
  EXPECT_FALSE(follows_the_ring(wrong)) << "the suite's check must catch blocks taken from r + s";
  std::vector<Fold> log;
  const Tensor x = random_tensor({1, 1, 8, 2}, 51);
  lesson19::ring_attention_simulated(x, x, x, 4, Split::Contiguous, false, &log);
  EXPECT_TRUE(follows_the_ring(held_from_log(log, 4))) << "at step s rank r holds the block of rank (r - s) mod N";
}

TEST(Mistakes, UnevenSplitDropsTheRemainder) {
  // tokens / N tokens per rank: 10 tokens over 4 ranks leaves tokens 8 and 9 out.
  const ring_oracle::ShardFn wrong = [](int64_t tokens, int rank, int ranks, Split) {
    const int64_t size = tokens / ranks;
    Shard s;
    s.chunks = {{rank * size, (rank + 1) * size}};
    return s;
  };
  EXPECT_FALSE(ring_oracle::covers_every_token_once(wrong, 10, 4, Split::Contiguous))
      << "the suite's check must catch a split that drops tokens % N tokens";
  EXPECT_TRUE(ring_oracle::covers_every_token_once(lesson19::shard_of, 10, 4, Split::Contiguous))
      << "give the first tokens % P pieces one token more: piece c starts at c * (T / P) + min(c, T % P)";
}
