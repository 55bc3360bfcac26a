// Chapter 02, advanced suite: random shapes (odd head counts, d = 1, T = 1)
// against a double-precision loop oracle written here, gradients by finite
// differences for the input and for every parameter, head and batch
// independence, causality, and a tiny GPT trained on your module.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/gpt.h"
#include "multi_head_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

std::map<std::string, std::vector<float>> weights_of(lesson02::MultiHeadAttention& m) {
  std::map<std::string, std::vector<float>> w;
  for (auto& [name, p] : m.named_parameters()) w[name] = p->to_vector();
  return w;
}

// Random weights of a healthy size (the default init is tiny, which would
// make every output close to the bias and hide mistakes).
void randomize(lesson02::MultiHeadAttention& m, uint64_t seed) {
  std::map<std::string, Tensor> state;
  for (auto& [name, p] : m.named_parameters())
    state[name] = random_tensor(p->shape(), seed++, name.find("bias") != std::string::npos ? 0.1f : 0.4f);
  m.load_state_dict(state);
}

// The oracle, in double: projections, per-head causal softmax attention with
// scale 1/sqrt(scale_dim), heads concatenated, output projection.
std::vector<double> oracle(const std::map<std::string, std::vector<float>>& w, const Tensor& xt,
                           int64_t H, double scale_dim = 0) {
  const int64_t B = xt.shape()[0], T = xt.shape()[1], C = xt.shape()[2], d = C / H;
  if (scale_dim == 0) scale_dim = static_cast<double>(d);
  const std::vector<float> x = xt.to_vector();
  auto linear = [&](const std::string& name, const std::vector<double>& in) {
    const std::vector<float>& W = w.at(name + ".weight");
    const std::vector<float>& b = w.at(name + ".bias");
    std::vector<double> out(B * T * C);
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t o = 0; o < C; ++o) {
        double s = b[o];
        for (int64_t i = 0; i < C; ++i) s += static_cast<double>(W[o * C + i]) * in[r * C + i];
        out[r * C + o] = s;
      }
    return out;
  };
  const std::vector<double> xd(x.begin(), x.end());
  const std::vector<double> q = linear("wq", xd), k = linear("wk", xd), v = linear("wv", xd);
  std::vector<double> merged(B * T * C, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> s(t + 1);
        double mx = -INFINITY, z = 0;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t j = 0; j < d; ++j) dot += q[(b * T + t) * C + h * d + j] * k[(b * T + u) * C + h * d + j];
          s[u] = dot / std::sqrt(scale_dim);
          mx = std::max(mx, s[u]);
        }
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t j = 0; j < d; ++j)
            merged[(b * T + t) * C + h * d + j] += s[u] / z * v[(b * T + u) * C + h * d + j];
      }
  return linear("wo", merged);
}

struct Case {
  int64_t B, T, C, H;
  const char* name;
};

class MhaSweep : public ::testing::TestWithParam<Case> {};

}  // namespace

// ------------------------------------------------------------ sweep

TEST_P(MhaSweep, MatchesDoubleOracle) {
  const Case c = GetParam();
  Generator gen(c.C * 31 + c.H);
  lesson02::MultiHeadAttention m(c.C, c.H, gen);
  randomize(m, 100 + c.T);
  const Tensor x = random_tensor({c.B, c.T, c.C}, 200 + c.B);
  EXPECT_TRUE(close(std::string(c.name) + ": out", m.forward(x), oracle(weights_of(m), x, c.H),
                    {c.B, c.T, c.C}, 2e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MhaSweep,
    ::testing::Values(Case{1, 1, 4, 1, "T1_one_head"}, Case{2, 1, 6, 3, "T1_three_heads"},
                      Case{2, 5, 12, 3, "three_heads"}, Case{3, 7, 15, 5, "five_heads_d3"},
                      Case{2, 9, 16, 4, "four_heads"}, Case{1, 6, 6, 6, "d1_six_heads"},
                      Case{2, 17, 24, 2, "two_heads_T17"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------ gradients

TEST(Gradients, InputGradcheck) {
  Generator gen(11);
  lesson02::MultiHeadAttention m(6, 3, gen);
  randomize(m, 12);
  const Tensor x = random_tensor({2, 3, 6}, 13).set_requires_grad();
  const GradcheckResult r =
      gradcheck([&m](const std::vector<Tensor>& in) { return m.forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << "d out / d x through your module disagrees with finite differences:\n"
                    << r.message;
}

TEST(Gradients, EveryParameterGetsTheRightGradient) {
  // L = sum(w * out); compare dL/dp with central differences for a few
  // elements of every parameter.
  Generator gen(14);
  lesson02::MultiHeadAttention m(8, 2, gen);
  randomize(m, 15);
  const Tensor x = random_tensor({2, 4, 8}, 16), w = random_tensor({2, 4, 8}, 17);
  auto loss = [&]() {
    const std::vector<float> o = m.forward(x).to_vector(), wv = w.to_vector();
    double s = 0;
    for (std::size_t i = 0; i < o.size(); ++i) s += static_cast<double>(o[i]) * wv[i];
    return s;
  };
  m.zero_grad();
  sum(mul(m.forward(x), w)).backward();
  for (auto& [name, p] : m.named_parameters()) {
    ASSERT_TRUE(p->grad().defined()) << name << " got no gradient: is it used in forward()?";
    const std::vector<float> g = p->grad().to_vector();
    float* data = p->data<float>();
    for (int64_t i : {int64_t{0}, p->numel() / 2, p->numel() - 1}) {
      const float keep = data[i];
      data[i] = keep + 1e-2f;
      const double up = loss();
      data[i] = keep - 1e-2f;
      const double down = loss();
      data[i] = keep;
      const double numeric = (up - down) / 2e-2;
      EXPECT_NEAR(g[i], numeric, 2e-2 * (1 + std::fabs(numeric)))
          << "d loss / d " << name << "[" << i << "]: backward says " << g[i]
          << ", finite differences say " << numeric;
    }
  }
}

// ------------------------------------------------ heads, batch, causality

TEST(Heads, EachHeadWritesItsOwnColumns) {
  // With wo = identity, output features h*d .. h*d+d-1 come from head h
  // alone. Zero head 1's value projection: exactly its columns go to 0.
  const int64_t C = 9, H = 3, d = 3;
  Generator gen(21);
  lesson02::MultiHeadAttention m(C, H, gen);
  randomize(m, 22);
  std::map<std::string, Tensor> state = m.state_dict();
  std::vector<float> wv = state["wv.weight"].to_vector(), bv = state["wv.bias"].to_vector();
  for (int64_t o = d; o < 2 * d; ++o) {
    bv[o] = 0;
    for (int64_t i = 0; i < C; ++i) wv[o * C + i] = 0;
  }
  std::vector<float> eye(C * C, 0.0f);
  for (int64_t i = 0; i < C; ++i) eye[i * C + i] = 1;
  state["wv.weight"] = from_vector(wv, {C, C});
  state["wv.bias"] = from_vector(bv, {C});
  state["wo.weight"] = from_vector(eye, {C, C});
  state["wo.bias"] = zeros({C});
  m.load_state_dict(state);
  const std::vector<float> out = m.forward(random_tensor({2, 5, C}, 23)).to_vector();
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int64_t col = static_cast<int64_t>(i) % C, token = static_cast<int64_t>(i) / C;
    if (col >= d && col < 2 * d)
      ASSERT_NEAR(out[i], 0.0f, 1e-6)
          << "row " << token << ", feature " << col << " is " << out[i]
          << ": with head 1's values zeroed, features 3..5 must be 0. Head outputs landed in "
             "the wrong columns: check which features split_heads and merge_heads give each "
             "head";
    else
      ASSERT_GT(std::fabs(out[i]), 1e-7) << "row " << token << ", feature " << col
                                         << " is 0 but belongs to head " << col / d;
  }
}

TEST(Batch, ExamplesDoNotInteract) {
  Generator gen(31);
  lesson02::MultiHeadAttention m(8, 4, gen);
  randomize(m, 32);
  const Tensor x = random_tensor({3, 4, 8}, 33);
  const Tensor second = from_bools({0, 1, 0}, {3, 1, 1});
  const Tensor x2 = where(second, random_tensor({3, 4, 8}, 34), x);
  const std::vector<float> a = m.forward(x).to_vector(), b = m.forward(x2).to_vector();
  for (int i = 0; i < 4 * 8; ++i)
    ASSERT_NEAR(a[i], b[i], 1e-6) << "example 0 changed when only example 1 changed: a reshape "
                                     "mixed the batch dim with time or heads";
  for (int i = 2 * 32; i < 3 * 32; ++i)
    ASSERT_NEAR(a[i], b[i], 1e-6) << "example 2 changed when only example 1 changed";
}

TEST(Causality, NoGradientFromThePastToTheFuture) {
  Generator gen(41);
  lesson02::MultiHeadAttention m(6, 2, gen);
  randomize(m, 42);
  const Tensor x = random_tensor({1, 6, 6}, 43).set_requires_grad();
  sum(select(m.forward(x), 1, 2)).backward();  // the output of token 2 only
  ASSERT_TRUE(x.grad().defined()) << "x.grad is undefined after backward()";
  const std::vector<float> g = x.grad().to_vector();
  for (int t = 3; t < 6; ++t)
    for (int c = 0; c < 6; ++c)
      ASSERT_EQ(g[t * 6 + c], 0.0f) << "d out[token 2] / d x[token " << t << "] is not 0";
}

TEST(EdgeCases, SingleTokenIsItsOwnValue) {
  // T = 1: the one weight is 1, so out = wo(wv x + bv) + bo: q and k do not matter.
  Generator gen(51);
  lesson02::MultiHeadAttention m(6, 3, gen);
  randomize(m, 52);
  const Tensor x = random_tensor({2, 1, 6}, 53);
  auto w = weights_of(m);
  std::vector<double> want(2 * 6);
  const std::vector<float> xv = x.to_vector();
  for (int b = 0; b < 2; ++b) {
    std::vector<double> v(6);
    for (int o = 0; o < 6; ++o) {
      v[o] = w["wv.bias"][o];
      for (int i = 0; i < 6; ++i) v[o] += static_cast<double>(w["wv.weight"][o * 6 + i]) * xv[b * 6 + i];
    }
    for (int o = 0; o < 6; ++o) {
      want[b * 6 + o] = w["wo.bias"][o];
      for (int i = 0; i < 6; ++i) want[b * 6 + o] += w["wo.weight"][o * 6 + i] * v[i];
    }
  }
  EXPECT_TRUE(close("T = 1", m.forward(x), want, {2, 1, 6}));
}

// ------------------------------------------------------------- mistakes

TEST(Mistakes, ScaleByModelWidthInsteadOfHeadDim) {
  // Each head's dot product has d = C / H terms: the scale is 1/sqrt(d), not 1/sqrt(C).
  const int64_t C = 16, H = 4;
  Generator gen(61);
  lesson02::MultiHeadAttention m(C, H, gen);
  randomize(m, 62);
  const Tensor x = random_tensor({1, 5, C}, 63);
  const auto w = weights_of(m);
  const Tensor out = m.forward(x);
  const bool used_c = close("", out, oracle(w, x, H, static_cast<double>(C)), {1, 5, C});
  EXPECT_TRUE(close("out with C = 16, H = 4", out, oracle(w, x, H), {1, 5, C}))
      << (used_c ? "you scaled by 1/sqrt(C) = 1/4; each head's q.k sums d = C/H = 4 products, so "
                   "the scale is 1/sqrt(d) = 1/2"
                 : "");
}

// ------------------------------------------------------------- training

TEST(Training, YourModuleTrainsATinyGPT) {
  // The glue in multi_head_attention_glue.cpp registers "student:mha". The task,
  // "repeat the previous token", needs attention to position t-1.
  GPTConfig c;
  c.vocab = 5;
  c.block_size = 8;
  c.layers = 1;
  c.heads = 2;
  c.embd = 16;
  c.attention = "student:mha";
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
      << " Adam steps; with a working attention it falls below a quarter";
}

// ------------------------------------------------------------- GPU parity
// Your functions and your module on CUDA tensors must give what they give
// on the CPU, gradients included. Skipped where no GPU exists.

TEST(GpuParity, SplitAndMergeHeads) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  EXPECT_TRUE(same_on_both_devices(
      "split_heads(x [2, 5, 12], 3)",
      [](const std::vector<Tensor>& in) { return lesson02::split_heads(in[0], 3); },
      {random_tensor({2, 5, 12}, 950)}, {"x"}));
  EXPECT_TRUE(same_on_both_devices(
      "merge_heads(x [2, 3, 5, 4])",
      [](const std::vector<Tensor>& in) { return lesson02::merge_heads(in[0]); },
      {random_tensor({2, 3, 5, 4}, 951)}, {"x"}));
}

TEST(GpuParity, ModuleOutputsAndGradients) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // Three heads (odd), T = 7; the module on CUDA gets the CPU module's
  // weights: its output, x.grad and every parameter's gradient must agree.
  Generator g1(952), g2(953);
  lesson02::MultiHeadAttention on_cpu(12, 3, g1), on_gpu(12, 3, g2);
  randomize(on_cpu, 954);
  EXPECT_TRUE(module_same_on_both_devices(
      "MultiHeadAttention(12, 3 heads)", on_cpu, on_gpu,
      [](Module& m, const Tensor& x) { return static_cast<lesson02::MultiHeadAttention&>(m).forward(x); },
      random_tensor({2, 7, 12}, 955), 2e-4));
}
