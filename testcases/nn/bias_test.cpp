// GPTConfig::bias = false (the command line's --bias false), as nanoGPT's
// bias=False: no bias anywhere in the model, LayerNorms included, and the
// parameter count drops by exactly the biases.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "nn/gpt.h"

using namespace attn;

namespace {

GPTConfig tiny(const std::string& attention, bool bias) {
  GPTConfig c;
  c.vocab = 11;
  c.block_size = 8;
  c.layers = 2;
  c.heads = 2;
  c.embd = 8;
  c.attention = attention;
  c.bias = bias;
  return c;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

// Every variant, norm and MLP: not one parameter named "...bias", and
// every one of them present when bias is on (so the check above is not
// vacuous for that combination).
TEST(Bias, OffMeansNoBiasParameterAnywhere) {
  for (const char* attention : {"mha", "gqa:kv_heads=1", "mqa", "flash", "mla:latent=4",
                                "linear", "window:size=4", "sparse:local=2,stride=2", "blocksparse:block=4",
                                "mha:rope", "mha:alibi", "multiscale:windows=2,0", "performer:features=8"}) {
    for (const char* norm : {"layernorm", "rmsnorm"}) {
      for (const char* mlp : {"gelu", "swiglu"}) {
        GPTConfig c = tiny(attention, false);
        c.norm = norm;
        c.mlp = mlp;
        const std::string what = std::string(attention) + " " + norm + " " + mlp;
        GPT off(c, 0);
        for (auto& [name, p] : off.named_parameters())
          EXPECT_FALSE(ends_with(name, "bias")) << what << ": '" << name << "' with bias = false";
        c.bias = true;
        GPT on(c, 0);
        int biases = 0;
        for (auto& [name, p] : on.named_parameters()) biases += ends_with(name, "bias");
        EXPECT_GT(biases, 0) << what;
        // With biases, the LayerNorms have theirs; RMSNorm never does.
        bool norm_bias = false;
        for (auto& [name, p] : on.named_parameters()) norm_bias = norm_bias || name == "norm_f.bias";
        EXPECT_EQ(norm_bias, std::string(norm) == "layernorm") << what;
      }
    }
  }
}

// The GPT-2 layout without biases: attention 4C^2, MLP 8C^2, per block two
// norm gains of C, a final gain of C, and the embeddings.
TEST(Bias, ParameterCountDropsByExactlyTheBiases) {
  const GPTConfig c = tiny("mha", false);
  const int64_t C = c.embd, V = c.vocab, T = c.block_size, L = c.layers;
  const int64_t expected = V * C + T * C + L * (4 * C * C + 8 * C * C + 2 * C) + C;
  EXPECT_EQ(GPT(c, 0).num_parameters(), expected);
  // The biases of the default model: wq wk wv wo (4C), fc (4C), proj (C),
  // two LayerNorm shifts (2C) per block, and the final norm's (C).
  EXPECT_EQ(GPT(tiny("mha", true), 0).num_parameters(), expected + L * (4 * C + 4 * C + C + 2 * C) + C);
}

// A LayerNorm without bias is layer_norm with no shift: y = (x - mean) *
// rstd * w, checked against a loop.
TEST(Bias, NormWithoutBiasHasNoShift) {
  Norm norm("layernorm", 4, /*bias=*/false);
  ASSERT_EQ(norm.named_parameters().size(), 1u);
  Generator gen(3);
  const Tensor x = randn({3, 4}, gen);
  NoGradGuard ng;
  const Tensor w = from_vector({0.5f, -1.0f, 2.0f, 1.5f}, {4});
  backend_for(Device::cpu()).copy(norm.named_parameters()[0].second->view_desc(), w.view_desc());
  const auto y = norm.forward(x).to_vector(), xv = x.to_vector(), wv = w.to_vector();
  for (int r = 0; r < 3; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < 4; ++i) mean += xv[r * 4 + i] / 4.0;
    for (int i = 0; i < 4; ++i) var += (xv[r * 4 + i] - mean) * (xv[r * 4 + i] - mean) / 4.0;
    for (int i = 0; i < 4; ++i)
      EXPECT_NEAR(y[r * 4 + i], (xv[r * 4 + i] - mean) / std::sqrt(var + 1e-5) * wv[i], 1e-5)
          << "row " << r << " col " << i;
  }
  // RMSNorm has no bias with or without the flag.
  EXPECT_EQ(Norm("rmsnorm", 4, true).named_parameters().size(), 1u);
}

// Without biases the model still learns: plain gradient descent on a
// repeating sequence, as the GPT test of modules_test.cpp does with them.
TEST(Bias, ModelWithoutBiasesTrains) {
  for (const char* norm_position : {"pre", "post"}) {
    GPTConfig c = tiny("mha", false);
    c.norm_position = norm_position;
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
        ASSERT_TRUE(p->grad().defined());  // every parameter takes part
        const Tensor upd = sub(p->detach(), mul(p->grad(), 0.1f));
        backend_for(p->device()).copy(p->view_desc(), upd.view_desc());
      }
    }
    EXPECT_LT(last, first * 0.3f) << norm_position << ": first " << first << " last " << last;
  }
}

TEST(Bias, ConfigRoundTripKeepsIt) {
  const GPTConfig c = tiny("gqa:kv_heads=1", false);
  const GPTConfig back = GPTConfig::from_json(c.to_json());
  EXPECT_FALSE(back.bias);
  EXPECT_EQ(back.to_json(), c.to_json());
}
