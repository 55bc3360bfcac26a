// bfloat16 (core/bfloat16.h): conversion from float32 against an oracle
// that finds the nearest bfloat16 in double precision, every bfloat16 value
// through a round trip, and tensors converted both ways on any layout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/bfloat16.h"
#include "core/random.h"
#include "autograd/ops.h"
#include "core/tensor.h"

using namespace attn;

namespace {

uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}

float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// The nearest bfloat16 to a finite float, ties to the even one, worked out
// from the two bfloat16 values around it in exact double arithmetic. Past
// the largest finite bfloat16 the next value up is 2^128, i.e. infinity.
uint16_t nearest_bf16(float x) {
  const uint32_t u = bits_of(x);
  const uint16_t lo = static_cast<uint16_t>(u >> 16);  // toward zero
  const int exponent = static_cast<int>((lo >> 7) & 0xff);
  // One unit in the last place of a bfloat16 with that exponent field.
  const double ulp = std::ldexp(1.0, (exponent == 0 ? 1 : exponent) - 127 - 7);
  const double a = std::fabs(static_cast<double>(x));
  const double below = std::fabs(static_cast<double>(float_of(static_cast<uint32_t>(lo) << 16)));
  const double above = below + ulp;
  const uint16_t up = static_cast<uint16_t>(lo + 1);  // the next magnitude (the sign bit stays)
  if (a - below < above - a) return lo;
  if (a - below > above - a) return up;
  return (lo & 1) == 0 ? lo : up;
}

}  // namespace

TEST(BFloat16, EveryValueSurvivesARoundTrip) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = bf16_to_float(static_cast<uint16_t>(h));
    const uint16_t back = bf16_from_float(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16_to_float(back))) << "NaN " << std::hex << h;
      EXPECT_EQ(back & 0x8000, h & 0x8000) << "the sign of NaN " << std::hex << h;
    } else {
      EXPECT_EQ(back, h) << std::hex << h;
    }
  }
}

TEST(BFloat16, RoundsToNearestEvenAgainstADoubleOracle) {
  Generator gen(11);
  int checked = 0;
  // Random bit patterns cover every exponent, denormals included.
  for (int i = 0; i < 200000; ++i) {
    const float x = float_of(static_cast<uint32_t>(gen.next_u64()));
    if (std::isnan(x) || std::isinf(x)) continue;
    ASSERT_EQ(bf16_from_float(x), nearest_bf16(x)) << "x = " << x << " bits " << std::hex << bits_of(x);
    ++checked;
  }
  EXPECT_GT(checked, 190000);
  // Exact ties: the lower 16 bits are 0x8000. 1 + 2^-8 sits halfway between
  // 1 (even) and 1 + 2^-7 (odd): it goes down; 1 + 3 * 2^-8 goes up to the even 1 + 2^-6.
  EXPECT_EQ(bf16_from_float(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(bf16_from_float(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  // Just above a tie rounds up; just below rounds down.
  EXPECT_EQ(bf16_from_float(float_of(0x3f808001)), 0x3f81);
  EXPECT_EQ(bf16_from_float(float_of(0x3f807fff)), 0x3f80);
}

TEST(BFloat16, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16_from_float(0.0f), 0x0000);
  EXPECT_EQ(bf16_from_float(-0.0f), 0x8000);
  EXPECT_EQ(bf16_from_float(inf), 0x7f80);
  EXPECT_EQ(bf16_from_float(-inf), 0xff80);
  // The largest float rounds past the largest finite bfloat16: infinity.
  EXPECT_EQ(bf16_from_float(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(bf16_to_float(0x7f7f), float_of(0x7f7f0000));  // the largest finite bfloat16
  // A NaN whose payload lies only in the low bits stays a NaN.
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(float_of(0x7f800001)))));
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(float_of(0xffc00000)))));
  // The smallest denormal float rounds to zero; a denormal bfloat16 is kept.
  EXPECT_EQ(bf16_from_float(float_of(0x00000001)), 0x0000);
  EXPECT_EQ(bf16_from_float(float_of(0x00010000)), 0x0001);
}

TEST(BFloat16, TensorsConvertOnEveryLayout) {
  Generator gen(3);
  const Tensor x = randn({3, 5, 7}, gen) * 1000.0f;
  const Tensor t = x.to(DType::BFloat16);
  EXPECT_EQ(t.dtype(), DType::BFloat16);
  EXPECT_STREQ(dtype_name(t.dtype()), "bfloat16");
  EXPECT_EQ(dtype_size(DType::BFloat16), 2u);
  const std::vector<float> xs = x.to_vector(), back = t.to_vector();  // to_vector widens
  ASSERT_EQ(back.size(), xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(back[i], bf16_to_float(nearest_bf16(xs[i]))) << i;
  // A transposed view converts element by element through the strided path.
  const Tensor tr = transpose(x, 0, 2);
  const std::vector<float> want = tr.contiguous().to_vector(), got = tr.to(DType::BFloat16).to_vector();
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], bf16_to_float(nearest_bf16(want[i]))) << i;
  // Widening is exact, so bfloat16 -> float32 -> bfloat16 changes nothing.
  const Tensor again = t.to(DType::Float32).to(DType::BFloat16);
  EXPECT_EQ(std::memcmp(again.data<uint16_t>(), t.data<uint16_t>(), 2 * t.numel()), 0);
}
