// The rolling KV cache (streaming, chapter 18): a multi-head RoPE layer
// decoding through it attends over exactly the first `sinks` and the last
// `window` tokens, with positions counted inside the cache (checked against
// plain loops in double); while the stream fits, it is the ordinary cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "attention/multi_head.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"

using namespace attn;

namespace {

GPTConfig small_gpt(const std::string& attention) {
  GPTConfig c;
  c.vocab = 11;
  c.block_size = 12;
  c.layers = 2;
  c.heads = 2;
  c.embd = 16;
  c.attention = attention;
  return c;
}

// y = W x + b for one token, in double.
std::vector<double> linear(const std::map<std::string, Tensor>& w, const std::string& name, const float* x,
                           int64_t in) {
  const std::vector<float> W = w.at(name + ".weight").to_vector(), b = w.at(name + ".bias").to_vector();
  const int64_t out = static_cast<int64_t>(b.size());
  std::vector<double> y(out);
  for (int64_t o = 0; o < out; ++o) {
    double s = b[o];
    for (int64_t i = 0; i < in; ++i) s += double(W[o * in + i]) * x[i];
    y[o] = s;
  }
  return y;
}

// Rotates the pairs (i, i + d/2) of one head's d-vector by pos * 10000^(-2i/d).
void rotate(double* x, int64_t d, int64_t pos) {
  for (int64_t i = 0; i < d / 2; ++i) {
    const double a = double(pos) * std::pow(10000.0, -2.0 * i / d), x1 = x[i], x2 = x[i + d / 2];
    x[i] = x1 * std::cos(a) - x2 * std::sin(a);
    x[i + d / 2] = x1 * std::sin(a) + x2 * std::cos(a);
  }
}

}  // namespace

TEST(RollingCache, OneRopeLayerAttendsOverExactlyTheKeptTokens) {
  // One layer (2 heads of d = 4), sinks 2, window 3, 14 tokens one at a
  // time. Oracle: project every token, keep tokens 0, 1 and the last 3 (all
  // while they fit), rotate them by their index among the kept, attend from
  // the last one, project out. Plain loops in double.
  const int64_t C = 8, H = 2, d = 4, S = 2, W = 3, N = 14;
  AttentionConfig config;
  config.embd = C, config.heads = H, config.block_size = 16;
  Generator gen(3);
  MultiHeadAttention layer(config, H, gen, PositionOptions{.rope = true});
  const std::map<std::string, Tensor> w = layer.state_dict();
  Generator data(4);
  const Tensor x = randn({1, N, C}, data);
  const std::vector<float> xv = x.to_vector();
  NoGradGuard no_grad;
  KVCache cache = KVCache::rolling(1, 1, layer.cache_layout(), S, W, Device::cpu());
  std::vector<std::vector<double>> q(N), k(N), v(N);
  for (int64_t t = 0; t < N; ++t) {
    cache.make_room(1);
    const std::vector<float> got = layer.forward_cached(narrow(x, 1, t, 1), cache, 0).to_vector();
    cache.commit(1);
    q[t] = linear(w, "wq", &xv[t * C], C), k[t] = linear(w, "wk", &xv[t * C], C), v[t] = linear(w, "wv", &xv[t * C], C);
    std::vector<int64_t> kept;
    for (int64_t j = 0; j <= t; ++j)
      if (t + 1 <= S + W || j < S || j > t - W) kept.push_back(j);
    const int64_t n = static_cast<int64_t>(kept.size());
    ASSERT_EQ(cache.length(), n) << "after token " << t;
    std::vector<float> merged(C);
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> qh(q[t].begin() + h * d, q[t].begin() + (h + 1) * d);
      rotate(qh.data(), d, n - 1);  // the query sits in the last slot
      std::vector<double> s(n);
      for (int64_t j = 0; j < n; ++j) {
        std::vector<double> kh(k[kept[j]].begin() + h * d, k[kept[j]].begin() + (h + 1) * d);
        rotate(kh.data(), d, j);
        s[j] = 0;
        for (int64_t e = 0; e < d; ++e) s[j] += qh[e] * kh[e];
        s[j] /= std::sqrt(double(d));
      }
      const double top = *std::max_element(s.begin(), s.end());
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - top));
      for (int64_t e = 0; e < d; ++e) {
        double o = 0;
        for (int64_t j = 0; j < n; ++j) o += s[j] / z * v[kept[j]][h * d + e];
        merged[h * d + e] = static_cast<float>(o);
      }
    }
    const std::vector<double> want = linear(w, "wo", merged.data(), C);
    for (int64_t c = 0; c < C; ++c)
      ASSERT_NEAR(got[c], want[c], 1e-4) << "token " << t << ", channel " << c << " (" << n << " kept)";
  }
  EXPECT_EQ(cache.seen(), N);
}

class RollingCacheWhileItFits : public ::testing::TestWithParam<const char*> {};

TEST_P(RollingCacheWhileItFits, EqualsTheFullForward) {
  // Sinks 3, window 9 = the block: 12 tokens never evict anything, so the
  // rolling cache must give the logits of one forward over all of them.
  GPT model(small_gpt(GetParam()), 5);
  NoGradGuard no_grad;
  model.eval();
  const std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
  const std::vector<float> full = model.forward(from_ints(ids, {1, 12})).to_vector();
  KVCache cache = model.make_rolling_cache(1, 3, 9);
  std::vector<float> got = model.forward_cached(from_ints({3, 1, 4, 1}, {1, 4}), cache).to_vector();
  for (std::size_t t = 4; t < ids.size(); ++t) {
    const std::vector<float> step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache).to_vector();
    got.insert(got.end(), step.begin(), step.end());
  }
  ASSERT_EQ(got.size(), full.size());
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], full[i], 1e-4) << GetParam() << ": at " << i;
}

INSTANTIATE_TEST_SUITE_P(Variants, RollingCacheWhileItFits,
                         ::testing::Values("mha:rope", "gqa:kv_heads=1,rope", "mha:alibi"));

TEST(RollingCache, LengthStaysAtSinksPlusWindow) {
  GPT model(small_gpt("mha:rope"), 6);
  NoGradGuard no_grad;
  model.eval();
  KVCache rolling = model.make_rolling_cache(1, 2, 4);
  for (int64_t t = 0; t < 20; ++t) model.forward_cached(from_ints({(t * 7) % 11}, {1, 1}), rolling);
  EXPECT_EQ(rolling.length(), 6) << "sinks 2 + window 4";
  EXPECT_EQ(rolling.seen(), 20);
  EXPECT_EQ(rolling.bytes(), 6 * rolling.bytes_per_token());
}

TEST(RollingCache, BadSizesAreOneLineErrors) {
  GPT rope(small_gpt("mha:rope"), 1), learned(small_gpt("mha"), 1), linear(small_gpt("linear"), 1),
      latent(small_gpt("mla:latent=8"), 1);
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { rope.make_rolling_cache(1, -1, 4); }), "model: sinks=-1: expected 0 or more tokens");
  EXPECT_EQ(message([&] { rope.make_rolling_cache(1, 2, 0); }), "model: window=0: expected at least 1 token");
  EXPECT_EQ(message([&] { rope.make_rolling_cache(1, 4, 9); }),
            "model: sinks + window = 13 exceeds the block size 12 (positions inside the cache must stay trained ones)");
  EXPECT_EQ(message([&] { linear.make_rolling_cache(1, 2, 4); }).rfind("model: attention 'linear' has no KV cache", 0), 0u);
  EXPECT_EQ(message([&] { latent.make_rolling_cache(1, 2, 4); })
                .rfind("model: attention 'mla:latent=8' has no rolling KV cache", 0),
            0u);
  EXPECT_EQ(message([&] { learned.make_rolling_cache(1, 2, 4); }).rfind("model: attention 'mha' uses learned positions", 0), 0u);
  KVCache cache = rope.make_rolling_cache(1, 2, 4);
  NoGradGuard no_grad;
  EXPECT_EQ(message([&] { rope.forward_cached(from_ints({1, 2, 3, 4, 5, 6, 7}, {1, 7}), cache); }),
            "kv cache: 7 new tokens do not fit a rolling window of 4; feed at most 4 at a time");
}
