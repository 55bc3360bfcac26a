// Sliding-window attention: both paths (masked, banded) against a
// double-precision loop oracle, against each other, at the exact band edge,
// through gradcheck, for causality, and for memory (the banded path never
// allocates anything T x T).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "attention/pattern.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "attention/window.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

struct Case {
  int64_t B, H, Hkv, Tq, Tk, d, offset, window;
  bool alibi;  // only with a power-of-two H (the oracle's slopes are 2^(-8k/H))
};

// Query i at position p = offset + i reads keys first..last with
// first = max(0, p - W + 1), last = min(p, Tk - 1): a range, not a mask.
std::vector<double> oracle(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v) {
  std::vector<double> out(c.B * c.H * c.Tq * c.d, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kh = h / (c.H / c.Hkv);
      const double slope = std::pow(2.0, -8.0 * (h + 1) / c.H);
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t p = c.offset + i;
        const int64_t first = std::max<int64_t>(0, p - c.window + 1), last = std::min(p, c.Tk - 1);
        if (last < first) continue;  // no key: zeros
        std::vector<double> s;
        for (int64_t j = first; j <= last; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e)
            dot += double(q[((b * c.H + h) * c.Tq + i) * c.d + e]) * k[((b * c.Hkv + kh) * c.Tk + j) * c.d + e];
          s.push_back(dot / std::sqrt(double(c.d)) - (c.alibi ? slope * double(p - j) : 0.0));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (int64_t j = first; j <= last; ++j)
          for (int64_t e = 0; e < c.d; ++e)
            out[((b * c.H + h) * c.Tq + i) * c.d + e] +=
                s[j - first] / z * v[((b * c.Hkv + kh) * c.Tk + j) * c.d + e];
      }
    }
  return out;
}

AttentionCall make_call(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset = 0,
                        bool alibi = false) {
  AttentionCall call;
  call.q = q, call.k = k, call.v = v, call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  if (alibi) call.alibi = alibi_slopes(q.shape()[1]);
  return call;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-5 * (1 + std::fabs(want[i]))) << what << ", element " << i;
}

std::vector<double> to_double(const std::vector<float>& x) { return {x.begin(), x.end()}; }

}  // namespace

class WindowOracle : public ::testing::TestWithParam<Case> {};

TEST_P(WindowOracle, BothPathsMatchLoops) {
  const Case c = GetParam();
  Generator g(c.Tq * 13 + c.window);
  const Tensor q = randn({c.B, c.H, c.Tq, c.d}, g);
  const Tensor k = randn({c.B, c.Hkv, c.Tk, c.d}, g), v = randn({c.B, c.Hkv, c.Tk, c.d}, g);
  const auto want = oracle(c, q.to_vector(), k.to_vector(), v.to_vector());
  const AttentionCall call = make_call(q, k, v, c.offset, c.alibi);
  expect_close(window_attention_masked(call, c.window).to_vector(), want, "masked");
  // Chunk sizes that cut the band at every possible place, and the default.
  for (int64_t chunk : {0, 1, 3, 16, 1000}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    expect_close(window_attention_banded(call, c.window, chunk).to_vector(), want, "banded");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WindowOracle,
    ::testing::Values(Case{1, 1, 1, 1, 1, 4, 0, 1, false},     // T = 1, W = 1
                      Case{2, 2, 2, 37, 37, 8, 0, 5, false},   // odd T
                      Case{1, 2, 2, 9, 9, 4, 0, 1, false},     // W = 1: only itself
                      Case{1, 2, 2, 20, 20, 4, 0, 20, false},  // W = T: causal
                      Case{1, 2, 2, 19, 19, 4, 0, 50, false},  // W > T: causal
                      Case{1, 4, 2, 33, 33, 4, 0, 7, false},   // GQA
                      Case{1, 4, 1, 45, 45, 4, 0, 16, true},   // ALiBi, MQA
                      Case{1, 2, 2, 3, 10, 4, 7, 4, false},    // KV cache: 3 new tokens after 7
                      Case{1, 2, 1, 1, 12, 4, 11, 3, true},    // decoding one token, ALiBi
                      Case{1, 2, 2, 5, 5, 4, -2, 2, false}));  // first rows see no key: zeros

TEST(Window, SizeOneAttendsOnlyToItself) {
  Generator g(1);
  const Tensor q = randn({1, 4, 7, 3}, g), k = randn({1, 2, 7, 3}, g), v = randn({1, 2, 7, 3}, g);
  const auto vv = v.to_vector();
  for (const Tensor& out : {window_attention_banded(make_call(q, k, v), 1),
                            window_attention_masked(make_call(q, k, v), 1)}) {
    const auto o = out.to_vector();
    for (int64_t h = 0; h < 4; ++h)  // query head h reads K/V head h / 2
      for (int64_t t = 0; t < 7; ++t)
        for (int64_t e = 0; e < 3; ++e)
          ASSERT_FLOAT_EQ(o[(h * 7 + t) * 3 + e], vv[((h / 2) * 7 + t) * 3 + e]) << h << " " << t;
  }
}

TEST(Window, AtLeastAsWideAsTheSequenceIsDenseCausal) {
  Generator g(2);
  const int64_t T = 23;
  const Tensor q = randn({2, 2, T, 4}, g), k = randn({2, 2, T, 4}, g), v = randn({2, 2, T, 4}, g);
  const auto dense = to_double(dense_causal_attention(make_call(q, k, v)).to_vector());
  for (int64_t w : {T, T + 1, 4 * T}) {
    expect_close(window_attention_banded(make_call(q, k, v), w).to_vector(), dense, "banded");
    expect_close(window_attention_masked(make_call(q, k, v), w).to_vector(), dense, "masked");
  }
}

TEST(Window, WindowOneTokenTooWideIsCaught) {
  // The band of W = 3 over 6 tokens, row by row: exactly W keys ending at
  // the query, fewer at the start. A band of W + 1 keys fails here.
  const std::vector<std::string> want = {"x.....", "xx....", "xxx...",
                                         ".xxx..", "..xxx.", "...xxx"};
  const auto keep = window_mask(6, 6, 0, 3, Device::cpu()).to_vector();
  for (int64_t i = 0; i < 6; ++i) {
    std::string row;
    for (int64_t j = 0; j < 6; ++j) row += keep[i * 6 + j] != 0 ? 'x' : '.';
    EXPECT_EQ(row, want[i]) << "row " << i;
  }
  // And in the outputs of both paths: changing key p - W (one outside)
  // leaves query p alone; changing key p - W + 1 (the oldest inside) does not.
  const int64_t T = 40, W = 6, p = 29;
  Generator g(3);
  const Tensor q = randn({1, 1, T, 4}, g), k = randn({1, 1, T, 4}, g), v = randn({1, 1, T, 4}, g);
  auto row_p = [&](const Tensor& kk, const Tensor& vv, bool banded) {
    const AttentionCall c = make_call(q, kk, vv);
    const Tensor out = banded ? window_attention_banded(c, W, 4) : window_attention_masked(c, W);
    return select(select(select(out, 0, 0), 0, 0), 0, p).to_vector();
  };
  auto bump = [&](const Tensor& x, int64_t pos) {
    std::vector<float> xs = x.to_vector();
    for (int e = 0; e < 4; ++e) xs[pos * 4 + e] += 3.0f;
    return from_vector(xs, x.shape());
  };
  for (bool banded : {true, false}) {
    SCOPED_TRACE(banded ? "banded" : "masked");
    const auto base = row_p(k, v, banded);
    const auto outside = row_p(bump(k, p - W), bump(v, p - W), banded);
    const auto inside = row_p(bump(k, p - W + 1), bump(v, p - W + 1), banded);
    for (int e = 0; e < 4; ++e) EXPECT_EQ(outside[e], base[e]) << "key p - W must be outside";
    double moved = 0;
    for (int e = 0; e < 4; ++e) moved += std::fabs(inside[e] - base[e]);
    EXPECT_GT(moved, 1e-3) << "key p - W + 1 must be inside";
  }
}

TEST(Window, BandedEqualsMaskedIncludingGradients) {
  Generator g(4);
  const int64_t T = 50, W = 6;
  Tensor q = randn({2, 4, T, 8}, g).set_requires_grad();
  Tensor k = randn({2, 2, T, 8}, g).set_requires_grad();
  Tensor v = randn({2, 2, T, 8}, g).set_requires_grad();
  const Tensor w = randn({2, 4, T, 8}, g);
  auto grads = [&](bool banded) {
    q.zero_grad(), k.zero_grad(), v.zero_grad();
    const AttentionCall c = make_call(q, k, v, 0, true);
    const Tensor out = banded ? window_attention_banded(c, W, 7) : window_attention_masked(c, W);
    sum(mul(out, w)).backward();
    return std::vector<std::vector<float>>{out.to_vector(), q.grad().to_vector(),
                                           k.grad().to_vector(), v.grad().to_vector()};
  };
  const auto banded = grads(true), masked = grads(false);
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (int t = 0; t < 4; ++t)
    expect_close(banded[t], to_double(masked[t]), names[t]);
}

TEST(Window, GradcheckBothPaths) {
  Generator g(5);
  Tensor q = randn({1, 2, 6, 3}, g).set_requires_grad();
  Tensor k = randn({1, 1, 6, 3}, g).set_requires_grad();
  Tensor v = randn({1, 1, 6, 3}, g).set_requires_grad();
  for (bool banded : {true, false}) {
    const GradcheckResult r = gradcheck(
        [banded](const auto& in) {
          const AttentionCall c = make_call(in[0], in[1], in[2], 0, true);
          return banded ? window_attention_banded(c, 3, 2) : window_attention_masked(c, 3);
        },
        {q, k, v});
    EXPECT_TRUE(r.ok) << (banded ? "banded: " : "masked: ") << r.message;
  }
}

TEST(Window, ChangingAFutureTokenNeverChangesEarlierOutputs) {
  const int64_t T = 30;
  Generator g(6);
  const Tensor q = randn({1, 2, T, 4}, g), k = randn({1, 2, T, 4}, g), v = randn({1, 2, T, 4}, g);
  const auto base = window_attention_banded(make_call(q, k, v), 8, 5).to_vector();
  for (int64_t t : {1, 4, 5, 17, 29}) {  // inside a chunk, at chunk starts, the last
    auto change = [&](const Tensor& x) {
      std::vector<float> xs = x.to_vector();
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t e = 0; e < 4; ++e) xs[(h * T + t) * 4 + e] = -5.0f;
      return from_vector(xs, x.shape());
    };
    const auto out = window_attention_banded(make_call(change(q), change(k), change(v)), 8, 5).to_vector();
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < t; ++i)
        for (int64_t e = 0; e < 4; ++e)
          ASSERT_EQ(out[(h * T + i) * 4 + e], base[(h * T + i) * 4 + e])
              << "token " << t << " leaked into row " << i;
  }
}

TEST(Window, BandedForwardNeverAllocatesTheTByTMatrix) {
  const int64_t T = 2048, d = 16, W = 32;
  const std::size_t t_by_t = static_cast<std::size_t>(T) * T * sizeof(float);
  Generator g(7);
  Tensor q = randn({1, 1, T, d}, g).set_requires_grad();
  Tensor k = randn({1, 1, T, d}, g).set_requires_grad();
  Tensor v = randn({1, 1, T, d}, g).set_requires_grad();
  // Peak of the forward with its autograd graph kept, above what was live.
  auto forward_peak = [&](bool banded, Tensor* out) {
    const std::size_t before = cpu_allocator().stats().current;
    cpu_allocator().reset_peak();
    const AttentionCall c = make_call(q, k, v);
    *out = banded ? window_attention_banded(c, W) : window_attention_masked(c, W);
    return cpu_allocator().stats().peak - before;
  };
  Tensor out;
  const std::size_t banded = forward_peak(true, &out);
  const std::size_t before_backward = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  sum(out).backward();
  const std::size_t backward = cpu_allocator().stats().peak - before_backward;
  out = Tensor();
  const std::size_t masked = forward_peak(false, &out);
  std::printf("[ window T=%lld d=%lld W=%lld ] forward peak: banded %zu bytes, masked %zu bytes "
              "(T*T*4 = %zu); banded backward peak %zu bytes\n",
              static_cast<long long>(T), static_cast<long long>(d), static_cast<long long>(W),
              banded, masked, t_by_t, backward);
  EXPECT_LT(banded, t_by_t / 4);
  EXPECT_LT(backward, t_by_t / 4);
  EXPECT_GE(masked, t_by_t) << "the masked path should hold at least one T x T matrix";
}

TEST(Window, VariantMatchesFlashWindowWithTheSameWeights) {
  // flash:window=W uses the same convention in a fused kernel: an
  // independent implementation of the same band.
  for (const char* pair : {"window:size=3|flash:window=3", "window:size=2,kv_heads=2,rope|flash:window=2,kv_heads=2,rope",
                           "window:size=4,alibi|flash:window=4,alibi"}) {
    const std::string s(pair);
    GPTConfig c;
    c.vocab = 9, c.block_size = 12, c.layers = 2, c.heads = 4, c.embd = 16;
    c.attention = s.substr(0, s.find('|'));
    GPT window(c, 3);
    c.attention = s.substr(s.find('|') + 1);
    GPT flash(c, 3);
    flash.load_state_dict(window.state_dict());
    NoGradGuard ng;
    const Tensor ids = from_ints({1, 5, 2, 8, 3, 3, 0, 7, 4, 2, 6}, {1, 11});
    const auto a = window.forward(ids).to_vector(), b = flash.forward(ids).to_vector();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << pair << " " << i;
  }
}

TEST(Window, KvCacheDecodeMatchesFullForward) {
  GPTConfig c;
  c.vocab = 13, c.block_size = 12, c.layers = 2, c.heads = 4, c.embd = 16;
  c.attention = "window:size=3,kv_heads=2,rope";
  GPT model(c, 4);
  model.eval();
  NoGradGuard ng;
  const std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5};
  const auto full = model.forward(from_ints(ids, {1, 9})).to_vector();
  KVCache cache = model.make_cache(1);
  std::vector<float> got = model.forward_cached(from_ints({3, 1, 4, 1}, {1, 4}), cache).to_vector();
  for (size_t t = 4; t < ids.size(); ++t) {
    const auto step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache).to_vector();
    got.insert(got.end(), step.begin(), step.end());
  }
  ASSERT_EQ(got.size(), full.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], full[i], 1e-4) << "position " << i / 13;
}

TEST(Window, RegistryValidatesItsOptions) {
  AttentionConfig c;
  c.embd = 8, c.heads = 4, c.block_size = 8;
  Generator g(0);
  EXPECT_NE(error_of([&] { make_attention("window:size=0", c, g); })
                .find("attention window: size must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("window", c, g); }).find("needs the option size=N"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("window:size=4,block=2", c, g); }).find("unknown option 'block'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make_attention("window:size=4,kv_heads=3", c, g); }).find("kv_heads=3 must divide"),
            std::string::npos);
  EXPECT_NE(error_of([&] { window_mask(2, 2, 0, 0, Device::cpu()); }).find("size must be >= 1, got 0"),
            std::string::npos);
  EXPECT_NO_THROW(make_attention("window:size=4,rope", c, g));
  // Asking for weights (heatmaps) gives the masked path's weights: the band.
  auto m = make_attention("window:size=2", c, g);
  m->keep_weights = true;
  NoGradGuard ng;
  Generator g2(1);
  m->forward(randn({1, 5, 8}, g2));
  ASSERT_TRUE(m->last_weights.defined());
  const auto w = m->last_weights.to_vector();  // [1, 4, 5, 5]
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_EQ(w[i * 5 + j] != 0.0f, j <= i && j > i - 2) << i << " " << j;
}
