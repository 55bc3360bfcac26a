// Chapter 15, basic suite: the pattern drawn by hand without random blocks,
// the random blocks against the given draw, the README's picture and
// counts, its limits (no globals and no random blocks is a sliding window;
// a window as long as the sequence is causal attention), global queries
// that read exactly their past, queries after a cache, the worked example,
// attention equal to dense attention under the same mask, bad patterns,
// and the classic mistakes: random blocks from the future, globals that
// some query does not see, a draw that is not reproducible or ignores the
// seed, a window one key too wide, random blocks that overlap the window,
// and keys gathered twice by the kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "bigbird_attention.h"
#include "bigbird_oracle.h"
#include "core/error.h"
#include "lesson_test.h"

using namespace attn;
using lesson_test::close;
using lesson_test::rejects;

namespace {

lesson15::Pattern pattern(int64_t window, int64_t global, int64_t random, int64_t block, uint64_t seed = 0) {
  lesson15::Pattern p;
  p.window = window, p.global = global, p.random = random, p.block = block, p.seed = seed;
  return p;
}

std::vector<bool> rows_to_mask(const std::vector<std::string>& rows) {
  std::vector<bool> m;
  for (const auto& r : rows)
    for (char c : r) m.push_back(c == 'x');
  return m;
}

Tensor rnd(const Shape& s, uint64_t seed) { return lesson_test::random_tensor(s, seed); }

// The README's pattern: T = 16, blocks of 2, window 3, 2 globals, 1 random block, seed 7.
const lesson15::Pattern kReadme = pattern(3, 2, 1, 2, 7);

}  // namespace

// ------------------------------------------------------------ the pattern

TEST(Mask, WindowAndGlobalsByHand) {
  // W = 3, G = 2, no random blocks: the last 3 keys plus keys 0 and 1.
  const std::vector<std::string> want = {
      "x.........",  //
      "xx........",  //
      "xxx.......",  //
      "xxxx......",  //
      "xxxxx.....",  // keys 0, 1 (global) and 2, 3, 4 (window)
      "xx.xxx....",  //
      "xx..xxx...",  //
      "xx...xxx..",  //
      "xx....xxx.",  //
      "xx.....xxx"};
  EXPECT_TRUE(oracle::mask_is("bigbird_mask(T = 10, W = 3, G = 2, R = 0, B = 4)",
                              lesson15::bigbird_mask(pattern(3, 2, 0, 4), 10, 10), rows_to_mask(want), 10, 10));
}

TEST(RandomBlocks, FollowTheGivenDraw) {
  // Your draw must be the header's shuffle with random_below, exactly.
  for (const lesson15::Pattern& p : {kReadme, pattern(4, 3, 2, 4, 11), pattern(1, 0, 3, 1, 5)})
    for (int64_t qb = 0; qb < 12; ++qb)
      EXPECT_EQ(lesson15::random_blocks(p, qb), oracle::random_blocks(p, qb))
          << "query block " << qb << " (W = " << p.window << ", G = " << p.global << ", R = " << p.random
          << ", B = " << p.block << ", seed " << p.seed << "): expected "
          << oracle::list_str(oracle::random_blocks(p, qb)) << ", got "
          << oracle::list_str(lesson15::random_blocks(p, qb));
}

TEST(Mask, ReadmePicture) {
  // The README draws this pattern (T = 16); its random blocks come from the
  // draw above, so this test passes once both are right.
  const std::vector<std::string> readme = {
      "x...............",  //
      "xx..............",  //
      "xxx.............",  //
      "xxxx............",  //
      "xxxxx...........",  //
      "xx.xxx..........",  //
      "xxxxxxx.........",  // query block 3: its only candidate, block 1 (keys 2, 3)
      "xxxx.xxx........",  //
      "xxxx..xxx.......",  // query block 4: block 1 of 1..2
      "xxxx...xxx......",  //
      "xx..xx..xxx.....",  // query block 5: block 2 of 1..3 (keys 4, 5)
      "xx..xx...xxx....",  //
      "xxxx......xxx...",  // query block 6: block 1 of 1..4
      "xxxx.......xxx..",  //
      "xxxx........xxx.",  // query block 7: block 1 of 1..5
      "xxxx.........xxx"};
  EXPECT_TRUE(oracle::mask_is("bigbird_mask(the README's pattern)", lesson15::bigbird_mask(kReadme, 16, 16),
                              rows_to_mask(readme), 16, 16));
  EXPECT_EQ(rows_to_mask(readme), oracle::mask(kReadme, 16, 16)) << "the README picture disagrees with the rule";
}

TEST(Mask, NoGlobalsNoRandomIsASlidingWindow) {
  const lesson15::Pattern p = pattern(3, 0, 0, 2);
  std::vector<bool> window(64);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) window[i * 8 + j] = j <= i && i - j < 3;
  EXPECT_TRUE(oracle::mask_is("bigbird_mask(W = 3, G = 0, R = 0)", lesson15::bigbird_mask(p, 8, 8), window, 8, 8));
}

TEST(Mask, AWindowAsLongAsTheSequenceIsCausal) {
  std::vector<bool> causal(49);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j <= i; ++j) causal[i * 7 + j] = true;
  EXPECT_TRUE(oracle::mask_is("bigbird_mask(T = 7, W = 7, G = 1, R = 2)", lesson15::bigbird_mask(pattern(7, 1, 2, 2), 7, 7),
                              causal, 7, 7))
      << "no candidate block lies before a window that covers everything";
}

TEST(Mask, GlobalQueriesReadExactlyTheirPast) {
  // BigBird's global tokens read everything; causally that is their whole
  // past and nothing after it. With W = 1 the window adds nothing: rows
  // 0..4 (the globals) must still be the causal rows.
  const std::vector<int64_t> f = lesson15::bigbird_mask(pattern(1, 5, 2, 2, 3), 12, 12).to_int_vector();
  ASSERT_EQ(f.size(), 144u);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 12; ++j)
      EXPECT_EQ(f[i * 12 + j], j <= i ? 1 : 0)
          << "global query " << i << ", key " << j << ": a global token reads every key up to itself, none after";
}

TEST(Mask, QueriesAfterACacheAreTheLastRows) {
  // Rows 11..15 of the README picture as 5 queries at positions 11..15: the
  // first is the second half of query block 5.
  const std::vector<bool> full = oracle::mask(kReadme, 16, 16);
  const std::vector<bool> last(full.begin() + 11 * 16, full.end());
  EXPECT_TRUE(oracle::mask_is("bigbird_mask(Tq = 5, Tk = 16, offset = 11)", lesson15::bigbird_mask(kReadme, 5, 16, 11),
                              last, 5, 16, 11))
      << "row i is the query at position offset + i; its block is (offset + i) / B";
}

// ------------------------------------------------------------------ counts

TEST(Counting, ReadmeNumbers) {
  // The README counts 90 pairs for its 16 x 16 picture (causal: 136).
  EXPECT_EQ(oracle::count(oracle::mask(kReadme, 16, 16)), 90);
  EXPECT_EQ(lesson15::pair_count(kReadme, 16), 90) << "the formula for the README's pattern";
  EXPECT_EQ(lesson15::pair_count(pattern(3, 2, 0, 4), 10), 1 + 2 + 3 + 4 + 6 * 5)
      << "W = 3, G = 2, no random blocks, T = 10: every query reads min(p + 1, 5) keys";
}

// --------------------------------------------------------------- attention

TEST(Attention, ReadmeWorkedExample) {
  // T = 8, blocks of 2, W = 2, G = 1, R = 1 (block 3's only candidate is
  // block 1). d = 1, q = 1, so the scores are the keys; v = the position.
  const lesson15::Pattern p = pattern(2, 1, 1, 2, 0);
  const Tensor q = ones({1, 1, 8, 1}), k = from_vector({1, 0, 2, 0, 1, 1, 0, 1}, {1, 1, 8, 1}),
               v = from_vector({0, 1, 2, 3, 4, 5, 6, 7}, {1, 1, 8, 1});
  EXPECT_TRUE(close("out", lesson15::bigbird_attention(q, k, v, p),
                    {0, 0.2689414, 1.4205125, 1.6005736, 2.1553624, 3.0, 2.5206043, 2.8873049}, {1, 1, 8, 1}));
}

TEST(Attention, EqualsDenseAttentionUnderTheSameMask) {
  const lesson15::Pattern p = pattern(3, 2, 1, 2, 7);
  const Tensor q = rnd({2, 2, 16, 4}, 1), k = rnd({2, 2, 16, 4}, 2), v = rnd({2, 2, 16, 3}, 3);
  const Tensor keep = from_bools(oracle::mask(p, 16, 16), {16, 16});
  const Tensor dense = matmul(softmax(masked_fill(mul(matmul(q, transpose(k, -2, -1)), 0.5f), logical_not(keep), -INFINITY), -1), v);
  EXPECT_TRUE(close("bigbird_attention against dense masked attention", lesson15::bigbird_attention(q, k, v, p), dense))
      << "scores q k^T / sqrt(d) (d = 4: halved), each query over exactly the keys of the pattern";
}

TEST(Errors, BadPatternsAreRejected) {
  EXPECT_TRUE(rejects("random_blocks(window = 0)", [] { lesson15::random_blocks(pattern(0, 1, 1, 2), 3); },
                      "a window of 0 keys would not hold the query itself"));
  EXPECT_TRUE(rejects("bigbird_mask(global = -1)", [] { lesson15::bigbird_mask(pattern(2, -1, 1, 2), 4, 4); },
                      "a negative number of global tokens means nothing"));
  EXPECT_TRUE(rejects("pair_count(random = -1)", [] { lesson15::pair_count(pattern(2, 1, -1, 2), 4); },
                      "a negative number of random blocks means nothing"));
  EXPECT_TRUE(rejects("bigbird_attention(block = 0)",
                      [] { lesson15::bigbird_attention(rnd({1, 1, 4, 2}, 4), rnd({1, 1, 4, 2}, 5), rnd({1, 1, 4, 2}, 6), pattern(2, 1, 1, 0)); },
                      "p / 0 divides by zero"));
}

// ---------------------------------------------------------------- mistakes

TEST(Mistakes, RandomBlocksPeekIntoTheFuture) {
  // Every random block must end before its query block starts: drawing
  // from kb <= qb (or any later block) lets a query read keys after it.
  const lesson15::Pattern p = pattern(1, 0, 3, 2, 3);
  for (int64_t qb = 0; qb < 10; ++qb)
    for (int64_t kb : lesson15::random_blocks(p, qb))
      EXPECT_LT(kb, qb) << "query block " << qb << " drew key block " << kb
                        << ", which is not before it: candidates end before the window of the block's "
                        << "first query, (kb + 1) B <= qb B - W + 1";
  const std::vector<int64_t> f = lesson15::bigbird_mask(p, 20, 20).to_int_vector();
  ASSERT_EQ(f.size(), 400u);
  for (int64_t i = 0; i < 20; ++i)
    for (int64_t j = i + 1; j < 20; ++j)
      ASSERT_EQ(f[i * 20 + j], 0) << "query " << i << " may read key " << j << ", which comes after it: "
                                  << "keep every part of the rule inside j <= p";
}

TEST(Mistakes, GlobalsAreNotSeenByAll) {
  // Keys 0..G-1 must be allowed for every query at or after them, however
  // far from the window.
  const lesson15::Pattern p = pattern(2, 3, 1, 4, 1);
  const std::vector<int64_t> f = lesson15::bigbird_mask(p, 24, 24).to_int_vector();
  ASSERT_EQ(f.size(), 576u);
  for (int64_t i = 0; i < 24; ++i)
    for (int64_t j = 0; j < 3 && j <= i; ++j)
      ASSERT_EQ(f[i * 24 + j], 1) << "query " << i << " does not read global key " << j
                                  << ": the globals are the first G positions, j < G, read by every later query";
}

TEST(Mistakes, SeedIsNotReproducible) {
  // The blocks of query block qb depend on (seed, qb) alone: asking twice,
  // or for one row after a cache, must give the same answer. (A generator
  // kept between calls, or seeded from the clock, does not.)
  const lesson15::Pattern p = pattern(2, 1, 2, 2, 9);
  for (int64_t qb = 0; qb < 12; ++qb)
    EXPECT_EQ(lesson15::random_blocks(p, qb), lesson15::random_blocks(p, qb)) << "query block " << qb << ", asked twice";
  const std::vector<int64_t> full = lesson15::bigbird_mask(p, 24, 24).to_int_vector();
  const std::vector<int64_t> one = lesson15::bigbird_mask(p, 1, 24, 23).to_int_vector();
  ASSERT_EQ(full.size(), 576u);
  ASSERT_EQ(one.size(), 24u);
  EXPECT_EQ(std::vector<int64_t>(full.begin() + 23 * 24, full.end()), one)
      << "query 23 alone (after a cache of 23) reads other keys than query 23 of the full mask: "
      << "draw with random_below(seed, qb, r, n - r), which has no state";
}

TEST(Mistakes, SeedIsIgnored) {
  // Two seeds give two patterns somewhere among 20 query blocks.
  bool differ = false;
  for (int64_t qb = 0; qb < 20 && !differ; ++qb)
    differ = lesson15::random_blocks(pattern(1, 0, 2, 1, 1), qb) != lesson15::random_blocks(pattern(1, 0, 2, 1, 2), qb);
  EXPECT_TRUE(differ) << "seeds 1 and 2 drew the same blocks for 20 query blocks: pass pattern.seed to random_below";
}

TEST(Mistakes, WindowOneKeyTooWide) {
  // W = 3 counts the query: keys p - 2, p - 1, p. "p - j <= W" adds p - 3.
  const std::vector<int64_t> f = lesson15::bigbird_mask(pattern(3, 0, 0, 4), 8, 8).to_int_vector();
  ASSERT_EQ(f.size(), 64u);
  int64_t read = 0;
  for (int64_t j = 0; j < 8; ++j) read += f[7 * 8 + j];
  EXPECT_EQ(read, 3) << "query 7 with W = 3 (no globals, no random blocks) reads " << read
                     << " keys; the window is p - j < W, the query itself included";
}

TEST(Mistakes, RandomBlocksOverlapTheWindowOrTheGlobals) {
  // W = 4, G = 2, B = 2: block 5 (queries 10, 11) may draw only blocks 1
  // and 2 (keys 2..5): not block 0 (the globals), nor block 3, whose key 7
  // is in the window of query 10 (keys 7..10).
  const lesson15::Pattern p = pattern(4, 2, 5, 2, 0);
  const std::vector<int64_t> want = {1, 2};
  EXPECT_EQ(lesson15::random_blocks(p, 5), want)
      << "with R = 5 query block 5 takes all its candidates, blocks 1 and 2: ceil(G / B) <= kb and "
      << "(kb + 1) B <= qb B - W + 1; got " << oracle::list_str(lesson15::random_blocks(p, 5));
}

TEST(Mistakes, KernelGathersAKeyTwice) {
  // Here the globals (0..3) overlap the band of the first blocks and the
  // random blocks touch the band: a key gathered twice gets two shares of
  // the softmax. Compare with the oracle.
  const lesson15::Pattern p = pattern(3, 4, 2, 2, 5);
  const Tensor q = rnd({1, 2, 14, 3}, 7), k = rnd({1, 2, 14, 3}, 8), v = rnd({1, 2, 14, 2}, 9);
  EXPECT_TRUE(close("bigbird_attention with overlapping parts", lesson15::bigbird_attention(q, k, v, p),
                    oracle::attention(q, k, v, oracle::mask(p, 14, 14)).out, {1, 2, 14, 2}))
      << "gather each key once: merge the globals, the band and the random blocks into disjoint ranges";
}
