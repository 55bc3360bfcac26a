// The vectorisable math of core/cpu/vmath.h against double-precision libm:
// the error bounds its header states, over the whole float range (every
// 251st bit pattern, both signs, denormals included) and at the special
// values. A wrong range reduction, a missing polynomial term or a lost NaN
// fails here with the worst input named.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "autograd/ops.h"
#include "core/cpu/vmath.h"

namespace {

namespace vm = attn::vmath;
constexpr float kInf = std::numeric_limits<float>::infinity();

// The size of one unit in the last place at r (floats' spacing; 2^104 from
// 2^127 on, where the next step is to infinity).
double ulp_of(double r) {
  if (r == 0) return std::ldexp(1.0, -149);
  int e;
  std::frexp(std::min(std::fabs(r), std::ldexp(1.0, 127)), &e);
  return std::max(std::ldexp(1.0, e - 24), std::ldexp(1.0, -149));
}

// Worst error in ulp of f against the double reference g, over the float
// range. Infinity counts as 2^128, the value rounding to it starts from, so
// a result next to FLT_MAX may round either way within the bound.
template <class F, class G>
void expect_within_ulp(const char* name, F f, G g, double bound) {
  double worst = 0;
  float worst_x = 0;
  for (uint64_t bits = 0; bits < (1ull << 32); bits += 251) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(bits));
    const double ref = g(static_cast<double>(x));
    const float got = f(x);
    if (std::isnan(ref)) {
      ASSERT_TRUE(std::isnan(got)) << name << "(" << x << ") = " << got << ", expected NaN";
      continue;
    }
    if (std::isinf(ref) || std::isnan(got)) {
      ASSERT_EQ(got, ref) << name << "(" << x << ")";
      continue;
    }
    const double big = std::ldexp(1.0, 128);
    const double got_d = std::isinf(got) ? std::copysign(big, got) : got;
    const double ref_d = std::copysign(std::min(std::fabs(ref), big), ref);
    const double err = std::fabs(got_d - ref_d) / ulp_of(ref_d);
    if (err > worst) worst = err, worst_x = x;
  }
  EXPECT_LE(worst, bound) << name << ": worst error " << worst << " ulp at x = " << worst_x;
  std::printf("[ vmath    ] %s: worst %.2f ulp (bound %.1f) at x = %.9g\n", name, worst, bound, worst_x);
}

TEST(Vmath, ExpWithinItsBound) {
  expect_within_ulp("exp", [](float x) { return vm::exp(x); }, [](double x) { return std::exp(x); }, 1.5);
}

TEST(Vmath, Expm1WithinItsBound) {
  expect_within_ulp("expm1", [](float x) { return vm::expm1(x); },
                    [](double x) { return std::expm1(x); }, 2.5);
}

TEST(Vmath, TanhWithinItsBound) {
  expect_within_ulp("tanh", [](float x) { return vm::tanh(x); }, [](double x) { return std::tanh(x); }, 3.0);
}

TEST(Vmath, SpecialValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(vm::exp(kInf), kInf);
  EXPECT_EQ(vm::exp(-kInf), 0.0f);
  EXPECT_EQ(vm::exp(0.0f), 1.0f);
  EXPECT_EQ(vm::exp(89.0f), kInf);  // e^89 > FLT_MAX
  EXPECT_EQ(vm::exp(-104.0f), 0.0f);
  const float tiny = vm::exp(-100.0f);  // a denormal: 3.7e-44
  EXPECT_GT(tiny, 0.0f);
  EXPECT_LT(tiny, std::numeric_limits<float>::min());
  EXPECT_NEAR(tiny, std::exp(-100.0), std::ldexp(1.0, -149));
  EXPECT_TRUE(std::isnan(vm::exp(nan)));
  EXPECT_TRUE(std::isnan(vm::expm1(nan)));
  EXPECT_TRUE(std::isnan(vm::tanh(nan)));
  EXPECT_EQ(vm::expm1(-kInf), -1.0f);
  EXPECT_EQ(vm::expm1(1e-30f), 1e-30f);  // no cancellation near 0
  EXPECT_EQ(vm::tanh(kInf), 1.0f);
  EXPECT_EQ(vm::tanh(-kInf), -1.0f);
  EXPECT_EQ(vm::tanh(1e-30f), 1e-30f);
  EXPECT_EQ(vm::tanh(-0.0f), 0.0f);
  EXPECT_EQ(vm::sigmoid(kInf), 1.0f);
  EXPECT_EQ(vm::sigmoid(-kInf), 0.0f);
}

// GELU (tanh form) and its derivative against double, through the identity
// 0.5 (1 + tanh u) = sigmoid(2u) in double: a reference that, unlike
// 1 + tanh(u) in double, keeps its digits for large negative x. Relative
// error is bounded where GELU is not tiny (x >= -3); further left its value
// is e^(2u) with u ~ x^3, and rounding u to a float alone moves that by
// 2 |u| ulp, so there the bound is absolute.
TEST(Vmath, GeluAndItsGradientAgainstDouble) {
  const double c = 0.7978845608028654;
  double worst_rel = 0, worst_abs = 0, worst_grad = 0;
  for (float x = -20.0f; x <= 20.0f; x += 0.00123f) {
    const double u = c * (x + 0.044715 * x * x * x);
    const double s = 1.0 / (1.0 + std::exp(-2.0 * u));
    const double gelu = x * s;
    const double grad = s + 2.0 * x * s * (1.0 - s) * c * (1.0 + 3.0 * 0.044715 * x * x);
    const double err = std::fabs(vm::gelu(x) - gelu);
    if (x >= -3.0f) worst_rel = std::max(worst_rel, err / std::fabs(gelu == 0 ? 1 : gelu));
    worst_abs = std::max(worst_abs, err);
    worst_grad = std::max(worst_grad, std::fabs(vm::gelu_grad(x) - grad));
  }
  EXPECT_LT(worst_rel, 1e-6) << "GELU relative error for x >= -3";
  EXPECT_LT(worst_abs, 1e-6) << "GELU absolute error";
  EXPECT_LT(worst_grad, 1e-6) << "GELU gradient absolute error";
  // Far out on the left the value and the gradient are 0, not inf * 0.
  for (float x : {-30.0f, -1e4f}) EXPECT_EQ(vm::gelu_grad(x), 0.0f) << x;
  EXPECT_EQ(vm::gelu(-1e4f), 0.0f);
  EXPECT_EQ(vm::gelu_grad(30.0f), 1.0f);
}

// The tensor ops that use these functions give the same numbers.
TEST(Vmath, TensorOpsUseIt) {
  const attn::Tensor x = attn::from_vector({-3.0f, -0.5f, 0.0f, 1e-3f, 2.0f, 50.0f}, {6});
  const auto e = attn::exp(x).to_vector(), t = attn::tanh(x).to_vector(), g = attn::gelu(x).to_vector();
  const auto xs = x.to_vector();
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_EQ(e[i], vm::exp(xs[i])) << i;
    EXPECT_EQ(t[i], vm::tanh(xs[i])) << i;
    EXPECT_EQ(g[i], vm::gelu(xs[i])) << i;
  }
}

}  // namespace
