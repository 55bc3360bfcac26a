// Linear attention (phi = elu + 1): the causal chunked form and the
// non-causal form against double-precision loops, causality (the classic
// leak), gradcheck, memory linear in T, and the variant's lack of a KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "attention/linear.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

double phi(double x) { return x > 0 ? x + 1 : std::exp(x); }

// out_i = sum_{j in keys(i)} (phi(q_i) . phi(k_j)) v_j / (sum_{j in keys(i)} phi(q_i) . phi(k_j) + eps)
// keys(i) = 0..i when causal, all when not. Straight from the definition:
// no state, no prefix sums, O(T^2) in double.
std::vector<double> oracle(bool causal, int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t d,
                           const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v) {
  std::vector<double> out(B * H * T * d, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = h / (H / Hkv);
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> num(d, 0.0);
        double den = 0;
        for (int64_t j = 0; j < (causal ? i + 1 : T); ++j) {
          double w = 0;
          for (int64_t e = 0; e < d; ++e)
            w += phi(q[((b * H + h) * T + i) * d + e]) * phi(k[((b * Hkv + kh) * T + j) * d + e]);
          den += w;
          for (int64_t e = 0; e < d; ++e) num[e] += w * v[((b * Hkv + kh) * T + j) * d + e];
        }
        for (int64_t e = 0; e < d; ++e) out[((b * H + h) * T + i) * d + e] = num[e] / (den + 1e-6);
      }
    }
  return out;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 5e-5 * (1 + std::fabs(want[i]))) << what << ", element " << i;
}

struct Case {
  int64_t B, H, Hkv, T, d, chunk;
};

}  // namespace

class LinearOracle : public ::testing::TestWithParam<Case> {};

TEST_P(LinearOracle, CausalAndNonCausalMatchLoops) {
  const Case c = GetParam();
  Generator g(c.T * 3 + c.chunk);
  const Tensor q = randn({c.B, c.H, c.T, c.d}, g);
  const Tensor k = randn({c.B, c.Hkv, c.T, c.d}, g), v = randn({c.B, c.Hkv, c.T, c.d}, g);
  const auto qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  expect_close(linear_attention_causal(q, k, v, c.chunk).to_vector(),
               oracle(true, c.B, c.H, c.Hkv, c.T, c.d, qv, kv, vv), "causal");
  expect_close(linear_attention_noncausal(q, k, v).to_vector(),
               oracle(false, c.B, c.H, c.Hkv, c.T, c.d, qv, kv, vv), "non-causal");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearOracle,
    ::testing::Values(Case{1, 1, 1, 1, 4, 64},    // T = 1
                      Case{2, 2, 2, 37, 8, 64},   // odd T, one chunk
                      Case{2, 2, 2, 37, 8, 5},    // odd T, a ragged last chunk
                      Case{1, 2, 2, 9, 4, 1},     // chunks of one: a pure recurrence
                      Case{1, 2, 2, 12, 4, 12},   // chunk == T
                      Case{1, 4, 2, 30, 4, 7},    // GQA
                      Case{1, 3, 1, 16, 4, 4}));  // MQA, odd heads

TEST(Linear, LastRowOfCausalIsTheNonCausalRow) {
  // The last query sees every key, so both forms agree there.
  Generator g(1);
  const int64_t T = 19;
  const Tensor q = randn({1, 2, T, 4}, g), k = randn({1, 2, T, 4}, g), v = randn({1, 2, T, 4}, g);
  const auto causal = linear_attention_causal(q, k, v, 4).to_vector();
  const auto full = linear_attention_noncausal(q, k, v).to_vector();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t e = 0; e < 4; ++e)
      EXPECT_NEAR(causal[(h * T + T - 1) * 4 + e], full[(h * T + T - 1) * 4 + e], 1e-5);
}

TEST(Linear, CausalLeakInLinearAttentionIsCaught) {
  // The classic mistake: computing S = phi(K)^T V (or the normaliser z)
  // over *all* keys, which lets every position read the future. Perturb
  // token t, in the middle of a chunk and at a chunk's start: no row before
  // t may move. The non-causal form shows that the check does see leaks.
  const int64_t T = 24, chunk = 8;
  Generator g(2);
  const Tensor q = randn({1, 2, T, 4}, g), k = randn({1, 2, T, 4}, g), v = randn({1, 2, T, 4}, g);
  const auto base = linear_attention_causal(q, k, v, chunk).to_vector();
  const auto base_full = linear_attention_noncausal(q, k, v).to_vector();
  for (int64_t t : {3, 8, 13, 23}) {
    auto change = [&](const Tensor& x) {
      std::vector<float> xs = x.to_vector();
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t e = 0; e < 4; ++e) xs[(h * T + t) * 4 + e] = 4.0f;
      return from_vector(xs, x.shape());
    };
    const auto out = linear_attention_causal(change(q), change(k), change(v), chunk).to_vector();
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < t; ++i)
        for (int64_t e = 0; e < 4; ++e)
          ASSERT_NEAR(out[(h * T + i) * 4 + e], base[(h * T + i) * 4 + e], 1e-6)
              << "token " << t << " leaked into row " << i;
    const auto full = linear_attention_noncausal(change(q), change(k), change(v)).to_vector();
    double moved = 0;
    for (int64_t e = 0; e < 4; ++e) moved += std::fabs(full[e] - base_full[e]);
    EXPECT_GT(moved, 1e-4) << "the non-causal form should leak token " << t << " into row 0";
  }
}

TEST(Linear, ChunkSizeChangesNothingIncludingGradients) {
  Generator g(3);
  const int64_t T = 29;
  Tensor q = randn({2, 4, T, 4}, g).set_requires_grad();
  Tensor k = randn({2, 2, T, 4}, g).set_requires_grad();
  Tensor v = randn({2, 2, T, 4}, g).set_requires_grad();
  const Tensor w = randn({2, 4, T, 4}, g);
  auto run = [&](int64_t chunk) {
    q.zero_grad(), k.zero_grad(), v.zero_grad();
    const Tensor out = linear_attention_causal(q, k, v, chunk);
    sum(mul(out, w)).backward();
    return std::vector<std::vector<float>>{out.to_vector(), q.grad().to_vector(),
                                           k.grad().to_vector(), v.grad().to_vector()};
  };
  const auto one_chunk = run(T);
  for (int64_t chunk : {1, 4, 10}) {
    const auto got = run(chunk);
    for (int t = 0; t < 4; ++t)
      expect_close(got[t], std::vector<double>(one_chunk[t].begin(), one_chunk[t].end()),
                   "chunk " + std::to_string(chunk) + " tensor " + std::to_string(t));
  }
}

TEST(Linear, GradcheckBothForms) {
  Generator g(4);
  Tensor q = randn({1, 2, 5, 3}, g).set_requires_grad();
  Tensor k = randn({1, 1, 5, 3}, g).set_requires_grad();
  Tensor v = randn({1, 1, 5, 3}, g).set_requires_grad();
  GradcheckResult r = gradcheck(
      [](const auto& in) { return linear_attention_causal(in[0], in[1], in[2], 2); }, {q, k, v});
  EXPECT_TRUE(r.ok) << "causal: " << r.message;
  r = gradcheck([](const auto& in) { return linear_attention_noncausal(in[0], in[1], in[2]); }, {q, k, v});
  EXPECT_TRUE(r.ok) << "non-causal: " << r.message;
}

TEST(Linear, MemoryIsLinearInTNeverTByT) {
  const int64_t d = 16;
  // Peak of forward + its autograd graph, above what was live before.
  auto forward_peak = [d](int64_t T) {
    Generator g(5);
    Tensor q = randn({1, 1, T, d}, g).set_requires_grad();
    Tensor k = randn({1, 1, T, d}, g).set_requires_grad();
    Tensor v = randn({1, 1, T, d}, g).set_requires_grad();
    const std::size_t before = cpu_allocator().stats().current;
    cpu_allocator().reset_peak();
    const Tensor out = linear_attention_causal(q, k, v);
    return cpu_allocator().stats().peak - before;
  };
  const int64_t T = 2048;
  const std::size_t t_by_t = static_cast<std::size_t>(T) * T * sizeof(float);
  const std::size_t peak = forward_peak(T), peak_double = forward_peak(2 * T);
  std::printf("[ linear d=%lld ] forward peak: T=%lld %zu bytes, T=%lld %zu bytes (T*T*4 = %zu)\n",
              static_cast<long long>(d), static_cast<long long>(T), peak,
              static_cast<long long>(2 * T), peak_double, t_by_t);
  EXPECT_LT(peak, t_by_t / 4);
  // Twice the tokens, about twice the memory (a T x T term would give 4x).
  EXPECT_LT(static_cast<double>(peak_double), 2.5 * static_cast<double>(peak));
}

TEST(Linear, VariantHasNoWeightsNoCacheNoAlibi) {
  AttentionConfig c;
  c.embd = 8, c.heads = 2, c.block_size = 8;
  Generator g(0);
  auto m = make_attention("linear:kv_heads=1", c, g);
  EXPECT_EQ(m->cache_layout().heads, 0);
  m->keep_weights = true;
  Generator g2(1);
  const Tensor x = randn({1, 5, 8}, g2);
  m->forward(x);
  EXPECT_FALSE(m->last_weights.defined());
  KVCache cache(1, 1, {2, 4, 4}, 8, Device::cpu());
  EXPECT_NE(error_of([&] { m->forward_cached(x, cache, 0); }).find("no K/V cache"), std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("linear:alibi", c, g); }).find("attention linear: alibi"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("linear:window=3", c, g); }).find("unknown option 'window'"),
            std::string::npos);
  EXPECT_NO_THROW(make_attention("linear:rope", c, g));
  // The kernel refuses a cache-shaped call rather than attending wrongly.
  AttentionCall call;
  call.q = zeros({1, 2, 1, 4}), call.k = zeros({1, 2, 3, 4}), call.v = zeros({1, 2, 3, 4});
  call.offset = 2;
  EXPECT_NE(error_of([&] { linear_attention(call); }).find("no K/V cache"), std::string::npos);
}

TEST(Linear, ModelIsCausalEndToEnd) {
  for (const char* spec : {"linear", "linear:rope,kv_heads=2"}) {
    GPTConfig c;
    c.vocab = 11, c.block_size = 12, c.layers = 2, c.heads = 4, c.embd = 16;
    c.attention = spec;
    GPT model(c, 6);
    model.eval();
    NoGradGuard ng;
    std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
    const auto base = model.forward(from_ints(ids, {1, 10})).to_vector();
    ids[7] = 10;  // a future token changes: logits before position 7 may not
    const auto out = model.forward(from_ints(ids, {1, 10})).to_vector();
    for (int64_t i = 0; i < 7 * 11; ++i) ASSERT_NEAR(out[i], base[i], 1e-6) << spec << " position " << i / 11;
    EXPECT_NE(error_of([&] { model.make_cache(1); }).find("has no KV cache"), std::string::npos);
  }
}
