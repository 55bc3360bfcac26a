// causal_softmax (the fused attention-weights op) against a double-precision
// loop oracle, forward and backward; gradcheck; rows with no key; ALiBi;
// a KV-cache offset; the error messages; CPU/GPU parity (skips without a
// device). With attention dropout fused in (causal_softmax_dropout): equal,
// bit for bit, to the dropout op applied to the weights, forward and
// backward; gradcheck; CPU/GPU parity.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ag_test_util.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace {

using namespace attn;
using agtest::GradOk;

struct Case {
  int64_t b, h, tq, tk, offset;
  bool alibi;
};

// y[b,h,i,:] and dx[b,h,i,:] (for the upstream gradient g), written out in
// double from the definition: softmax over keys j <= offset + i of
// scale * x - slope * (offset + i - j); zeros elsewhere and for empty rows.
void oracle(const Case& c, const std::vector<float>& x, const std::vector<float>& g, float scale,
            const std::vector<float>& slopes, std::vector<double>& y, std::vector<double>& dx) {
  y.assign(x.size(), 0.0);
  dx.assign(x.size(), 0.0);
  for (int64_t bh = 0; bh < c.b * c.h; ++bh) {
    const double slope = slopes.empty() ? 0.0 : slopes[bh % c.h];
    for (int64_t i = 0; i < c.tq; ++i) {
      const int64_t row = (bh * c.tq + i) * c.tk;
      double mx = -INFINITY, sum = 0, dot = 0;
      for (int64_t j = 0; j < c.tk && j <= c.offset + i; ++j)
        mx = std::max(mx, scale * double(x[row + j]) - slope * double(c.offset + i - j));
      for (int64_t j = 0; j < c.tk && j <= c.offset + i; ++j)
        sum += std::exp(scale * double(x[row + j]) - slope * double(c.offset + i - j) - mx);
      for (int64_t j = 0; j < c.tk && j <= c.offset + i; ++j) {
        y[row + j] = std::exp(scale * double(x[row + j]) - slope * double(c.offset + i - j) - mx) / sum;
        dot += g[row + j] * y[row + j];
      }
      for (int64_t j = 0; j < c.tk && j <= c.offset + i; ++j)
        dx[row + j] = scale * y[row + j] * (g[row + j] - dot);
    }
  }
}

std::vector<float> slopes_for(const Case& c) {
  std::vector<float> s;
  if (c.alibi)
    for (int64_t h = 0; h < c.h; ++h) s.push_back(0.5f / static_cast<float>(h + 1));
  return s;
}

// Largest |got - want| over the elements.
double worst(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i) e = std::max(e, std::abs(got[i] - want[i]));
  return e;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> u = a.to_vector(), v = b.to_vector();
  float e = 0;
  for (size_t i = 0; i < u.size(); ++i) e = std::max(e, std::abs(u[i] - v[i]));
  return e;
}

const std::vector<Case> kCases = {
    {2, 3, 5, 5, 0, false},    // square, the training shape
    {2, 3, 5, 5, 0, true},     // with ALiBi
    {1, 2, 3, 7, 4, true},     // a KV cache: 4 keys before the 3 new queries
    {1, 2, 4, 4, -2, false},   // the first two rows see no key at all: zeros
    {1, 1, 6, 3, 0, false},    // more queries than keys
    {1, 2, 2, 70, 68, false},  // rows longer than a warp
};

TEST(CausalSoftmax, ForwardAndBackwardMatchTheLoopOracle) {
  for (const Case& c : kCases) {
    const Shape s = {c.b, c.h, c.tq, c.tk};
    const Tensor x = agtest::normal(s, 1 + c.tk, 2.0f);
    const Tensor g = agtest::normal(s, 2 + c.tk).detach();
    const float scale = 0.7f;
    const std::vector<float> slopes = slopes_for(c);
    std::vector<double> y_want, dx_want;
    oracle(c, x.to_vector(), g.to_vector(), scale, slopes, y_want, dx_want);
    const Tensor y = causal_softmax(x, scale, c.offset, slopes);
    y.backward(g);
    const std::string where = "case tq=" + std::to_string(c.tq) + " tk=" + std::to_string(c.tk) +
                              " offset=" + std::to_string(c.offset) +
                              (c.alibi ? " alibi" : "");
    EXPECT_LT(worst(y.to_vector(), y_want), 1e-6) << where;
    EXPECT_LT(worst(x.grad().to_vector(), dx_want), 1e-6) << where;
  }
}

TEST(CausalSoftmax, RowsWithNoKeyAreZerosAndGetNoGradient) {
  const Tensor x = agtest::normal({1, 1, 3, 3}, 7);
  const Tensor y = causal_softmax(x, 1.0f, -1);  // row 0 sees no key; row 1 sees key 0
  const std::vector<float> v = y.to_vector();
  for (int j = 0; j < 3; ++j) EXPECT_EQ(v[j], 0.0f) << "row 0, key " << j;
  EXPECT_FLOAT_EQ(v[3], 1.0f);
  sum(y).backward();
  for (float d : x.grad().to_vector()) EXPECT_TRUE(std::isfinite(d));
}

TEST(CausalSoftmax, Gradcheck) {
  for (const Case& c : kCases) {
    if (c.tk > 8) continue;  // finite differences over every element: keep it small
    const Tensor x = agtest::normal({c.b, c.h, c.tq, c.tk}, 11 + c.tq);
    const std::vector<float> slopes = slopes_for(c);
    EXPECT_TRUE(GradOk([&](const std::vector<Tensor>& in) {
      return causal_softmax(in[0], 0.8f, c.offset, slopes);
    }, {x})) << "tq=" << c.tq << " tk=" << c.tk << " offset=" << c.offset;
  }
}

TEST(CausalSoftmax, ViewsAsInput) {
  // A transposed view is made contiguous first; the gradient comes back
  // through the view.
  const Tensor x = agtest::normal({1, 2, 4, 4}, 5);
  const Tensor y = causal_softmax(transpose(x, 2, 3), 1.0f);
  const Tensor want = causal_softmax(contiguous(transpose(x, 2, 3)), 1.0f);
  EXPECT_LT(max_abs_diff(y, want), 1e-7f);
}

TEST(CausalSoftmax, ErrorsSayWhatIsWrong) {
  const Tensor x3 = agtest::normal({2, 4, 4}, 1);
  EXPECT_THROW(
      {
        try {
          causal_softmax(x3, 1.0f);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("expected scores of shape [B, H, Tq, Tk]"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);
  const Tensor x4 = agtest::normal({1, 2, 4, 4}, 1);
  EXPECT_THROW(
      {
        try {
          causal_softmax(x4, 1.0f, 0, {0.5f});
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("1 ALiBi slopes for 2 heads"), std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);
}

// ---- attention dropout fused into the same pass ----

AttentionDropoutArgs dropout_args(float p) {
  AttentionDropoutArgs d;
  d.seed = 0x1234567890ull;
  d.offset = 5;
  d.first_sample = 3;
  d.p = p;
  return d;
}

// The unfused reference: the whole [B, H, Tq, Tk] weights through dropout(),
// whose every decision tests/autograd/dropout_test.cpp checks against its
// own Philox. Equal bits mean the fused kernel keys each (b, h, i, j) the
// same way and scales it by the same float.
TEST(CausalSoftmaxDropout, EqualsDropoutOfTheWeightsBitForBit) {
  std::vector<Case> cases = kCases;
  cases.push_back({3, 2, 9, 9, 0, true});  // odd rows: keys straddle Philox groups
  for (const Case& c : cases) {
    const Shape s = {c.b, c.h, c.tq, c.tk};
    const Tensor x = agtest::normal(s, 31 + c.tk, 2.0f);
    const Tensor x2 = x.detach().set_requires_grad();
    const Tensor g = agtest::normal(s, 32 + c.tk).detach();
    const std::vector<float> slopes = slopes_for(c);
    const AttentionDropoutArgs d = dropout_args(0.3f);
    const Tensor fused = causal_softmax_dropout(x, 0.6f, c.offset, slopes, d);
    const Tensor apart = dropout(causal_softmax(x2, 0.6f, c.offset, slopes), d.p, {d.seed, d.offset}, d.first_sample);
    fused.backward(g);
    apart.backward(g);
    const std::string where = "tq=" + std::to_string(c.tq) + " tk=" + std::to_string(c.tk) +
                              " offset=" + std::to_string(c.offset);
    EXPECT_EQ(fused.to_vector(), apart.to_vector()) << where;
    EXPECT_EQ(x.grad().to_vector(), x2.grad().to_vector()) << where;
  }
}

TEST(CausalSoftmaxDropout, DropsAboutPOfTheVisibleWeights) {
  const Tensor x = agtest::normal({2, 2, 64, 64}, 3);
  const std::vector<float> y = causal_softmax_dropout(x, 1.0f, 0, {}, dropout_args(0.25f)).to_vector();
  int64_t visible = 0, dropped = 0;
  for (int64_t r = 0; r < 2 * 2 * 64; ++r)
    for (int64_t j = 0; j <= r % 64; ++j, ++visible) dropped += y[r * 64 + j] == 0.0f;
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(visible), 0.25, 0.02);
}

TEST(CausalSoftmaxDropout, Gradcheck) {
  for (const Case& c : kCases) {
    if (c.tk > 8) continue;
    const Tensor x = agtest::normal({c.b, c.h, c.tq, c.tk}, 41 + c.tq);
    const std::vector<float> slopes = slopes_for(c);
    EXPECT_TRUE(GradOk([&](const std::vector<Tensor>& in) {
      return causal_softmax_dropout(in[0], 0.8f, c.offset, slopes, dropout_args(0.4f));
    }, {x})) << "tq=" << c.tq << " tk=" << c.tk << " offset=" << c.offset;
  }
}

TEST(CausalSoftmaxDropout, BadRateNamesTheOp) {
  const Tensor x = agtest::normal({1, 1, 2, 2}, 1);
  try {
    causal_softmax_dropout(x, 1.0f, 0, {}, dropout_args(1.0f));
    FAIL() << "p = 1 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("causal_softmax_dropout: p must be in [0, 1), got 1"), std::string::npos)
        << e.what();
  }
}

// ---- the GPU kernel against the CPU one ----

TEST(CausalSoftmaxGpu, MatchesCpuForwardAndBackward) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: causal_softmax parity needs one";
  std::vector<Case> cases = kCases;
  cases.push_back({2, 3, 37, 37, 0, true});
  cases.push_back({1, 2, 3, 1100, 1097, false});  // long rows: many keys per lane
  for (const Case& c : cases) {
    const Shape s = {c.b, c.h, c.tq, c.tk};
    const Tensor x = agtest::normal(s, 21 + c.tk, 3.0f);
    const Tensor g = agtest::normal(s, 22 + c.tk).detach();
    const Tensor xg = x.detach().to(Device::cuda(0)).set_requires_grad();
    const std::vector<float> slopes = slopes_for(c);
    const Tensor y = causal_softmax(x, 0.3f, c.offset, slopes);
    const Tensor yg = causal_softmax(xg, 0.3f, c.offset, slopes);
    y.backward(g);
    yg.backward(g.to(Device::cuda(0)));
    const std::string where = "tq=" + std::to_string(c.tq) + " tk=" + std::to_string(c.tk) +
                              " offset=" + std::to_string(c.offset);
    EXPECT_LT(max_abs_diff(y, yg.to(Device::cpu())), 1e-6f) << where;
    EXPECT_LT(max_abs_diff(x.grad(), xg.grad().to(Device::cpu())), 1e-6f) << where;
  }
}

TEST(CausalSoftmaxDropoutGpu, MatchesCpuForwardAndBackward) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: causal_softmax_dropout parity needs one";
  std::vector<Case> cases = kCases;
  cases.push_back({2, 3, 37, 37, 0, true});
  cases.push_back({1, 2, 3, 1100, 1097, false});
  for (const Case& c : cases) {
    const Shape s = {c.b, c.h, c.tq, c.tk};
    const Tensor x = agtest::normal(s, 51 + c.tk, 3.0f);
    const Tensor g = agtest::normal(s, 52 + c.tk).detach();
    const Tensor xg = x.detach().to(Device::cuda(0)).set_requires_grad();
    const std::vector<float> slopes = slopes_for(c);
    const AttentionDropoutArgs d = dropout_args(0.2f);
    const Tensor y = causal_softmax_dropout(x, 0.3f, c.offset, slopes, d);
    const Tensor yg = causal_softmax_dropout(xg, 0.3f, c.offset, slopes, d);
    y.backward(g);
    yg.backward(g.to(Device::cuda(0)));
    const std::string where = "tq=" + std::to_string(c.tq) + " tk=" + std::to_string(c.tk) +
                              " offset=" + std::to_string(c.offset);
    // The same entries dropped: a kept weight is never near 0 here.
    const std::vector<float> yc = y.to_vector(), yd = yg.to(Device::cpu()).to_vector();
    for (size_t e = 0; e < yc.size(); ++e) ASSERT_EQ(yc[e] == 0.0f, yd[e] == 0.0f) << where << " element " << e;
    EXPECT_LT(max_abs_diff(y, yg.to(Device::cpu())), 2e-6f) << where;
    EXPECT_LT(max_abs_diff(x.grad(), xg.grad().to(Device::cpu())), 4e-6f) << where;
  }
}

}  // namespace
