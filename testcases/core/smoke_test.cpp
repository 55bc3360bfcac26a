#include <gtest/gtest.h>
#include "autograd/ops.h"
using namespace attn;
TEST(Smoke, Add) {
  Tensor a = from_vector({1, 2, 3}, {3});
  EXPECT_FLOAT_EQ((a + a).to_vector()[2], 6);
}
