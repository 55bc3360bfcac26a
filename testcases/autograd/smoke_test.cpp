#include <gtest/gtest.h>
#include "autograd/ops.h"
using namespace attn;
TEST(SmokeGrad, Mul) {
  Tensor a = from_vector({1, 2, 3}, {3}).set_requires_grad();
  sum(a * a).backward();
  EXPECT_FLOAT_EQ(a.grad().to_vector()[2], 6);
}
