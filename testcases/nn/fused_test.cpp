// LayerNorm, RMSNorm and cross-entropy are fused kernels: their forward is
// checked against double-precision loops, their backward with gradcheck.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"

using namespace attn;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, float scale = 1.0f) {
  Generator g(seed);
  return mul(randn(s, g), scale);
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol,
                  const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at element " << i;
}

void expect_gradcheck(const GradFn& fn, const std::vector<Tensor>& in) {
  const GradcheckResult r = gradcheck(fn, in);
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace

TEST(FusedLayerNorm, ForwardMatchesLoops) {
  const int64_t rows = 6, cols = 10;
  const Tensor x = add(rnd({2, 3, cols}, 1, 3.0f), 5.0f);  // offset mean: tests the centring
  const Tensor w = rnd({cols}, 2), b = rnd({cols}, 3);
  const auto xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  std::vector<double> want(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mu += xv[r * cols + c];
    mu /= cols;
    for (int64_t c = 0; c < cols; ++c) var += std::pow(xv[r * cols + c] - mu, 2);
    var /= cols;  // biased, as LayerNorm defines it
    for (int64_t c = 0; c < cols; ++c)
      want[r * cols + c] = (xv[r * cols + c] - mu) / std::sqrt(var + 1e-5) * wv[c] + bv[c];
  }
  expect_close(layer_norm(x, w, b).to_vector(), want, 1e-5, "layer_norm");
}

TEST(FusedLayerNorm, Gradcheck) {
  Tensor x = rnd({3, 7}, 4).set_requires_grad();
  Tensor w = add(rnd({7}, 5, 0.5f), 1.0f).set_requires_grad();
  Tensor b = rnd({7}, 6).set_requires_grad();
  expect_gradcheck([](const auto& in) { return layer_norm(in[0], in[1], in[2]); }, {x, w, b});
  expect_gradcheck([](const auto& in) { return layer_norm(in[0], Tensor(), Tensor()); }, {x});
}

TEST(FusedRMSNorm, ForwardMatchesLoops) {
  const int64_t rows = 4, cols = 9;
  const Tensor x = rnd({rows, cols}, 7, 2.0f), w = rnd({cols}, 8);
  const auto xv = x.to_vector(), wv = w.to_vector();
  std::vector<double> want(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t c = 0; c < cols; ++c) ms += std::pow(xv[r * cols + c], 2);
    ms /= cols;
    for (int64_t c = 0; c < cols; ++c) want[r * cols + c] = xv[r * cols + c] / std::sqrt(ms + 1e-5) * wv[c];
  }
  expect_close(rms_norm(x, w).to_vector(), want, 1e-5, "rms_norm");
}

TEST(FusedRMSNorm, Gradcheck) {
  Tensor x = rnd({2, 3, 5}, 9).set_requires_grad();
  Tensor w = add(rnd({5}, 10, 0.5f), 1.0f).set_requires_grad();
  expect_gradcheck([](const auto& in) { return rms_norm(in[0], in[1]); }, {x, w});
}

TEST(FusedNorms, BadWeightShapeNamesTheOp) {
  const Tensor x = rnd({2, 4}, 1);
  try {
    layer_norm(x, ones({3}), Tensor());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer_norm: weight has shape [3], expected [4]"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(rms_norm(x, ones({5})), Error);
}

TEST(FusedCrossEntropy, ForwardMatchesLoops) {
  const int64_t rows = 5, classes = 7;
  const Tensor z = rnd({rows, classes}, 11, 3.0f);
  const std::vector<int64_t> t = {0, 6, 3, 3, 1};
  const auto zv = z.to_vector();
  double want = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += std::exp(static_cast<double>(zv[r * classes + c]));
    want += std::log(sum) - zv[r * classes + t[r]];
  }
  want /= rows;
  EXPECT_NEAR(cross_entropy(z, from_ints(t, {rows})).item(), want, 1e-5 * (1 + std::fabs(want)));
}

TEST(FusedCrossEntropy, StableWithHugeLogits) {
  // exp(1000) overflows; the kernel must subtract the row max first.
  const Tensor z = from_vector({1000, 0, -1000, 1000}, {2, 2});
  const float loss = cross_entropy(z, from_ints({0, 0}, {2})).item();
  // Row 0: log(1 + e^-1000) ~ 0.  Row 1: 2000 + log(1 + e^-2000) ~ 2000.
  EXPECT_NEAR(loss, 1000.0f, 1e-3f);
}

TEST(FusedCrossEntropy, GradcheckAnd3DLogits) {
  Tensor z = rnd({2, 3, 4}, 12).set_requires_grad();
  const Tensor t = from_ints({0, 3, 2, 1, 1, 0}, {2, 3});
  expect_gradcheck([t](const auto& in) { return cross_entropy(in[0], t); }, {z});
}

TEST(FusedCrossEntropy, BadTargetsAreErrors) {
  const Tensor z = rnd({2, 3}, 13);
  try {
    cross_entropy(z, from_ints({0, 3}, {2}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 3 at position 1 is out of range for 3 classes"),
              std::string::npos) << e.what();
  }
  EXPECT_THROW(cross_entropy(z, from_ints({0, 1, 2}, {3})), Error);          // shape
  EXPECT_THROW(cross_entropy(z, from_vector({0, 1}, {2})), Error);           // dtype
}
