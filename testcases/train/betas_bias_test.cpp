// --beta1, --beta2 and --bias through the trainer: the betas reach AdamW,
// both are stored in the run (and refused when --resume would change them),
// a model without biases trains end to end, and a checkpoint written before
// the betas were options still loads, samples and resumes with 0.9/0.95.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "autograd/ops.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/optim.h"
#include "train/safetensors.h"
#include "train/sampling.h"
#include "train/tokenizer.h"
#include "train/trainer.h"
#include "testcases/error_of.h"

using namespace attn;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("attnlab_betas_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

TrainOptions tiny_run(const fs::path& dir, const std::string& out) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the cat sat on the mat. the dog sat on the log.\n";
  const fs::path corpus = dir / "corpus.txt";
  std::ofstream(corpus) << text;
  TrainOptions o;
  o.data = corpus.string();
  o.out = (dir / out).string();
  o.steps = 12;
  o.batch = 4;
  o.lr = 3e-3f;
  o.warmup = 2;
  o.eval_every = 4;
  o.eval_batches = 2;
  o.log_every = 2;
  o.sample_tokens = 20;
  o.quiet = true;
  o.model.block_size = 16;
  o.model.layers = 1;
  o.model.heads = 2;
  o.model.embd = 16;
  return o;
}

std::map<std::string, std::vector<float>> weights(const std::string& run) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, t] : load_checkpoint(checkpoint_path(run)).model) out[name] = t.to_vector();
  return out;
}

}  // namespace

TEST(TrainOptions, BetasAndBiasRoundTrip) {
  TrainOptions o;
  o.model.vocab = 29;
  o.beta1 = 0.8f;
  o.beta2 = 0.99f;
  o.model.bias = false;
  const TrainOptions back = TrainOptions::from_json(o.to_json());
  EXPECT_EQ(back.beta1, 0.8f);
  EXPECT_EQ(back.beta2, 0.99f);
  EXPECT_FALSE(back.model.bias);
  EXPECT_EQ(back.to_json(), o.to_json());
  // Defaults: today's behaviour.
  const TrainOptions d;
  EXPECT_EQ(d.beta1, 0.9f);
  EXPECT_EQ(d.beta2, 0.95f);
  EXPECT_TRUE(d.model.bias);
}

// Stored options without "beta1"/"beta2" (runs from before they were
// options) mean what those runs trained with: 0.9 and 0.95. A wrong type
// is still an error that names the field.
TEST(TrainOptions, MissingBetasMeanTheOldFixedValues) {
  TrainOptions o;
  o.model.vocab = 29;
  o.beta1 = 0.5f;
  o.beta2 = 0.5f;
  json j = json::parse(o.to_json());
  j.erase("beta1");
  j.erase("beta2");
  const TrainOptions old = TrainOptions::from_json(j.dump());
  EXPECT_EQ(old.beta1, 0.9f);
  EXPECT_EQ(old.beta2, 0.95f);
  j["beta2"] = "high";
  const std::string msg = error_of([&] { TrainOptions::from_json(j.dump()); });
  EXPECT_NE(msg.find("train: stored options are not valid: beta2 is \"high\", expected a number"),
            std::string::npos) << msg;
}

// More of them in bad_inputs_test.cpp (BadInputs.TrainOptionsNameOptionValueAndRange).
TEST(TrainOptions, BadBetasNameTheOptionValueAndRange) {
  for (const auto& [beta1, beta2, want] : std::vector<std::tuple<float, float, std::string>>{
           {0.9f, NAN, "train: --beta2 must be in [0, 1), got nan"},
           {1.0f, 0.95f, "train: --beta1 must be in [0, 1), got 1"},
           {-0.1f, 0.95f, "train: --beta1 must be in [0, 1), got -0.1"}}) {
    TrainOptions o;
    o.beta1 = beta1;
    o.beta2 = beta2;
    const std::string msg = error_of([&] { o.validate(); });
    EXPECT_NE(msg.find(want), std::string::npos) << "want '" << want << "', got '" << msg << "'";
  }
  TrainOptions edge;
  edge.beta1 = 0;  // no momentum: allowed (RMSProp-like)
  edge.beta2 = 0;
  EXPECT_NO_THROW(edge.validate());
  // The optimizer checks too (library users build it directly).
  Tensor w = zeros({2});
  EXPECT_NE(error_of([&] { AdamW({{"w", &w}}, 0.1f, 0.9f, 1.0f); }).find("AdamW: beta2 must be in [0, 1), got 1"),
            std::string::npos);
}

// Two AdamW steps with beta1 = 0.8 and beta2 = 0.99 (the first step's
// update is sign(g) whatever the betas; the second is not).
TEST(AdamW, SecondStepFollowsTheBetas) {
  const double b1 = 0.8, b2 = 0.99, lr = 0.1, eps = 1e-8;
  Tensor w = from_vector({1, -2}, {2}).set_requires_grad();  // 1-D: no weight decay
  AdamW opt({{"w", &w}}, static_cast<float>(lr), static_cast<float>(b1), static_cast<float>(b2),
            static_cast<float>(eps), 0.5f);
  const std::vector<std::vector<double>> grads = {{0.5, -1}, {-2, 0.25}};
  std::vector<double> p = {1, -2}, m = {0, 0}, v = {0, 0};
  for (int t = 1; t <= 2; ++t) {
    w.impl()->grad = from_vector({static_cast<float>(grads[t - 1][0]), static_cast<float>(grads[t - 1][1])},
                                 {2}).impl_ptr();
    opt.step();
    for (int i = 0; i < 2; ++i) {
      const double g = grads[t - 1][i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      const double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      p[i] -= lr * mh / (std::sqrt(vh) + eps);
    }
    const auto got = w.to_vector();
    for (int i = 0; i < 2; ++i) EXPECT_NEAR(got[i], p[i], 1e-5) << "step " << t << " element " << i;
  }
  // With the old fixed betas the second step differs: the test can tell.
  const double m0 = 0.9 * 0.1 * 0.5 + 0.1 * -2, v0 = 0.95 * 0.05 * 0.25 + 0.05 * 4;
  const double other = 1 - lr - lr * (m0 / (1 - 0.81)) / (std::sqrt(v0 / (1 - 0.9025)) + eps);
  EXPECT_GT(std::fabs(other - p[0]), 1e-3);
}

// train() hands --beta1/--beta2 to AdamW: after one step its moments are
// m = (1 - beta1) g and v = (1 - beta2) g^2, with g the first batch's
// gradient, recomputed here from the same model, seed and batch.
TEST(Trainer, BetasReachAdamW) {
  const fs::path dir = temp_dir("reach");
  TrainOptions o = tiny_run(dir, "run");
  o.steps = 1;
  o.grad_clip = 0;  // the moments see the raw gradient
  o.beta1 = 0.8f;
  o.beta2 = 0.99f;
  train(o);
  const CheckpointData d = load_checkpoint(checkpoint_path(o.out));
  const TrainOptions stored = TrainOptions::from_json(d.train_options);
  EXPECT_EQ(stored.beta1, 0.8f);
  EXPECT_EQ(stored.beta2, 0.99f);
  std::ifstream config_file(o.out + "/config.json");
  const json config = json::parse(config_file);
  EXPECT_EQ(config.at("beta1").get<float>(), 0.8f);
  EXPECT_EQ(config.at("beta2").get<float>(), 0.99f);

  // The first step's gradient, as train() computes it.
  const std::string text = read_corpus(o.data);
  const CharTokenizer tok = CharTokenizer::from_text(text, o.data);
  GPTConfig mc = o.model;
  mc.vocab = tok.vocab_size();
  GPT model(mc, o.seed);
  model.train();
  const TextDataset data(tok.encode_corpus(text));
  Generator batch_gen(o.seed + 3);
  const Batch b = data.get_batch(Split::Train, o.batch, mc.block_size, batch_gen);
  cross_entropy(model.forward(b.x), b.y).backward();

  std::map<std::string, std::vector<float>> state;
  for (const auto& [name, t] : d.optimizer) state[name] = t.to_vector();
  int checked = 0;
  for (auto& [name, p] : model.named_parameters()) {
    const std::vector<float> g = p->grad().to_vector();
    const std::vector<float>& m = state.at("adamw.m." + name);
    const std::vector<float>& v = state.at("adamw.v." + name);
    ASSERT_EQ(m.size(), g.size()) << name;
    for (size_t i = 0; i < g.size(); ++i) {
      const double gi = g[i];
      ASSERT_NEAR(m[i], 0.2 * gi, 1e-6 + 1e-4 * std::fabs(0.2 * gi)) << name << "[" << i << "]";
      ASSERT_NEAR(v[i], 0.01 * gi * gi, 1e-12 + 1e-4 * 0.01 * gi * gi) << name << "[" << i << "]";
    }
    ++checked;
  }
  EXPECT_GT(checked, 5);
  fs::remove_all(dir);
}

// --bias false end to end: no bias tensor in the checkpoint (norms
// included), the loss falls, the stored config says so, sampling works.
TEST(Trainer, ModelWithoutBiasesTrainsAndSamples) {
  const fs::path dir = temp_dir("nobias");
  TrainOptions o = tiny_run(dir, "run");
  o.steps = 60;
  o.eval_every = 20;
  o.model.bias = false;
  const TrainResult r = train(o);
  EXPECT_LT(r.final_val_loss, std::log(20.0f) - 0.8f) << "the loss barely moved";
  const CheckpointData d = load_checkpoint(checkpoint_path(o.out));
  for (const auto& [name, t] : d.model)
    EXPECT_EQ(name.find("bias"), std::string::npos) << "'" << name << "' in a --bias false checkpoint";
  EXPECT_NE(d.model.count("norm_f.weight"), 0u);
  const GPTConfig config = GPTConfig::from_json(d.model_config);
  EXPECT_FALSE(config.bias);
  EXPECT_FALSE(TrainOptions::from_json(d.train_options).model.bias);
  GPT model(config, 0);
  EXPECT_EQ(model.num_parameters(), r.parameters);
  load_model_weights(model, d, checkpoint_path(o.out));
  Generator gen(1);
  SampleOptions so;
  so.tokens = 10;
  EXPECT_EQ(generate(model, CharTokenizer::from_json(d.tokenizer).encode("the "), so, gen).size(), 10u);
  fs::remove_all(dir);
}

// --resume keeps the stored run's betas and bias: naming another value is
// refused with both values (--beta2 and --bias: bad_inputs_test.cpp's
// BadCheckpoint.ResumeWithAnotherShapeNamesTheOption), naming the stored
// one is fine.
TEST(Trainer, ResumeKeepsTheStoredBetasAndBias) {
  const fs::path dir = temp_dir("refuse");
  TrainOptions first = tiny_run(dir, "run");
  first.stop_at = 4;
  train(first);
  const std::string ckpt = checkpoint_path(first.out);
  auto resumed = [&](const std::string& option, const std::function<void(TrainOptions&)>& set) {
    TrainOptions o = tiny_run(dir, "run");
    o.resume = o.out;
    o.stop_at = 8;
    set(o);
    o.given = {"--resume", option};
    return error_of([&] { train(o); });
  };
  const std::string msg = resumed("--beta1", [](TrainOptions& o) { o.beta1 = 0.5f; });
  EXPECT_NE(msg.find("train: --beta1 0.5 differs from the run being resumed ('" + ckpt + "' has 0.9)"),
            std::string::npos) << msg;
  // The stored values, named again: accepted.
  EXPECT_EQ(resumed("--beta2", [](TrainOptions& o) { o.beta2 = 0.95f; }), "(no error)");
  EXPECT_EQ(resumed("--bias", [](TrainOptions& o) { o.model.bias = true; }), "(no error)");
  fs::remove_all(dir);
}

// A checkpoint from before --beta1/--beta2: written by today's code, then
// its train_options metadata loses the two keys (the model config never
// had new keys: "bias" was always stored). It loads, samples, and resumed
// to the end matches an unbroken run with the default betas bit for bit.
TEST(Trainer, CheckpointWithoutBetasLoadsSamplesAndResumes) {
  const fs::path dir = temp_dir("old");
  train(tiny_run(dir, "straight"));
  TrainOptions first = tiny_run(dir, "old");
  first.stop_at = 7;
  train(first);

  const std::string path = checkpoint_path(first.out);
  safetensors::Checkpoint file = safetensors::load(path);
  json options = json::parse(file.metadata.at("train_options"));
  ASSERT_TRUE(options.contains("beta1") && options.contains("beta2"));
  options.erase("beta1");
  options.erase("beta2");
  file.metadata["train_options"] = options.dump(2);
  ASSERT_TRUE(json::parse(file.metadata.at("model_config")).contains("bias"));
  std::vector<std::pair<std::string, Tensor>> tensors(file.tensors.begin(), file.tensors.end());
  safetensors::save(path, tensors, file.metadata);

  // Loads, and its options read as the old fixed betas.
  const CheckpointData d = load_checkpoint(path);
  ASSERT_EQ(json::parse(d.train_options).count("beta1"), 0u);
  const TrainOptions stored = TrainOptions::from_json(d.train_options);
  EXPECT_EQ(stored.beta1, 0.9f);
  EXPECT_EQ(stored.beta2, 0.95f);
  // Samples, as `attnlab sample` does.
  GPT model(GPTConfig::from_json(d.model_config), 0);
  load_model_weights(model, d, path);
  Generator gen(1);
  SampleOptions so;
  so.tokens = 10;
  EXPECT_EQ(generate(model, CharTokenizer::from_json(d.tokenizer).encode("the "), so, gen).size(), 10u);
  // Resumes: naming the default betas is no conflict, and the run ends
  // where the unbroken one did.
  TrainOptions second = tiny_run(dir, "old");
  second.resume = second.out;
  second.given = {"--resume", "--beta1", "--beta2"};
  train(second);
  const auto a = weights((dir / "straight").string()), b = weights(second.out);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, values] : a) EXPECT_EQ(values, b.at(name)) << name << " differs after resume";
  // The resumed run stores the betas it used.
  const TrainOptions now = TrainOptions::from_json(load_checkpoint(path).train_options);
  EXPECT_EQ(now.beta2, 0.95f);
  EXPECT_TRUE(json::parse(load_checkpoint(path).train_options).contains("beta2"));
  fs::remove_all(dir);
}
