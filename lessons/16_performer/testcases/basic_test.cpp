// Chapter 16, basic suite: the projection's shape, seed and orthogonality,
// the features of the README's worked example, FAVOR+ on inputs whose answer
// is known by hand, Linformer by hand and against full attention, and the
// classic mistakes. Expected numbers are worked out in the README or in a
// comment beside them.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "lesson_test.h"
#include "performer.h"

using namespace attn;
using namespace lesson_test;

namespace {

// Row r of a [rows, d] matrix, in double.
std::vector<double> row(const std::vector<float>& m, int64_t d, int64_t r) {
  return {m.begin() + r * d, m.begin() + (r + 1) * d};
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Softmax attention weights softmax(q k^T / sqrt(d)) of one head, in double
// (q, k [T, d] row-major), optionally causal.
std::vector<double> softmax_weights(const std::vector<float>& q, const std::vector<float>& k,
                                    int64_t t, int64_t d, bool causal) {
  std::vector<double> w(t * t, 0.0);
  for (int64_t i = 0; i < t; ++i) {
    const int64_t last = causal ? i : t - 1;
    double m = -1e300, z = 0;
    for (int64_t j = 0; j <= last; ++j)
      m = std::max(m, dot(row(q, d, i), row(k, d, j)) / std::sqrt(double(d)));
    for (int64_t j = 0; j <= last; ++j)
      z += w[i * t + j] = std::exp(dot(row(q, d, i), row(k, d, j)) / std::sqrt(double(d)) - m);
    for (int64_t j = 0; j <= last; ++j) w[i * t + j] /= z;
  }
  return w;
}

// The weights FAVOR+ gives: with v = the T x T identity, out = the weights
// (q and k both [1, 1, T, d]).
Tensor favor_weights(const Tensor& q, const Tensor& k, const Tensor& w, bool causal) {
  const int64_t t = k.shape()[2];
  Tensor eye = zeros({t, t});
  for (int64_t i = 0; i < t; ++i) eye.data<float>()[i * t + i] = 1;
  return lesson16::favor_attention(q, k, reshape(eye, {1, 1, t, t}), w, causal);
}

// Largest |a - b| over the elements.
double max_gap(const std::vector<double>& a, const std::vector<double>& b) {
  double g = 0;
  for (std::size_t i = 0; i < a.size(); ++i) g = std::max(g, std::fabs(a[i] - b[i]));
  return g;
}

}  // namespace

// ------------------------------------------------------------------ projection

TEST(Projection, ShapeAndTheSameSeedGivesTheSameMatrix) {
  const Tensor a = lesson16::gaussian_projection(10, 4, true, 7);
  ASSERT_EQ(a.shape(), (Shape{10, 4})) << "gaussian_projection(10, 4, ...) must be [M, d] = [10, 4]";
  EXPECT_TRUE(close("gaussian_projection(seed 7) twice", lesson16::gaussian_projection(10, 4, true, 7),
                    a, 0.0));
  EXPECT_GT(max_gap(values(a), values(lesson16::gaussian_projection(10, 4, true, 8))), 0.1)
      << "seeds 7 and 8 gave (nearly) the same matrix: seed a Generator with `seed`";
}

TEST(Projection, RejectsNoFeatures) {
  EXPECT_TRUE(rejects("gaussian_projection(0, 4, true, 1)", [] { lesson16::gaussian_projection(0, 4, true, 1); },
                      "zero random features estimate nothing"));
  EXPECT_TRUE(rejects("gaussian_projection(8, 0, true, 1)", [] { lesson16::gaussian_projection(8, 0, true, 1); },
                      "a head of size 0 has no direction to draw"));
}

// ------------------------------------------------------------------ features

TEST(WorkedExample, FeaturesOfTheReadme) {
  // d = 4 (so x' = x / sqrt(2)), M = 3 unit rows e1, e2, -e1; see the README.
  const Tensor w = from_vector({1, 0, 0, 0, 0, 1, 0, 0, -1, 0, 0, 0}, {3, 4});
  const Tensor x = from_vector({2, 0, 0, 0, 0, 0, 0, 0}, {2, 4});
  const double r = 1 / std::sqrt(3.0), s2 = std::sqrt(2.0);
  // As queries: each row its own max (row 0: sqrt2 - 1, row 1: 0).
  EXPECT_TRUE(close("favor_features(x, w, query)", lesson16::favor_features(x, w, true),
                    {r, r * std::exp(-s2), r * std::exp(-2 * s2), r, r, r}, {2, 3}));
  // As keys: one max for both rows (sqrt2 - 1), so row 1 sits exp(-(sqrt2 - 1)) lower.
  const double low = r * std::exp(1 - s2);
  EXPECT_TRUE(close("favor_features(x, w, key)", lesson16::favor_features(x, w, false),
                    {r, r * std::exp(-s2), r * std::exp(-2 * s2), low, low, low}, {2, 3}));
}

// ------------------------------------------------------------------ attention

TEST(FavorAttention, ZeroQueriesAndKeysAverageTheValues) {
  // q = k = 0: every feature is equal, so every key gets the same weight.
  const Tensor q = zeros({1, 1, 3, 2}), k = zeros({1, 1, 3, 2});
  const Tensor v = from_vector({1, 0, 3, 3, 2, 6}, {1, 1, 3, 2});
  const Tensor w = lesson16::gaussian_projection(8, 2, true, 1);
  EXPECT_TRUE(close("non-causal: the mean of all values", lesson16::favor_attention(q, k, v, w, false),
                    {2, 3, 2, 3, 2, 3}, {1, 1, 3, 2}));
  EXPECT_TRUE(close("causal: the mean of values 0..i", lesson16::favor_attention(q, k, v, w, true),
                    {1, 0, 2, 1.5, 2, 3}, {1, 1, 3, 2}));
}

TEST(FavorAttention, ManyFeaturesApproachSoftmax) {
  // 4096 orthogonal features: the estimated weights are within 0.08 of
  // softmax's (measured: 0.014 non-causal, 0.038 causal, where the first
  // rows average only a few keys).
  const int64_t t = 6, d = 8;
  const Tensor q = random_tensor({1, 1, t, d}, 1, 0.7f), k = random_tensor({1, 1, t, d}, 2, 0.7f);
  const Tensor w = lesson16::gaussian_projection(4096, d, true, 3);
  for (bool causal : {false, true}) {
    const double gap = max_gap(values(favor_weights(q, k, w, causal)),
                               softmax_weights(q.to_vector(), k.to_vector(), t, d, causal));
    EXPECT_LT(gap, 0.08) << (causal ? "causal" : "non-causal")
                         << ": FAVOR+ weights with M = 4096 differ from softmax's by " << gap;
  }
}

// ------------------------------------------------------------------ Linformer

TEST(Linformer, OneProjectedRowGivesEveryQueryFV) {
  // k = 1: softmax over one projected key is 1, so out = F V for every query.
  const Tensor q = from_vector({1, -2, 3}, {1, 1, 3, 1}), k = from_vector({0.5f, 1, -1}, {1, 1, 3, 1});
  const Tensor v = from_vector({2, 4, 9}, {1, 1, 3, 1});
  const Tensor e = from_vector({1, 1, 1, 7}, {1, 4}), f = from_vector({0.5f, 0.25f, 0.25f, 5}, {1, 4});
  // F's first 3 columns: 0.5 * 2 + 0.25 * 4 + 0.25 * 9 = 4.25.
  EXPECT_TRUE(close("linformer_attention(k = 1)", lesson16::linformer_attention(q, k, v, e, f),
                    {4.25, 4.25, 4.25}, {1, 1, 3, 1}));
}

TEST(Linformer, IdentityProjectionsAreFullBidirectionalAttention) {
  const int64_t t = 5, d = 3;
  const Tensor q = random_tensor({2, 2, t, d}, 4), k = random_tensor({2, 2, t, d}, 5),
               v = random_tensor({2, 2, t, d}, 6);
  Tensor eye = zeros({t, t});
  for (int64_t i = 0; i < t; ++i) eye.data<float>()[i * t + i] = 1;
  const Tensor full = matmul(softmax(mul(matmul(q, transpose(k, -2, -1)), 1 / std::sqrt(3.0f)), -1), v);
  EXPECT_TRUE(close("linformer_attention(E = F = I)", lesson16::linformer_attention(q, k, v, eye, eye), full));
}

TEST(Linformer, RejectsProjectionsShorterThanTheSequence) {
  const Tensor x = zeros({1, 1, 6, 2}), e = zeros({3, 4});
  EXPECT_TRUE(rejects("linformer_attention(T = 6, E [3, 4])",
                      [&] { lesson16::linformer_attention(x, x, x, e, e); },
                      "E has a column per position: 4 columns cannot project 6 positions"));
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, ForgettingTheHalfSquaredNorm) {
  // Without -|x|^2/2, a key's weight is multiplied by exp(|k'|^2 / 2): the
  // long key (norm 3) would outweigh the short one (norm 1) by far. Keys 0 and 1
  // have the same q . k, so softmax gives them the same weight. (Both rows
  // of q are the same query.)
  const Tensor q = from_vector({1, 0, 0, 0, 1, 0, 0, 0}, {1, 1, 2, 4});
  const Tensor k = from_vector({1, 0, 0, 0, 1, 2, 2, 0}, {1, 1, 2, 4});
  const Tensor w = lesson16::gaussian_projection(8192, 4, true, 5);
  const std::vector<double> got = values(favor_weights(q, k, w, false));
  EXPECT_NEAR(got[0], 0.5, 0.05) << "keys with the same q . k got weights " << got[0] << " and "
                                 << got[1] << ": is -|x|^2 / 2 missing from the exponent?";
}

TEST(Mistakes, ForgettingTheQuarterPowerScaling) {
  // d = 16: q . k = 8 for key 0 and 0 for key 1. Softmax of q.k/sqrt(d)
  // gives key 0 the weight e^2 / (e^2 + 1) = 0.881; without the d^(-1/4)
  // on q and k it would be e^8 / (e^8 + 1) = 0.9997.
  std::vector<float> qv(32, 0), kv(32, 0);
  qv[0] = qv[16] = 2, kv[0] = 4, kv[16 + 1] = 4;  // two rows of the same query
  const Tensor q = from_vector(qv, {1, 1, 2, 16}), k = from_vector(kv, {1, 1, 2, 16});
  const Tensor w = lesson16::gaussian_projection(8192, 16, true, 6);
  const double got = values(favor_weights(q, k, w, false))[0];
  EXPECT_NEAR(got, std::exp(2.0) / (std::exp(2.0) + 1), 0.04)
      << "key 0's weight: did you scale q and k by d^(-1/4) (so that q'.k' = q.k / sqrt(d))?";
}

TEST(Mistakes, IidRowsWhereOrthogonalWasAsked) {
  // 8 features of d = 4: two blocks of 4 mutually orthogonal rows.
  const std::vector<float> w = lesson16::gaussian_projection(8, 4, true, 9).to_vector();
  for (int64_t block = 0; block < 2; ++block)
    for (int64_t a = 0; a < 4; ++a)
      for (int64_t b = a + 1; b < 4; ++b) {
        const std::vector<double> ra = row(w, 4, block * 4 + a), rb = row(w, 4, block * 4 + b);
        const double cosine = dot(ra, rb) / std::sqrt(dot(ra, ra) * dot(rb, rb));
        EXPECT_NEAR(cosine, 0.0, 1e-4) << "rows " << block * 4 + a << " and " << block * 4 + b
                                       << " of an orthogonal projection are not orthogonal";
      }
}

TEST(Mistakes, UnitRowsInsteadOfChiNorms) {
  // Orthonormal rows all have length 1; a Gaussian row's squared length has
  // mean d. Over 512 rows of d = 8 the mean is 8 within 0.8 (its standard
  // error is 0.18); unit rows would give exactly 1.
  const std::vector<float> w = lesson16::gaussian_projection(512, 8, true, 10).to_vector();
  double mean = 0;
  for (int64_t r = 0; r < 512; ++r) mean += dot(row(w, 8, r), row(w, 8, r)) / 512;
  EXPECT_NEAR(mean, 8.0, 0.8) << "the mean squared row length: rescale each orthonormal row by "
                                 "the norm of a fresh N(0, I_d) vector";
}

TEST(Mistakes, CausalLeaksTheFuture) {
  // Changing the last key and value must not move any earlier output.
  const Tensor q = random_tensor({1, 2, 5, 4}, 11), k = random_tensor({1, 2, 5, 4}, 12),
               v = random_tensor({1, 2, 5, 4}, 13);
  Tensor k2 = k.clone(), v2 = v.clone();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t e = 0; e < 4; ++e) {
      k2.data<float>()[(h * 5 + 4) * 4 + e] += 3;
      v2.data<float>()[(h * 5 + 4) * 4 + e] -= 5;
    }
  const Tensor w = lesson16::gaussian_projection(16, 4, true, 14);
  const Tensor a = narrow(lesson16::favor_attention(q, k, v, w, true), 2, 0, 4);
  const Tensor b = narrow(lesson16::favor_attention(q, k2, v2, w, true), 2, 0, 4);
  EXPECT_TRUE(close("outputs 0..3 after changing key/value 4 (use prefix sums, not the total)", b, a));
}

TEST(Mistakes, NoStabiliserOverflows) {
  // |q|, |k| = 30 in d = 4: w.x' reaches about +-60 and |x'|^2/2 = 225, so
  // exp without the max taken out is inf or 0 and the output NaN. All keys
  // point the same way, so the exact answer is the mean of the values.
  const Tensor q = mul(ones({1, 1, 3, 4}), 15.0f), k = mul(ones({1, 1, 3, 4}), 15.0f);
  const Tensor v = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {1, 1, 3, 4});
  const Tensor w = lesson16::gaussian_projection(32, 4, true, 15);
  EXPECT_TRUE(close("favor_attention with |q| = |k| = 30", lesson16::favor_attention(q, k, v, w, false),
                    {5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8}, {1, 1, 3, 4}, 1e-3));
}

TEST(Mistakes, KeyStabiliserPerRowReweightsTheKeys) {
  // A per-key max divides key j's features by its own exp(c_j): it no longer
  // cancels. q = 0 gives every feature of phi(q) the same value, so key j's
  // weight is proportional to the sum of its exp(a_jm), with d = 2, w rows
  // (1, 1) and (-1, 1), r = d^(-1/4):
  //   key 0 = (0, 0):  a = 0, 0
  //   key 1 = (3, -3): k' = (3r, -3r), a = 0 - n, -6r - n with n = |k'|^2/2 = 9 r^2
  // so the true weight of key 0 is 2 / (2 + e^-n + e^(-6r-n)) = 0.9991; with
  // a per-key max, key 1's features become 1 and e^(-6r) and key 0 gets 0.665.
  const Tensor q = zeros({1, 1, 2, 2});
  const Tensor k = from_vector({0, 0, 3, -3}, {1, 1, 2, 2});
  const Tensor w = from_vector({1, 1, -1, 1}, {2, 2});
  const double r = std::pow(2.0, -0.25), n = 9 * r * r;
  const double want0 = 2 / (2 + std::exp(-n) + std::exp(-6 * r - n));
  const std::vector<double> got = values(favor_weights(q, k, w, false));
  EXPECT_NEAR(got[0], want0, 1e-4) << "key 0's weight: keys must share one stabiliser (the max "
                                      "over all keys and features), not one per key";
}

TEST(Mistakes, LinformerProjectsTheQueriesToo) {
  // T = 4 queries, k = 2 projected rows: the output keeps T = 4 rows. With
  // E = F = [[1, 1, 0, 0], [0, 0, 1, 1]] and q = 0 both projected keys tie,
  // so out = the mean of F V's two rows = the sum of all values / 2.
  const Tensor q = zeros({1, 1, 4, 1}), k = random_tensor({1, 1, 4, 1}, 16);
  const Tensor v = from_vector({1, 2, 3, 4}, {1, 1, 4, 1});
  const Tensor e = from_vector({1, 1, 0, 0, 0, 0, 1, 1}, {2, 4});
  EXPECT_TRUE(close("linformer_attention (only K and V are projected; Q keeps its T rows)",
                    lesson16::linformer_attention(q, k, v, e, e), {5, 5, 5, 5}, {1, 1, 4, 1}));
}
