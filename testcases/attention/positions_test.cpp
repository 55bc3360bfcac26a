// RoPE and ALiBi against their definitions, computed here in double.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"

using namespace attn;

TEST(Rope, MatchesHalfSplitRotation) {
  const int64_t T = 5, d = 8, off = 3;
  Generator g(1);
  const Tensor x = randn({2, T, d}, g);
  const auto got = apply_rope(x, rope_tables(T, d, off, 10000.0f, 1.0f, Device::cpu())).to_vector();
  const auto xv = x.to_vector();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < d / 2; ++i) {
        const double theta = (t + off) * std::pow(10000.0, -2.0 * i / d);
        const double x1 = xv[(b * T + t) * d + i], x2 = xv[(b * T + t) * d + i + d / 2];
        ASSERT_NEAR(got[(b * T + t) * d + i], x1 * std::cos(theta) - x2 * std::sin(theta), 1e-5)
            << "pairing of dim " << i << " with " << i + d / 2 << " at position " << t;
        ASSERT_NEAR(got[(b * T + t) * d + i + d / 2], x1 * std::sin(theta) + x2 * std::cos(theta), 1e-5);
      }
}

TEST(Rope, ScoresDependOnlyOnDistance) {
  const int64_t d = 16;
  Generator g(2);
  const Tensor q = randn({1, d}, g), k = randn({1, d}, g);
  auto score = [&](int64_t m, int64_t n) {
    const Tensor qm = apply_rope(q, rope_tables(1, d, m, 10000.0f, 1.0f, Device::cpu()));
    const Tensor kn = apply_rope(k, rope_tables(1, d, n, 10000.0f, 1.0f, Device::cpu()));
    return sum(mul(qm, kn)).item();
  };
  EXPECT_NEAR(score(7, 3), score(27, 23), 1e-4);
  EXPECT_NEAR(score(0, 5), score(100, 105), 1e-4);
  EXPECT_GT(std::fabs(score(7, 3) - score(7, 5)), 1e-3);  // and it does depend on distance
}

TEST(Rope, NtkScalingRaisesTheBase) {
  const int64_t d = 8;
  const RopeTables scaled = rope_tables(4, d, 0, 10000.0f, 4.0f, Device::cpu());
  const double base = 10000.0 * std::pow(4.0, d / (d - 2.0));
  const auto c = scaled.cos.to_vector();
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t i = 0; i < d / 2; ++i)
      ASSERT_NEAR(c[t * d / 2 + i], std::cos(t * std::pow(base, -2.0 * i / d)), 1e-6);
  EXPECT_THROW(rope_tables(4, 7, 0, 10000.0f, 1.0f, Device::cpu()), Error);
}

TEST(Rope, Gradcheck) {
  Generator g(3);
  Tensor x = randn({1, 2, 3, 4}, g).set_requires_grad();
  const RopeTables r = rope_tables(3, 4, 1, 100.0f, 1.0f, Device::cpu());
  const GradcheckResult res = gradcheck([r](const auto& in) { return apply_rope(in[0], r); }, {x});
  EXPECT_TRUE(res.ok) << res.message;
}

TEST(Alibi, SlopesForAnyHeadCount) {
  auto geometric = [](int64_t n) {
    std::vector<double> s;
    for (int64_t k = 1; k <= n; ++k) s.push_back(std::pow(2.0, -8.0 * k / n));
    return s;
  };
  for (int64_t n : {1, 2, 4, 8, 16}) {
    const auto got = alibi_slopes(n);
    const auto want = geometric(n);
    for (int64_t h = 0; h < n; ++h) EXPECT_NEAR(got[h], want[h], 1e-7) << n << " heads, head " << h;
  }
  // 6 heads: the 4 slopes of n=4, then slopes 1 and 3 (0-based 0, 2) of n=8.
  const auto six = alibi_slopes(6);
  const std::vector<double> want6 = {0.25, 1.0 / 16, 1.0 / 64, 1.0 / 256, 0.5, 0.125};
  ASSERT_EQ(six.size(), 6u);
  for (int h = 0; h < 6; ++h) EXPECT_NEAR(six[h], want6[h], 1e-7) << h;
  EXPECT_EQ(alibi_slopes(12).size(), 12u);
}

TEST(Alibi, BiasIsMinusSlopeTimesDistance) {
  const auto b = alibi_bias(2, 3, 3, 0, Device::cpu()).to_vector();
  const auto m = alibi_slopes(2);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j <= i; ++j) EXPECT_FLOAT_EQ(b[(h * 3 + i) * 3 + j], -m[h] * (i - j));
}

TEST(PositionVariants, GptUsesNoLearnedPositions) {
  for (const char* spec : {"mha:rope", "gqa:kv_heads=2,alibi", "mqa:rope,ntk=2"}) {
    GPTConfig c;
    c.vocab = 7;
    c.block_size = 6;
    c.layers = 1;
    c.heads = 4;
    c.embd = 16;
    c.attention = spec;
    GPT model(c, 1);
    for (auto& [n, p] : model.named_parameters()) EXPECT_NE(n, "wpe.weight") << spec;
    NoGradGuard ng;
    const auto a = model.forward(from_ints({1, 2, 3, 4}, {1, 4})).to_vector();
    const auto b = model.forward(from_ints({1, 2, 6, 6}, {1, 4})).to_vector();
    for (int i = 0; i < 2 * 7; ++i) ASSERT_FLOAT_EQ(a[i], b[i]) << spec << ": causality";
  }
  AttentionConfig ac;
  ac.embd = 8;
  ac.heads = 2;
  ac.block_size = 4;
  Generator g(0);
  EXPECT_THROW(make_attention("mha:rope,alibi", ac, g), Error);
  EXPECT_THROW(make_attention("mha:ntk=2", ac, g), Error);
  EXPECT_THROW(make_attention("mha:rope=maybe", ac, g), Error);
}
