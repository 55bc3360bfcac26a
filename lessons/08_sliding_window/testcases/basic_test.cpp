// Chapter 08, basic suite: the window mask by hand, the README's worked
// example, the simplest equivalences (W = 1, W >= T, banded == masked) and
// the off-by-one everyone makes once. Expected numbers are worked out in
// the README or in a comment beside them.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "sliding_window.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// The 0/1 pattern a correct window mask has: p - w < j <= p, p = offset + i.
std::vector<double> band(int64_t tq, int64_t tk, int64_t w, int64_t offset) {
  std::vector<double> m;
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) m.push_back(j <= offset + i && j > offset + i - w ? 1 : 0);
  return m;
}

// The README's worked example: T = 4, d = 1 (so the scale is 1), W = 2.
struct Example {
  Tensor q = from_vector({1, 1, 2, 0}, {1, 1, 4, 1});
  Tensor k = from_vector({0, 1, 1, 2}, {1, 1, 4, 1});
  Tensor v = from_vector({1, 0, /**/ 0, 1, /**/ 2, 2, /**/ 4, 0}, {1, 1, 4, 2});
};

// Plain causal attention written with library ops (not your code), for the
// "W >= T is causal" equivalence.
Tensor causal_reference(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t t = q.shape()[2];
  const Tensor scores = mul(matmul(q, transpose(k, -2, -1)), 1.0f / std::sqrt(float(q.shape()[3])));
  const Tensor future = eq(tril(ones({t, t})), 0.0);
  return matmul(softmax(masked_fill(scores, future, -1e9f), -1), v);
}

}  // namespace

// ------------------------------------------------------------------ the mask

TEST(WindowMask, ValuesForT6W3) {
  // Row i keeps keys max(0, i-2)..i: 1, 2, then 3 keys per row.
  const Tensor m = lesson08::window_mask(6, 6, 3);
  ASSERT_EQ(m.dtype(), DType::Bool) << "window_mask must return a bool tensor (true = may see)";
  EXPECT_TRUE(close("window_mask(6, 6, window 3)", m,
                      {1, 0, 0, 0, 0, 0,  //
                       1, 1, 0, 0, 0, 0,  //
                       1, 1, 1, 0, 0, 0,  //
                       0, 1, 1, 1, 0, 0,  //
                       0, 0, 1, 1, 1, 0,  //
                       0, 0, 0, 1, 1, 1},
                      {6, 6}));
}

TEST(WindowMask, WindowOneIsTheDiagonal) {
  EXPECT_TRUE(close("window_mask(4, 4, window 1)", lesson08::window_mask(4, 4, 1),
                      band(4, 4, 1, 0), {4, 4}))
      << "W = 1 means every query sees itself only";
}

TEST(WindowMask, WindowOfTOrMoreIsCausal) {
  for (int64_t w : {5, 6, 100})
    EXPECT_TRUE(close("window_mask(5, 5, window " + std::to_string(w) + ")",
                        lesson08::window_mask(5, 5, w),
                        {1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1},
                        {5, 5}))
        << "a window at least as long as the sequence is plain causal attention";
}

TEST(WindowMask, OffsetPlacesTheQueriesAfterTheCache) {
  // Two new queries at positions 4 and 5 over 6 keys, W = 3:
  // position 4 sees keys 2, 3, 4; position 5 sees keys 3, 4, 5.
  EXPECT_TRUE(close("window_mask(2, 6, window 3, offset 4)", lesson08::window_mask(2, 6, 3, 4),
                      {0, 0, 1, 1, 1, 0, /**/ 0, 0, 0, 1, 1, 1}, {2, 6}))
      << "query i sits at position offset + i; the window is measured from there";
}

// ------------------------------------------------------- masked attention

TEST(MaskedAttention, ReadmeWorkedExample) {
  // scores q_i k_j: row 1 sees keys 0, 1 with scores 0, 1; row 2 keys 1, 2
  // with 2, 2; row 3 keys 2, 3 with 0, 0 (see the README).
  const Example e;
  Tensor w;
  const Tensor out = lesson08::window_attention_masked(e.q, e.k, e.v, 2, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("weights", w,
                      {1, 0, 0, 0,                      //
                       0.2689414, 0.7310586, 0, 0,      //
                       0, 0.5, 0.5, 0,                  //
                       0, 0, 0.5, 0.5},
                      {1, 1, 4, 4}));
  EXPECT_TRUE(close("out", out, {1, 0, 0.2689414, 0.7310586, 1, 1.5, 3, 1}, {1, 1, 4, 2}));
}

TEST(MaskedAttention, ShapesWithRectangularHeads) {
  Tensor w;
  const Tensor out = lesson08::window_attention_masked(random_tensor({2, 3, 5, 4}, 1), random_tensor({2, 3, 5, 4}, 2),
                                                       random_tensor({2, 3, 5, 6}, 3), 2, 0, &w);
  EXPECT_EQ(out.shape(), (Shape{2, 3, 5, 6})) << "out is [B, H, Tq, dv]";
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{2, 3, 5, 5})) << "weights are [B, H, Tq, Tk]";
}

TEST(MaskedAttention, WindowOneReturnsEachTokensOwnValue) {
  const Tensor v = random_tensor({1, 2, 5, 3}, 6);
  const Tensor out =
      lesson08::window_attention_masked(random_tensor({1, 2, 5, 4}, 4), random_tensor({1, 2, 5, 4}, 5), v, 1);
  EXPECT_TRUE(close("out with W = 1", out, values(v), {1, 2, 5, 3}))
      << "with W = 1 each query sees one key (itself), whose weight is then 1";
}

TEST(MaskedAttention, LargeWindowIsCausalAttention) {
  const Tensor q = random_tensor({2, 2, 6, 4}, 7), k = random_tensor({2, 2, 6, 4}, 8), v = random_tensor({2, 2, 6, 3}, 9);
  EXPECT_TRUE(close("out with W = 6 = T", lesson08::window_attention_masked(q, k, v, 6),
                      values(causal_reference(q, k, v)), {2, 2, 6, 3}));
}

// ------------------------------------------------------- banded attention

TEST(BandedAttention, ReadmeWorkedExample) {
  const Example e;
  for (int64_t chunk : {1, 2, 3, 4})
    EXPECT_TRUE(close("banded out, chunk " + std::to_string(chunk),
                        lesson08::window_attention_banded(e.q, e.k, e.v, 2, chunk),
                        {1, 0, 0.2689414, 0.7310586, 1, 1.5, 3, 1}, {1, 1, 4, 2}));
}

TEST(BandedAttention, EqualsMaskedForEveryChunkSize) {
  // Chunks that divide T, that do not, of one row, and larger than T.
  const Tensor q = random_tensor({2, 3, 10, 4}, 11), k = random_tensor({2, 3, 10, 4}, 12), v = random_tensor({2, 3, 10, 5}, 13);
  const std::vector<double> want = values(lesson08::window_attention_masked(q, k, v, 3));
  for (int64_t chunk : {1, 2, 3, 4, 5, 7, 10, 32})
    EXPECT_TRUE(close("banded (W = 3, chunk " + std::to_string(chunk) + ") vs masked",
                        lesson08::window_attention_banded(q, k, v, 3, chunk), want, {2, 3, 10, 5}))
        << "the chunk size must not change the result, only the memory";
}

TEST(BandedAttention, WindowOneAndLargeWindow) {
  const Tensor q = random_tensor({1, 2, 7, 4}, 14), k = random_tensor({1, 2, 7, 4}, 15), v = random_tensor({1, 2, 7, 3}, 16);
  EXPECT_TRUE(close("banded with W = 1", lesson08::window_attention_banded(q, k, v, 1, 3),
                      values(v), {1, 2, 7, 3}));
  EXPECT_TRUE(close("banded with W = 50 > T", lesson08::window_attention_banded(q, k, v, 50, 3),
                      values(causal_reference(q, k, v)), {1, 2, 7, 3}));
}

// ----------------------------------------------------------------- mistakes

TEST(Mistakes, WindowOneTokenTooWide) {
  // W = 3 means 3 keys INCLUDING the query itself: keys p-2, p-1, p.
  // The band p - W <= j <= p has W + 1 keys.
  const Tensor m = lesson08::window_mask(6, 6, 3);
  const std::vector<float> got = m.to_vector();
  for (int64_t i = 0; i < 6; ++i) {
    int64_t seen = 0;
    for (int64_t j = 0; j < 6; ++j) seen += got[i * 6 + j] != 0;
    const int64_t want = std::min<int64_t>(i + 1, 3);
    std::string hint;
    if (seen == std::min<int64_t>(i + 1, 4))
      hint = ": one key too many. The window counts the query itself: position p sees "
             "keys max(0, p - W + 1) .. p, so the test is j > p - W (not j >= p - W)";
    else if (seen == std::min<int64_t>(i + 1, 2))
      hint = ": one key too few. W counts the query itself, so p sees p - W + 1 .. p, which "
             "is W keys (j > p - W, not j > p - W + 1)";
    EXPECT_EQ(seen, want) << "query " << i << " of window_mask(6, 6, 3) sees " << seen
                          << " keys, expected " << want << hint;
  }
}

TEST(Mistakes, WindowOneTokenTooWideInBandedAttention) {
  // The README example: with W = 2, query 3 averages v2 and v3 = [3, 1].
  // One key too wide, it would average v1, v2, v3 = [2, 1].
  const Example e;
  const std::vector<float> out = lesson08::window_attention_banded(e.q, e.k, e.v, 2, 2).to_vector();
  const bool too_wide = std::fabs(out[6] - 2.0f) < 1e-4 && std::fabs(out[7] - 1.0f) < 1e-4;
  EXPECT_TRUE(std::fabs(out[6] - 3.0f) < 1e-4 && std::fabs(out[7] - 1.0f) < 1e-4)
      << "banded out for query 3 (W = 2) is [" << out[6] << ", " << out[7] << "], expected [3, 1]"
      << (too_wide ? ": that is the average of v1, v2, v3, so query 3 saw W + 1 = 3 keys. The "
                     "band of a query at p is p - W + 1 .. p (check both the band's first key "
                     "and the mask inside it)"
                   : "");
}

TEST(Mistakes, WindowMaskWithoutCausality) {
  // The window only reaches back; keys after the query stay hidden.
  const std::vector<float> m = lesson08::window_mask(4, 4, 2).to_vector();
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = i + 1; j < 4; ++j)
      EXPECT_EQ(m[i * 4 + j], 0.0f) << "window_mask lets query " << i << " see key " << j
                                    << " in its future: the window is |i - j| < W AND j <= i, "
                                       "not a symmetric band";
}
