// Chapter 13, advanced suite: pooling swept over odd head counts against a
// double-precision loop, gradients through the pooling, the converted module
// against a double-precision GQA written out as loops, RoPE and ALiBi models,
// a converted model that reloads from its own spec (and agrees with the
// library's `attnlab convert`), the KV cache it saves, T = 1 and H = 1, bad
// inputs, and training: a trained MHA converted to MQA loses some of its
// skill and a short fine-tune wins it back.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attention/multi_head.h"
#include "attention_surgery.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "lesson_test.h"
#include "nn/gpt.h"
#include "nn/surgery.h"

using namespace attn;
using namespace lesson_test;

namespace {

// ---- double-precision oracles ----------------------------------------------

// w [H*d, cols] row-major -> [G*d, cols]: group j = mean of heads j*g .. j*g+g-1.
std::vector<double> pool(const std::vector<double>& w, int64_t H, int64_t G, int64_t cols) {
  const int64_t d = static_cast<int64_t>(w.size()) / (H * cols), g = H / G;
  std::vector<double> out(G * d * cols, 0.0);
  for (int64_t j = 0; j < G; ++j)
    for (int64_t r = 0; r < g; ++r)
      for (int64_t i = 0; i < d; ++i)
        for (int64_t c = 0; c < cols; ++c)
          out[(j * d + i) * cols + c] += w[((j * g + r) * d + i) * cols + c] / g;
  return out;
}

// y[n, o] = sum_c x[n, c] W[o, c] + b[o]  (x [N, in], W [out, in]).
std::vector<double> linear(const std::vector<double>& x, int64_t N, int64_t in,
                           const std::vector<double>& W, const std::vector<double>& b, int64_t out) {
  std::vector<double> y(N * out);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t c = 0; c < in; ++c) s += x[n * in + c] * W[o * in + c];
      y[n * out + o] = s;
    }
  return y;
}

// Causal GQA with learned positions (none inside), all in double, from the
// MHA's weights pooled by the test: the converted module must compute this.
std::vector<double> converted_oracle(const std::map<std::string, Tensor>& mha, const Tensor& x_t,
                                     int64_t H, int64_t G) {
  const int64_t B = x_t.shape()[0], T = x_t.shape()[1], C = x_t.shape()[2], d = C / H, g = H / G;
  auto v = [&](const std::string& n) { return values(mha.at(n)); };
  const std::vector<double> x = values(x_t);
  const std::vector<double> q = linear(x, B * T, C, v("wq.weight"), v("wq.bias"), C);
  const std::vector<double> k = linear(x, B * T, C, pool(v("wk.weight"), H, G, C),
                                       pool(v("wk.bias"), H, G, 1), G * d);
  const std::vector<double> val = linear(x, B * T, C, pool(v("wv.weight"), H, G, C),
                                         pool(v("wv.bias"), H, G, 1), G * d);
  std::vector<double> o(B * T * C, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t j = h / g;  // the K/V head of query head h
        std::vector<double> s(t + 1);
        double mx = -1e300, z = 0;
        for (int64_t u = 0; u <= t; ++u) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i)
            dot += q[(b * T + t) * C + h * d + i] * k[(b * T + u) * G * d + j * d + i];
          s[u] = dot / std::sqrt(double(d));
          mx = std::max(mx, s[u]);
        }
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < d; ++i)
            o[(b * T + t) * C + h * d + i] += s[u] / z * val[(b * T + u) * G * d + j * d + i];
      }
  return linear(o, B * T, C, v("wo.weight"), v("wo.bias"), C);
}

// ---- helpers -------------------------------------------------------------------

void randomise(Module& m, uint64_t seed, float scale = 0.5f) {
  std::map<std::string, Tensor> state = m.state_dict();
  for (auto& [name, t] : state) t = random_tensor(t.shape(), seed++, scale);
  m.load_state_dict(state);
}

AttentionConfig config(int64_t embd, int64_t heads) {
  AttentionConfig c;
  c.embd = embd, c.heads = heads, c.block_size = 16;
  return c;
}

std::shared_ptr<MultiHeadAttention> random_mha(int64_t embd, int64_t heads, uint64_t seed,
                                               PositionOptions pos = {}) {
  Generator gen(seed);
  auto m = std::make_shared<MultiHeadAttention>(config(embd, heads), heads, gen, pos);
  randomise(*m, seed * 100);
  return m;
}

void equalise_groups(Module& m, int64_t H, int64_t G) {
  std::map<std::string, Tensor> state = m.state_dict();
  for (const std::string name : {"wk.weight", "wk.bias", "wv.weight", "wv.bias"}) {
    Tensor& t = state.at(name);
    const int64_t d = t.shape()[0] / H, g = H / G;
    std::vector<Tensor> heads;
    for (int64_t h = 0; h < H; ++h) heads.push_back(narrow(t, 0, (h / g) * g * d, d));
    t = cat(heads, 0);
  }
  m.load_state_dict(state);
}

GPTConfig tiny(const std::string& attention, int64_t layers = 2, int64_t heads = 4,
               int64_t embd = 16) {
  GPTConfig c;
  c.vocab = 11, c.block_size = 8, c.layers = layers, c.heads = heads, c.embd = embd;
  c.attention = attention;
  return c;
}

std::unique_ptr<GPT> random_gpt(const GPTConfig& c, uint64_t seed) {
  auto m = std::make_unique<GPT>(c, seed);
  randomise(*m, seed * 1000, 0.3f);
  return m;
}

Tensor ids(int64_t T = 8) {
  const std::vector<int64_t> all = {1, 4, 2, 9, 0, 3, 3, 7, /**/ 5, 5, 10, 2, 8, 1, 6, 0};
  std::vector<int64_t> v;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < T; ++t) v.push_back(all[b * 8 + t]);
  return from_ints(v, {2, T});
}

template <class F>
std::size_t bytes_kept(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  auto kept = f();
  return cpu_allocator().stats().current - before;
}

// Plain Adam over `params` (the suite depends on nothing in train/).
struct Adam {
  std::vector<Tensor*> params;
  float lr;
  std::vector<std::vector<float>> m1, m2;
  int step = 0;
  Adam(std::vector<Tensor*> p, float lr) : params(std::move(p)), lr(lr), m1(params.size()), m2(params.size()) {}
  void update() {
    ++step;
    const float c1 = 1 - std::pow(0.9f, float(step)), c2 = 1 - std::pow(0.999f, float(step));
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (!params[p]->grad().defined()) continue;
      const std::vector<float> g = params[p]->grad().to_vector();
      float* w = params[p]->data<float>();
      m1[p].resize(g.size());
      m2[p].resize(g.size());
      for (std::size_t i = 0; i < g.size(); ++i) {
        m1[p][i] = 0.9f * m1[p][i] + 0.1f * g[i];
        m2[p][i] = 0.999f * m2[p][i] + 0.001f * g[i] * g[i];
        w[i] -= lr * (m1[p][i] / c1) / (std::sqrt(m2[p][i] / c2) + 1e-8f);
      }
    }
  }
};

// A tiny corpus as (input, target) windows of a char-level vocabulary.
struct Corpus {
  Tensor x, y;
  int64_t vocab = 0;
};

Corpus tiny_corpus(int64_t B, int64_t T) {
  const std::string text =
      "the cat sat on the mat. the dog sat on the log. a cat and a dog sat on a mat. ";
  std::map<char, int64_t> id;
  for (char ch : text) id.emplace(ch, 0);
  int64_t n = 0;
  for (auto& [ch, i] : id) i = n++;
  std::vector<int64_t> xs, ys;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t start = (b * 7) % static_cast<int64_t>(text.size() - T - 1);
    for (int64_t t = 0; t < T; ++t) {
      xs.push_back(id[text[start + t]]);
      ys.push_back(id[text[start + t + 1]]);
    }
  }
  return {from_ints(xs, {B, T}), from_ints(ys, {B, T}), n};
}

float train_steps(GPT& model, const Corpus& data, int steps, float lr) {
  Adam opt(model.parameters(), lr);  // taken AFTER any surgery: new modules, new tensors
  for (int s = 0; s < steps; ++s) {
    model.zero_grad();
    const Tensor loss = cross_entropy(model.forward(data.x), data.y);
    loss.backward();
    opt.update();
  }
  return cross_entropy(model.forward(data.x), data.y).item();
}

float loss_of(GPT& model, const Corpus& data) {
  return cross_entropy(model.forward(data.x), data.y).item();
}

}  // namespace

// ------------------------------------------------------ pooling vs the oracle

struct PoolCase {
  int64_t H, G, d, C;
};

class PoolSweep : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolSweep, WeightAndBiasMatchTheDoubleLoop) {
  const auto [H, G, d, C] = GetParam();
  const std::string tag = "H = " + std::to_string(H) + ", G = " + std::to_string(G) +
                          ", d = " + std::to_string(d) + ", C = " + std::to_string(C);
  const Tensor w = random_tensor({H * d, C}, 100 + H * 10 + G), b = random_tensor({H * d}, 200 + H);
  EXPECT_TRUE(close("pooled weight, " + tag, lesson13::pool_kv_heads(w, H, G), pool(values(w), H, G, C),
                    {G * d, C}));
  EXPECT_TRUE(close("pooled bias, " + tag, lesson13::pool_kv_heads(b, H, G), pool(values(b), H, G, 1),
                    {G * d}));
}

INSTANTIATE_TEST_SUITE_P(OddAndEvenHeads, PoolSweep,
                         ::testing::Values(PoolCase{1, 1, 4, 3}, PoolCase{3, 1, 2, 5},
                                           PoolCase{3, 3, 2, 5}, PoolCase{5, 5, 3, 4},
                                           PoolCase{5, 1, 3, 4}, PoolCase{6, 3, 2, 7},
                                           PoolCase{6, 2, 1, 6}, PoolCase{8, 4, 2, 3},
                                           PoolCase{8, 2, 3, 2}, PoolCase{9, 3, 2, 9},
                                           PoolCase{12, 4, 1, 1}, PoolCase{12, 6, 5, 2}));

// ------------------------------------------------------------------ gradients

TEST(Gradients, GradcheckThroughThePooling) {
  Tensor w = random_tensor({12, 3}, 300);  // H = 6, d = 2, C = 3
  w.set_requires_grad(true);
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson13::pool_kv_heads(in[0], 6, 2); }, {w});
  EXPECT_TRUE(r.ok) << "gradient of pool_kv_heads(w, H = 6, G = 2) with respect to w:\n" << r.message;
}

TEST(Gradients, EachHeadGetsOneGthOfItsGroupsGradient) {
  // d(mean of g heads)/d(head) = 1/g: with G = 2 of H = 6 (g = 3), every
  // element of w gets 1/3 of the gradient of the pooled element it feeds.
  Tensor w = random_tensor({6, 2}, 301);  // d = 1
  w.set_requires_grad(true);
  sum(lesson13::pool_kv_heads(w, 6, 2)).backward();
  ASSERT_TRUE(w.grad().defined()) << "no gradient reached w: build the pooling from autograd ops";
  EXPECT_TRUE(close("dsum(pooled)/dw", w.grad(), std::vector<double>(12, 1.0 / 3), {6, 2}))
      << "a gradient of 1 (not 1/3) means the heads were summed, not averaged";
}

TEST(Gradients, GradcheckThroughTheConvertedModule) {
  auto mha = random_mha(8, 4, 302);
  auto gqa = lesson13::gqa_from_mha(*mha, config(8, 4), 2);
  Tensor x = random_tensor({1, 3, 8}, 303);
  x.set_requires_grad(true);
  const GradcheckResult r =
      gradcheck([&gqa](const std::vector<Tensor>& in) { return gqa->forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << "gradient of the converted module's output with respect to x:\n" << r.message;
  gqa->zero_grad();
  sum(square(gqa->forward(x))).backward();
  for (auto& [name, p] : gqa->named_parameters())
    EXPECT_TRUE(p->grad().defined()) << name << " of the converted module got no gradient: a "
                                     << "fine-tune could not train it";
}

// ------------------------------------------- the converted module vs a loop GQA

struct ModuleCase {
  int64_t H, G, C, T;
};

class ConvertedSweep : public ::testing::TestWithParam<ModuleCase> {};

TEST_P(ConvertedSweep, MatchesTheDoubleLoopGQA) {
  const auto [H, G, C, T] = GetParam();
  auto mha = random_mha(C, H, 400 + H * 10 + G);
  auto gqa = lesson13::gqa_from_mha(*mha, config(C, H), G);
  ASSERT_TRUE(gqa);
  const Tensor x = random_tensor({2, T, C}, 500 + T);
  EXPECT_TRUE(close("converted module, H = " + std::to_string(H) + ", G = " + std::to_string(G) +
                        ", C = " + std::to_string(C) + ", T = " + std::to_string(T),
                    gqa->forward(x), converted_oracle(mha->state_dict(), x, H, G), {2, T, C}, 1e-4))
      << "the oracle pools wk/wv (and their biases) by contiguous groups, keeps wq/wo, and "
         "runs causal GQA in double precision";
}

INSTANTIATE_TEST_SUITE_P(HeadsGroupsLengths, ConvertedSweep,
                         ::testing::Values(ModuleCase{4, 2, 16, 6}, ModuleCase{4, 1, 16, 5},
                                           ModuleCase{6, 3, 12, 7}, ModuleCase{6, 2, 18, 1},
                                           ModuleCase{9, 3, 18, 4}, ModuleCase{5, 5, 10, 3},
                                           ModuleCase{7, 1, 14, 4}, ModuleCase{1, 1, 4, 3}));

// ------------------------------------------------------------ position options

TEST(Positions, RopeAndAlibiModelsKeepTheirLogitsWhenGroupsEqualHeads) {
  // RoPE rotates q and k after the projection, the same way in every head,
  // and ALiBi biases the scores per query head: both carry over unchanged.
  for (const std::string spec : {"mha:rope", "mha:alibi", "mha:rope,rope_base=500"}) {
    auto model = random_gpt(tiny(spec), 600);
    const Tensor before = model->forward(ids());
    lesson13::mha_to_gqa(*model, 4);
    EXPECT_TRUE(close(spec + ", G = H", model->forward(ids()), before, 1e-5))
        << "pass the model's position options (position_options(spec)) to the new modules";
  }
}

TEST(Positions, RopeModelWithEqualHeadsLosesNothing) {
  // rope(mean of equal heads) = rope(head): equal heads convert exactly.
  auto model = random_gpt(tiny("mha:rope", 2, 6, 24), 601);
  for (auto& block : model->blocks()) equalise_groups(block->attention(), 6, 3);
  const Tensor before = model->forward(ids());
  lesson13::mha_to_gqa(*model, 3);
  EXPECT_EQ(model->config().attention, "gqa:kv_heads=3,rope");
  EXPECT_TRUE(close("mha:rope with equal heads per group, G = 3", model->forward(ids()), before, 1e-5));
}

TEST(Mistakes, DroppedThePositionOptions) {
  // Converting an "mha:rope" model into a GQA without rope leaves the model
  // with no idea where tokens are (it has no learned position embedding).
  auto model = random_gpt(tiny("mha:rope"), 602);
  const Tensor before = model->forward(ids());
  lesson13::mha_to_gqa(*model, 4);
  const bool rope = model->blocks().front()->attention().encodes_positions();
  EXPECT_TRUE(rope) << "the converted attention of an mha:rope model does not encode positions: "
                       "build it with position_options(model.config().attention)";
  EXPECT_TRUE(close("mha:rope model, logits after G = H conversion", model->forward(ids()), before, 1e-5))
      << (rope ? "(positions are encoded, so the weights themselves differ: see the GqaFromMha "
                 "tests of the basic suite)"
               : "");
}

// ------------------------------------------------------------- the whole model

TEST(Model, ConvertedModelRebuildsFromItsSpec) {
  // What a checkpoint does: build a GPT from config(), load the state.
  auto model = random_gpt(tiny("mha", 3), 700);
  lesson13::mha_to_gqa(*model, 2);
  GPT rebuilt(model->config(), 1);
  ASSERT_NO_THROW(rebuilt.load_state_dict(model->state_dict()))
      << "a GPT built from the converted model's config ('" << model->config().attention
      << "') cannot load its weights";
  EXPECT_TRUE(close("rebuilt model's logits", rebuilt.forward(ids()), model->forward(ids()), 1e-6));
}

TEST(Model, AgreesWithAttnlabConvert) {
  // nn/surgery.h's attn::mha_to_gqa is what `attnlab convert` runs (it
  // rebuilds the model rather than editing it): same logits.
  for (int64_t G : {2, 1}) {
    auto model = random_gpt(tiny("mha", 2), 701);
    std::unique_ptr<GPT> library = attn::mha_to_gqa(*model, "gqa:kv_heads=" + std::to_string(G));
    lesson13::mha_to_gqa(*model, G);
    EXPECT_TRUE(close("your conversion vs attnlab convert, G = " + std::to_string(G),
                      model->forward(ids()), library->forward(ids()), 1e-5));
  }
}

TEST(Model, ShortSequenceAndSingleHead) {
  // T = 1 (a token sees only itself) and H = 1 (nothing to pool).
  auto model = random_gpt(tiny("mha", 2, 1, 8), 702);
  const Tensor before = model->forward(ids(1));
  lesson13::mha_to_gqa(*model, 1);
  EXPECT_TRUE(close("H = 1, G = 1, T = 1", model->forward(ids(1)), before, 1e-6));
  auto multi = random_gpt(tiny("mha", 2, 4), 703);
  lesson13::mha_to_gqa(*multi, 1);
  EXPECT_EQ(multi->forward(ids(1)).shape(), (Shape{2, 1, 11}));
}

TEST(Model, RejectsBadInputs) {
  auto mha = random_mha(12, 6, 704);
  for (int64_t G : {0, -2, 4, 5, 12})
    EXPECT_TRUE(rejects("gqa_from_mha(6 heads, G = " + std::to_string(G) + ")",
                        [&] { lesson13::gqa_from_mha(*mha, config(12, 6), G); },
                        "G must be a divisor of H between 1 and H"));
  Generator gen(705);
  MultiHeadAttention grouped(config(12, 6), 3, gen);
  EXPECT_TRUE(rejects("gqa_from_mha(a module with 3 K/V heads for 6 heads)",
                      [&] { lesson13::gqa_from_mha(grouped, config(12, 6), 1); },
                      "the source must be MHA (kv_heads == heads): its K/V rows are not H heads"));
  EXPECT_TRUE(rejects("pool_kv_heads(a 3-D tensor)",
                      [] { lesson13::pool_kv_heads(random_tensor({2, 6, 4}, 706), 2, 1); },
                      "only a weight [H*d, C] or a bias [H*d] has heads along its rows"));
  auto model = random_gpt(tiny("mha", 2, 6, 12), 707);
  EXPECT_TRUE(rejects("mha_to_gqa(6 heads, G = 4)", [&] { lesson13::mha_to_gqa(*model, 4); },
                      "6 heads do not split into 4 equal groups"));
}

// -------------------------------------------------------------------- memory

TEST(Memory, KvCacheShrinksByHOverG) {
  // The point of the surgery: the decoding cache holds G K/V heads, not H.
  auto model = random_gpt(tiny("mha", 2, 4, 16), 800);
  const std::size_t mha_bytes = bytes_kept([&] { return model->make_cache(32); });
  lesson13::mha_to_gqa(*model, 1);
  const std::size_t mqa_bytes = bytes_kept([&] { return model->make_cache(32); });
  EXPECT_EQ(mha_bytes, 4 * mqa_bytes) << "the cache of the MHA model took " << mha_bytes
                                      << " bytes, after conversion to MQA " << mqa_bytes
                                      << "; 4 heads -> 1 K/V head is 4x smaller";
  for (auto& block : model->blocks())
    EXPECT_EQ(block->attention().cache_layout().heads, 1);
}

// ------------------------------------------------------------------ training

TEST(Training, FineTuneRecoversAfterConversion) {
  // Train an MHA char model on a tiny corpus, convert it to MQA, fine-tune.
  const auto start = std::chrono::steady_clock::now();
  const Corpus data = tiny_corpus(8, 16);
  GPTConfig c = tiny("mha", 2, 4, 32);
  c.vocab = data.vocab, c.block_size = 16;
  GPT model(c, 900);
  const float trained = train_steps(model, data, 60, 0.01f);
  lesson13::mha_to_gqa(model, 1);
  const float converted = loss_of(model, data);
  const float tuned = train_steps(model, data, 20, 0.003f);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "  loss: MHA trained " << trained << ", right after conversion to MQA " << converted
            << ", after 20 fine-tuning steps " << tuned << " (" << secs << " s)\n";
  ASSERT_TRUE(std::isfinite(converted) && std::isfinite(tuned)) << "the loss became NaN or inf";
  EXPECT_LT(converted, 2.0f * std::log(float(data.vocab)))
      << "right after conversion the model should still be far better than chance ("
      << std::log(float(data.vocab)) << "): the pooled heads keep most of what was learned";
  EXPECT_LT(tuned, converted) << "20 steps of fine-tuning did not lower the loss after conversion "
                                 "(is the optimizer given the NEW model's parameters?)";
}

TEST(Training, YourPooledGQATrainsATinyGPT) {
  // The glue registers "student:pooled_gqa": GQA started from a pooled MHA.
  GPTConfig c = tiny("student:pooled_gqa:kv_heads=2", 1, 4, 16);
  c.vocab = 5;
  GPT model(c, 7);
  const int64_t B = 8, T = 8;
  Generator data_gen(8);
  std::vector<int64_t> xs, ys;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      xs.push_back(static_cast<int64_t>(data_gen.below(5)));
      ys.push_back(t == 0 ? xs.back() : xs[xs.size() - 2]);  // repeat the previous token
    }
  const Corpus data{from_ints(xs, {B, T}), from_ints(ys, {B, T}), 5};
  const float first = loss_of(model, data);
  const float last = train_steps(model, data, 60, 0.02f);
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with working attention it more than halves";
}

// ------------------------------------------------------------- GPU parity
// Surgery on a model that lives on the GPU must give, on the GPU, what it
// gives on the CPU: the pooled weights, and the converted attention's
// outputs and gradients. Skipped where no GPU exists.

namespace {

// Every tensor of `gpu` (a state_dict from the CUDA side) against `cpu`.
::testing::AssertionResult same_state(const std::string& what, const std::map<std::string, Tensor>& gpu,
                                      const std::map<std::string, Tensor>& cpu) {
  for (const auto& [name, t] : cpu) {
    const auto it = gpu.find(name);
    if (it == gpu.end()) return ::testing::AssertionFailure() << what << ": " << name << " missing on CUDA";
    auto r = same_on_both_devices(what + ": " + name, it->second, t);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

TEST(GpuParity, PoolKvHeads) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  EXPECT_TRUE(same_on_both_devices(
      "pool_kv_heads(weight [6*3, 10], 6 heads, 2 groups)",
      [](const std::vector<Tensor>& in) { return lesson13::pool_kv_heads(in[0], 6, 2); },
      {random_tensor({18, 10}, 1200)}, {"weight"}));
  EXPECT_TRUE(same_on_both_devices(
      "pool_kv_heads(bias [6*3], 6 heads, 3 groups)",
      [](const std::vector<Tensor>& in) { return lesson13::pool_kv_heads(in[0], 6, 3); },
      {random_tensor({18}, 1201)}, {"bias"}));
}

TEST(GpuParity, ConvertedModuleOnTheGpu) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // A RoPE MHA with 6 heads -> 2 K/V heads, once on the CPU, once on CUDA.
  PositionOptions rope;
  rope.rope = true;
  auto mha_cpu = random_mha(12, 6, 1202, rope), mha_gpu = random_mha(12, 6, 1202, rope);
  mha_gpu->to(Device::cuda());
  auto gqa_cpu = lesson13::gqa_from_mha(*mha_cpu, config(12, 6), 2, rope);
  auto gqa_gpu = lesson13::gqa_from_mha(*mha_gpu, config(12, 6), 2, rope);
  ASSERT_TRUE(gqa_gpu != nullptr) << "gqa_from_mha returned nullptr for a module on CUDA";
  EXPECT_TRUE(same_state("gqa_from_mha (6 heads -> 2 groups), weights", gqa_gpu->state_dict(),
                         gqa_cpu->state_dict()))
      << "the converted module of an MHA on CUDA must live on CUDA too (Module::to) and hold the "
         "same weights as the CPU conversion";
  EXPECT_TRUE(module_same_on_both_devices(
      "the converted module", *gqa_cpu, *gqa_gpu,
      [](Module& m, const Tensor& x) { return static_cast<MultiHeadAttention&>(m).forward(x); },
      random_tensor({2, 7, 12}, 1203), 2e-4));
}

TEST(GpuParity, WholeModelConvertedOnTheGpu) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  auto cpu = random_gpt(tiny("mha"), 1204), gpu = random_gpt(tiny("mha"), 1204);
  gpu->to(Device::cuda());
  lesson13::mha_to_gqa(*cpu, 2);
  lesson13::mha_to_gqa(*gpu, 2);
  EXPECT_EQ(gpu->config().attention, cpu->config().attention);
  EXPECT_TRUE(same_state("mha_to_gqa(model, 2), weights", gpu->state_dict(), cpu->state_dict()))
      << "every converted block of a model on CUDA must live on CUDA with the CPU conversion's weights";
  EXPECT_TRUE(module_same_on_both_devices(
      "the converted GPT (logits)", *cpu, *gpu,
      [](Module& m, const Tensor& x) { return static_cast<GPT&>(m).forward(x); }, ids(), 2e-4));
}
