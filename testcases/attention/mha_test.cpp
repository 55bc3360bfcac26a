// Causal multi-head attention (with the kv_heads knob) against a
// double-precision loop oracle, and the registry's parsing and errors.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

// out[t] = sum_{s<=t} softmax_s(q_t . k_s / sqrt(d)) v_s per head, query head
// h reading K/V head h / (H / Hkv); all in double.
std::vector<double> oracle(const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v, int64_t B, int64_t T, int64_t H,
                           int64_t Hkv, int64_t d) {
  std::vector<double> out(B * T * H * d, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = h / (H / Hkv);
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i)
            dot += static_cast<double>(q[((b * T + t) * H + h) * d + i]) * k[((b * T + u) * Hkv + kh) * d + i];
          s[u] = dot / std::sqrt(static_cast<double>(d));
          mx = std::max(mx, s[u]);
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < d; ++i)
            out[((b * T + t) * H + h) * d + i] += s[u] / z * v[((b * T + u) * Hkv + kh) * d + i];
      }
    }
  return out;
}

}  // namespace

class MhaOracle : public ::testing::TestWithParam<int64_t> {};

TEST_P(MhaOracle, MatchesLoops) {
  const int64_t kv_heads = GetParam();
  AttentionConfig c;
  c.embd = 12;
  c.heads = 4;
  c.block_size = 6;
  Generator gen(3);
  MultiHeadAttention m(c, kv_heads, gen);
  Generator g2(4);
  const int64_t B = 2, T = 5, d = 3;
  const Tensor x = randn({B, T, 12}, g2);
  NoGradGuard ng;
  // Rebuild q, k, v and the pre-projection output by hand from the weights.
  auto proj = [&](const char* name) {
    for (auto& [n, p] : m.named_parameters())
      if (n == std::string(name) + ".weight") {
        Tensor b;
        for (auto& [n2, p2] : m.named_parameters())
          if (n2 == std::string(name) + ".bias") b = *p2;
        return add(matmul(x, transpose(*p, 0, 1)), b).to_vector();
      }
    return std::vector<float>{};
  };
  const auto q = proj("wq"), k = proj("wk"), v = proj("wv");
  const auto att = oracle(q, k, v, B, T, 4, kv_heads, d);
  // Apply wo in double.
  Tensor wo, bo;
  for (auto& [n, p] : m.named_parameters()) {
    if (n == "wo.weight") wo = *p;
    if (n == "wo.bias") bo = *p;
  }
  const auto wv = wo.to_vector(), bv = bo.to_vector();
  const auto got = m.forward(x).to_vector();
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t o = 0; o < 12; ++o) {
      double s = bv[o];
      for (int64_t i = 0; i < 12; ++i) s += att[r * 12 + i] * wv[o * 12 + i];
      ASSERT_NEAR(got[r * 12 + o], s, 1e-5) << "kv_heads=" << kv_heads << " row " << r << " col " << o;
    }
}

INSTANTIATE_TEST_SUITE_P(KvHeads, MhaOracle, ::testing::Values(4, 2, 1));

TEST(Mha, Gradcheck) {
  AttentionConfig c;
  c.embd = 4;
  c.heads = 2;
  c.block_size = 3;
  Generator gen(5);
  auto m = std::make_shared<MultiHeadAttention>(c, 1, gen);
  Generator g2(6);
  Tensor x = randn({1, 3, 4}, g2).set_requires_grad();
  const GradcheckResult r = gradcheck([m](const auto& in) { return m->forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Sdpa, FullyMaskedRowsGiveZerosNotNan) {
  Generator g(1);
  const Tensor q = randn({1, 1, 3, 2}, g), k = randn({1, 1, 3, 2}, g), v = randn({1, 1, 3, 2}, g);
  const Tensor keep = from_bools({false, false, false, true, false, false, true, true, true}, {3, 3});
  const auto out = scaled_dot_product_attention(q, k, v, keep, 1.0f).to_vector();
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[1], 0.0f);
  const auto vv = v.to_vector();
  EXPECT_FLOAT_EQ(out[2], vv[0]);  // row 1 sees only key 0
  EXPECT_FLOAT_EQ(out[3], vv[1]);
}

TEST(Registry, ParsesSpecs) {
  const VariantSpec s = parse_variant("gqa:kv_heads=2,rope");
  EXPECT_EQ(s.name, "gqa");
  EXPECT_EQ(s.options.at("kv_heads"), "2");
  EXPECT_EQ(s.options.at("rope"), "true");
  EXPECT_EQ(parse_variant("student:gqa").name, "student:gqa");
  EXPECT_EQ(parse_variant("student:gqa:kv_heads=2").options.at("kv_heads"), "2");
  EXPECT_EQ(s.str(), "gqa:kv_heads=2,rope");
}

TEST(Registry, ErrorsListWhatExists) {
  AttentionConfig c;
  c.embd = 8;
  c.heads = 4;
  c.block_size = 4;
  Generator g(0);
  const std::string unknown = error_of([&] { make_attention("foo", c, g); });
  EXPECT_NE(unknown.find("unknown variant 'foo'; known variants: "), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("gqa"), std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("mha:size=3", c, g); }).find("unknown option 'size'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("gqa:kv_heads=3", c, g); }).find("kv_heads=3 must divide heads=4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("gqa", c, g); }).find("needs the option kv_heads"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("gqa:kv_heads=x", c, g); }).find("kv_heads=x is not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] { parse_variant("gqa:kv_heads=2,,"); }).find("bad option"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_variant(":x"); }).find("does not start with a variant name"), std::string::npos);
}
