// Chapter 11, basic suite: the online softmax update by hand, the README's
// worked example (one query, two tiles, a rising max), the causal rows, the
// tile size that must not matter, the logsumexp, and the rescaling mistakes
// of the online softmax. Expected numbers are worked out in the README.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "flash_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

bool near(double a, double b, double tol = 1e-4) { return std::fabs(a - b) <= tol * (1 + std::fabs(b)); }

// The README example: d = 1 (scale 1), every query is 1, so the scores of
// any query are the keys themselves: 1, 2, 5, 3. Tiles of 2 keys: [1, 2]
// then [5, 3], and the max rises from 2 to 5 on the second tile. v has the
// head size d = 1 here, so the README's two-column values [1,0], [0,1],
// [1,1], [2,0] run as two heads: head 0 holds column 0, head 1 column 1.
struct Example {
  Tensor q2 = from_vector({1, 1, 1, 1, /**/ 1, 1, 1, 1}, {1, 2, 4, 1});
  Tensor k2 = from_vector({1, 2, 5, 3, /**/ 1, 2, 5, 3}, {1, 2, 4, 1});
  Tensor v2 = from_vector({1, 0, 1, 2, /**/ 0, 1, 1, 0}, {1, 2, 4, 1});
};

// Plain attention with library ops (not your code), and its logsumexp:
// the simplest equivalence.
std::pair<Tensor, Tensor> plain_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                          bool causal) {
  Tensor s = mul(matmul(q, transpose(k, -2, -1)), 1.0f / std::sqrt(float(q.shape()[3])));
  if (causal) {
    const int64_t t = q.shape()[2];
    s = masked_fill(s, eq(tril(ones({t, t})), 0.0), -INFINITY);
  }
  const Tensor m = max(s, -1, true);
  const Tensor lse = squeeze(add(m, log(sum(exp(sub(s, m)), {-1}, true))), -1);
  return {matmul(softmax(s, -1), v), lse};
}

}  // namespace

// ------------------------------------------------------------ online softmax

TEST(OnlineSoftmax, OneTileIsThePlainSum) {
  // m = 3, l = e^-2 + e^-1 + 1 = 1.5032147; alpha = exp(-inf - 3) = 0.
  lesson11::RowStats st;
  const float s[] = {1, 2, 3};
  const float alpha = lesson11::online_softmax_update(st, s, 3);
  EXPECT_FLOAT_EQ(st.m, 3.0f) << "m must become the largest score";
  EXPECT_NEAR(st.l, 1.5032147, 1e-5) << "l must be sum_j exp(s_j - m)";
  EXPECT_EQ(alpha, 0.0f) << "on the first tile nothing was accumulated yet: alpha = exp(-inf) = 0";
}

TEST(OnlineSoftmax, ReadmeTwoTilesWithARisingMax) {
  // [1, 2]: m = 2, l = e^-1 + 1 = 1.3678794.
  // [5, 3]: m = 5, alpha = e^-3 = 0.0497871,
  //         l = 1.3678794 * 0.0497871 + 1 + e^-2 = 1.2034380.
  lesson11::RowStats st;
  const float t1[] = {1, 2}, t2[] = {5, 3};
  lesson11::online_softmax_update(st, t1, 2);
  EXPECT_FLOAT_EQ(st.m, 2.0f);
  EXPECT_NEAR(st.l, 1.3678794, 1e-5);
  const float alpha = lesson11::online_softmax_update(st, t2, 2);
  EXPECT_FLOAT_EQ(st.m, 5.0f);
  EXPECT_NEAR(alpha, 0.0497871, 1e-6) << "alpha = exp(m_old - m_new) = exp(2 - 5)";
  EXPECT_NEAR(st.l, 1.2034380, 1e-5);
  EXPECT_NEAR(st.m + std::log(st.l), 5.1851825, 1e-5)
      << "m + log(l) must be the logsumexp of all four scores, log(e + e^2 + e^5 + e^3)";
}

TEST(OnlineSoftmax, FallingMaxKeepsMAndAlphaIsOne) {
  // [5, 3] then [1, 2]: the max stays 5, so alpha = 1.
  lesson11::RowStats st;
  const float t1[] = {5, 3}, t2[] = {1, 2};
  lesson11::online_softmax_update(st, t1, 2);
  const float alpha = lesson11::online_softmax_update(st, t2, 2);
  EXPECT_FLOAT_EQ(st.m, 5.0f);
  EXPECT_FLOAT_EQ(alpha, 1.0f);
  EXPECT_NEAR(st.l, 1.2034380, 1e-5) << "the order of the tiles must not change l";
}

TEST(OnlineSoftmax, MinusInfScoresAddNothing) {
  lesson11::RowStats st;
  const float inf = std::numeric_limits<float>::infinity();
  const float t1[] = {-inf, -inf}, t2[] = {0, -inf};
  const float a1 = lesson11::online_softmax_update(st, t1, 2);
  EXPECT_EQ(st.m, -inf) << "a tile of masked keys leaves m at -inf";
  EXPECT_EQ(st.l, 0.0f) << "a tile of masked keys leaves l at 0";
  EXPECT_EQ(a1, 1.0f) << "with no finite score yet nothing changes: return alpha = 1 (and avoid "
                         "exp(-inf - (-inf)) = NaN)";
  lesson11::online_softmax_update(st, t2, 2);
  EXPECT_EQ(st.m, 0.0f);
  EXPECT_NEAR(st.l, 1.0, 1e-6) << "exp(-inf - m) = 0: a masked key contributes nothing to l";
}

// --------------------------------------------------------------- the forward

TEST(FlashForward, ShapesOfOutAndLse) {
  const lesson11::FlashResult r =
      lesson11::flash_forward(random_tensor({2, 3, 5, 4}, 1), random_tensor({2, 3, 7, 4}, 2), random_tensor({2, 3, 7, 4}, 3), false, 2);
  ASSERT_TRUE(r.out.defined() && r.lse.defined()) << "fill both out and lse";
  EXPECT_EQ(r.out.shape(), (Shape{2, 3, 5, 4})) << "out is [B, H, Tq, d]";
  EXPECT_EQ(r.lse.shape(), (Shape{2, 3, 5})) << "lse is [B, H, Tq]: one number per query row";
}

TEST(FlashForward, ReadmeWorkedExampleNotCausal) {
  // softmax([1, 2, 5, 3]) = [0.0152, 0.0414, 0.8310, 0.1125]; with the
  // values [1,0], [0,1], [1,1], [2,0]: out = [1.0710865, 0.8723234],
  // lse = 5.1851825 (both heads see the same scores).
  const Example e;
  const lesson11::FlashResult r = lesson11::flash_forward(e.q2, e.k2, e.v2, false, 2);
  EXPECT_TRUE(close("out (head 0 = column 0, head 1 = column 1)", r.out,
                      {1.0710865, 1.0710865, 1.0710865, 1.0710865, /**/ 0.8723234, 0.8723234,
                       0.8723234, 0.8723234},
                      {1, 2, 4, 1}));
  EXPECT_TRUE(close("lse", r.lse, std::vector<double>(8, 5.1851825), {1, 2, 4}));
}

TEST(FlashForward, ReadmeWorkedExampleCausal) {
  // Query i sees keys 0..i: row 0 = v0, row 1 = softmax([1, 2]) of v0, v1, ...
  const Example e;
  const lesson11::FlashResult r = lesson11::flash_forward(e.q2, e.k2, e.v2, true, 2);
  EXPECT_TRUE(close("causal out", r.out,
                      {1, 0.2689414, 0.9533874, 1.0710865, /**/ 0, 0.7310586, 0.9828522, 0.8723234},
                      {1, 2, 4, 1}));
  EXPECT_TRUE(close("causal lse", r.lse,
                      {1, 2.3132617, 5.0658839, 5.1851825, /**/ 1, 2.3132617, 5.0658839, 5.1851825},
                      {1, 2, 4}));
}

TEST(FlashForward, TileSizeDoesNotMatter) {
  const Tensor q = random_tensor({2, 2, 9, 4}, 4), k = random_tensor({2, 2, 9, 4}, 5), v = random_tensor({2, 2, 9, 4}, 6);
  for (bool causal : {false, true}) {
    const auto [want_out, want_lse] = plain_attention(q, k, v, causal);
    for (int64_t tile : {1, 2, 3, 4, 9, 64}) {
      const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, causal, tile);
      const std::string tag = std::string(causal ? "causal" : "non-causal") + ", tile " +
                              std::to_string(tile);
      EXPECT_TRUE(close("out, " + tag, r.out, values(want_out), {2, 2, 9, 4}))
          << "the tile size must change nothing but the memory";
      EXPECT_TRUE(close("lse, " + tag, r.lse, values(want_lse), {2, 2, 9}));
    }
  }
}

TEST(FlashForward, SingleKeyGivesItsValueAndItsScore) {
  // One key: its weight is 1 and lse = its score q.k / sqrt(d).
  const Tensor q = from_vector({1, 2, 0, 0}, {1, 1, 1, 4}), k = from_vector({3, 1, 0, 0}, {1, 1, 1, 4});
  const Tensor v = from_vector({7, -1, 0.5f, 2}, {1, 1, 1, 4});
  const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, true, 4);
  EXPECT_TRUE(close("out with one key", r.out, {7, -1, 0.5, 2}, {1, 1, 1, 4}));
  EXPECT_TRUE(close("lse with one key", r.lse, {2.5}, {1, 1, 1}))
      << "q.k = 5, / sqrt(4) = 2.5: did you scale the scores by 1/sqrt(d)?";
}

// ---------------------------------------------------------------- mistakes

TEST(Mistakes, RescaleForgetsRunningSum) {
  // Three tiles with a rising max: [1, 2] -> m 2, [5, 3] -> m 5, [7, 0] -> m 7.
  // Right:                 l = 1.1637795 (m + log l = 7.1516729).
  // l not rescaled:        l = 3.5041266 (the old terms keep their old max).
  lesson11::RowStats st;
  const float t1[] = {1, 2}, t2[] = {5, 3}, t3[] = {7, 0};
  lesson11::online_softmax_update(st, t1, 2);
  lesson11::online_softmax_update(st, t2, 2);
  lesson11::online_softmax_update(st, t3, 2);
  EXPECT_NEAR(st.l, 1.1637795, 1e-5)
      << "after tiles [1,2], [5,3], [7,0] l = " << st.l << ", expected 1.1637795"
      << (near(st.l, 3.5041266) ? ": you forgot to rescale the running sum. When the max rises "
                                  "from m_old to m_new, the terms already in l were exp(s - "
                                  "m_old); multiply l by exp(m_old - m_new) before adding the new "
                                  "tile"
                                : "");
  EXPECT_FLOAT_EQ(st.m, 7.0f);
}

TEST(Mistakes, FlashRescaleForgetsRunningSum) {
  // The README example through flash_forward, tiles of 2 keys: the max
  // rises on the second tile. Forgetting l *= alpha gives out = [0.5149,
  // 0.4194] and lse = 5.9176 instead of [1.0711, 0.8723] and 5.1852.
  const Example e;
  const lesson11::FlashResult r = lesson11::flash_forward(e.q2, e.k2, e.v2, false, 2);
  const std::vector<float> out = r.out.to_vector(), lse = r.lse.to_vector();
  const bool forgot_l = near(out[0], 0.5149323) && near(out[4], 0.4193756);
  const bool forgot_acc = near(out[0], 1.3615575) && near(out[4], 1.6619053);
  EXPECT_TRUE(near(out[0], 1.0710865) && near(out[4], 0.8723234) && near(lse[0], 5.1851825))
      << "query 0 (tiles [1,2] then [5,3]): out = [" << out[0] << ", " << out[4]
      << "], lse = " << lse[0] << "; expected [1.0711, 0.8723], lse 5.1852"
      << (forgot_l ? ". That is what l without the rescale gives: multiply the running sum l by "
                     "alpha = exp(m_old - m_new) whenever the max rises, not only the accumulator"
                   : "")
      << (forgot_acc ? ". That is what an accumulator without the rescale gives: multiply the "
                       "running sum of p * v by alpha = exp(m_old - m_new) too"
                     : "");
}

TEST(Mistakes, QuerySkipsItsOwnKey) {
  // Causal means j <= offset + i: query 0 sees key 0. With j < i, query 0
  // sees nothing and query 1 only key 0.
  const Example e;
  const lesson11::FlashResult r = lesson11::flash_forward(e.q2, e.k2, e.v2, true, 2);
  const std::vector<float> out = r.out.to_vector(), lse = r.lse.to_vector();
  EXPECT_TRUE(near(out[0], 1) && near(lse[0], 1))
      << "causal query 0 gives out " << out[0] << ", lse " << lse[0]
      << "; expected v0 = 1 and lse = s_00 = 1. Query i may see keys j <= i, its own included";
}
