// Mixed precision (autograd/autocast.h): the rounding op against the
// nearest bfloat16, its straight-through gradient, the guard's scope, and a
// Linear layer under autocast against a double-precision product of the
// rounded operands.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "attention/flash.h"
#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/bfloat16.h"
#include "core/dispatch.h"
#include "core/random.h"
#include "nn/linear.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

float rounded(float x) { return bf16_to_float(bf16_from_float(x)); }

}  // namespace

TEST(Autocast, RoundToBfloat16ValuesAndStraightThroughGradient) {
  Generator gen(5);
  Tensor x = randn({4, 6}, gen).set_requires_grad();
  const Tensor y = round_to_bfloat16(x);
  EXPECT_EQ(y.dtype(), DType::Float32);
  const std::vector<float> xs = x.to_vector(), ys = y.to_vector();
  int changed = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(ys[i], rounded(xs[i])) << i;
    changed += ys[i] != xs[i];
  }
  EXPECT_GT(changed, 20) << "randn values almost never fit in 8 mantissa bits";
  const Tensor w = randn({4, 6}, gen);
  sum(y * w).backward();
  EXPECT_EQ(x.grad().to_vector(), w.to_vector()) << "the gradient passes straight through";
  EXPECT_EQ(error_of([] { round_to_bfloat16(from_ints({1, 2}, {2})); }),
            "round_to_bfloat16: x must be float32, got int64");
}

TEST(Autocast, GuardScopesAndNests) {
  EXPECT_EQ(autocast_dtype(), DType::Float32);
  const Tensor x = from_vector({1.0f + 1.0f / 1024}, {1});
  EXPECT_EQ(autocast_operand(x).item(), x.item());  // off: untouched
  {
    const AutocastGuard on(DType::BFloat16);
    EXPECT_EQ(autocast_dtype(), DType::BFloat16);
    EXPECT_EQ(autocast_operand(x).item(), 1.0f);  // 1 + 2^-10 rounds to 1
    {
      const AutocastGuard off(DType::Float32);
      EXPECT_EQ(autocast_operand(x).item(), x.item());
    }
    EXPECT_EQ(autocast_dtype(), DType::BFloat16);
  }
  EXPECT_EQ(autocast_dtype(), DType::Float32);
  EXPECT_EQ(error_of([] { AutocastGuard bad(DType::Int64); }),
            "autocast: int64 is not a precision for products; expected float32 or bfloat16");
}

// Under autocast a Linear layer computes x_r W_r^T + b with x_r, W_r the
// operands rounded to bfloat16, accumulated in float32: within float32
// rounding of the double-precision sum over the rounded values, and
// measurably away from the float32 product of the unrounded ones.
TEST(Autocast, LinearMultipliesRoundedOperands) {
  Generator gen(9);
  Linear layer(64, 8, true, gen, 0.5f);
  const Tensor x = randn({5, 64}, gen);
  Tensor y, y32;
  {
    const AutocastGuard on(DType::BFloat16);
    y = layer.forward(x);
  }
  y32 = layer.forward(x);
  const std::vector<float> xs = x.to_vector(), ws = layer.weight().to_vector(), bs = layer.bias()->to_vector();
  const std::vector<float> got = y.to_vector(), full = y32.to_vector();
  double far = 0;
  for (int i = 0; i < 5; ++i)
    for (int o = 0; o < 8; ++o) {
      double want = bs[o];
      for (int k = 0; k < 64; ++k) want += double(rounded(xs[i * 64 + k])) * double(rounded(ws[o * 64 + k]));
      EXPECT_NEAR(got[i * 8 + o], want, 1e-5 * (1 + std::fabs(want))) << i << "," << o;
      far = std::max(far, std::fabs(double(full[i * 8 + o]) - want));
    }
  EXPECT_GT(far, 1e-4) << "the float32 product should differ from the bfloat16 one";
}

namespace {

// The double-precision product sum_k round(a[i, k]) * round(b[k, j]) of
// row-major a [m, k] and b [k, n] (element (k, j) of b at b[k * bs0 + j * bs1]).
std::vector<double> rounded_product(const std::vector<float>& a, const std::vector<float>& b, int m, int k, int n,
                                    int bs0, int bs1) {
  std::vector<double> c(static_cast<std::size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j)
      for (int t = 0; t < k; ++t)
        c[i * n + j] += double(rounded(a[i * k + t])) * double(rounded(b[t * bs0 + j * bs1]));
  return c;
}

}  // namespace

// The backward's products take bfloat16 operands too: dz (here the
// upstream gradient, no GELU) rounded, against the rounded w and x; the
// bias gradient sums the unrounded dz.
TEST(Autocast, LinearBackwardMultipliesRoundedGradients) {
  Generator gen(11);
  const int rows = 6, in = 40, out = 9;
  Linear layer(in, out, true, gen, 0.5f);
  Tensor x = randn({rows, in}, gen).set_requires_grad();
  const Tensor g = randn({rows, out}, gen);
  {
    const AutocastGuard on(DType::BFloat16);
    sum(layer.forward(x) * g).backward();
  }
  const std::vector<float> xs = x.to_vector(), ws = layer.weight().to_vector(), gs = g.to_vector();
  std::vector<float> gt(gs.size());  // g^T [out, rows]
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) gt[o * rows + r] = gs[r * out + o];
  const std::vector<double> dx = rounded_product(gs, ws, rows, out, in, in, 1);   // g [rows, out] @ w [out, in]
  const std::vector<double> dw = rounded_product(gt, xs, out, rows, in, in, 1);   // g^T @ x
  const std::vector<float> got_dx = x.grad().to_vector(), got_dw = layer.weight().grad().to_vector();
  const std::vector<float> got_db = layer.bias()->grad().to_vector();
  double off_full = 0;
  for (std::size_t i = 0; i < dx.size(); ++i) {
    EXPECT_NEAR(got_dx[i], dx[i], 1e-5 * (1 + std::fabs(dx[i]))) << "dx " << i;
    double full = 0;  // the float32 gradient without rounding
    for (int o = 0; o < out; ++o) full += double(gs[(i / in) * out + o]) * ws[o * in + i % in];
    off_full = std::max(off_full, std::fabs(full - dx[i]));
  }
  EXPECT_GT(off_full, 1e-4) << "dx must come from the rounded operands";
  for (std::size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(got_dw[i], dw[i], 1e-5 * (1 + std::fabs(dw[i]))) << "dw " << i;
  for (int o = 0; o < out; ++o) {
    double want = 0;
    for (int r = 0; r < rows; ++r) want += gs[r * out + o];
    EXPECT_NEAR(got_db[o], want, 1e-5) << "db sums the float32 gradient, " << o;
  }
}

// The MLP's first layer (linear with GELU in its epilogue) is under autocast
// like every Linear: gelu(round(x) round(w)^T + b).
TEST(Autocast, LinearWithGeluMultipliesRoundedOperands) {
  Generator gen(12);
  const int rows = 4, in = 32, out = 16;
  const Tensor x = randn({rows, in}, gen), w = randn({out, in}, gen), b = randn({out}, gen);
  Tensor y;
  {
    const AutocastGuard on(DType::BFloat16);
    y = linear(x, w, b, LinearActivation::Gelu);
  }
  const std::vector<float> xs = x.to_vector(), ws = w.to_vector(), bs = b.to_vector(), got = y.to_vector();
  const std::vector<double> z = rounded_product(xs, ws, rows, in, out, 1, in);  // x @ w^T
  for (int i = 0; i < rows; ++i)
    for (int o = 0; o < out; ++o) {
      const double u = z[i * out + o] + bs[o];
      const double want = 0.5 * u * (1 + std::tanh(0.7978845608028654 * (u + 0.044715 * u * u * u)));
      EXPECT_NEAR(got[i * out + o], want, 2e-5 * (1 + std::fabs(want))) << i << "," << o;
    }
}

// On a GPU the products run on bfloat16 tensor cores (cuBLASLt, or cuBLAS's
// mixed-type product where the layout has no cuBLASLt kernel: in = 61): the
// same products as the CPU's, summed in another order.
TEST(Autocast, GpuLinearMatchesTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& [in, out, gelu] : std::vector<std::tuple<int, int, bool>>{{64, 48, true}, {61, 7, false}}) {
    Generator gen(13);
    const Tensor x = randn({33, in}, gen), w = randn({out, in}, gen), b = randn({out}, gen);
    const Tensor g = randn({33, out}, gen);
    const LinearActivation act = gelu ? LinearActivation::Gelu : LinearActivation::None;
    std::vector<std::vector<float>> results[2];
    for (int d = 0; d < 2; ++d) {
      const Device dev = d == 0 ? Device::cpu() : Device::cuda();
      Tensor xd = x.to(dev).set_requires_grad(), wd = w.to(dev).set_requires_grad(), bd = b.to(dev).set_requires_grad();
      {
        const AutocastGuard on(DType::BFloat16);
        const Tensor y = linear(xd, wd, bd, act);
        sum(y * g.to(dev)).backward();
        results[d] = {y.to_vector(), xd.grad().to_vector(), wd.grad().to_vector(), bd.grad().to_vector()};
      }
    }
    const char* names[] = {"y", "dx", "dw", "db"};
    for (int r = 0; r < 4; ++r)
      for (std::size_t i = 0; i < results[0][r].size(); ++i)
        EXPECT_NEAR(results[1][r][i], results[0][r][i], 1e-4 * (1 + std::fabs(results[0][r][i])))
            << names[r] << " " << i << " (in " << in << ")";
  }
}

// Flash attention under autocast reads bfloat16 operands (FlashProducts in
// core/backend.h). On the CPU, whose kernel multiplies float32, the op
// rounds q, k and v first: so its result is bitwise flash attention over
// the rounded tensors, and the gradients pass straight through to the
// unrounded ones. A block list keeps float32.
TEST(Autocast, FlashAttentionReadsRoundedOperandsOnTheCpu) {
  Generator gen(21);
  const Tensor q = randn({2, 4, 37, 16}, gen), k = randn({2, 2, 37, 16}, gen), v = randn({2, 2, 37, 16}, gen);
  const Tensor g = randn({2, 4, 37, 16}, gen);
  FlashOptions o;
  o.dropout = {77, 0, 3, 0.1f};
  auto run = [&](const Tensor& q0, const Tensor& k0, const Tensor& v0, bool autocast) {
    Tensor qd = q0.clone().set_requires_grad(), kd = k0.clone().set_requires_grad(),
           vd = v0.clone().set_requires_grad();
    std::vector<std::vector<float>> r;
    {
      const AutocastGuard guard(autocast ? DType::BFloat16 : DType::Float32);
      const Tensor y = flash_attention(qd, kd, vd, o);
      sum(y * g).backward();
      r = {y.to_vector(), qd.grad().to_vector(), kd.grad().to_vector(), vd.grad().to_vector()};
    }
    return r;
  };
  const auto under_autocast = run(q, k, v, true);
  const auto over_rounded = run(round_to_bfloat16(q).detach(), round_to_bfloat16(k).detach(),
                                round_to_bfloat16(v).detach(), false);
  const auto plain = run(q, k, v, false);
  EXPECT_EQ(under_autocast, over_rounded) << "out and the three gradients, bitwise";
  EXPECT_NE(under_autocast[0], plain[0]) << "autocast changed nothing";
}

// On a GPU the kernels also round P, dout and dS (bfloat16 tensor cores):
// within bfloat16's rounding of the CPU's result, and not the float32 one.
TEST(Autocast, GpuFlashAttentionMatchesTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  Generator gen(22);
  const Tensor q = randn({2, 4, 150, 64}, gen), k = randn({2, 2, 150, 64}, gen), v = randn({2, 2, 150, 64}, gen);
  const Tensor g = randn({2, 4, 150, 64}, gen);
  std::vector<std::vector<float>> results[3];
  for (int d = 0; d < 3; ++d) {
    const Device dev = d == 0 ? Device::cpu() : Device::cuda();
    Tensor qd = q.to(dev).set_requires_grad(), kd = k.to(dev).set_requires_grad(), vd = v.to(dev).set_requires_grad();
    const AutocastGuard on(d < 2 ? DType::BFloat16 : DType::Float32);
    const Tensor y = flash_attention(qd, kd, vd, FlashOptions{});
    sum(y * g.to(dev)).backward();
    results[d] = {y.to_vector(), qd.grad().to_vector(), kd.grad().to_vector(), vd.grad().to_vector()};
  }
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) num += (double{a[i]} - b[i]) * (a[i] - b[i]), den += double{a[i]} * a[i];
    return std::sqrt(num / den);
  };
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (int r = 0; r < 4; ++r) {
    EXPECT_LT(rel(results[0][r], results[1][r]), r == 0 ? 6e-3 : 1.2e-2) << names[r];
    EXPECT_GT(rel(results[2][r], results[1][r]), 5e-4) << names[r] << ": the GPU multiplied in float32";
  }
}
