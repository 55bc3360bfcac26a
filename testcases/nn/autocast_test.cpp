// Mixed precision (autograd/autocast.h): the rounding op against the
// nearest bfloat16, its straight-through gradient, the guard's scope, and a
// Linear layer under autocast against a double-precision product of the
// rounded operands.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/bfloat16.h"
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
