// Flash attention against a double-precision loop oracle, its gradients
// against gradcheck and against the dense path, and its memory against the
// allocator's peak counter.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/flash.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "nn/gpt.h"

using namespace attn;

namespace {

struct Case {
  int64_t B, H, Hkv, Tq, Tk, d, offset, window;
  bool alibi;
  float logit_scale;  // multiplies q: large values make the running max move between tiles
};

std::vector<double> oracle(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v) {
  std::vector<double> out(c.B * c.H * c.Tq * c.d, 0.0);
  const std::vector<float> slopes = alibi_slopes(c.H);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kh = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t pos = c.offset + i;
        std::vector<double> s;
        std::vector<int64_t> js;
        for (int64_t j = 0; j < c.Tk; ++j) {
          if (j > pos || (c.window > 0 && j <= pos - c.window)) continue;
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e)
            dot += static_cast<double>(q[((b * c.H + h) * c.Tq + i) * c.d + e]) *
                   k[((b * c.Hkv + kh) * c.Tk + j) * c.d + e];
          s.push_back(dot / std::sqrt(static_cast<double>(c.d)) -
                      (c.alibi ? slopes[h] * static_cast<double>(pos - j) : 0.0));
          js.push_back(j);
        }
        if (s.empty()) continue;  // no keys: zeros
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (size_t n = 0; n < s.size(); ++n)
          for (int64_t e = 0; e < c.d; ++e)
            out[((b * c.H + h) * c.Tq + i) * c.d + e] +=
                s[n] / z * v[((b * c.Hkv + kh) * c.Tk + js[n]) * c.d + e];
      }
    }
  return out;
}

FlashOptions options(const Case& c) {
  FlashOptions o;
  o.offset = c.offset;
  o.window = c.window;
  if (c.alibi) o.alibi = alibi_slopes(c.H);
  return o;
}

}  // namespace

class FlashOracle : public ::testing::TestWithParam<Case> {};

TEST_P(FlashOracle, ForwardMatchesLoops) {
  const Case c = GetParam();
  Generator g(c.Tq * 7 + c.window);
  const Tensor q = mul(randn({c.B, c.H, c.Tq, c.d}, g), c.logit_scale);
  const Tensor k = randn({c.B, c.Hkv, c.Tk, c.d}, g), v = randn({c.B, c.Hkv, c.Tk, c.d}, g);
  const auto got = flash_attention(q, k, v, options(c)).to_vector();
  const auto want = oracle(c, q.to_vector(), k.to_vector(), v.to_vector());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-5 * (1 + std::fabs(want[i])))
        << "element " << i << " (query row " << (i / c.d) % c.Tq << ")";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashOracle,
    ::testing::Values(Case{1, 1, 1, 1, 1, 4, 0, 0, false, 1},          // T = 1
                      Case{2, 4, 4, 37, 37, 8, 0, 0, false, 1},        // odd T, one tile
                      Case{1, 2, 2, 150, 150, 8, 0, 0, false, 6},      // 3 key tiles, moving max
                      Case{1, 4, 2, 70, 70, 8, 0, 0, false, 1},        // GQA mapping
                      Case{1, 3, 1, 90, 90, 4, 0, 20, false, 1},       // window, MQA, odd heads
                      Case{1, 6, 3, 80, 80, 4, 0, 0, true, 1},         // ALiBi, non-power-of-2 heads
                      Case{1, 2, 2, 3, 10, 4, 7, 0, false, 1},         // decoding with a cache offset
                      Case{1, 2, 2, 5, 5, 4, -2, 0, false, 1}));       // first rows see no key: zeros

TEST(Flash, FlashRescaleThatForgetsTheRunningSumIsCaught) {
  // Scores that grow along the keys move the running max at every tile; an
  // implementation that rescales acc but not l (or neither) drifts from the
  // oracle by a large factor here.
  const Case c{1, 1, 1, 200, 200, 4, 0, 0, false, 1};
  Generator g(5);
  std::vector<float> kv(200 * 4), qv(200 * 4, 1.0f);
  for (int64_t j = 0; j < 200; ++j)
    for (int e = 0; e < 4; ++e) kv[j * 4 + e] = 0.05f * static_cast<float>(j);
  const Tensor q = from_vector(qv, {1, 1, 200, 4}), k = from_vector(kv, {1, 1, 200, 4});
  const Tensor v = randn({1, 1, 200, 4}, g);
  const auto got = flash_attention(q, k, v, options(c)).to_vector();
  const auto want = oracle(c, qv, kv, v.to_vector());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << i;
}

TEST(Flash, GradcheckCausalWindowAlibiGqa) {
  Generator g(9);
  Tensor q = randn({1, 2, 5, 3}, g).set_requires_grad();
  Tensor k = randn({1, 1, 5, 3}, g).set_requires_grad();
  Tensor v = randn({1, 1, 5, 3}, g).set_requires_grad();
  FlashOptions o;
  o.window = 3;
  o.alibi = alibi_slopes(2);
  const GradcheckResult r =
      gradcheck([o](const auto& in) { return flash_attention(in[0], in[1], in[2], o); }, {q, k, v});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(Flash, GradientsMatchTheDensePathOnLongSequences) {
  Generator g(11);
  const int64_t T = 130;  // several tiles
  Tensor q = randn({1, 2, T, 8}, g).set_requires_grad();
  Tensor k = randn({1, 2, T, 8}, g).set_requires_grad();
  Tensor v = randn({1, 2, T, 8}, g).set_requires_grad();
  const Tensor w = randn({1, 2, T, 8}, g);
  sum(mul(flash_attention(q, k, v, {}), w)).backward();
  const auto fq = q.grad().to_vector(), fk = k.grad().to_vector(), fv = v.grad().to_vector();
  q.zero_grad(), k.zero_grad(), v.zero_grad();
  AttentionCall call;
  call.q = q, call.k = k, call.v = v, call.scale = 1.0f / std::sqrt(8.0f);
  sum(mul(dense_causal_attention(call), w)).backward();
  const auto dq = q.grad().to_vector(), dk = k.grad().to_vector(), dv = v.grad().to_vector();
  for (size_t i = 0; i < fq.size(); ++i) {
    ASSERT_NEAR(fq[i], dq[i], 1e-4 * (1 + std::fabs(dq[i]))) << "dq " << i;
    ASSERT_NEAR(fk[i], dk[i], 1e-4 * (1 + std::fabs(dk[i]))) << "dk " << i;
    ASSERT_NEAR(fv[i], dv[i], 1e-4 * (1 + std::fabs(dv[i]))) << "dv " << i;
  }
}

// The usual caller hands over a projection's [B, T, H*d] output seen as
// [B, H, T, d] (a transposed view). The op reads it where it is, leaves out
// in the same token-major order (so merging the heads back is free) and gives
// gradients in it; results must equal those from contiguous copies, also
// when the upstream gradient comes in another layout (copied into out's).
void token_major_matches_contiguous(const Device& dev) {
  const int64_t B = 2, T = 70, H = 4, Hkv = 2, d = 8;
  Generator g(12);
  auto heads = [&](const Tensor& x, int64_t h) {
    return transpose(view(x, {B, T, h, d}), 1, 2);  // [B, h, T, d], token-major
  };
  Tensor xq = randn({B, T, H * d}, g).to(dev).set_requires_grad();
  Tensor xk = randn({B, T, Hkv * d}, g).to(dev).set_requires_grad();
  Tensor xv = randn({B, T, Hkv * d}, g).to(dev).set_requires_grad();
  const Tensor w = randn({B, H, T, d}, g).to(dev);  // contiguous: dout arrives in another layout
  FlashOptions o;
  o.window = 40;
  o.alibi = alibi_slopes(H);
  const Tensor out = flash_attention(heads(xq, H), heads(xk, Hkv), heads(xv, Hkv), o);
  EXPECT_TRUE(transpose(out, 1, 2).is_contiguous()) << "out should be stored token-major";
  sum(mul(out, w)).backward();
  const Tensor want_out = flash_attention(contiguous(heads(xq, H)), contiguous(heads(xk, Hkv)),
                                          contiguous(heads(xv, Hkv)), o);
  const Tensor gq = xq.grad(), gk = xk.grad(), gv = xv.grad();
  xq.zero_grad(), xk.zero_grad(), xv.zero_grad();
  sum(mul(want_out, w)).backward();
  auto same = [](const Tensor& a, const Tensor& b, const char* what) {
    const auto x = a.contiguous().to_vector(), y = b.contiguous().to_vector();
    ASSERT_EQ(x.size(), y.size()) << what;
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_NEAR(x[i], y[i], 1e-5 * (1 + std::fabs(y[i]))) << what << " at " << i;
  };
  same(out, want_out, "out");
  same(gq, xq.grad(), "dq");
  same(gk, xk.grad(), "dk");
  same(gv, xv.grad(), "dv");
  // And an upstream gradient in out's own layout takes no copy: same results.
  xq.zero_grad(), xk.zero_grad(), xv.zero_grad();
  const Tensor out2 = flash_attention(heads(xq, H), heads(xk, Hkv), heads(xv, Hkv), o);
  sum(mul(out2, transpose(transpose(w, 1, 2).contiguous(), 1, 2))).backward();
  same(gq, xq.grad(), "dq (dout token-major)");
}

TEST(Flash, ReadsTheProjectionLayoutInPlace) { token_major_matches_contiguous(Device::cpu()); }

TEST(Flash, ReadsTheProjectionLayoutInPlaceOnTheGpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here: the GPU half runs where one exists";
  token_major_matches_contiguous(Device::cuda());
}

TEST(Flash, NeverAllocatesTheTByTMatrix) {
  const int64_t T = 2048, d = 16;
  Generator g(1);
  Tensor q = randn({1, 1, T, d}, g).set_requires_grad();
  Tensor k = randn({1, 1, T, d}, g).set_requires_grad();
  Tensor v = randn({1, 1, T, d}, g).set_requires_grad();
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  sum(flash_attention(q, k, v, {})).backward();
  const std::size_t peak = cpu_allocator().stats().peak - before;
  const std::size_t t_by_t = static_cast<std::size_t>(T) * T * sizeof(float);
  EXPECT_LT(peak, t_by_t / 8) << "forward+backward peak " << peak << " bytes vs T*T*4 = " << t_by_t;
}

TEST(Flash, VariantMatchesMhaWithTheSameWeights) {
  for (const char* pair : {"mha|flash", "gqa:kv_heads=2,alibi|flash:kv_heads=2,alibi", "mha:rope|flash:rope"}) {
    const std::string s(pair);
    GPTConfig c;
    c.vocab = 9;
    c.block_size = 12;
    c.layers = 1;
    c.heads = 4;
    c.embd = 16;
    c.attention = s.substr(0, s.find('|'));
    GPT dense(c, 3);
    c.attention = s.substr(s.find('|') + 1);
    GPT flash(c, 3);
    flash.load_state_dict(dense.state_dict());
    NoGradGuard ng;
    const Tensor ids = from_ints({1, 5, 2, 8, 3, 3, 0, 7}, {1, 8});
    const auto a = dense.forward(ids).to_vector(), b = flash.forward(ids).to_vector();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << pair << " " << i;
  }
}

TEST(Flash, BadInputsNameTheProblem) {
  const Tensor q = zeros({1, 3, 4, 2}), k = zeros({1, 2, 4, 2});
  try {
    flash_attention(q, k, k, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2 K/V heads do not divide 3 query heads"), std::string::npos) << e.what();
  }
  EXPECT_THROW(flash_attention(zeros({1, 2, 4}), k, k, {}), Error);
}
