// Chapter 01, advanced suite: random sweeps against a double-precision loop
// oracle written here (not the library), gradients by finite differences,
// huge logits, fully masked rows, T = 1, causality, the T x T memory, and a
// tiny GPT trained with your attention.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "nn/gpt.h"
#include "softmax_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

using KeepFn = std::function<bool(int64_t b, int64_t h, int64_t i, int64_t j)>;

struct Dims {
  int64_t B, H, Tq, Tk, d, dv;
};

// The oracle: plain loops in double.
//   w[b,h,i,j] = exp(s_ij - max) / Z over the allowed j, s_ij = q_i . k_j / sqrt(d)
//   out[b,h,i,:] = sum_j w[b,h,i,j] v[b,h,j,:]; a row with no allowed key is 0.
std::vector<double> oracle(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Dims& n,
                           const KeepFn& keep, std::vector<double>* weights = nullptr) {
  const std::vector<float> q = qt.to_vector(), k = kt.to_vector(), v = vt.to_vector();
  std::vector<double> out(n.B * n.H * n.Tq * n.dv, 0.0);
  if (weights) weights->assign(n.B * n.H * n.Tq * n.Tk, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(n.d));
  for (int64_t b = 0; b < n.B; ++b)
    for (int64_t h = 0; h < n.H; ++h) {
      const int64_t bh = b * n.H + h;
      for (int64_t i = 0; i < n.Tq; ++i) {
        std::vector<double> s(n.Tk, 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j < n.Tk; ++j) {
          if (!keep(b, h, i, j)) continue;
          double dot = 0;
          for (int64_t c = 0; c < n.d; ++c)
            dot += static_cast<double>(q[(bh * n.Tq + i) * n.d + c]) * k[(bh * n.Tk + j) * n.d + c];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        if (mx == -INFINITY) continue;  // no allowed key: zeros
        double z = 0;
        for (int64_t j = 0; j < n.Tk; ++j) z += keep(b, h, i, j) ? std::exp(s[j] - mx) : 0.0;
        for (int64_t j = 0; j < n.Tk; ++j) {
          if (!keep(b, h, i, j)) continue;
          const double w = std::exp(s[j] - mx) / z;
          if (weights) (*weights)[(bh * n.Tq + i) * n.Tk + j] = w;
          for (int64_t c = 0; c < n.dv; ++c)
            out[(bh * n.Tq + i) * n.dv + c] += w * v[(bh * n.Tk + j) * n.dv + c];
        }
      }
    }
  return out;
}

// The keep mask as a full [B, H, Tq, Tk] bool tensor, built from the same
// rule the oracle uses (so the suite does not depend on your mask functions).
Tensor keep_tensor(const Dims& n, const KeepFn& keep) {
  std::vector<bool> m;
  for (int64_t b = 0; b < n.B; ++b)
    for (int64_t h = 0; h < n.H; ++h)
      for (int64_t i = 0; i < n.Tq; ++i)
        for (int64_t j = 0; j < n.Tk; ++j) m.push_back(keep(b, h, i, j));
  return from_bools(m, {n.B, n.H, n.Tq, n.Tk});
}

enum class MaskKind { None, Causal, Padding, CausalPadding };

struct Case {
  Dims n;
  MaskKind mask;
  const char* name;
};

// Padding lengths per batch: 0 (every key masked) for batch 0, then others.
int64_t pad_length(int64_t b, int64_t tk) { return b * (tk / 2 + 1) % (tk + 1); }

KeepFn keep_rule(MaskKind kind, int64_t tk) {
  switch (kind) {
    case MaskKind::None: return [](int64_t, int64_t, int64_t, int64_t) { return true; };
    case MaskKind::Causal: return [](int64_t, int64_t, int64_t i, int64_t j) { return j <= i; };
    case MaskKind::Padding:
      return [tk](int64_t b, int64_t, int64_t, int64_t j) { return j < pad_length(b, tk); };
    case MaskKind::CausalPadding:
      return [tk](int64_t b, int64_t, int64_t i, int64_t j) { return j <= i && j < pad_length(b, tk); };
  }
  return {};
}

class AttentionSweep : public ::testing::TestWithParam<Case> {};

}  // namespace

// ----------------------------------------------------- random sweeps vs oracle

TEST(SoftmaxSweep, MatchesDoubleOracle) {
  for (const Shape& shape : std::vector<Shape>{{1, 1}, {7}, {3, 9}, {2, 3, 17}, {4, 64}}) {
    for (float spread : {0.1f, 3.0f, 30.0f}) {
      const Tensor x = random_tensor(shape, shape.back() * 7 + static_cast<uint64_t>(spread), spread);
      const std::vector<float> xv = x.to_vector();
      const int64_t n = shape.back();
      std::vector<double> want(xv.size());
      for (std::size_t r = 0; r < xv.size(); r += n) {
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < n; ++j) mx = std::max(mx, static_cast<double>(xv[r + j]));
        for (int64_t j = 0; j < n; ++j) z += std::exp(xv[r + j] - mx);
        for (int64_t j = 0; j < n; ++j) want[r + j] = std::exp(xv[r + j] - mx) / z;
      }
      EXPECT_TRUE(close("softmax of shape " + shape_str(shape) + ", spread " + std::to_string(spread),
                        lesson01::softmax(x), want, shape));
    }
  }
}

TEST_P(AttentionSweep, MatchesDoubleOracle) {
  const Case c = GetParam();
  const Dims& n = c.n;
  const Tensor q = random_tensor({n.B, n.H, n.Tq, n.d}, 100 + n.Tq), k = random_tensor({n.B, n.H, n.Tk, n.d}, 200 + n.Tk),
               v = random_tensor({n.B, n.H, n.Tk, n.dv}, 300 + n.dv);
  const KeepFn rule = keep_rule(c.mask, n.Tk);
  const Tensor keep = c.mask == MaskKind::None ? Tensor() : keep_tensor(n, rule);
  std::vector<double> want_w;
  const std::vector<double> want = oracle(q, k, v, n, rule, &want_w);
  Tensor w;
  const Tensor out = lesson01::scaled_dot_product_attention(q, k, v, keep, &w);
  EXPECT_TRUE(close(std::string(c.name) + ": out", out, want, {n.B, n.H, n.Tq, n.dv}));
  EXPECT_TRUE(close(std::string(c.name) + ": weights", w, want_w, {n.B, n.H, n.Tq, n.Tk}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionSweep,
    ::testing::Values(Case{{1, 1, 1, 1, 1, 1}, MaskKind::None, "T1_no_mask"},
                      Case{{1, 1, 1, 1, 3, 2}, MaskKind::Causal, "T1_causal"},
                      Case{{2, 3, 5, 5, 4, 3}, MaskKind::Causal, "causal_3_heads"},
                      Case{{2, 1, 4, 7, 8, 8}, MaskKind::None, "rectangular_Tq4_Tk7"},
                      Case{{3, 2, 6, 6, 5, 2}, MaskKind::Padding, "padding_with_empty_rows"},
                      Case{{3, 5, 7, 7, 3, 6}, MaskKind::CausalPadding, "causal_and_padding_5_heads"},
                      Case{{3, 4, 8, 3, 16, 4}, MaskKind::Padding, "more_queries_than_keys"},
                      Case{{2, 2, 33, 33, 8, 8}, MaskKind::Causal, "causal_T33"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------ gradients

TEST(Gradients, SoftmaxGradcheck) {
  const Tensor x = random_tensor({3, 6}, 41, 2.0f).set_requires_grad();
  const GradcheckResult r =
      gradcheck([](const std::vector<Tensor>& in) { return lesson01::softmax(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << "the gradient of your softmax disagrees with finite differences:\n"
                    << r.message;
}

TEST(Gradients, AttentionGradcheckCausal) {
  const Tensor q = random_tensor({2, 2, 4, 3}, 42).set_requires_grad(), k = random_tensor({2, 2, 4, 3}, 43).set_requires_grad(),
               v = random_tensor({2, 2, 4, 2}, 44).set_requires_grad();
  const Tensor keep = keep_tensor({2, 2, 4, 4, 3, 2}, keep_rule(MaskKind::Causal, 4));
  const GradcheckResult r = gradcheck(
      [keep](const std::vector<Tensor>& in) {
        return lesson01::scaled_dot_product_attention(in[0], in[1], in[2], keep);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through your attention (input 0 = q, 1 = k, 2 = v):\n"
                    << r.message;
}

TEST(Gradients, AttentionGradcheckPaddingWithEmptyRows) {
  // Batch 0 has length 0: every key masked; its gradient must be 0, not NaN.
  const Tensor q = random_tensor({3, 1, 3, 4}, 45).set_requires_grad(), k = random_tensor({3, 1, 5, 4}, 46).set_requires_grad(),
               v = random_tensor({3, 1, 5, 2}, 47).set_requires_grad();
  const Dims n{3, 1, 3, 5, 4, 2};
  const Tensor keep = keep_tensor(n, keep_rule(MaskKind::Padding, 5));
  const GradcheckResult r = gradcheck(
      [keep](const std::vector<Tensor>& in) {
        return lesson01::scaled_dot_product_attention(in[0], in[1], in[2], keep);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through your attention with padding (input 0 = q, 1 = k, 2 = v):\n"
                    << r.message;
}

// ------------------------------------------------------------ stability

TEST(Stability, AttentionWithLogitsNearPlusAndMinus1000) {
  // Every score = +-1000 + a normal number: the first component of q and k
  // is c with c^2 / sqrt(4) = 1000. Without the max subtraction exp()
  // overflows (+1000) or underflows to 0/0 (-1000).
  const Dims n{1, 2, 4, 5, 4, 3};
  const float c = std::sqrt(2000.0f);
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> qv = random_tensor({1, 2, 4, 4}, 51).to_vector(), kv = random_tensor({1, 2, 5, 4}, 52).to_vector();
    for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = sign * c;
    for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
    const Tensor q = from_vector(qv, {1, 2, 4, 4}), k = from_vector(kv, {1, 2, 5, 4}),
                 v = random_tensor({1, 2, 5, 3}, 53);
    const KeepFn all = keep_rule(MaskKind::None, 5);
    const Tensor out = lesson01::scaled_dot_product_attention(q, k, v);
    bool finite = true;
    for (float o : out.to_vector()) finite = finite && std::isfinite(o);
    EXPECT_TRUE(finite) << "scores near " << sign * 1000
                        << " gave NaN/inf: exp() overflowed (+1000) or every exp() underflowed "
                           "to 0 and 0/0 = NaN (-1000). Subtract the row max inside softmax";
    EXPECT_TRUE(close(sign > 0 ? "out with scores near +1000" : "out with scores near -1000", out,
                      oracle(q, k, v, n, all), {1, 2, 4, 3}, 1e-3));
  }
}

TEST(Stability, SoftmaxBackwardAtLogitsNear1000) {
  // softmax(x + 1000) == softmax(x), and so are their gradients.
  const Tensor base = random_tensor({3, 5}, 54);
  const Tensor w = random_tensor({3, 5}, 55);
  auto grad_at = [&](float shift) {
    Tensor x = add(base, shift).detach().set_requires_grad();
    sum(mul(lesson01::softmax(x), w)).backward();
    return x.grad();
  };
  const Tensor g0 = grad_at(0.0f), g1 = grad_at(1000.0f);
  ASSERT_TRUE(g0.defined() && g1.defined()) << "x.grad is undefined after backward()";
  EXPECT_TRUE(close("gradient of softmax at x + 1000 vs at x", g1, values(g0), {3, 5},
                    1e-3));
}

// ------------------------------------------------------------ edge cases

TEST(EdgeCases, SingleTokenReturnsItsValue) {
  const Tensor v = random_tensor({2, 3, 1, 4}, 61);
  const Tensor out = lesson01::scaled_dot_product_attention(random_tensor({2, 3, 1, 4}, 62), random_tensor({2, 3, 1, 4}, 63),
                                                            v, from_bools({true}, {1, 1}));
  EXPECT_TRUE(close("T = 1 with a causal mask", out, values(v), {2, 3, 1, 4}));
}

TEST(EdgeCases, FullyMaskedRowGivesZerosNotNaN) {
  // Sequence 0 has length 0: all its keys are padding.
  const Tensor q = random_tensor({2, 1, 3, 4}, 64).set_requires_grad(), k = random_tensor({2, 1, 3, 4}, 65).set_requires_grad(),
               v = random_tensor({2, 1, 3, 2}, 66).set_requires_grad();
  const Tensor keep = from_bools({0, 0, 0, /**/ 1, 1, 0}, {2, 1, 1, 3});
  Tensor w;
  const Tensor out = lesson01::scaled_dot_product_attention(q, k, v, keep, &w);
  const std::vector<float> o = out.to_vector();
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(o[i], 0.0f) << "out[0,0," << i / 2 << "," << i % 2 << "] = " << o[i]
                          << " for a query with no allowed key; expected 0. softmax over a row of "
                             "only -inf is 0/0 = NaN: give such rows zero weights (e.g. where())";
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  const std::vector<float> wv = w.to_vector();
  for (int i = 0; i < 9; ++i) ASSERT_EQ(wv[i], 0.0f) << "weight of a fully masked row is " << wv[i];
  sum(out).backward();
  for (const Tensor* t : {&q, &k, &v}) {
    ASSERT_TRUE(t->grad().defined()) << "q/k/v.grad undefined after backward()";
    for (float g : t->grad().to_vector())
      ASSERT_TRUE(std::isfinite(g)) << "a gradient is NaN/inf: the NaN of the fully masked row "
                                       "leaks into backward";
  }
}

// ------------------------------------------------------------- causality

TEST(Causality, FutureTokensCannotChangeThePast) {
  const Tensor q = random_tensor({1, 2, 6, 4}, 71), k = random_tensor({1, 2, 6, 4}, 72), v = random_tensor({1, 2, 6, 3}, 73);
  const Tensor keep = keep_tensor({1, 2, 6, 6, 4, 3}, keep_rule(MaskKind::Causal, 6));
  // Change keys/values at positions 4 and 5 only.
  const Tensor future = from_bools({0, 0, 0, 0, 1, 1}, {1, 1, 6, 1});
  const Tensor k2 = where(future, random_tensor({1, 2, 6, 4}, 74), k), v2 = where(future, random_tensor({1, 2, 6, 3}, 75), v);
  const std::vector<float> a = lesson01::scaled_dot_product_attention(q, k, v, keep).to_vector();
  const std::vector<float> b = lesson01::scaled_dot_product_attention(q, k2, v2, keep).to_vector();
  for (int h = 0; h < 2; ++h)
    for (int t = 0; t < 4; ++t)
      for (int c = 0; c < 3; ++c) {
        const int i = (h * 6 + t) * 3 + c;
        ASSERT_NEAR(a[i], b[i], 1e-6) << "out[0," << h << "," << t << "," << c
                                      << "] changed when only positions 4 and 5 changed: the "
                                         "causal mask lets the past see the future";
      }
}

TEST(Causality, NoGradientFlowsToFutureKeys) {
  const Tensor q = random_tensor({1, 1, 5, 3}, 76).set_requires_grad(), k = random_tensor({1, 1, 5, 3}, 77).set_requires_grad(),
               v = random_tensor({1, 1, 5, 2}, 78).set_requires_grad();
  const Tensor keep = keep_tensor({1, 1, 5, 5, 3, 2}, keep_rule(MaskKind::Causal, 5));
  const Tensor out = lesson01::scaled_dot_product_attention(q, k, v, keep);
  sum(select(out, 2, 2)).backward();  // the output of query 2 only
  ASSERT_TRUE(k.grad().defined() && v.grad().defined()) << "k/v.grad undefined after backward()";
  const std::vector<float> gk = k.grad().to_vector(), gv = v.grad().to_vector();
  for (int j = 3; j < 5; ++j) {
    for (int c = 0; c < 3; ++c)
      EXPECT_EQ(gk[j * 3 + c], 0.0f) << "d out[2] / d k[" << j << "] is not 0: key " << j
                                     << " is in query 2's future";
    for (int c = 0; c < 2; ++c)
      EXPECT_EQ(gv[j * 2 + c], 0.0f) << "d out[2] / d v[" << j << "] is not 0: value " << j
                                     << " is in query 2's future";
  }
}

// ----------------------------------------------------- memory / complexity

TEST(Complexity, ScoresAreTxTSoMemoryGrowsQuadratically) {
  // Dense attention materialises the [Tq, Tk] scores and weights: doubling T
  // should roughly quadruple the extra memory of a forward pass. (Chapter 11,
  // flash attention, removes exactly this.)
  auto extra_bytes = [](int64_t t) {
    const Tensor q = random_tensor({1, 1, t, 8}, 81), k = random_tensor({1, 1, t, 8}, 82), v = random_tensor({1, 1, t, 8}, 83);
    NoGradGuard no_grad;
    const std::size_t before = cpu_allocator().stats().current;
    cpu_allocator().reset_peak();
    { const Tensor out = lesson01::scaled_dot_product_attention(q, k, v); }
    return static_cast<double>(cpu_allocator().stats().peak - before);
  };
  const double m256 = extra_bytes(256), m512 = extra_bytes(512);
  EXPECT_GE(m512, 512.0 * 512 * 4) << "a forward at T = 512 peaked at only " << m512
                                   << " extra bytes; one float32 T x T matrix is 1 MiB";
  EXPECT_GT(m512 / m256, 3.0) << "extra memory T=256: " << m256 << " B, T=512: " << m512
                              << " B; expected about 4x (the scores are T x T)";
}

// ------------------------------------------------------------- mistakes

TEST(Mistakes, ScaledBySqrtOfValueDim) {
  // d = 4 (q, k) but dv = 9 (v): the scale is 1/sqrt(4), not 1/sqrt(9).
  const Dims n{1, 1, 3, 6, 4, 9};
  const Tensor q = random_tensor({1, 1, 3, 4}, 91), k = random_tensor({1, 1, 6, 4}, 92), v = random_tensor({1, 1, 6, 9}, 93);
  const KeepFn all = keep_rule(MaskKind::None, 6);
  std::vector<double> want_w;
  oracle(q, k, v, n, all, &want_w);
  Tensor w;
  lesson01::scaled_dot_product_attention(q, k, v, Tensor(), &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the attention weights when it is non-null";
  std::vector<double> third;  // the weights a 1/sqrt(dv) = 1/3 scale would give
  {
    const std::vector<float> qv = q.to_vector(), kv = k.to_vector();
    for (int i = 0; i < 3; ++i) {
      std::vector<double> s(6);
      double z = 0;
      for (int j = 0; j < 6; ++j) {
        double dot = 0;
        for (int c = 0; c < 4; ++c) dot += static_cast<double>(qv[i * 4 + c]) * kv[j * 4 + c];
        z += (s[j] = std::exp(dot / 3.0));
      }
      for (int j = 0; j < 6; ++j) third.push_back(s[j] / z);
    }
  }
  const bool used_dv = close("", w, third, {1, 1, 3, 6});
  EXPECT_TRUE(close("weights with d = 4, dv = 9", w, want_w, {1, 1, 3, 6}))
      << (used_dv ? "you scaled by 1/sqrt(dv) = 1/3 (v's last dim); the scale belongs to q.k, so "
                    "use d = q's last dim: 1/sqrt(4) = 0.5"
                  : "");
}

TEST(Mistakes, OpsOutsideAutogradCutTheGraph) {
  // Writing results into data<float>() by hand gives a tensor autograd knows
  // nothing about: backward() would never reach q, k, v.
  const Tensor x = random_tensor({2, 4}, 94).set_requires_grad();
  const Tensor y = lesson01::softmax(x);
  ASSERT_TRUE(y.requires_grad())
      << "softmax(x) with x.requires_grad() gave a result outside the autograd graph: build it "
         "from ops (max, sub, exp, sum, div), not by writing into data<float>()";
  const Tensor q = random_tensor({1, 1, 2, 3}, 95).set_requires_grad();
  const Tensor out = lesson01::scaled_dot_product_attention(q, random_tensor({1, 1, 2, 3}, 96), random_tensor({1, 1, 2, 2}, 97));
  ASSERT_TRUE(out.requires_grad())
      << "scaled_dot_product_attention cut the autograd graph: use ops (matmul, transpose, "
         "masked_fill, your softmax) all the way";
  sum(out).backward();
  EXPECT_TRUE(q.grad().defined()) << "q.grad is undefined after backward()";
}

// ------------------------------------------------------------- training

TEST(Training, YourAttentionTrainsATinyGPT) {
  // The glue in softmax_attention_glue.cpp registers "student:sdpa": the library's
  // multi-head module running your scaled_dot_product_attention. The task,
  // "repeat the previous token", cannot be solved from the current token
  // alone: the model must attend to position t-1.
  GPTConfig c;
  c.vocab = 5;
  c.block_size = 8;
  c.layers = 1;
  c.heads = 2;
  c.embd = 16;
  c.attention = "student:sdpa";
  GPT model(c, 7);
  const int64_t B = 8, T = 8;
  Generator data_gen(8);
  std::vector<int64_t> ids, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(static_cast<int64_t>(data_gen.below(5)));
      targets.push_back(ids[t == 0 ? ids.size() - 1 : ids.size() - 2]);
    }
  const Tensor x = from_ints(ids, {B, T}), y = from_ints(targets, {B, T});
  // A plain Adam, written here so the suite depends on nothing in train/.
  std::vector<Tensor*> params = model.parameters();
  std::vector<std::vector<float>> m(params.size()), s(params.size());
  float first = 0, last = 0;
  const int kSteps = 60;
  for (int step = 1; step <= kSteps; ++step) {
    model.zero_grad();
    const Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    if (step == 1) first = loss.item();
    last = loss.item();
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (!params[p]->grad().defined()) continue;
      const std::vector<float> g = params[p]->grad().to_vector();
      float* w = params[p]->data<float>();
      m[p].resize(g.size());
      s[p].resize(g.size());
      for (std::size_t i = 0; i < g.size(); ++i) {
        m[p][i] = 0.9f * m[p][i] + 0.1f * g[i];
        s[p][i] = 0.999f * s[p][i] + 0.001f * g[i] * g[i];
        const float mh = m[p][i] / (1 - std::pow(0.9f, step)), sh = s[p][i] / (1 - std::pow(0.999f, step));
        w[i] -= 0.02f * mh / (std::sqrt(sh) + 1e-8f);
      }
    }
  }
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "loss became NaN/inf";
  EXPECT_LT(last, 0.25f * first)
      << "loss went from " << first << " to " << last << " in " << kSteps
      << " Adam steps; with a working attention it falls below a quarter (about 0.05)";
}

// ------------------------------------------------------------- GPU parity
// Your functions on CUDA tensors must give what they give on the CPU,
// gradients included. Skipped where no GPU exists.

TEST(GpuParity, Softmax) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // Ordinary rows, rows near +-1000 and a row with -inf entries.
  std::vector<float> x = random_tensor({4, 3, 7}, 900, 3.0f).to_vector();
  for (int j = 0; j < 7; ++j) x[7 + j] += 1000.0f, x[14 + j] -= 1000.0f;
  x[21] = x[23] = -INFINITY;
  EXPECT_TRUE(same_on_both_devices(
      "softmax", [](const std::vector<Tensor>& in) { return lesson01::softmax(in[0]); },
      {from_vector(x, {4, 3, 7})}, {"x"}));
}

TEST(GpuParity, PaddingMaskIsMadeOnTheDeviceOfLengths) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  const Tensor lengths = from_ints({3, 0, 6}, {3});
  const Tensor cpu = lesson01::padding_mask(lengths, 6);
  Tensor gpu;
  try {
    gpu = lesson01::padding_mask(lengths.to(Device::cuda()), 6);
  } catch (const NotImplemented&) {
    throw;
  } catch (const Error& e) {
    FAIL() << "padding_mask(lengths on CUDA, 6) threw: " << e.what()
           << "\n(build the positions on lengths.device(): arange(t, DType::Int64, lengths.device()))";
  }
  EXPECT_TRUE(same_on_both_devices("padding_mask(lengths {3, 0, 6}, 6)", gpu, cpu, 0));
}

TEST(GpuParity, AttentionWithCausalAndPaddingMasks) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // Causal AND padding (one sequence fully padded: its rows are all masked),
  // three heads, Tq = Tk = 6, d = 5, dv = 3.
  const int64_t B = 3, H = 3, T = 6;
  const Tensor causal = lesson01::causal_mask(T);
  const Tensor lengths = from_ints({4, 0, 6}, {B});
  auto attention = [&](const std::vector<Tensor>& in) {
    const Tensor keep = logical_and(causal.to(in[0].device()),
                                    lesson01::padding_mask(lengths.to(in[0].device()), T));
    return lesson01::scaled_dot_product_attention(in[0], in[1], in[2], keep);
  };
  EXPECT_TRUE(same_on_both_devices("scaled_dot_product_attention (causal + padding)", attention,
                                   {random_tensor({B, H, T, 5}, 901), random_tensor({B, H, T, 5}, 902),
                                    random_tensor({B, H, T, 3}, 903)},
                                   {"q", "k", "v"}));
}

TEST(GpuParity, AttentionWeightsAndNoMask) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // No mask, Tq != Tk, large scores; the weights through weights_out too.
  const Tensor q = random_tensor({2, 2, 3, 4}, 904, 4.0f), k = random_tensor({2, 2, 5, 4}, 905, 4.0f),
               v = random_tensor({2, 2, 5, 2}, 906);
  EXPECT_TRUE(same_on_both_devices(
      "scaled_dot_product_attention (no mask)",
      [](const std::vector<Tensor>& in) {
        return lesson01::scaled_dot_product_attention(in[0], in[1], in[2]);
      },
      {q, k, v}, {"q", "k", "v"}));
  Tensor w_cpu, w_gpu;
  lesson01::scaled_dot_product_attention(q, k, v, Tensor(), &w_cpu);
  lesson01::scaled_dot_product_attention(q.to(Device::cuda()), k.to(Device::cuda()),
                                         v.to(Device::cuda()), Tensor(), &w_gpu);
  EXPECT_TRUE(same_on_both_devices("weights_out", w_gpu, w_cpu));
}
