// Modules: parameter naming, state dicts, the layers against loops, and the
// GPT's shapes, parameter count, causality and init.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "core/dispatch.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {
GPTConfig tiny(const std::string& attention = "mha") {
  GPTConfig c;
  c.vocab = 11;
  c.block_size = 8;
  c.layers = 2;
  c.heads = 2;
  c.embd = 8;
  c.attention = attention;
  return c;
}

}  // namespace

TEST(Linear, MatchesLoops) {
  Generator gen(1);
  Linear lin(3, 2, true, gen);
  Generator g2(2);
  const Tensor x = randn({4, 3}, g2);
  NoGradGuard ng;
  const Tensor b = add(*lin.bias(), 0.5f);  // nonzero bias
  backend_for(Device::cpu()).copy(lin.bias()->view_desc(), b.view_desc());
  const auto y = lin.forward(x).to_vector();
  const auto xv = x.to_vector(), wv = lin.weight().to_vector(), bv = lin.bias()->to_vector();
  for (int i = 0; i < 4; ++i)
    for (int o = 0; o < 2; ++o) {
      double s = bv[o];
      for (int k = 0; k < 3; ++k) s += static_cast<double>(xv[i * 3 + k]) * wv[o * 3 + k];
      EXPECT_NEAR(y[i * 2 + o], s, 1e-5);
    }
}

TEST(Module, NamesFollowTheTree) {
  GPT model(tiny(), 0);
  std::vector<std::string> names;
  for (auto& [n, p] : model.named_parameters()) names.push_back(n);
  EXPECT_EQ(names.front(), "wte.weight");
  EXPECT_NE(std::find(names.begin(), names.end(), "blocks.1.attn.wq.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "blocks.0.mlp.fc.bias"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "wpe.weight"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "norm_f.weight"), names.end());
  // Tied weights: no separate head.
  EXPECT_EQ(std::find(names.begin(), names.end(), "head.weight"), names.end());
}

TEST(GPT, ParameterCountMatchesTheFormula) {
  const GPTConfig c = tiny();
  GPT model(c, 0);
  const int64_t C = c.embd, V = c.vocab, T = c.block_size, L = c.layers;
  const int64_t attn = 4 * (C * C + C);             // wq wk wv wo with biases
  const int64_t mlp = (C * 4 * C + 4 * C) + (4 * C * C + C);
  const int64_t norms = 2 * (2 * C);
  const int64_t expected = V * C + T * C + L * (attn + mlp + norms) + 2 * C;
  EXPECT_EQ(model.num_parameters(), expected);
  GPTConfig untied = c;
  untied.tie_weights = false;
  EXPECT_EQ(GPT(untied, 0).num_parameters(), expected + V * C);
  GPTConfig gqa = c;
  gqa.attention = "mqa";  // K and V shrink to one head of C/heads
  const int64_t kv = 2 * (C * (C / c.heads) + C / c.heads);
  EXPECT_EQ(GPT(gqa, 0).num_parameters(), expected - L * (2 * (C * C + C) - kv));
}

TEST(GPT, LogitsShapeAndCausality) {
  for (const char* norm_pos : {"pre", "post"}) {
    GPTConfig c = tiny();
    c.norm_position = norm_pos;
    c.norm = std::string(norm_pos) == "pre" ? "layernorm" : "rmsnorm";
    GPT model(c, 3);
    NoGradGuard ng;
    const Tensor a = from_ints({1, 2, 3, 4, 5, 6}, {1, 6});
    const Tensor b = from_ints({1, 2, 3, 9, 9, 9}, {1, 6});
    const Tensor la = model.forward(a), lb = model.forward(b);
    ASSERT_EQ(la.shape(), (Shape{1, 6, 11}));
    // Positions 0..2 saw the same prefix: identical logits. A later token
    // leaking backwards would change them.
    const auto va = la.to_vector(), vb = lb.to_vector();
    for (int i = 0; i < 3 * 11; ++i) ASSERT_FLOAT_EQ(va[i], vb[i]) << norm_pos << " position " << i / 11;
    bool differs = false;
    for (int i = 3 * 11; i < 6 * 11; ++i) differs = differs || va[i] != vb[i];
    EXPECT_TRUE(differs);
  }
}

TEST(GPT, InitialLossIsNearLogVocab) {
  // With small init the first predictions are near uniform: loss ~ ln(V).
  GPTConfig c = tiny();
  GPT model(c, 5);
  Generator g(1);
  std::vector<int64_t> ids(2 * 8);
  for (auto& i : ids) i = static_cast<int64_t>(g.below(11));
  const Tensor x = from_ints(ids, {2, 8});
  const float loss = cross_entropy(model.forward(x), x).item();
  EXPECT_NEAR(loss, std::log(11.0), 0.15);
}

TEST(GPT, TrainsDownOnARepeatingSequence) {
  GPTConfig c = tiny();
  c.mlp = "swiglu";
  GPT model(c, 7);
  std::vector<int64_t> seq;
  for (int i = 0; i < 9; ++i) seq.push_back(i % 5);
  const Tensor x = from_ints(std::vector<int64_t>(seq.begin(), seq.end() - 1), {1, 8});
  const Tensor y = from_ints(std::vector<int64_t>(seq.begin() + 1, seq.end()), {1, 8});
  float first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    const Tensor loss = cross_entropy(model.forward(x), y);
    if (step == 0) first = loss.item();
    last = loss.item();
    model.zero_grad();
    loss.backward();
    NoGradGuard ng;
    for (Tensor* p : model.parameters()) {
      const Tensor upd = sub(p->detach(), mul(p->grad(), 0.1f));
      backend_for(p->device()).copy(p->view_desc(), upd.view_desc());
    }
  }
  EXPECT_LT(last, first * 0.3f) << "first " << first << " last " << last;
}

TEST(GPT, StateDictRoundTripAndErrors) {
  GPT a(tiny(), 1), b(tiny(), 2);
  b.load_state_dict(a.state_dict());
  NoGradGuard ng;
  const Tensor x = from_ints({1, 2, 3}, {1, 3});
  EXPECT_EQ(a.forward(x).to_vector(), b.forward(x).to_vector());
  GPTConfig wide = tiny();
  wide.embd = 12;
  GPT c(wide, 0);
  EXPECT_NE(error_of([&] { c.load_state_dict(a.state_dict()); }).find("has shape [11,8] in the saved state but [11,12] in the model"),
            std::string::npos);
  auto missing = a.state_dict();
  missing.erase("norm_f.bias");
  EXPECT_NE(error_of([&] { b.load_state_dict(missing); }).find("'norm_f.bias' is missing"), std::string::npos);
}

TEST(GPTConfig, BadValuesNameTheOption) {
  GPTConfig c = tiny();
  c.heads = 3;
  EXPECT_NE(error_of([&] { c.validate(); }).find("--heads 3 must divide --embd 8"), std::string::npos);
  c = tiny();
  c.norm = "batchnorm";
  EXPECT_NE(error_of([&] { c.validate(); }).find("--norm must be layernorm or rmsnorm, got 'batchnorm'"),
            std::string::npos);
  c = tiny();
  EXPECT_EQ(GPTConfig::from_json(c.to_json()).to_json(), c.to_json());
  EXPECT_THROW(GPTConfig::from_json("{\"vocab\": 3}"), Error);
  EXPECT_THROW(GPT(tiny("gqa:kv_heads=3"), 0), Error);
}

TEST(Dropout, SeededMaskAndScaling) {
  DropoutSource s1{9, 0, 0}, s2{9, 0, 0};
  const Tensor x = ones({1000});
  const auto a = dropout(x, 0.25f, true, s1).to_vector();
  const auto b = dropout(x, 0.25f, true, s2).to_vector();
  EXPECT_EQ(a, b);  // same seed, same mask
  EXPECT_EQ(s1.offset, 1u);  // each call moves the stream on
  EXPECT_NE(dropout(x, 0.25f, true, s1).to_vector(), a);  // so the next call draws anew
  int zeros_seen = 0;
  for (float v : a) {
    ASSERT_TRUE(v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6f);
    zeros_seen += v == 0.0f;
  }
  EXPECT_NEAR(zeros_seen, 250, 50);
  EXPECT_EQ(dropout(x, 0.25f, false, s1).to_vector(), x.to_vector());  // eval: identity
  EXPECT_EQ(s1.offset, 2u);  // and draws nothing
}

TEST(BatchNorm1d, NormalisesPerChannelAndTracksRunningStats) {
  BatchNorm1d bn(3);
  Generator g(4);
  const Tensor x = add(mul(randn({64, 3}, g), 2.0f), 3.0f);
  const Tensor y = bn.forward(x);
  const auto m = mean(y, {0}).to_vector();
  const auto v = var(y, {0}, 0).to_vector();
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(m[c], 0, 1e-5);
    EXPECT_NEAR(v[c], 1, 1e-3);
  }
  const auto rm = bn.state_dict().at("running_mean").to_vector();
  for (float r : rm) EXPECT_NEAR(r, 0.3f, 0.1f);  // 0.9 * 0 + 0.1 * ~3
  Tensor xin = x.clone().set_requires_grad();
  const GradcheckResult r = gradcheck([&bn](const auto& in) { return bn.forward(in[0]); }, {slice(xin, 0, 0, 6)});
  EXPECT_TRUE(r.ok) << r.message;
}
