// Chapter 10, basic suite: the feature map by hand, the README's worked
// example in both forms, the simplest equivalences (associativity, last row
// causal == non-causal, chunk size does not matter) and the mistakes that
// make linear attention quietly wrong: a causal leak, a missing normaliser,
// elu without the + 1.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "linear_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// The README's worked example: T = 3, d = 2, dv = 2. The inputs are chosen
// so that phi(x) is an integer: phi(0) = 1, phi(1) = 2.
//   phi(q) = [[1,2],[2,1],[2,2]],  phi(k) = [[2,1],[1,1],[1,2]]
struct Example {
  Tensor q = from_vector({0, 1, /**/ 1, 0, /**/ 1, 1}, {1, 1, 3, 2});
  Tensor k = from_vector({1, 0, /**/ 0, 0, /**/ 0, 1}, {1, 1, 3, 2});
  Tensor v = from_vector({1, 0, /**/ 0, 1, /**/ 1, 1}, {1, 1, 3, 2});
};

// The quadratic form, with library ops (not your code): A = phi(q) phi(k)^T,
// each row divided by its sum, times v. Equal to linear attention (up to
// eps) by associativity.
Tensor quadratic_reference(const Tensor& q, const Tensor& k, const Tensor& v) {
  const Tensor fq = add(elu(q), 1.0f), fk = add(elu(k), 1.0f);
  const Tensor a = matmul(fq, transpose(fk, -2, -1));
  return matmul(div(a, sum(a, {-1}, true)), v);
}

}  // namespace

// --------------------------------------------------------------- feature map

TEST(FeatureMap, HandValues) {
  // elu(x) + 1 = x + 1 for x > 0 and exp(x) for x <= 0.
  const Tensor x = from_vector({-2, -1, 0, 0.5f, 3}, {5});
  EXPECT_TRUE(close("elu_feature_map([-2, -1, 0, 0.5, 3])", lesson10::elu_feature_map(x),
                      {0.1353353, 0.3678794, 1, 1.5, 4}, {5}));
}

TEST(FeatureMap, KeepsShapeAndIsPositive) {
  const Tensor x = random_tensor({2, 3, 4, 5}, 1, 5.0f);
  const Tensor y = lesson10::elu_feature_map(x);
  ASSERT_EQ(y.shape(), x.shape()) << "the feature map is elementwise: same shape out";
  for (float f : y.to_vector())
    ASSERT_GT(f, 0.0f) << "phi(x) must be > 0 for every x (the similarities are then positive)";
}

// ------------------------------------------------------------- non-causal form

TEST(NonCausal, ReadmeWorkedExample) {
  // S = phi(K)^T V = [[3,2],[3,3]], z = [4,4]; row 0: [1,2] S / ([1,2].z)
  // = [9, 8] / 12.
  const Example e;
  EXPECT_TRUE(close("linear_attention_noncausal on the README example",
                      lesson10::linear_attention_noncausal(e.q, e.k, e.v),
                      {0.75, 8.0 / 12, /**/ 0.75, 7.0 / 12, /**/ 0.75, 0.625}, {1, 1, 3, 2}));
}

TEST(NonCausal, ShapesWithMoreKeysThanQueries) {
  const Tensor out = lesson10::linear_attention_noncausal(random_tensor({2, 3, 4, 5}, 2), random_tensor({2, 3, 6, 5}, 3),
                                                          random_tensor({2, 3, 6, 7}, 4));
  EXPECT_EQ(out.shape(), (Shape{2, 3, 4, 7})) << "out is [B, H, T, dv]";
}

TEST(NonCausal, EqualsTheNormalisedQuadraticForm) {
  // (phi(Q) phi(K)^T) V, rows normalised, is the same as phi(Q) (phi(K)^T V)
  // normalised: associativity is the whole trick.
  const Tensor q = random_tensor({2, 2, 5, 4}, 5), k = random_tensor({2, 2, 7, 4}, 6), v = random_tensor({2, 2, 7, 3}, 7);
  EXPECT_TRUE(close("non-causal vs (phi(Q) phi(K)^T / rowsum) V",
                      lesson10::linear_attention_noncausal(q, k, v),
                      values(quadratic_reference(q, k, v)), {2, 2, 5, 3}));
}

// ----------------------------------------------------------------- causal form

TEST(Causal, ReadmeWorkedExample) {
  // Row 0 sees key 0 only (out = v0); row 1 weighs keys 0, 1 by 5 and 3;
  // row 2 weighs keys 0, 1, 2 by 6, 4, 6.
  const Example e;
  for (int64_t chunk : {1, 2, 3, 4})
    EXPECT_TRUE(close("linear_attention_causal on the README example, chunk " +
                            std::to_string(chunk),
                        lesson10::linear_attention_causal(e.q, e.k, e.v, chunk),
                        {1, 0, /**/ 0.625, 0.375, /**/ 0.75, 0.625}, {1, 1, 3, 2}));
}

TEST(Causal, LastRowEqualsNonCausal) {
  // The last query sees every key either way.
  const Tensor q = random_tensor({1, 2, 6, 4}, 8), k = random_tensor({1, 2, 6, 4}, 9), v = random_tensor({1, 2, 6, 3}, 10);
  const Tensor c = lesson10::linear_attention_causal(q, k, v, 4);
  const Tensor n = lesson10::linear_attention_noncausal(q, k, v);
  EXPECT_TRUE(close("last row of causal vs non-causal", select(c, 2, 5), values(select(n, 2, 5)),
                      {1, 2, 3}));
}

TEST(Causal, FirstRowIsTheFirstValue) {
  // Query 0 sees key 0 only, whose normalised weight is 1.
  const Tensor v = random_tensor({2, 3, 5, 4}, 13);
  const Tensor out = lesson10::linear_attention_causal(random_tensor({2, 3, 5, 4}, 11), random_tensor({2, 3, 5, 4}, 12), v, 2);
  EXPECT_TRUE(close("causal out[:, :, 0]", select(out, 2, 0), values(select(v, 2, 0)), {2, 3, 4}));
}

TEST(Causal, ChunkSizeDoesNotChangeTheResult) {
  const Tensor q = random_tensor({2, 2, 11, 4}, 14), k = random_tensor({2, 2, 11, 4}, 15), v = random_tensor({2, 2, 11, 3}, 16);
  const std::vector<double> want = values(lesson10::linear_attention_causal(q, k, v, 1));
  for (int64_t chunk : {2, 3, 4, 5, 11, 16})
    EXPECT_TRUE(close("causal with chunk " + std::to_string(chunk) + " vs chunk 1",
                        lesson10::linear_attention_causal(q, k, v, chunk), want, {2, 2, 11, 3}))
        << "the chunk is a speed/memory knob; the result must not depend on it";
}

// --------------------------------------------------------------------- mistakes

TEST(Mistakes, CausalLeakFullSumInsteadOfPrefixSum) {
  // Change the keys and values of positions 5..7 only. Outputs 0..4 must
  // not move: they may use keys 0..4 and nothing else.
  const Tensor q = random_tensor({1, 2, 8, 4}, 21), k = random_tensor({1, 2, 8, 4}, 22), v = random_tensor({1, 2, 8, 3}, 23);
  const Tensor future = from_bools({0, 0, 0, 0, 0, 1, 1, 1}, {1, 1, 8, 1});
  const Tensor k2 = where(future, random_tensor({1, 2, 8, 4}, 24), k),
               v2 = where(future, random_tensor({1, 2, 8, 3}, 25), v);
  for (int64_t chunk : {1, 4, 8}) {
    const std::vector<float> a = lesson10::linear_attention_causal(q, k, v, chunk).to_vector();
    const std::vector<float> b = lesson10::linear_attention_causal(q, k2, v2, chunk).to_vector();
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t t = 0; t < 5; ++t)
        for (int64_t c = 0; c < 3; ++c) {
          const int64_t i = (h * 8 + t) * 3 + c;
          std::string hint;
          if (t == 0)
            hint = ". Even position 0 moved: the state S = sum phi(k_j) v_j^T (and z) is summed "
                   "over ALL positions, the non-causal form. Query t may only use the prefix "
                   "sum over j <= t";
          else if (chunk > 1 && t / chunk == 5 / chunk)
            hint = ". Only rows in the same chunk as position 5 moved: inside a chunk, keep key "
                   "j <= query i with tril(phi(Qc) phi(Kc)^T), and add the chunk's keys to the "
                   "state only AFTER its outputs are computed";
          ASSERT_NEAR(a[i], b[i], 1e-5)
              << "causal out[0," << h << "," << t << "," << c << "] (chunk " << chunk
              << ") changed when only positions 5..7 changed: your causal linear attention "
                 "reads the future"
              << hint;
        }
  }
}

TEST(Mistakes, CausalLeakOnTheReadmeExample) {
  // With the full sums, query 0 would get [0.75, 0.667] (the non-causal
  // answer) instead of v0 = [1, 0].
  const Example e;
  const std::vector<float> out = lesson10::linear_attention_causal(e.q, e.k, e.v, 3).to_vector();
  const bool leaked = std::fabs(out[0] - 0.75f) < 1e-3 && std::fabs(out[1] - 8.0f / 12) < 1e-3;
  EXPECT_TRUE(std::fabs(out[0] - 1.0f) < 1e-4 && std::fabs(out[1]) < 1e-4)
      << "causal out[0] is [" << out[0] << ", " << out[1] << "], expected v0 = [1, 0]"
      << (leaked ? ": that is the non-causal answer, so query 0 saw every key. Query 0 must use "
                   "S_0 = phi(k_0) v_0^T only: prefix sums between chunks, tril inside a chunk"
                 : "");
}

TEST(Mistakes, MissingNormaliser) {
  // With every value equal to 1, a weighted average is 1 whatever the
  // weights. Without the division by phi(q) . z it is the sum of the
  // similarities instead.
  const Tensor q = random_tensor({1, 1, 5, 3}, 26), k = random_tensor({1, 1, 5, 3}, 27), v = ones({1, 1, 5, 2});
  const std::vector<double> want(10, 1.0);
  const Tensor n = lesson10::linear_attention_noncausal(q, k, v);
  const Tensor c = lesson10::linear_attention_causal(q, k, v, 2);
  const char* hint = "with v = 1 the output must be 1 everywhere: divide the numerator "
                     "phi(q)^T S by the denominator phi(q) . z (+ eps)";
  EXPECT_TRUE(close("non-causal out with v = 1", n, want, {1, 1, 5, 2})) << hint;
  EXPECT_TRUE(close("causal out with v = 1", c, want, {1, 1, 5, 2})) << hint;
}

TEST(Mistakes, FeatureMapMissingPlusOne) {
  // elu(-1) = -0.632 < 0; elu(-1) + 1 = exp(-1) = 0.368 > 0.
  const std::vector<float> y = lesson10::elu_feature_map(from_vector({-1, 2}, {2})).to_vector();
  const bool no_plus_one = std::fabs(y[0] + 0.6321206f) < 1e-4 && std::fabs(y[1] - 2) < 1e-4;
  EXPECT_TRUE(std::fabs(y[0] - 0.3678794f) < 1e-4 && std::fabs(y[1] - 3) < 1e-4)
      << "phi([-1, 2]) = [" << y[0] << ", " << y[1] << "], expected [0.3679, 3]"
      << (no_plus_one ? ": that is elu alone. Add 1: elu(x) can be negative, so similarities "
                        "and the denominator could be <= 0 (and divide by ~0)"
                      : "");
}
