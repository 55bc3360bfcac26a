// Chapter 12, advanced suite: both attention paths and the whole module
// against double-precision loop oracles written here (RoPE included), over
// odd head counts, T = 1, a latent of 1, the smallest RoPE part and queries
// after a cache; gradcheck through all three; the shared RoPE key collecting
// every head's gradient; scores near +-1000; decoding token by token and in
// chunks equal to the full forward; the cache measured against the formula
// and against MHA/GQA/MQA caches; the absorbed path measured to never build
// per-head K/V; and a tiny GPT trained and decoded on your module.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "attention/kv_cache.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "latent_attention.h"
#include "lesson_test.h"
#include "nn/gpt.h"

using namespace attn;
using namespace lesson_test;

namespace {

struct Dims {
  int64_t B, H, T, offset, d, r, L, dv;
  int64_t S() const { return offset + T; }
};

// Explicit MLA in double. k and v are per head [B, H, S, *]; kr is [B, 1, S, r].
std::vector<double> attend(const std::vector<double>& q, const std::vector<double>& qr,
                           const std::vector<double>& k, const std::vector<double>& kr,
                           const std::vector<double>& v, const Dims& n) {
  const int64_t S = n.S();
  const double scale = 1 / std::sqrt(double(n.d + n.r));
  std::vector<double> out(n.B * n.H * n.T * n.dv, 0.0);
  for (int64_t b = 0; b < n.B; ++b)
    for (int64_t h = 0; h < n.H; ++h)
      for (int64_t i = 0; i < n.T; ++i) {
        const int64_t last = n.offset + i;
        std::vector<double> s(last + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < n.d; ++c)
            dot += q[((b * n.H + h) * n.T + i) * n.d + c] * k[((b * n.H + h) * S + j) * n.d + c];
          for (int64_t c = 0; c < n.r; ++c)
            dot += qr[((b * n.H + h) * n.T + i) * n.r + c] * kr[(b * S + j) * n.r + c];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= last; ++j)
          for (int64_t c = 0; c < n.dv; ++c)
            out[((b * n.H + h) * n.T + i) * n.dv + c] += s[j] / z * v[((b * n.H + h) * S + j) * n.dv + c];
      }
  return out;
}

// lat [B, S, L], w [H*d, L] -> [B, H, S, d] in double.
std::vector<double> expand_heads(const std::vector<double>& lat, const std::vector<double>& w,
                                 int64_t B, int64_t S, int64_t L, int64_t H, int64_t d) {
  std::vector<double> out(B * H * S * d, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s)
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t l = 0; l < L; ++l) acc += lat[(b * S + s) * L + l] * w[(h * d + c) * L + l];
          out[((b * H + h) * S + s) * d + c] = acc;
        }
  return out;
}

Tensor to_tensor(const std::vector<double>& v, const Shape& shape) {
  return from_vector(std::vector<float>(v.begin(), v.end()), shape);
}

// rows x r, pairs (i, i + r/2) rotated by pos * 10000^(-2i/r), in double.
void rotate(double* x, int64_t r, int64_t pos) {
  for (int64_t i = 0; i < r / 2; ++i) {
    const double a = pos * std::pow(10000.0, -2.0 * i / r);
    const double x1 = x[i], x2 = x[i + r / 2];
    x[i] = x1 * std::cos(a) - x2 * std::sin(a);
    x[i + r / 2] = x1 * std::sin(a) + x2 * std::cos(a);
  }
}

// y[row] = x[row] W^T + b, in double (b may be undefined).
std::vector<double> linear(const std::vector<double>& x, int64_t rows, const Tensor& w, const Tensor& b) {
  const std::vector<double> W = values(w), bv = b.defined() ? values(b) : std::vector<double>();
  const int64_t out = w.shape()[0], in = w.shape()[1];
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bv.empty() ? 0.0 : bv[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

// The whole module in double, from its own weights, for x [B, T, C].
std::vector<double> module_oracle(lesson12::LatentAttention& m, const Tensor& xt) {
  auto sd = m.state_dict();
  const int64_t B = xt.shape()[0], T = xt.shape()[1], C = xt.shape()[2];
  const int64_t H = m.heads(), d = m.head_dim(), L = m.latent(), r = m.rope_dim();
  const std::vector<double> x = values(xt);
  const auto q = linear(x, B * T, sd.at("wq.weight"), sd.at("wq.bias"));          // [B*T, H*d]
  auto qr = linear(x, B * T, sd.at("wq_rope.weight"), sd.at("wq_rope.bias"));     // [B*T, H*r]
  const auto c = linear(x, B * T, sd.at("w_down_kv.weight"), sd.at("w_down_kv.bias"));  // [B*T, L]
  auto kr = linear(x, B * T, sd.at("w_k_rope.weight"), sd.at("w_k_rope.bias"));   // [B*T, r]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t h = 0; h < H; ++h) rotate(&qr[(b * T + t) * H * r + h * r], r, t);
      rotate(&kr[(b * T + t) * r], r, t);
    }
  // Token-major [B, T, H, *] -> head-major [B, H, T, *].
  auto heads_first = [&](const std::vector<double>& tm, int64_t width) {
    std::vector<double> hm(B * H * T * width);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t e = 0; e < width; ++e)
            hm[((b * H + h) * T + t) * width + e] = tm[((b * T + t) * H + h) * width + e];
    return hm;
  };
  const Dims n{B, H, T, 0, d, r, L, d};
  const auto o = attend(heads_first(q, d), heads_first(qr, r),
                        expand_heads(c, values(sd.at("w_up_k.weight")), B, T, L, H, d), kr,
                        expand_heads(c, values(sd.at("w_up_v.weight")), B, T, L, H, d), n);
  std::vector<double> merged(B * T * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t e = 0; e < d; ++e) merged[(b * T + t) * C + h * d + e] = o[((b * H + h) * T + t) * d + e];
  return linear(merged, B * T, sd.at("wo.weight"), sd.at("wo.bias"));
}

void randomise(Module& m, uint64_t seed, float scale = 0.5f) {
  auto sd = m.state_dict();
  for (auto& [name, t] : sd) t = random_tensor(t.shape(), seed++, scale);
  m.load_state_dict(sd);
}

struct Case {
  Dims n;
  const char* name;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
class ExplicitSweep : public ::testing::TestWithParam<Case> {};
class AbsorbedSweep : public ::testing::TestWithParam<Case> {};

const auto kCases = ::testing::Values(
    Case{{1, 1, 1, 0, 1, 2, 1, 1}, "one_head_T1_d1_r2_latent1"}, Case{{2, 3, 4, 0, 4, 2, 6, 4}, "three_heads"},
    Case{{1, 5, 6, 0, 2, 4, 3, 3}, "five_heads_latent3"}, Case{{2, 7, 3, 0, 3, 2, 8, 2}, "seven_heads"},
    Case{{1, 4, 1, 9, 4, 2, 5, 4}, "decode_one_query_after_9"},
    Case{{2, 2, 3, 5, 8, 6, 4, 8}, "three_queries_after_5"}, Case{{1, 8, 7, 0, 2, 2, 16, 2}, "latent16"});
auto case_name = [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); };

struct Inputs {
  Tensor q, qr, lat, kr, wk, wv;
  std::vector<double> k, v;  // expanded in double
};
Inputs make_inputs(const Dims& n, uint64_t seed) {
  Inputs in;
  in.q = random_tensor({n.B, n.H, n.T, n.d}, seed), in.qr = random_tensor({n.B, n.H, n.T, n.r}, seed + 1);
  in.lat = random_tensor({n.B, 1, n.S(), n.L}, seed + 2), in.kr = random_tensor({n.B, 1, n.S(), n.r}, seed + 3);
  in.wk = random_tensor({n.H * n.d, n.L}, seed + 4), in.wv = random_tensor({n.H * n.dv, n.L}, seed + 5);
  in.k = expand_heads(values(in.lat), values(in.wk), n.B, n.S(), n.L, n.H, n.d);
  in.v = expand_heads(values(in.lat), values(in.wv), n.B, n.S(), n.L, n.H, n.dv);
  return in;
}

// A module with enlarged random weights (attention far from uniform).
std::shared_ptr<lesson12::LatentAttention> make_module(int64_t C, int64_t H, int64_t L, int64_t r,
                                                       uint64_t seed) {
  Generator gen(seed);
  auto m = std::make_shared<lesson12::LatentAttention>(C, H, L, r, gen);
  randomise(*m, seed + 1);
  return m;
}

}  // namespace

// -------------------------------------------------- random sweeps vs oracle

TEST_P(ExplicitSweep, MatchesDoubleOracle) {
  const Dims n = GetParam().n;
  const Inputs in = make_inputs(n, 100 + n.H);
  const Tensor k = to_tensor(in.k, {n.B, n.H, n.S(), n.d}), v = to_tensor(in.v, {n.B, n.H, n.S(), n.dv});
  EXPECT_TRUE(close(std::string(GetParam().name) + ": mla_attention",
                    lesson12::mla_attention(in.q, in.qr, k, in.kr, v, n.offset),
                    attend(values(in.q), values(in.qr), in.k, values(in.kr), in.v, n), {n.B, n.H, n.T, n.dv},
                    2e-4));
}
INSTANTIATE_TEST_SUITE_P(Shapes, ExplicitSweep, kCases, case_name);

TEST_P(AbsorbedSweep, MatchesDoubleOracle) {
  const Dims n = GetParam().n;
  const Inputs in = make_inputs(n, 200 + n.H);
  EXPECT_TRUE(close(std::string(GetParam().name) + ": mla_attention_absorbed",
                    lesson12::mla_attention_absorbed(in.q, in.qr, in.lat, in.kr, in.wk, in.wv, n.offset),
                    attend(values(in.q), values(in.qr), in.k, values(in.kr), in.v, n), {n.B, n.H, n.T, n.dv},
                    3e-4));
}
INSTANTIATE_TEST_SUITE_P(Shapes, AbsorbedSweep, kCases, case_name);

TEST(ModuleSweep, ForwardMatchesDoubleOracle) {
  struct M {
    int64_t B, T, C, H, L, r;
  };
  for (const M c : {M{1, 1, 8, 2, 4, 2}, M{2, 6, 12, 3, 5, 4}, M{1, 7, 10, 5, 3, 2}, M{2, 5, 14, 7, 1, 2},
                    M{1, 9, 16, 2, 6, 6}}) {
    const auto module = make_module(c.C, c.H, c.L, c.r, 300 + c.C);
  auto& m = *module;
    const Tensor x = random_tensor({c.B, c.T, c.C}, 310 + c.T);
    std::ostringstream what;
    what << "forward, B=" << c.B << " T=" << c.T << " C=" << c.C << " H=" << c.H << " L=" << c.L << " r=" << c.r;
    EXPECT_TRUE(close(what.str(), m.forward(x), module_oracle(m, x), {c.B, c.T, c.C}, 3e-4));
  }
}

// ------------------------------------------------------------------ decoding

TEST(Mistakes, DecodingRestartsRopePositionsAtZero) {
  // Decoding one token at a time through forward_cached must give, row by
  // row, what forward gives on the whole sequence.
  const auto module = make_module(12, 3, 4, 4, 400);
  auto& m = *module;
  const int64_t T = 7;
  const Tensor x = random_tensor({2, T, 12}, 401);
  NoGradGuard no_grad;
  const Tensor full = m.forward(x);
  KVCache cache(1, 2, m.cache_layout(), T, Device::cpu());
  for (int64_t t = 0; t < T; ++t) {
    const Tensor step = m.forward_cached(narrow(x, 1, t, 1), cache, 0);
    cache.commit(1);
    ASSERT_TRUE(close("token " + std::to_string(t) + " decoded alone", step,
                      contiguous(narrow(full, 1, t, 1)), 3e-4))
        << "the token fed alone sits at position cache.length() = " << t
        << ": rotate its q_rope and k_rope with rope_tables(1, r, offset = " << t
        << ", ...), not at position 0";
  }
}

TEST(Mistakes, CausalMaskWithoutTheCacheOffset) {
  // Prefill 4 tokens, then 3 more in one call: those 3 sit at positions 4..6
  // and see keys 0..4, 0..5, 0..6 (causal_mask(T, S, offset)).
  const auto module = make_module(12, 3, 4, 2, 410);
  auto& m = *module;
  const Tensor x = random_tensor({1, 7, 12}, 411);
  NoGradGuard no_grad;
  const Tensor full = m.forward(x);
  KVCache cache(1, 1, m.cache_layout(), 7, Device::cpu());
  m.forward_cached(narrow(x, 1, 0, 4), cache, 0);
  cache.commit(4);
  EXPECT_TRUE(close("3 tokens after a prefill of 4", m.forward_cached(narrow(x, 1, 4, 3), cache, 0),
                    contiguous(narrow(full, 1, 4, 3)), 3e-4))
      << "query i of the new chunk sits at position offset + i and sees keys j <= offset + i; "
         "causal_mask(T, S, 0) would hide keys it may see";
}

// ------------------------------------------------------------------ gradients

TEST(Gradients, GradcheckThroughMlaAttention) {
  const Tensor q = random_tensor({1, 3, 4, 2}, 500).set_requires_grad(),
               qr = random_tensor({1, 3, 4, 2}, 501).set_requires_grad(),
               k = random_tensor({1, 3, 4, 2}, 502).set_requires_grad(),
               kr = random_tensor({1, 1, 4, 2}, 503).set_requires_grad(),
               v = random_tensor({1, 3, 4, 3}, 504).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson12::mla_attention(in[0], in[1], in[2], in[3], in[4]); },
      {q, qr, k, kr, v});
  EXPECT_TRUE(r.ok) << "gradients through mla_attention (0 = q, 1 = q_rope, 2 = k, 3 = k_rope, 4 = v):\n"
                    << r.message;
}

TEST(Gradients, GradcheckThroughTheAbsorbedPath) {
  const Tensor q = random_tensor({1, 2, 3, 2}, 510).set_requires_grad(),
               qr = random_tensor({1, 2, 3, 2}, 511).set_requires_grad(),
               lat = random_tensor({1, 1, 3, 3}, 512).set_requires_grad(),
               kr = random_tensor({1, 1, 3, 2}, 513).set_requires_grad(),
               wk = random_tensor({4, 3}, 514).set_requires_grad(), wv = random_tensor({4, 3}, 515).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson12::mla_attention_absorbed(in[0], in[1], in[2], in[3], in[4], in[5]);
      },
      {q, qr, lat, kr, wk, wv});
  EXPECT_TRUE(r.ok) << "gradients through mla_attention_absorbed (0 = q, 1 = q_rope, 2 = latents, "
                       "3 = k_rope, 4 = w_up_k, 5 = w_up_v):\n"
                    << r.message;
}

TEST(Gradients, GradcheckThroughTheModule) {
  Generator gen(520);
  lesson12::LatentAttention m(8, 2, 3, 2, gen);
  const Tensor x = random_tensor({2, 3, 8}, 521).set_requires_grad();
  const GradcheckResult r = gradcheck([&m](const std::vector<Tensor>& in) { return m.forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << "gradient of the module output with respect to x:\n" << r.message;
  sum(square(m.forward(x))).backward();
  for (auto& [name, p] : m.named_parameters())
    EXPECT_TRUE(p->grad().defined()) << name << " got no gradient: is it used in forward?";
}

TEST(Gradients, TheSharedRopeKeyCollectsEveryHeadsGradient) {
  // k_rope is one tensor read by all heads: its gradient is the sum of what
  // private per-head copies would get.
  const int64_t H = 3;
  const Tensor q = random_tensor({1, H, 4, 2}, 530), qr = random_tensor({1, H, 4, 2}, 531),
               k = random_tensor({1, H, 4, 2}, 532), v = random_tensor({1, H, 4, 2}, 533),
               w = random_tensor({1, H, 4, 2}, 534);
  const Tensor kr = random_tensor({1, 1, 4, 2}, 535).set_requires_grad();
  sum(mul(lesson12::mla_attention(q, qr, k, kr, v), w)).backward();
  ASSERT_TRUE(kr.grad().defined()) << "k_rope.grad is undefined after backward()";
  Tensor total = zeros({1, 1, 4, 2});
  for (int64_t h = 0; h < H; ++h) {
    const Tensor one = kr.detach().set_requires_grad();
    sum(mul(lesson12::mla_attention(narrow(q, 1, h, 1), narrow(qr, 1, h, 1), narrow(k, 1, h, 1), one,
                                    narrow(v, 1, h, 1)),
            narrow(w, 1, h, 1)))
        .backward();
    total = add(total, one.grad());
  }
  EXPECT_TRUE(close("k_rope.grad", kr.grad(), total))
      << "the shared RoPE key must receive the summed gradient of all " << H << " heads";
}

TEST(Gradients, BothPathsGiveTheSameWeightGradients) {
  // Absorption is an identity, so it changes no gradient either.
  const int64_t H = 2, d = 3, L = 4, r = 2, S = 5;
  const Tensor q = random_tensor({1, H, S, d}, 540), qr = random_tensor({1, H, S, r}, 541),
               lat = random_tensor({1, 1, S, L}, 542), kr = random_tensor({1, 1, S, r}, 543);
  const Tensor wk1 = random_tensor({H * d, L}, 544).set_requires_grad(), wv1 = random_tensor({H * d, L}, 545).set_requires_grad();
  const Tensor wk2 = wk1.detach().set_requires_grad(), wv2 = wv1.detach().set_requires_grad();
  sum(square(lesson12::mla_attention_absorbed(q, qr, lat, kr, wk1, wv1))).backward();
  const Tensor c = squeeze(lat, 1);
  const Tensor k = transpose(reshape(matmul(c, transpose(wk2, 0, 1)), {1, S, H, d}), 1, 2);
  const Tensor v = transpose(reshape(matmul(c, transpose(wv2, 0, 1)), {1, S, H, d}), 1, 2);
  sum(square(lesson12::mla_attention(q, qr, k, kr, v))).backward();
  ASSERT_TRUE(wk1.grad().defined() && wv1.grad().defined()) << "w_up_k/w_up_v got no gradient through the absorbed path";
  EXPECT_TRUE(close("w_up_k.grad (absorbed vs explicit)", wk1.grad(), wk2.grad(), 2e-4));
  EXPECT_TRUE(close("w_up_v.grad (absorbed vs explicit)", wv1.grad(), wv2.grad(), 2e-4));
}

// ------------------------------------------------------ stability and edges

TEST(Stability, RopeScoresNearPlusAndMinus1000) {
  // The RoPE parts alone push every score to about +-1000.
  const Dims n{1, 2, 5, 0, 3, 2, 4, 3};
  for (float sign : {1.0f, -1.0f}) {
    Inputs in = make_inputs(n, 600);
    std::vector<float> qr = in.qr.to_vector(), kr = in.kr.to_vector();
    const float big = std::sqrt(1000.0f * std::sqrt(5.0f));  // (big * big) / sqrt(d + r) = 1000
    for (std::size_t i = 0; i < qr.size(); i += 2) qr[i] = sign * big, qr[i + 1] = 0;
    for (std::size_t i = 0; i < kr.size(); i += 2) kr[i] = big, kr[i + 1] = 0;
    in.qr = from_vector(qr, in.qr.shape()), in.kr = from_vector(kr, in.kr.shape());
    const auto want = attend(values(in.q), values(in.qr), in.k, values(in.kr), in.v, n);
    const std::string what = sign > 0 ? "scores near +1000" : "scores near -1000";
    EXPECT_TRUE(close(what + " (explicit)",
                      lesson12::mla_attention(in.q, in.qr, to_tensor(in.k, {1, 2, 5, 3}), in.kr,
                                              to_tensor(in.v, {1, 2, 5, 3})),
                      want, {1, 2, 5, 3}, 1e-3))
        << "(NaN or inf: let softmax subtract the row max, do not exponentiate raw scores)";
    EXPECT_TRUE(close(what + " (absorbed)",
                      lesson12::mla_attention_absorbed(in.q, in.qr, in.lat, in.kr, in.wk, in.wv), want,
                      {1, 2, 5, 3}, 1e-3));
  }
}

TEST(EdgeCases, OneTokenReadsItsOwnValue) {
  // T = S = 1: the only key has weight 1, the output is v (= c W_uv[h]^T).
  const Tensor q = random_tensor({1, 3, 1, 2}, 610), qr = random_tensor({1, 3, 1, 2}, 611),
               lat = random_tensor({1, 1, 1, 4}, 612), kr = random_tensor({1, 1, 1, 2}, 613),
               wk = random_tensor({6, 4}, 614), wv = random_tensor({6, 4}, 615);
  const std::vector<double> v = expand_heads(values(lat), values(wv), 1, 1, 4, 3, 2);
  EXPECT_TRUE(close("absorbed, one token", lesson12::mla_attention_absorbed(q, qr, lat, kr, wk, wv), v, {1, 3, 1, 2}));
  EXPECT_TRUE(close("explicit, one token",
                    lesson12::mla_attention(q, qr, to_tensor(expand_heads(values(lat), values(wk), 1, 1, 4, 3, 2), {1, 3, 1, 2}),
                                            kr, to_tensor(v, {1, 3, 1, 2})),
                    v, {1, 3, 1, 2}));
}

// ------------------------------------------------------------------ memory

TEST(Memory, CacheMatchesTheFormulaAndBeatsMhaGqaMqa) {
  // GPTs of 2 layers, 4 heads of 8 (embd 32), block 64: the cache each one
  // allocates, measured, per token.
  auto measured = [](const std::string& spec) {
    GPTConfig c;
    c.vocab = 5, c.block_size = 64, c.layers = 2, c.heads = 4, c.embd = 32, c.attention = spec;
    GPT model(c, 1);
    const std::size_t before = cpu_allocator().stats().current;
    const KVCache cache = model.make_cache(1);
    return (cpu_allocator().stats().current - before) / 64;
  };
  const std::size_t mla = measured("student:mla:latent=8,rope_dim=4");
  EXPECT_EQ(int64_t(mla), lesson12::mla_cache_bytes_per_token(2, 8, 4))
      << "the cache your module asks for (cache_layout) holds " << mla << " bytes per token; "
      << "2 layers of (latent 8 + rope 4) floats are 96";
  const std::size_t mha = measured("mha"), gqa = measured("gqa:kv_heads=2"), mqa = measured("mqa");
  EXPECT_EQ(mha, 2u * 2 * 4 * 8 * 4) << "(library MHA cache)";
  EXPECT_LT(mla, mqa) << "MLA (" << mla << " B/token) should cache less than MQA (" << mqa
                      << ") here, and far less than GQA (" << gqa << ") and MHA (" << mha << ")";
  std::cout << "  cache per token: MHA " << mha << " B, GQA-2 " << gqa << " B, MQA " << mqa << " B, MLA "
            << mla << " B\n";
}

TEST(Mistakes, AbsorbedDecodingUpProjectsTheCache) {
  // One new token over 1024 cached ones, 8 heads of 32: a per-head K alone
  // would be 8 * 1024 * 32 * 4 = 1 MiB. The absorbed path works on the
  // 1024 x (8 + 4) cache instead and must stay well below that.
  const int64_t H = 8, d = 32, L = 8, r = 4, S = 1024;
  const Tensor q = random_tensor({1, H, 1, d}, 700), qr = random_tensor({1, H, 1, r}, 701),
               lat = random_tensor({1, 1, S, L}, 702), kr = random_tensor({1, 1, S, r}, 703),
               wk = random_tensor({H * d, L}, 704), wv = random_tensor({H * d, L}, 705);
  NoGradGuard no_grad;
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  const Tensor out = lesson12::mla_attention_absorbed(q, qr, lat, kr, wk, wv, S - 1);
  const std::size_t peak = cpu_allocator().stats().peak - before;
  const std::size_t per_head_k = std::size_t(H) * S * d * 4;
  std::cout << "  absorbed decoding step: peak " << peak << " bytes (a per-head K: " << per_head_k << ")\n";
  EXPECT_LT(peak, per_head_k / 2)
      << "decoding one token over " << S << " cached latents peaked at " << peak << " bytes; a per-head "
      << "K of the cache alone is " << per_head_k << ": the absorbed path must not up-project the cached "
      << "latents (fold W_uk into the query and W_uv into the output instead)";
  EXPECT_EQ(out.shape(), (Shape{1, H, 1, d}));
}

TEST(Memory, ForwardCachedDecodesWithoutPerHeadKV) {
  // The module's decoding step, after 511 cached tokens.
  const auto module = make_module(128, 8, 8, 4, 710);
  auto& m = *module;
  const int64_t S = 512;
  NoGradGuard no_grad;
  KVCache cache(1, 1, m.cache_layout(), S, Device::cpu());
  m.forward_cached(random_tensor({1, S - 1, 128}, 711), cache, 0);
  cache.commit(S - 1);
  const Tensor x = random_tensor({1, 1, 128}, 712);
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  const Tensor out = m.forward_cached(x, cache, 0);
  const std::size_t peak = cpu_allocator().stats().peak - before;
  const std::size_t per_head_k = std::size_t(8) * S * 16 * 4;
  std::cout << "  forward_cached step: peak " << peak << " bytes (a per-head K: " << per_head_k << ")\n";
  EXPECT_LT(peak, per_head_k / 2) << "one decoding step over " << S << " cached tokens peaked at " << peak
                                  << " bytes; a per-head K of them is " << per_head_k
                                  << ": forward_cached must use the absorbed path";
}

// ------------------------------------------------------------------ training

TEST(Training, YourMLATrainsATinyGPTAndDecodesWithItsCache) {
  // "Repeat the previous token": only RoPE tells the model where tokens are.
  GPTConfig c;
  c.vocab = 5, c.block_size = 8, c.layers = 1, c.heads = 4, c.embd = 16;
  c.attention = "student:mla:latent=8,rope_dim=4";
  GPT model(c, 7);
  const int64_t B = 8, T = 8;
  Generator data_gen(8);
  std::vector<int64_t> ids, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(static_cast<int64_t>(data_gen.below(5)));
      targets.push_back(t == 0 ? ids.back() : ids[ids.size() - 2]);
    }
  const Tensor x = from_ints(ids, {B, T}), y = from_ints(targets, {B, T});
  const std::vector<Tensor*> params = model.parameters();
  std::vector<std::vector<float>> m1(params.size()), m2(params.size());
  float first = 0, last = 0;
  for (int step = 1; step <= 60; ++step) {
    model.zero_grad();
    const Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    (step == 1 ? first : last) = loss.item();
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (!params[p]->grad().defined()) continue;
      const std::vector<float> g = params[p]->grad().to_vector();
      float* w = params[p]->data<float>();
      m1[p].resize(g.size());
      m2[p].resize(g.size());
      const float c1 = 1 - std::pow(0.9f, float(step)), c2 = 1 - std::pow(0.999f, float(step));
      for (std::size_t i = 0; i < g.size(); ++i) {
        m1[p][i] = 0.9f * m1[p][i] + 0.1f * g[i];
        m2[p][i] = 0.999f * m2[p][i] + 0.001f * g[i] * g[i];
        w[i] -= 0.02f * (m1[p][i] / c1) / (std::sqrt(m2[p][i] / c2) + 1e-8f);
      }
    }
  }
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with working attention it more than halves";
  // Generation: the GPT feeds one token at a time through your
  // forward_cached; its logits must equal forward's on the whole sequence.
  NoGradGuard no_grad;
  const Tensor seq = narrow(x, 0, 0, 1);
  const Tensor full = model.forward(seq);
  KVCache cache = model.make_cache(1);
  for (int64_t t = 0; t < T; ++t) {
    const Tensor step = model.forward_cached(narrow(seq, 1, t, 1), cache);
    ASSERT_TRUE(close("GPT logits of token " + std::to_string(t) + " through your cache", step,
                      contiguous(narrow(full, 1, t, 1)), 1e-3));
  }
}
