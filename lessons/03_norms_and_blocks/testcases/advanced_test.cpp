// Chapter 03, advanced suite: the three norms against double-precision
// loops written here, gradcheck through each, inputs with a huge offset
// (where the shortcut variance formula cancels), constant rows (where eps
// matters), BatchNorm's batch-of-one collapse and its gradient leak across
// time, and what stacking pre-norm or post-norm residuals does to the
// stream and to the gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "norms_blocks.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

const Tensor kNone;

// ---- oracles, in double ----

// Row-wise over the last dim. rms = true: RMSNorm (no centring, no bias).
std::vector<double> norm_oracle(const Tensor& xt, const Tensor& wt, const Tensor& bt, double eps, bool rms) {
  const std::vector<float> x = xt.to_vector();
  const std::vector<float> w = wt.defined() ? wt.to_vector() : std::vector<float>();
  const std::vector<float> b = bt.defined() ? bt.to_vector() : std::vector<float>();
  const int64_t C = xt.shape().back();
  std::vector<double> y(x.size());
  for (std::size_t r = 0; r < x.size(); r += C) {
    double mu = 0, ss = 0;
    if (!rms) {
      for (int64_t c = 0; c < C; ++c) mu += x[r + c];
      mu /= C;
    }
    for (int64_t c = 0; c < C; ++c) ss += (x[r + c] - mu) * (x[r + c] - mu);
    const double inv = 1.0 / std::sqrt(ss / C + eps);
    for (int64_t c = 0; c < C; ++c)
      y[r + c] = (x[r + c] - mu) * inv * (w.empty() ? 1.0 : w[c]) + (b.empty() ? 0.0 : b[c]);
  }
  return y;
}

// Per channel (last dim) over every other position.
std::vector<double> batch_norm_oracle(const Tensor& xt, double eps) {
  const std::vector<float> x = xt.to_vector();
  const int64_t C = xt.shape().back(), n = static_cast<int64_t>(x.size()) / C;
  std::vector<double> y(x.size());
  for (int64_t c = 0; c < C; ++c) {
    double mu = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i) mu += x[i * C + c];
    mu /= n;
    for (int64_t i = 0; i < n; ++i) ss += (x[i * C + c] - mu) * (x[i * C + c] - mu);
    const double inv = 1.0 / std::sqrt(ss / n + eps);
    for (int64_t i = 0; i < n; ++i) y[i * C + c] = (x[i * C + c] - mu) * inv;
  }
  return y;
}

double stddev(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  double m = 0, s = 0;
  for (float a : v) m += a;
  m /= v.size();
  for (float a : v) s += (a - m) * (a - m);
  return std::sqrt(s / v.size());
}

const std::vector<Shape> kShapes = {{1, 1}, {3, 7}, {2, 5, 16}, {4, 64}, {2, 3, 1}};

}  // namespace

// ------------------------------------------------------ sweeps vs oracles

TEST(Sweep, LayerNormMatchesDoubleOracle) {
  uint64_t seed = 1;
  for (const Shape& shape : kShapes) {
    const int64_t C = shape.back();
    const Tensor x = add(random_tensor(shape, seed++, 2.5f), 3.0f);
    const Tensor w = random_tensor({C}, seed++), b = random_tensor({C}, seed++);
    EXPECT_TRUE(close("layer_norm " + shape_str(shape), lesson03::layer_norm(x, w, b),
                      norm_oracle(x, w, b, 1e-5, false), shape, 2e-4));
    EXPECT_TRUE(close("layer_norm " + shape_str(shape) + " without weight and bias",
                      lesson03::layer_norm(x, kNone, kNone), norm_oracle(x, kNone, kNone, 1e-5, false),
                      shape, 2e-4));
    EXPECT_TRUE(close("layer_norm " + shape_str(shape) + " with eps = 0.1",
                      lesson03::layer_norm(x, w, b, 0.1f), norm_oracle(x, w, b, 0.1, false), shape, 2e-4))
        << "eps goes inside the square root: (x - mu) / sqrt(var + eps)";
  }
}

TEST(Sweep, RmsNormMatchesDoubleOracle) {
  uint64_t seed = 101;
  for (const Shape& shape : kShapes) {
    const int64_t C = shape.back();
    const Tensor x = add(random_tensor(shape, seed++, 2.5f), 1.0f);
    const Tensor w = random_tensor({C}, seed++);
    EXPECT_TRUE(close("rms_norm " + shape_str(shape), lesson03::rms_norm(x, w),
                      norm_oracle(x, w, kNone, 1e-5, true), shape, 2e-4));
    EXPECT_TRUE(close("rms_norm " + shape_str(shape) + " with eps = 0.1", lesson03::rms_norm(x, w, 0.1f),
                      norm_oracle(x, w, kNone, 0.1, true), shape, 2e-4));
  }
}

TEST(Sweep, BatchNormMatchesDoubleOracle) {
  uint64_t seed = 201;
  for (const Shape& shape : std::vector<Shape>{{5, 3}, {2, 7, 4}, {3, 4, 1}, {8, 16}}) {
    const Tensor x = add(random_tensor(shape, seed++, 2.0f), 1.5f);
    EXPECT_TRUE(close("batch_norm " + shape_str(shape), lesson03::batch_norm(x), batch_norm_oracle(x, 1e-5),
                      shape, 2e-4));
  }
}

// ------------------------------------------------------------- gradients

TEST(Gradients, LayerNormGradcheck) {
  const Tensor x = random_tensor({3, 5}, 301, 2.0f).set_requires_grad();
  const Tensor w = random_tensor({5}, 302).set_requires_grad(), b = random_tensor({5}, 303).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson03::layer_norm(in[0], in[1], in[2]); }, {x, w, b});
  EXPECT_TRUE(r.ok) << "layer_norm gradients (input 0 = x, 1 = weight, 2 = bias):\n" << r.message;
}

TEST(Gradients, RmsNormGradcheck) {
  const Tensor x = random_tensor({4, 6}, 304, 2.0f).set_requires_grad();
  const Tensor w = random_tensor({6}, 305).set_requires_grad();
  const GradcheckResult r =
      gradcheck([](const std::vector<Tensor>& in) { return lesson03::rms_norm(in[0], in[1]); }, {x, w});
  EXPECT_TRUE(r.ok) << "rms_norm gradients (input 0 = x, 1 = weight):\n" << r.message;
}

TEST(Gradients, BatchNormGradcheck) {
  const Tensor x = random_tensor({2, 3, 4}, 306, 2.0f).set_requires_grad();
  const GradcheckResult r =
      gradcheck([](const std::vector<Tensor>& in) { return lesson03::batch_norm(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << "batch_norm gradients:\n" << r.message;
}

TEST(Gradients, BlockGradcheckPreAndPost) {
  // Sublayers: your layer_norm as the norms, tanh(x W1) as "attention",
  // x W2 as the MLP.
  const Tensor w1 = random_tensor({4, 4}, 307, 0.5f), w2 = random_tensor({4, 4}, 308, 0.5f);
  auto ln = [](const Tensor& t) { return lesson03::layer_norm(t, Tensor(), Tensor()); };
  auto attn_like = [w1](const Tensor& t) { return tanh(matmul(t, w1)); };
  auto mlp_like = [w2](const Tensor& t) { return matmul(t, w2); };
  for (bool pre : {true, false}) {
    const Tensor x = random_tensor({2, 3, 4}, 309, 1.5f).set_requires_grad();
    const GradcheckResult r = gradcheck(
        [&](const std::vector<Tensor>& in) { return lesson03::block_forward(in[0], ln, attn_like, ln, mlp_like, pre); },
        {x});
    EXPECT_TRUE(r.ok) << (pre ? "pre" : "post") << "-norm block gradient:\n" << r.message;
  }
}

// ------------------------------------------------------------- stability

TEST(Mistakes, VarianceAsMeanOfSquaresMinusSquaredMean) {
  // var = mean(x^2) - mean(x)^2 is right on paper, but with x = 10000 + noise
  // both terms are ~1e8 and float32 keeps only ~7 digits: their difference
  // (the variance, ~1) is mostly rounding error, sometimes negative.
  // Centre first: var = mean((x - mu)^2).
  const Tensor x = add(random_tensor({4, 32}, 401), 10000.0f);
  const Tensor y = lesson03::layer_norm(x, kNone, kNone);
  EXPECT_TRUE(close("layer_norm of 10000 + N(0, 1)", y, norm_oracle(x, kNone, kNone, 1e-5, false), {4, 32},
                    1e-2))
      << "compute the variance from centred values, mean(square(x - mu)); mean(x^2) - mu^2 "
         "cancels catastrophically in float32";
}

TEST(Mistakes, MissingEpsDividesZeroByZero) {
  // A constant row has variance 0: without eps, (x - mu) / sqrt(0) = 0/0 = NaN.
  const Tensor b = from_vector({0.1f, 0.2f, 0.3f, 0.4f}, {4});
  const Tensor y = lesson03::layer_norm(full({2, 4}, 5.0), ones({4}), b);
  EXPECT_TRUE(close("layer_norm of a constant row", y, {0.1, 0.2, 0.3, 0.4, 0.1, 0.2, 0.3, 0.4}, {2, 4}))
      << "a constant row must give exactly the bias: add eps inside the square root, "
         "(x - mu) / sqrt(var + eps)";
  EXPECT_TRUE(close("rms_norm of a zero row", lesson03::rms_norm(zeros({1, 4}), ones({4})), {0, 0, 0, 0}, {1, 4}))
      << "0 / sqrt(0 + eps) = 0; without eps it is 0/0 = NaN";
}

// -------------------------------------------------------- why not BatchNorm

TEST(WhyNotBatchNorm, ABatchOfOneCollapsesToZero) {
  // Generating text one sequence and one token at a time is a batch of one
  // position: every channel's mean is the value itself, so BatchNorm outputs
  // zeros whatever the input (real BatchNorm switches to running averages
  // at inference, a train/test mismatch of its own). LayerNorm is fine.
  const Tensor x = random_tensor({1, 1, 8}, 501, 3.0f);
  for (float v : lesson03::batch_norm(x).to_vector())
    ASSERT_EQ(v, 0.0f) << "batch_norm of a single position must be 0 (x minus its own mean)";
  EXPECT_TRUE(close("layer_norm of a single token", lesson03::layer_norm(x, kNone, kNone),
                    norm_oracle(x, kNone, kNone, 1e-5, false), {1, 1, 8}));
}

TEST(WhyNotBatchNorm, GradientFlowsFromTheFutureThroughBatchNorm) {
  // d out[t = 0] / d x[t = T-1]: nonzero through BatchNorm (a causal model
  // would learn from the future), exactly zero through LayerNorm.
  const int64_t B = 2, T = 4, C = 3;
  for (bool batch : {true, false}) {
    const Tensor x = random_tensor({B, T, C}, 502).set_requires_grad();
    const Tensor y = batch ? lesson03::batch_norm(x) : lesson03::layer_norm(x, kNone, kNone);
    sum(mul(select(y, 1, 0), random_tensor({B, C}, 503))).backward();
    ASSERT_TRUE(x.grad().defined()) << "x.grad is undefined after backward()";
    const std::vector<float> g = x.grad().to_vector();
    double future = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c) future = std::max(future, std::fabs(static_cast<double>(g[(b * T + T - 1) * C + c])));
    if (batch)
      EXPECT_GT(future, 1e-4) << "expected BatchNorm's output at t = 0 to depend on x at t = " << T - 1;
    else
      EXPECT_EQ(future, 0.0) << "layer_norm's output at t = 0 has a gradient w.r.t. x at t = " << T - 1
                             << ": normalise over the last dim only";
  }
}

// ------------------------------------------------------- pre vs post norm

TEST(PrePost, PreNormStreamGrowsPostNormStaysNormalised) {
  // Stack 8 residual sublayers f(y) = y W with W ~ N(0, 1/C) (output
  // variance ~ input variance), using your layer_norm without affine.
  // Pre-norm adds a unit-variance branch to the stream at every layer: its
  // std grows like sqrt(1 + L). Post-norm renormalises after every add:
  // std stays 1. (That growth is why pre-norm models end with a final norm.)
  const int64_t C = 64, L = 8;
  auto ln = [](const Tensor& t) { return lesson03::layer_norm(t, Tensor(), Tensor()); };
  std::vector<Tensor> ws;
  for (int64_t l = 0; l < L; ++l) ws.push_back(random_tensor({C, C}, 600 + l, 1.0f / std::sqrt(static_cast<float>(C))));
  const Tensor x0 = random_tensor({4, 16, C}, 700);
  Tensor pre = x0, post = x0;
  for (int64_t l = 0; l < L; ++l) {
    auto f = [&](const Tensor& t) { return matmul(t, ws[l]); };
    pre = lesson03::pre_norm_residual(pre, ln, f);
    post = lesson03::post_norm_residual(post, ln, f);
  }
  const double s_pre = stddev(pre), s_post = stddev(post);
  EXPECT_GT(s_pre, 2.5) << "pre-norm stream std after 8 layers is " << s_pre
                        << ", expected about sqrt(9) = 3: is the residual x kept un-normalised?";
  EXPECT_NEAR(s_post, 1.0, 1e-2) << "post-norm output std after 8 layers is " << s_post
                                 << ", expected 1: the norm must come after the add";
}

TEST(PrePost, PreNormHasAnIdentityGradientPath) {
  // With branches that output 0, a stack of pre-norm residuals is the
  // identity, so d sum(g * out) / dx = g exactly, however deep. A post-norm
  // stack has no such path: its gradient goes through every norm.
  const Tensor g = random_tensor({2, 3, 5}, 801);
  const std::vector<float> gf = g.to_vector();
  const std::vector<double> gd(gf.begin(), gf.end());
  auto zero = [](const Tensor& t) { return mul(t, 0.0f); };
  auto ln = [](const Tensor& t) { return lesson03::layer_norm(t, Tensor(), Tensor()); };
  const Tensor x = random_tensor({2, 3, 5}, 802, 3.0f).set_requires_grad();
  Tensor y = x;
  for (int l = 0; l < 12; ++l) y = lesson03::pre_norm_residual(y, ln, zero);
  sum(mul(y, g)).backward();
  ASSERT_TRUE(x.grad().defined()) << "x.grad is undefined after backward()";
  EXPECT_TRUE(close("gradient through 12 pre-norm layers with zero branches", x.grad(),
                    gd, {2, 3, 5}, 1e-5))
      << "the residual path x -> x + branch must carry the gradient unchanged";
  const Tensor x2 = random_tensor({2, 3, 5}, 802, 3.0f).set_requires_grad();
  Tensor y2 = x2;
  for (int l = 0; l < 12; ++l) y2 = lesson03::post_norm_residual(y2, ln, zero);
  sum(mul(y2, g)).backward();
  ASSERT_TRUE(x2.grad().defined()) << "x.grad is undefined after backward()";
  EXPECT_FALSE(close("", x2.grad(), gd,
                     {2, 3, 5}, 1e-3))
      << "a post-norm stack passed the gradient through unchanged: is the norm applied after the add?";
}

// ------------------------------------------------------------- GPU parity
// Your norms and blocks on CUDA tensors must give what they give on the CPU,
// gradients included (of x, and of the weights and biases). Skipped where no
// GPU exists.

TEST(GpuParity, Norms) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  const Tensor x = random_tensor({2, 5, 16}, 980, 2.0f), w = random_tensor({16}, 981),
               b = random_tensor({16}, 982);
  EXPECT_TRUE(same_on_both_devices(
      "layer_norm(x [2, 5, 16], weight, bias)",
      [](const std::vector<Tensor>& in) { return lesson03::layer_norm(in[0], in[1], in[2]); },
      {x, w, b}, {"x", "weight", "bias"}));
  EXPECT_TRUE(same_on_both_devices(
      "layer_norm(x [2, 5, 16]) without weight and bias",
      [](const std::vector<Tensor>& in) { return lesson03::layer_norm(in[0], kNone, kNone); }, {x},
      {"x"}));
  EXPECT_TRUE(same_on_both_devices(
      "rms_norm(x [2, 5, 16], weight)",
      [](const std::vector<Tensor>& in) { return lesson03::rms_norm(in[0], in[1]); }, {x, w},
      {"x", "weight"}));
  EXPECT_TRUE(same_on_both_devices(
      "batch_norm(x [2, 5, 16])",
      [](const std::vector<Tensor>& in) { return lesson03::batch_norm(in[0]); }, {x}, {"x"}));
}

TEST(GpuParity, PreAndPostNormBlocks) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // A whole block with LayerNorm, RMSNorm and two random linear branches; the
  // branch weights are inputs too, so their gradients are compared.
  const int64_t C = 8;
  const std::vector<Tensor> inputs = {
      random_tensor({2, 4, C}, 983),      random_tensor({C}, 984),        random_tensor({C}, 985),
      random_tensor({C, C}, 986, 0.5f),   random_tensor({C}, 987),        random_tensor({C, 2 * C}, 988, 0.5f),
      random_tensor({2 * C, C}, 989, 0.5f)};
  const std::vector<std::string> names = {"x", "norm1.weight", "norm1.bias", "attn.weight",
                                          "norm2.weight", "mlp.up", "mlp.down"};
  for (bool pre : {true, false}) {
    EXPECT_TRUE(same_on_both_devices(
        pre ? "block_forward, pre-norm" : "block_forward, post-norm",
        [pre](const std::vector<Tensor>& in) {
          const lesson03::Sublayer norm1 = [&](const Tensor& t) {
            return lesson03::layer_norm(t, in[1], in[2]);
          };
          const lesson03::Sublayer attention = [&](const Tensor& t) { return tanh(matmul(t, in[3])); };
          const lesson03::Sublayer norm2 = [&](const Tensor& t) { return lesson03::rms_norm(t, in[4]); };
          const lesson03::Sublayer mlp = [&](const Tensor& t) {
            return matmul(gelu(matmul(t, in[5])), in[6]);
          };
          return lesson03::block_forward(in[0], norm1, attention, norm2, mlp, pre);
        },
        inputs, names));
  }
}
