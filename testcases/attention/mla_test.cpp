// MLA: the explicit path against a double-precision oracle built from the
// module's own weights, the absorbed decoding path against the explicit
// one, and the cache size.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/mla.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"

using namespace attn;

namespace {

GPTConfig config(const std::string& attention) {
  GPTConfig c;
  c.vocab = 10;
  c.block_size = 12;
  c.layers = 2;
  c.heads = 2;
  c.embd = 16;
  c.attention = attention;
  return c;
}

std::map<std::string, std::vector<float>> weights_of(Module& m) {
  std::map<std::string, std::vector<float>> w;
  for (auto& [n, p] : m.named_parameters()) w[n] = p->to_vector();
  return w;
}

// y = x W^T + b for one row, in double.
std::vector<double> linear(const std::vector<double>& x, const std::vector<float>& w,
                           const std::vector<float>* b, int64_t out) {
  const int64_t in = static_cast<int64_t>(x.size());
  std::vector<double> y(out);
  for (int64_t o = 0; o < out; ++o) {
    double s = b ? (*b)[o] : 0.0;
    for (int64_t i = 0; i < in; ++i) s += x[i] * w[o * in + i];
    y[o] = s;
  }
  return y;
}

// Half-split RoPE at position t on one vector, in double.
std::vector<double> rope(std::vector<double> v, int64_t t) {
  const int64_t r = static_cast<int64_t>(v.size()), half = r / 2;
  std::vector<double> out(r);
  for (int64_t i = 0; i < half; ++i) {
    const double a = t * std::pow(10000.0, -2.0 * i / r);
    out[i] = v[i] * std::cos(a) - v[i + half] * std::sin(a);
    out[i + half] = v[i] * std::sin(a) + v[i + half] * std::cos(a);
  }
  return out;
}

}  // namespace

TEST(Mla, ForwardMatchesLoops) {
  AttentionConfig c;
  c.embd = 8;
  c.heads = 2;
  c.block_size = 5;
  const int64_t L = 3, R = 2, H = 2, d = 4, T = 5;
  Generator gen(2);
  MultiHeadLatentAttention m(c, L, R, gen);
  Generator g2(3);
  const Tensor x = randn({1, T, 8}, g2);
  auto w = weights_of(m);
  const auto xv = x.to_vector();
  std::vector<std::vector<double>> q(T), qr(T), k(T), v(T), kr(T);
  for (int64_t t = 0; t < T; ++t) {
    const std::vector<double> xt(xv.begin() + t * 8, xv.begin() + (t + 1) * 8);
    q[t] = linear(xt, w["wq.weight"], &w["wq.bias"], 8);
    qr[t] = linear(xt, w["wq_rope.weight"], &w["wq_rope.bias"], H * R);
    const auto lat = linear(xt, w["w_down_kv.weight"], &w["w_down_kv.bias"], L);
    k[t] = linear(lat, w["w_up_k.weight"], nullptr, 8);
    v[t] = linear(lat, w["w_up_v.weight"], nullptr, 8);
    kr[t] = rope(linear(xt, w["w_k_rope.weight"], &w["w_k_rope.bias"], R), t);
    for (int64_t h = 0; h < H; ++h) {
      const auto rot = rope({qr[t][h * R], qr[t][h * R + 1]}, t);
      qr[t][h * R] = rot[0], qr[t][h * R + 1] = rot[1];
    }
  }
  std::vector<double> heads(T * 8, 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> s(i + 1);
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j <= i; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += q[i][h * d + e] * k[j][h * d + e];
        for (int64_t e = 0; e < R; ++e) dot += qr[i][h * R + e] * kr[j][e];
        s[j] = dot / std::sqrt(static_cast<double>(d + R));
        mx = std::max(mx, s[j]);
      }
      for (double& e : s) z += (e = std::exp(e - mx));
      for (int64_t j = 0; j <= i; ++j)
        for (int64_t e = 0; e < d; ++e) heads[i * 8 + h * d + e] += s[j] / z * v[j][h * d + e];
    }
  NoGradGuard ng;
  const auto got = m.forward(x).to_vector();
  for (int64_t t = 0; t < T; ++t) {
    const auto want = linear(std::vector<double>(heads.begin() + t * 8, heads.begin() + (t + 1) * 8),
                             w["wo.weight"], &w["wo.bias"], 8);
    for (int64_t o = 0; o < 8; ++o) ASSERT_NEAR(got[t * 8 + o], want[o], 1e-5) << "t " << t << " o " << o;
  }
}

TEST(Mla, AbsorbedDecodingMatchesTheExplicitPath) {
  GPT model(config("mla:latent=6,rope_dim=4"), 5);
  NoGradGuard ng;
  model.eval();
  const std::vector<int64_t> ids = {1, 4, 1, 5, 9, 2, 6, 5};
  const auto full = model.forward(from_ints(ids, {1, 8})).to_vector();
  KVCache cache = model.make_cache(1);
  auto got = model.forward_cached(from_ints({1, 4}, {1, 2}), cache).to_vector();
  for (size_t t = 2; t < ids.size(); ++t) {
    const auto step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache).to_vector();
    got.insert(got.end(), step.begin(), step.end());
  }
  for (size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(got[i], full[i], 1e-4) << "position " << i / 10;
}

TEST(Mla, CachesLatentPlusRopeKeyPerToken) {
  GPT mla(config("mla:latent=6,rope_dim=4"), 0), mha(config("mha"), 0);
  // (6 + 4) floats x 2 layers, vs 2 x 16 floats x 2 layers for MHA.
  EXPECT_EQ(mla.make_cache(1).bytes_per_token(), static_cast<size_t>((6 + 4) * 2 * 4));
  EXPECT_EQ(mha.make_cache(1).bytes_per_token(), static_cast<size_t>(2 * 16 * 2 * 4));
}

TEST(Mla, GradcheckAndBadOptions) {
  AttentionConfig c;
  c.embd = 4;
  c.heads = 2;
  c.block_size = 3;
  Generator gen(1);
  auto m = std::make_shared<MultiHeadLatentAttention>(c, 2, 2, gen);
  Generator g2(2);
  Tensor x = randn({1, 3, 4}, g2).set_requires_grad();
  const GradcheckResult r = gradcheck([m](const auto& in) { return m->forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_THROW(make_attention("mla:rope_dim=3", c, gen), Error);
  EXPECT_THROW(make_attention("mla:latent=0", c, gen), Error);
  EXPECT_THROW(make_attention("mla:kv_heads=2", c, gen), Error);
}
