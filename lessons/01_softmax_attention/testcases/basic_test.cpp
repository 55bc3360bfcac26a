// Chapter 01, basic suite: shapes, numbers checked by hand, mask semantics
// and the mistakes almost everyone makes once. Every expected number below
// is worked out in the chapter's README or in a comment next to it.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "softmax_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// The README's worked example: T = 3, d = 4, one batch, one head.
struct Tiny {
  Tensor q = from_vector({2, 0, 0, 0, /**/ 0, 2, 0, 0, /**/ 2, 2, 0, 0}, {1, 1, 3, 4});
  Tensor k = from_vector({1, 0, 0, 0, /**/ 0, 1, 0, 0, /**/ 1, 1, 0, 0}, {1, 1, 3, 4});
  Tensor v = from_vector({1, 0, /**/ 0, 1, /**/ 1, 1}, {1, 1, 3, 2});
};

}  // namespace

// ---------------------------------------------------------------- softmax

TEST(Softmax, HandValues) {
  // exp(1), exp(2), exp(3) normalised: 0.0900, 0.2447, 0.6652; a row of
  // equal logits is uniform.
  const Tensor x = from_vector({1, 2, 3, /**/ 0, 0, 0}, {2, 3});
  EXPECT_TRUE(close("softmax([[1,2,3],[0,0,0]])", lesson01::softmax(x),
                    {0.0900306, 0.2447285, 0.6652410, 1.0 / 3, 1.0 / 3, 1.0 / 3}, {2, 3}));
}

TEST(Softmax, KeepsShapeAndRowsSumToOne) {
  const Tensor x = random_tensor({2, 3, 5}, 1, 3.0f);
  const Tensor y = lesson01::softmax(x);
  ASSERT_EQ(y.shape(), x.shape()) << "softmax must keep the input's shape";
  EXPECT_TRUE(close("row sums of softmax(x)", sum(y, {-1}), std::vector<double>(6, 1.0), {2, 3}));
}

TEST(Softmax, ShiftInvariantAndMinusInfGetsZero) {
  // softmax(x + c) == softmax(x); a -inf logit gets weight exactly 0.
  const Tensor x = from_vector({0.5f, -1, 2, 0}, {1, 4});
  const Tensor y = lesson01::softmax(x);
  EXPECT_TRUE(close("softmax(x + 100) vs softmax(x)", lesson01::softmax(add(x, 100.0f)),
                    values(y), {1, 4}));
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(close("softmax([0, -inf, 0])", lesson01::softmax(from_vector({0, -inf, 0}, {1, 3})),
                    {0.5, 0.0, 0.5}, {1, 3}));
}

// ------------------------------------------------------------------ masks

TEST(Masks, CausalMaskValues) {
  const Tensor m = lesson01::causal_mask(3);
  ASSERT_EQ(m.dtype(), DType::Bool) << "causal_mask must return a bool tensor (true = allowed)";
  EXPECT_TRUE(close("causal_mask(3)", m, {1, 0, 0, /**/ 1, 1, 0, /**/ 1, 1, 1}, {3, 3}))
      << "row i = query i; it may see keys 0..i (true), not i+1.. (false)";
}

TEST(Masks, PaddingMaskValuesAndShape) {
  const Tensor m = lesson01::padding_mask(from_ints({2, 4, 0}, {3}), 4);
  ASSERT_EQ(m.dtype(), DType::Bool) << "padding_mask must return a bool tensor (true = allowed)";
  EXPECT_TRUE(close("padding_mask(lengths = [2, 4, 0], T = 4)", m,
                    {1, 1, 0, 0, /**/ 1, 1, 1, 1, /**/ 0, 0, 0, 0}, {3, 1, 1, 4}))
      << "keep[b, 0, 0, j] must be j < lengths[b]; the shape [B, 1, 1, T] broadcasts over "
         "heads and queries";
}

TEST(Masks, CausalAndPaddingCombine) {
  // logical_and of [T, T] and [B, 1, 1, T] broadcasts to [B, 1, T, T].
  const Tensor m = logical_and(lesson01::causal_mask(3),
                               lesson01::padding_mask(from_ints({2, 3}, {2}), 3));
  EXPECT_TRUE(close("causal_mask(3) AND padding_mask([2, 3], 3)", m,
                    {1, 0, 0, 1, 1, 0, 1, 1, 0, /**/ 1, 0, 0, 1, 1, 0, 1, 1, 1}, {2, 1, 3, 3}));
}

// -------------------------------------------------------------- attention

TEST(Attention, OutputAndWeightsShapes) {
  Tensor w;
  const Tensor out = lesson01::scaled_dot_product_attention(
      random_tensor({2, 3, 4, 8}, 1), random_tensor({2, 3, 6, 8}, 2), random_tensor({2, 3, 6, 5}, 3), Tensor(), &w);
  ASSERT_EQ(out.shape(), (Shape{2, 3, 4, 5}))
      << "out = weights @ v: [B, H, Tq, Tk] @ [B, H, Tk, dv] -> [B, H, Tq, dv]";
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{2, 3, 4, 6})) << "weights are [B, H, Tq, Tk]";
}

TEST(Attention, ReadmeWorkedExample) {
  // scores = q k^T / 2 = [[1,0,1],[0,1,1],[1,1,2]]; causal mask; softmax;
  // then weights @ v (see the README for every step).
  const Tiny t;
  Tensor w;
  const Tensor out =
      lesson01::scaled_dot_product_attention(t.q, t.k, t.v, lesson01::causal_mask(3), &w);
  EXPECT_TRUE(close("weights", w,
                    {1, 0, 0, /**/ 0.2689414, 0.7310586, 0, /**/ 0.2119416, 0.2119416, 0.5761169},
                    {1, 1, 3, 3}));
  EXPECT_TRUE(close("out", out, {1, 0, /**/ 0.2689414, 0.7310586, /**/ 0.7880584, 0.7880584},
                    {1, 1, 3, 2}));
}

TEST(Attention, NoMaskMeansEveryKey) {
  // Same example without a mask: row 0 now also sees keys 1 and 2.
  const Tiny t;
  Tensor w;
  lesson01::scaled_dot_product_attention(t.q, t.k, t.v, Tensor(), &w);
  EXPECT_TRUE(close("weights without a mask", w,
                    {0.4223188, 0.1553624, 0.4223188, /**/ 0.1553624, 0.4223188, 0.4223188,
                     /**/ 0.2119416, 0.2119416, 0.5761169},
                    {1, 1, 3, 3}));
}

TEST(Attention, ZeroQueryAveragesTheValues) {
  // q = 0 makes every score 0: uniform weights, out = mean of the values.
  const Tensor v = from_vector({1, 2, /**/ 3, 4, /**/ 8, 0, /**/ 0, 2}, {1, 1, 4, 2});
  const Tensor out =
      lesson01::scaled_dot_product_attention(zeros({1, 1, 2, 3}), random_tensor({1, 1, 4, 3}, 5), v);
  EXPECT_TRUE(close("out for q = 0", out, {3, 2, 3, 2}, {1, 1, 2, 2}));
}

TEST(Attention, SingleKeyReturnsItsValue) {
  const Tensor v = random_tensor({2, 2, 1, 3}, 7);
  const Tensor out =
      lesson01::scaled_dot_product_attention(random_tensor({2, 2, 4, 5}, 8), random_tensor({2, 2, 1, 5}, 9), v);
  // With one key, its weight is 1 for every query.
  EXPECT_TRUE(close("out with a single key", out, values(expand(v, {2, 2, 4, 3})),
                    {2, 2, 4, 3}));
}

TEST(Attention, PaddedKeysAreIgnored) {
  // Keys 2 and 3 of sequence 0 are padding: changing them must not change
  // anything.
  const Tensor q = random_tensor({2, 1, 4, 4}, 11), k = random_tensor({2, 1, 4, 4}, 12), v = random_tensor({2, 1, 4, 3}, 13);
  const Tensor keep = from_bools({1, 1, 0, 0, /**/ 1, 1, 1, 1}, {2, 1, 1, 4});
  const Tensor junk = from_bools({0, 0, 1, 1, /**/ 0, 0, 0, 0}, {2, 1, 4, 1});
  const Tensor k2 = where(junk, full({}, 50.0), k), v2 = where(junk, full({}, -7.0), v);
  const Tensor a = lesson01::scaled_dot_product_attention(q, k, v, keep);
  const Tensor b = lesson01::scaled_dot_product_attention(q, k2, v2, keep);
  EXPECT_TRUE(close("out after changing padded keys/values", b, values(a),
                    {2, 1, 4, 3}))
      << "a key with keep = false must get weight 0, whatever its k and v";
}

// --------------------------------------------------------------- mistakes

TEST(Mistakes, SoftmaxWithoutMaxSubtractionOverflows) {
  // Same answer as softmax([1, 2, 3]), because softmax ignores shifts.
  const Tensor y = lesson01::softmax(from_vector({1000, 1001, 1002}, {1, 3}));
  const std::vector<float> v = y.to_vector();
  const bool finite = std::isfinite(v[0]) && std::isfinite(v[1]) && std::isfinite(v[2]);
  EXPECT_TRUE(finite) << "softmax([1000, 1001, 1002]) gave " << v[0] << ", " << v[1] << ", " << v[2]
                      << ": exp(1000) overflows float32 (the largest float is about e^88.7), "
                         "and inf/inf is NaN. Subtract the row max before exp().";
  if (finite) {
    EXPECT_TRUE(close("softmax([1000, 1001, 1002])", y, {0.0900306, 0.2447285, 0.6652410}, {1, 3}));
  }
}

TEST(Mistakes, SoftmaxOverWrongDim) {
  // Rows must sum to 1 (the last dim). Columns summing to 1 means the
  // softmax ran over dim 0.
  const Tensor y = lesson01::softmax(from_vector({1, 2, 3, /**/ 4, 6, 5}, {2, 3}));
  const std::vector<float> r = sum(y, {-1}).to_vector(), c = sum(y, {0}).to_vector();
  const bool rows_ok = std::fabs(r[0] - 1) < 1e-5 && std::fabs(r[1] - 1) < 1e-5;
  const bool cols_one = std::fabs(c[0] - 1) < 1e-5 && std::fabs(c[1] - 1) < 1e-5;
  EXPECT_TRUE(rows_ok) << "the rows of softmax(x) sum to " << r[0] << " and " << r[1]
                       << " instead of 1"
                       << (cols_one ? ", while the columns sum to 1: you normalised over dim 0; "
                                      "reduce over the last dim (-1) with keepdim=true"
                                    : "");
}

TEST(Mistakes, MissingOneOverSqrtDScale) {
  // d = 16: the right scale is 1/sqrt(16) = 0.25. The effective scale is
  // read back from your weights: log(w_j / w_0) = scale * (q.k_j - q.k_0).
  const int64_t d = 16;
  const Tensor q = random_tensor({1, 1, 1, d}, 21, 0.5f), k = random_tensor({1, 1, 5, d}, 22, 0.5f);
  Tensor w;
  lesson01::scaled_dot_product_attention(q, k, random_tensor({1, 1, 5, 2}, 23), Tensor(), &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  const std::vector<float> qv = q.to_vector(), kv = k.to_vector(), wv = w.to_vector();
  std::vector<double> dot(5, 0.0);
  for (int j = 0; j < 5; ++j)
    for (int i = 0; i < d; ++i) dot[j] += static_cast<double>(qv[i]) * kv[j * d + i];
  double num = 0, den = 0;
  for (int j = 1; j < 5; ++j) {
    num += std::log(static_cast<double>(wv[j]) / wv[0]) * (dot[j] - dot[0]);
    den += (dot[j] - dot[0]) * (dot[j] - dot[0]);
  }
  const double scale = num / den, want = 0.25;
  std::string hint = "your effective scale is " + std::to_string(scale) +
                     ", expected 1/sqrt(d) = 1/sqrt(16) = 0.25";
  if (std::fabs(scale - 1.0) < 0.01)
    hint = "your scores are sqrt(d) = 4x too large: did you forget to divide by sqrt(d_k)?";
  else if (std::fabs(scale - 1.0 / 16) < 0.01)
    hint = "your scores are 4x too small: you divided by d = 16 instead of sqrt(d) = 4";
  else if (std::fabs(scale - 1.0 / std::sqrt(2.0)) < 0.01)
    hint = "your scale is 1/sqrt(2): v's last dim is 2 here. The scale belongs to q.k: use "
           "d = q's last dim (16)";
  else if (std::fabs(scale - 4.0) < 0.05)
    hint = "your scores are 16x too large: you multiplied by sqrt(d) instead of dividing";
  EXPECT_NEAR(scale, want, 2e-3) << hint;
}

TEST(Mistakes, MaskAppliedAfterSoftmax) {
  // Masking the weights after softmax leaves the allowed weights summing to
  // less than 1. The mask must hit the scores, before softmax.
  const Tensor q = random_tensor({1, 1, 4, 4}, 31), k = random_tensor({1, 1, 4, 4}, 32);
  Tensor w;
  lesson01::scaled_dot_product_attention(q, k, random_tensor({1, 1, 4, 2}, 33), lesson01::causal_mask(4), &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  const std::vector<float> s = sum(w, {-1}).to_vector();
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(s[i], 1.0, 1e-5)
        << "row " << i << " of your causal weights sums to " << s[i]
        << ", not 1: it looks like you zeroed the masked weights AFTER the softmax. Fill the "
           "masked SCORES with -inf before the softmax, so the allowed keys share all the weight";
}

TEST(Mistakes, MaskFilledWithZeroInsteadOfMinusInf) {
  // A masked score set to 0 still gets weight exp(0) / Z > 0.
  const Tiny t;
  Tensor w;
  lesson01::scaled_dot_product_attention(t.q, t.k, t.v, lesson01::causal_mask(3), &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  const std::vector<float> wv = w.to_vector();
  // Upper triangle: (0,1), (0,2), (1,2).
  for (int idx : {1, 2, 5})
    EXPECT_EQ(wv[idx], 0.0f) << "masked weight at [0,0," << idx / 3 << "," << idx % 3 << "] is "
                             << wv[idx]
                             << ", expected exactly 0: masked scores must become -inf (or a huge "
                                "negative number) before softmax; 0 is a perfectly ordinary score";
}

TEST(Mistakes, MaskMeaningInverted) {
  // keep = true means "may attend". Query 0 of a causal mask sees key 0 only.
  const Tiny t;
  Tensor w;
  lesson01::scaled_dot_product_attention(t.q, t.k, t.v, lesson01::causal_mask(3), &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  const std::vector<float> wv = w.to_vector();
  EXPECT_NEAR(wv[0], 1.0, 1e-5)
      << "weight of query 0 on key 0 is " << wv[0]
      << ", expected 1 (it is the only key query 0 may see). If the future keys got the weight, "
         "you masked where keep is TRUE: mask with logical_not(keep)";
}
