// An example of a teacher's hidden tests for chapter 01, graded with
//   attnlab lesson grade 01 --hidden lessons/grading/hidden_example
// The grader compiles this folder's files against the student's library
// (the chapter's header, lessons/common/ and gtest are on the include path)
// and Gradescope shows the results after the due date. The files of one
// chapter are compiled as one unit: keep helpers in a namespace of their own.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "lesson_test.h"
#include "softmax_attention.h"

namespace hidden01 {

// Attention in plain loops and double precision: the oracle, independent of
// the code under test. q [Tq, d], k [Tk, d], v [Tk, dv], one batch and head;
// `causal` keeps key j for query i when j <= i.
std::vector<double> attention_oracle(const std::vector<double>& q, const std::vector<double>& k,
                                     const std::vector<double>& v, int tq, int tk, int d, int dv, bool causal) {
  std::vector<double> out(static_cast<std::size_t>(tq * dv), 0.0);
  for (int i = 0; i < tq; ++i) {
    std::vector<double> score(static_cast<std::size_t>(tk), -INFINITY);
    double top = -INFINITY;
    for (int j = 0; j < tk; ++j) {
      if (causal && j > i) continue;
      double s = 0;
      for (int c = 0; c < d; ++c) s += q[i * d + c] * k[j * d + c];
      score[j] = s / std::sqrt(static_cast<double>(d));
      top = std::max(top, score[j]);
    }
    double total = 0;
    for (int j = 0; j < tk; ++j) total += std::isinf(score[j]) ? 0.0 : std::exp(score[j] - top);
    for (int j = 0; j < tk; ++j) {
      const double w = std::isinf(score[j]) ? 0.0 : std::exp(score[j] - top) / total;
      for (int c = 0; c < dv; ++c) out[i * dv + c] += w * v[j * dv + c];
    }
  }
  return out;
}

}  // namespace hidden01

TEST(Hidden01, OneKeyGivesItsValueWhateverTheQuery) {
  // With a single key the weight is 1, so every query's output is that value.
  const attn::Tensor q = lesson_test::random_tensor({1, 1, 4, 3}, 7, 5.0f);
  const attn::Tensor k = lesson_test::random_tensor({1, 1, 1, 3}, 8);
  const attn::Tensor v = attn::from_vector({0.5f, -2.0f}, {1, 1, 1, 2});
  EXPECT_TRUE(lesson_test::close("attention with one key", lesson01::scaled_dot_product_attention(q, k, v),
                                 {0.5, -2, 0.5, -2, 0.5, -2, 0.5, -2}, {1, 1, 4, 2}));
}

TEST(Hidden01, HugeEqualLogitsGiveAUniformRow) {
  // exp(90) overflows float32: only a softmax that subtracts the row's max survives.
  const attn::Tensor x = attn::from_vector({90, 90, 90, 90}, {1, 4});
  EXPECT_TRUE(lesson_test::close("softmax([90, 90, 90, 90])", lesson01::softmax(x), {0.25, 0.25, 0.25, 0.25}, {1, 4}));
}

TEST(Hidden01, CausalAttentionMatchesALoopOracle) {
  const int t = 6, d = 5, dv = 3;
  const attn::Tensor q = lesson_test::random_tensor({1, 1, t, d}, 11), k = lesson_test::random_tensor({1, 1, t, d}, 12);
  const attn::Tensor v = lesson_test::random_tensor({1, 1, t, dv}, 13);
  const std::vector<double> want = hidden01::attention_oracle(lesson_test::values(q), lesson_test::values(k),
                                                              lesson_test::values(v), t, t, d, dv, true);
  const attn::Tensor got = lesson01::scaled_dot_product_attention(q, k, v, lesson01::causal_mask(t));
  EXPECT_TRUE(lesson_test::close("causal attention vs a double-precision loop", got, want, {1, 1, t, dv}));
}
