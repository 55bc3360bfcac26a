// Chapter 07, basic suite: the slopes for powers of two and for the rest,
// the bias matrix by hand (with and without a cache offset), the README's
// worked example, and the mistakes everybody meets: the interleaving rule
// for non-powers of two, the wrong sign, the bias after the softmax, i and j
// swapped, one slope for every head.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "alibi.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"

using namespace attn;
using lesson_test::close;
using lesson_test::rejects;
using lesson_test::values;

namespace {

Tensor rnd(const Shape& s, uint64_t seed) { return lesson_test::random_tensor(s, seed); }

std::string list(const std::vector<float>& v) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

// Slopes as powers of two: 2^e for each exponent (exact in float).
std::vector<float> pow2(const std::vector<double>& exps) {
  std::vector<float> s;
  for (double e : exps) s.push_back(static_cast<float>(std::pow(2.0, e)));
  return s;
}

::testing::AssertionResult same_slopes(int64_t heads, const std::vector<float>& got,
                                       const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "alibi_slopes(" << heads << ") gave " << got.size()
                                         << " slopes, expected one per head (" << want.size() << ")";
  for (std::size_t h = 0; h < want.size(); ++h)
    if (std::fabs(got[h] - want[h]) > 1e-6 * want[h] + 1e-9)
      return ::testing::AssertionFailure()
             << "alibi_slopes(" << heads << ") = " << list(got) << "\nexpected          "
             << list(want) << "\nfirst difference at head " << h << ": expected " << want[h]
             << ", got " << got[h];
  return ::testing::AssertionSuccess();
}

// bias[h, i, j] for the causal entries j <= offset + i, row-major; the
// future entries are free (they are masked) but must be finite.
::testing::AssertionResult causal_bias_is(const std::string& what, const Tensor& got,
                                          const std::vector<float>& slopes, int64_t tq, int64_t tk,
                                          int64_t offset) {
  const int64_t H = static_cast<int64_t>(slopes.size());
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": undefined Tensor";
  if (got.shape() != Shape{H, tq, tk})
    return ::testing::AssertionFailure()
           << what << ": expected shape " << shape_str({H, tq, tk}) << " ([heads, Tq, Tk]), got "
           << shape_str(got.shape())
           << (got.shape() == Shape{H, tk, tq} ? ": queries and keys are swapped (i runs down the "
                                                 "rows, j along the columns)"
                                               : "");
  const std::vector<float> g = got.to_vector();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < tq; ++i)
      for (int64_t j = 0; j < tk; ++j) {
        const float x = g[(h * tq + i) * tk + j];
        if (!std::isfinite(x))
          return ::testing::AssertionFailure() << what << ": bias" << lesson_test::index_str((h * tq + i) * tk + j, got.shape())
                                               << " is " << x << "; every entry must be finite";
        if (j > offset + i) continue;
        const double want = -slopes[h] * double(offset + i - j);
        if (std::fabs(x - want) > 1e-5 * (1 + std::fabs(want)))
          return ::testing::AssertionFailure()
                 << what << ": bias[" << h << "," << i << "," << j << "] (query at position "
                 << offset + i << ", key " << j << ", slope " << slopes[h] << ") expected "
                 << want << " = -" << slopes[h] << " * " << offset + i - j << ", got " << x;
      }
  return ::testing::AssertionSuccess();
}

// q, k, v of the README's worked example, the same in all 8 heads:
// d = 1, T = 4.
struct Example {
  Tensor q, k, v;
  Example() {
    const std::vector<float> qh = {0, 1, 1, 2}, kh = {1, 0, 2, 1}, vh = {1, 0, 0, 1, 2, 2, 4, 0};
    std::vector<float> qa, ka, va;
    for (int h = 0; h < 8; ++h) {
      qa.insert(qa.end(), qh.begin(), qh.end());
      ka.insert(ka.end(), kh.begin(), kh.end());
      va.insert(va.end(), vh.begin(), vh.end());
    }
    q = from_vector(qa, {1, 8, 4, 1});
    k = from_vector(ka, {1, 8, 4, 1});
    v = from_vector(va, {1, 8, 4, 2});
  }
};

}  // namespace

// ------------------------------------------------------------------ slopes

TEST(Slopes, PowersOfTwo) {
  EXPECT_TRUE(same_slopes(8, lesson07::alibi_slopes(8), pow2({-1, -2, -3, -4, -5, -6, -7, -8})));
  EXPECT_TRUE(same_slopes(4, lesson07::alibi_slopes(4), pow2({-2, -4, -6, -8})));
  EXPECT_TRUE(same_slopes(2, lesson07::alibi_slopes(2), pow2({-4, -8})));
  EXPECT_TRUE(same_slopes(1, lesson07::alibi_slopes(1), pow2({-8})))
      << "one head: 2^(-8 * 1 / 1) = 1/256";
  EXPECT_TRUE(same_slopes(16, lesson07::alibi_slopes(16),
                          pow2({-0.5, -1, -1.5, -2, -2.5, -3, -3.5, -4, -4.5, -5, -5.5, -6, -6.5,
                                -7, -7.5, -8})));
}

TEST(Slopes, NonPowersOfTwoInterleave) {
  // n = 6: the 4 slopes of 4 heads, then slopes(8)[0] and slopes(8)[2].
  EXPECT_TRUE(same_slopes(6, lesson07::alibi_slopes(6), pow2({-2, -4, -6, -8, -1, -3})));
  EXPECT_TRUE(same_slopes(3, lesson07::alibi_slopes(3), pow2({-4, -8, -2})));
  EXPECT_TRUE(same_slopes(5, lesson07::alibi_slopes(5), pow2({-2, -4, -6, -8, -1})));
  EXPECT_TRUE(same_slopes(12, lesson07::alibi_slopes(12),
                          pow2({-1, -2, -3, -4, -5, -6, -7, -8, -0.5, -1.5, -2.5, -3.5})));
}

TEST(Slopes, ZeroHeadsIsAnError) {
  EXPECT_TRUE(rejects("alibi_slopes(0)", [] { lesson07::alibi_slopes(0); },
                      "a model needs at least one head; use attn::check"));
}

// -------------------------------------------------------------------- bias

TEST(Bias, ByHandTwoHeads) {
  // slopes 1/16 and 1/256; row i, column j holds -m * (i - j) for j <= i.
  const Tensor b = lesson07::alibi_bias(2, 3, 3);
  EXPECT_TRUE(causal_bias_is("alibi_bias(2 heads, T = 3)", b, pow2({-4, -8}), 3, 3, 0));
  const std::vector<float> g = b.to_vector();
  if (g.size() == 18) {
    EXPECT_FLOAT_EQ(g[2 * 3 + 0], -0.125f) << "head 0, query 2, key 0: -(1/16) * 2";
    EXPECT_FLOAT_EQ(g[9 + 2 * 3 + 0], -2.0f / 256) << "head 1, query 2, key 0: -(1/256) * 2";
  }
}

TEST(Bias, QueriesAfterACache) {
  // Two new queries at positions 3 and 4 over 5 keys (offset 3).
  EXPECT_TRUE(causal_bias_is("alibi_bias(1 head, Tq = 2, Tk = 5, offset = 3)",
                             lesson07::alibi_bias(1, 2, 5, 3), pow2({-8}), 2, 5, 3))
      << "the query in row i sits at position offset + i: measure its distance from there";
  EXPECT_TRUE(causal_bias_is("alibi_bias(6 heads, Tq = 3, Tk = 7, offset = 4)",
                             lesson07::alibi_bias(6, 3, 7, 4), pow2({-2, -4, -6, -8, -1, -3}), 3, 7,
                             4));
}

TEST(Bias, ZeroOnTheDiagonalAndFallingWithDistance) {
  const std::vector<float> g = lesson07::alibi_bias(4, 6, 6).to_vector();
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < 6; ++i) {
      EXPECT_EQ(g[(h * 6 + i) * 6 + i], 0.0f) << "head " << h << ", query " << i
                                              << ": a token's distance to itself is 0";
      for (int64_t j = 1; j <= i; ++j)
        EXPECT_LT(g[(h * 6 + i) * 6 + j - 1], g[(h * 6 + i) * 6 + j])
            << "head " << h << ", query " << i << ": key " << j - 1 << " is older than key " << j
            << ", so its bias must be lower";
    }
}

// --------------------------------------------------------------- attention

TEST(Attention, ReadmeWorkedExample) {
  // Head 0 has slope 1/2; head 7 has 1/256, nearly plain attention.
  const Example e;
  Tensor w;
  const Tensor out = lesson07::alibi_attention(e.q, e.k, e.v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  ASSERT_EQ(w.shape(), (Shape{1, 8, 4, 4}));
  ASSERT_EQ(out.shape(), (Shape{1, 8, 4, 2}));
  EXPECT_TRUE(close("weights of head 0 (slope 1/2)", select(select(w, 0, 0), 0, 0),
                    {1, 0, 0, 0, 0.6224593, 0.3775407, 0, 0, 0.1111656, 0.0674254, 0.8214090, 0,
                     0.0387742, 0.0086517, 0.7788003, 0.1737738},
                    {4, 4}));
  EXPECT_TRUE(close("out of head 0 (slope 1/2)", select(select(out, 0, 0), 0, 0),
                    {1, 0, 0.6224593, 0.3775407, 1.7539837, 1.7102434, 2.2914701, 1.5662523},
                    {4, 2}));
  EXPECT_TRUE(close("weights of head 7 (slope 1/256)", select(select(w, 0, 0), 0, 7),
                    {1, 0, 0, 0, 0.7302899, 0.2697101, 0, 0, 0.2433729, 0.0898823, 0.6667448, 0,
                     0.1042246, 0.0141605, 0.7761617, 0.1054532},
                    {4, 4}));
  EXPECT_TRUE(close("out of head 7 (slope 1/256)", select(select(out, 0, 0), 0, 7),
                    {1, 0, 0.7302899, 0.2697101, 1.5768625, 1.4233719, 2.0783608, 1.5664839},
                    {4, 2}));
}

TEST(Attention, WithoutContentTheBiasAloneDecidesTheWeights) {
  // q = 0: every score is 0, so the weights are softmax(bias): exp(-m * dist)
  // normalised. Head 0 of 8 (m = 1/2), query 3: e^-1.5, e^-1, e^-0.5, 1.
  const Tensor q = zeros({1, 8, 4, 3}), k = rnd({1, 8, 4, 3}, 1), v = rnd({1, 8, 4, 2}, 2);
  Tensor w;
  lesson07::alibi_attention(q, k, v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("weights of head 0, query 3, with q = 0", select(select(select(w, 0, 0), 0, 0), 0, 3),
                    {0.1015363, 0.1674051, 0.2760043, 0.4550542}, {4}));
  EXPECT_TRUE(close("weights of head 7, query 3, with q = 0", select(select(select(w, 0, 0), 0, 7), 0, 3),
                    {0.2485371, 0.2495098, 0.2504864, 0.2514667}, {4}));
}

TEST(Attention, OneTokenReturnsItsValue) {
  const Tensor q = rnd({2, 3, 1, 4}, 3), k = rnd({2, 3, 1, 4}, 4), v = rnd({2, 3, 1, 5}, 5);
  EXPECT_TRUE(close("alibi_attention with T = 1", lesson07::alibi_attention(q, k, v), v))
      << "one token sees only itself, with weight 1";
}

TEST(Attention, DecodingTheLastTokenEqualsTheLastRow) {
  const Tensor q = rnd({1, 4, 6, 4}, 6), k = rnd({1, 4, 6, 4}, 7), v = rnd({1, 4, 6, 3}, 8);
  const Tensor full = lesson07::alibi_attention(q, k, v);
  EXPECT_TRUE(close("one query at position 5 (offset 5) over 6 keys",
                    lesson07::alibi_attention(narrow(q, 2, 5, 1), k, v, 5),
                    contiguous(narrow(full, 2, 5, 1))))
      << "the query in row 0 sits at position offset = 5: its bias row is -m * (5 - j)";
}

// ---------------------------------------------------------------- mistakes

TEST(Mistakes, SlopesWrongForANonPowerOfTwoHeadCount) {
  const std::vector<float> got = lesson07::alibi_slopes(6);
  const std::vector<float> want = pow2({-2, -4, -6, -8, -1, -3});
  std::string hint;
  auto is = [&](const std::vector<float>& other) {
    if (got.size() != other.size()) return false;
    for (std::size_t h = 0; h < other.size(); ++h)
      if (std::fabs(got[h] - other[h]) > 1e-6) return false;
    return true;
  };
  std::vector<float> plain;
  for (int k = 1; k <= 6; ++k) plain.push_back(static_cast<float>(std::pow(2.0, -8.0 * k / 6)));
  if (is(plain))
    hint = "\nThat is 2^(-8k/n) with n = 6: the power-of-two formula applied to 6 heads. For a "
           "non-power of two take the 4 slopes of 4 heads, then every other slope of 8 heads";
  else if (is(pow2({-2, -4, -6, -8, -1, -2})))
    hint = "\nThe extra heads took consecutive slopes of 8 heads (1/2, 1/4); take every other "
           "one: slopes(8)[0], slopes(8)[2], ... = 1/2, 1/8";
  else if (is(pow2({-2, -4, -6, -8, -2, -4})))
    hint = "\nThe extra heads started at slopes(8)[1]; start at slopes(8)[0] and step by 2";
  else if (is(pow2({-1, -2, -3, -4, -5, -6})))
    hint = "\nThat is the first 6 slopes of 8 heads; the rule keeps all 4 slopes of 4 heads and "
           "only fills the rest from 8 heads";
  EXPECT_TRUE(same_slopes(6, got, want)) << hint;
}

TEST(Mistakes, BiasWithTheWrongSignRewardsDistance) {
  const std::vector<float> g = lesson07::alibi_bias(1, 4, 4).to_vector();
  ASSERT_EQ(g.size(), 16u);
  EXPECT_LT(g[3 * 4 + 0], 0.0f)
      << "bias[0, 3, 0] (query 3, key 0, 3 tokens back) is " << g[3 * 4 + 0]
      << ": it must be negative, -m * (i - j) = " << -3.0 / 256
      << ". A positive bias rewards distance and pushes every head to the oldest tokens. "
         "(If you computed -m * (j - i), i and j are swapped.)";
}

TEST(Mistakes, BiasAddedAfterTheSoftmax) {
  // q = 0: the right weights are softmax(bias). Adding the bias to the
  // weights instead gives rows that do not sum to 1 (or, renormalised, the
  // wrong numbers).
  const Tensor q = zeros({1, 1, 3, 2}), k = rnd({1, 1, 3, 2}, 10), v = rnd({1, 1, 3, 2}, 11);
  Tensor w;
  const Tensor out = lesson07::alibi_attention(q, k, v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out";
  const std::vector<float> g = w.to_vector();
  const double m = 1.0 / 256, z = 1 + std::exp(-m) + std::exp(-2 * m);
  const std::vector<double> want = {1, 0, 0, std::exp(-m) / (1 + std::exp(-m)),
                                    1 / (1 + std::exp(-m)), 0, std::exp(-2 * m) / z,
                                    std::exp(-m) / z, 1 / z};
  for (int i = 0; i < 3; ++i) {
    const double row = g[i * 3] + g[i * 3 + 1] + g[i * 3 + 2];
    EXPECT_NEAR(row, 1.0, 1e-5) << "weights of query " << i << " sum to " << row
                                << ": add the bias to the SCORES, then take the softmax; a bias "
                                   "added to the weights breaks the distribution";
  }
  EXPECT_TRUE(close("weights with q = 0 (softmax of the bias)", w, want, {1, 1, 3, 3}, 1e-5))
      << "with q = 0 the weights must be softmax(bias): exp(-m * distance), normalised";
}

TEST(Mistakes, BiasOnTheWrongAxis) {
  // Tq != Tk (queries after a cache) shows a transposed bias at once.
  const Tensor b = lesson07::alibi_bias(2, 2, 5, 3);
  EXPECT_TRUE(causal_bias_is("alibi_bias(2 heads, Tq = 2, Tk = 5, offset = 3)", b, pow2({-4, -8}),
                             2, 5, 3))
      << "rows are queries (position offset + i), columns are keys (position j): "
         "bias[h, i, j] = -m_h * (offset + i - j)";
  // In the square case a swap shows up as a positive bias below the diagonal.
  const std::vector<float> s = lesson07::alibi_bias(1, 3, 3).to_vector();
  ASSERT_EQ(s.size(), 9u);
  EXPECT_FLOAT_EQ(s[2 * 3 + 0], -2.0f / 256)
      << "bias[0, 2, 0] (row = query 2, column = key 0): expected -m * (2 - 0); a value of "
      << 2.0 / 256 << " means rows and columns (i and j) are swapped";
}

TEST(Mistakes, OneSlopeForAllHeads) {
  // Every head gets the same q = 0, k, v: only the slope tells them apart.
  const Tensor q = zeros({1, 4, 5, 2}), k1 = rnd({1, 1, 5, 2}, 12), v1 = rnd({1, 1, 5, 2}, 13);
  const Tensor k = cat({k1, k1, k1, k1}, 1), v = cat({v1, v1, v1, v1}, 1);
  Tensor w;
  lesson07::alibi_attention(q, k, v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out";
  const std::vector<float> g = w.to_vector();
  // Weight of the oldest key for the last query, per head: exp(-4m) / sum.
  const std::vector<double> m = {1.0 / 4, 1.0 / 16, 1.0 / 64, 1.0 / 256};
  std::vector<float> per_head;
  for (int h = 0; h < 4; ++h) per_head.push_back(g[(h * 5 + 4) * 5 + 0]);
  ASSERT_FALSE(per_head[0] == per_head[1] && per_head[1] == per_head[2] && per_head[2] == per_head[3])
      << "all 4 heads gave key 0 of query 4 the same weight " << per_head[0]
      << ": they all use one slope. Each head h has its own slope m_h (the bias is [heads, Tq, Tk], "
         "one matrix per head): multiply a [heads, 1, 1] tensor of slopes with the [Tq, Tk] "
         "distances";
  for (int h = 0; h < 4; ++h) {
    double z = 0;
    for (int d = 0; d < 5; ++d) z += std::exp(-m[h] * d);
    const double want = std::exp(-m[h] * 4) / z;
    EXPECT_NEAR(per_head[h], want, 1e-5)
        << "head " << h << " (slope " << m[h] << "), q = 0: the weight of key 0 for query 4 must "
        << "be exp(-4 m) / sum_d exp(-d m) = " << want << ", got " << per_head[h];
  }
}
