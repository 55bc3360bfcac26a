// Tests of gradcheck itself: a checker that never fails proves nothing. Each
// deliberately wrong custom op (built with attn::record) must be caught and
// reported by input, element, analytic and numeric value; the right version
// of the same op must pass.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "ag_test_util.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/error.h"

using namespace attn;
using agtest::normal;

namespace {

// y = x * x. With `missing_two` its backward forgets the factor 2 (g * x).
Tensor custom_square(const Tensor& x, bool missing_two) {
  const Tensor xd = x.detach();
  return record(mul(xd, xd), "custom_square", {x}, [xd, missing_two](const Tensor& g) {
    return std::vector<Tensor>{missing_two ? mul(g, xd) : mul(g, mul(xd, 2.0f))};
  });
}

// y = a * b^2: a's gradient is always right, b's drops the 2 when `wrong_b`.
Tensor custom_a_b2(const Tensor& a, const Tensor& b, bool wrong_b) {
  const Tensor ad = a.detach(), bd = b.detach();
  return record(mul(ad, mul(bd, bd)), "custom_a_b2", {a, b}, [ad, bd, wrong_b](const Tensor& g) {
    const Tensor db = wrong_b ? mul(g, mul(ad, bd)) : mul(g, mul(mul(ad, bd), 2.0f));
    return std::vector<Tensor>{mul(g, mul(bd, bd)), db};
  });
}

// y = x * x whose gradient is right except at flat element `bad`, where
// `extra` is added (independent of the output gradient, so the error is
// exactly `extra` whatever weights gradcheck draws).
Tensor square_off_at(const Tensor& x, int64_t bad, float extra) {
  const Tensor xd = x.detach();
  std::vector<float> onehot(x.numel(), 0.0f);
  onehot[bad] = extra;
  const Tensor delta = from_vector(onehot, x.shape());
  return record(mul(xd, xd), "square_off_at", {x}, [xd, delta](const Tensor& g) {
    return std::vector<Tensor>{add(mul(g, mul(xd, 2.0f)), delta)};
  });
}

std::string fmt(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

}  // namespace

TEST(GradcheckSelf, CorrectCustomOpPasses) {
  Tensor x = normal({3, 4}, 1);
  const GradcheckResult r = gradcheck([](const auto& in) { return custom_square(in[0], false); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_TRUE(r.message.empty());
  Tensor a = normal({2, 3}, 2), b = normal({2, 3}, 3);
  EXPECT_GRAD_OK([](const auto& in) { return custom_a_b2(in[0], in[1], false); }, {a, b});
}

TEST(GradcheckSelf, MissingFactorTwoIsCaughtAndReported) {
  Tensor x = normal({3, 4}, 4);
  const GradcheckResult r = gradcheck([](const auto& in) { return custom_square(in[0], true); }, {x});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.input, 0);
  ASSERT_GE(r.index, 0);
  ASSERT_LT(r.index, x.numel());
  // The numeric value is the true derivative w * 2x (central differences are
  // exact for a quadratic up to float rounding); the analytic one is half of it.
  EXPECT_NEAR(r.analytic, r.numeric / 2, 1e-3 + 1e-3 * std::fabs(r.numeric));
  EXPECT_NEAR(r.error, std::fabs(r.numeric - r.analytic), 1e-9);
  EXPECT_GT(std::fabs(r.numeric), 0.0);
  // The message names the input, the element and both values.
  EXPECT_NE(r.message.find("input 0"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("element " + std::to_string(r.index)), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("analytic " + fmt(r.analytic)), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("numeric " + fmt(r.numeric)), std::string::npos) << r.message;
}

TEST(GradcheckSelf, ReportsWhichInputIsWrong) {
  Tensor a = normal({2, 3}, 5), b = normal({2, 3}, 6);
  const GradcheckResult r =
      gradcheck([](const auto& in) { return custom_a_b2(in[0], in[1], true); }, {a, b});
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.input, 1);
  EXPECT_NE(r.message.find("input 1"), std::string::npos) << r.message;
  EXPECT_NEAR(r.analytic, r.numeric / 2, 1e-3 + 1e-3 * std::fabs(r.numeric));
}

TEST(GradcheckSelf, ReportsTheWrongElement) {
  Tensor x = normal({2, 3}, 7);
  for (int64_t bad : {0, 4, 5}) {
    SCOPED_TRACE("bad element " + std::to_string(bad));
    const GradcheckResult r =
        gradcheck([bad](const auto& in) { return square_off_at(in[0], bad, 1.0f); }, {x});
    ASSERT_FALSE(r.ok);
    EXPECT_EQ(r.input, 0);
    EXPECT_EQ(r.index, bad);
    EXPECT_NEAR(r.analytic - r.numeric, 1.0, 1e-3);
    EXPECT_NE(r.message.find("element " + std::to_string(bad)), std::string::npos) << r.message;
  }
}

TEST(GradcheckSelf, ErrorJustInsideTheToleranceIsAccepted) {
  // |diff| <= atol + rtol * |numeric|: an error of 0.5 atol passes, 2 atol fails.
  Tensor x = normal({2, 3}, 8);
  const double atol = 1e-2;
  EXPECT_TRUE(gradcheck([](const auto& in) { return square_off_at(in[0], 2, 0.005f); }, {x},
                        1e-2, atol, 0.0)
                  .ok);
  EXPECT_FALSE(gradcheck([](const auto& in) { return square_off_at(in[0], 2, 0.02f); }, {x},
                         1e-2, atol, 0.0)
                   .ok);
}

TEST(GradcheckSelf, NanGradientIsCaught) {
  // A backward that produces NaN must never pass (NaN compares false with
  // every tolerance).
  Tensor x = normal({2, 3}, 9);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const GradcheckResult r =
      gradcheck([nan](const auto& in) { return square_off_at(in[0], 3, nan); }, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.index, 3);
  EXPECT_FALSE(r.message.empty());
}

TEST(GradcheckSelf, ExactMatchPassesWithZeroTolerances) {
  // 0 * x: analytic and numeric are both exactly 0, so even atol = rtol = 0
  // must accept it (0 / 0 is not a failure).
  Tensor x = normal({2, 3}, 16);
  const GradcheckResult r =
      gradcheck([](const auto& in) { return mul(in[0], 0.0f); }, {x}, 1e-2, 0.0, 0.0);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(GradcheckSelf, MissingGradientIsCaught) {
  // A backward that returns no gradient at all for an input that matters.
  Tensor x = normal({2, 3}, 10);
  auto no_grad_op = [](const std::vector<Tensor>& in) {
    const Tensor xd = in[0].detach();
    return record(mul(xd, 3.0f), "no_grad_op", {in[0]},
                  [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
  };
  const GradcheckResult r = gradcheck(no_grad_op, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.analytic, 0.0);
}

TEST(GradcheckSelf, WrongGradientShapeThrows) {
  Tensor x = normal({2, 3}, 11);
  auto bad_shape = [](const std::vector<Tensor>& in) {
    const Tensor xd = in[0].detach();
    return record(mul(xd, 3.0f), "bad_shape", {in[0]},
                  [](const Tensor& g) { return std::vector<Tensor>{reshape(g, {3, 2})}; });
  };
  try {
    gradcheck(bad_shape, {x});
    FAIL() << "expected an attn::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gradient for input 0 has shape"), std::string::npos)
        << e.what();
  }
}

TEST(GradcheckSelf, OutputNotDependingOnCheckedInputsThrows) {
  Tensor x = normal({2, 3}, 12);
  try {
    gradcheck([](const auto& in) { return mul(in[0].detach(), 2.0f); }, {x});
    FAIL() << "expected an attn::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not depend"), std::string::npos) << e.what();
  }
}

TEST(GradcheckSelf, InputsAreNotModified) {
  Tensor x = normal({2, 3}, 13);
  const std::vector<float> before = x.to_vector();
  EXPECT_GRAD_OK([](const auto& in) { return exp(in[0]); }, {x});
  EXPECT_EQ(x.to_vector(), before);
  EXPECT_FALSE(x.grad().defined());
  EXPECT_TRUE(x.requires_grad());
}

TEST(GradcheckSelf, OnlyInputsRequiringGradAreChecked) {
  // b's backward is wrong, but b does not require grad: nothing to check there.
  Tensor a = normal({2, 3}, 14);
  const Tensor b = normal({2, 3}, 15).detach();
  const GradcheckResult r =
      gradcheck([](const auto& in) { return custom_a_b2(in[0], in[1], true); }, {a, b});
  EXPECT_TRUE(r.ok) << r.message;
}
