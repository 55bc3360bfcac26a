// GPU/CPU parity one level above the kernels (testcases/core/cuda_parity_test
// checks each kernel): the same model, seed and batches on the CPU and on
// cuda:0 must give the same numbers, up to float rounding.
//
//   - flash attention as an autograd op: forward and every input gradient;
//   - each registered attention variant inside a small GPT: logits, loss and
//     every parameter's gradient;
//   - train() itself: 5 AdamW steps on each device log the same losses, and
//     the run reports the GPU allocator's peak, not the host's.
//
// The two devices add floats in different orders (cuBLAS against OpenBLAS,
// parallel reductions against loops), so values agree to ~1e-5 relative,
// not bit for bit. TF32 stays off: it would cost three decimal digits.
//
// Without a usable GPU (or in a build without CUDA) every test skips and
// says why; CI runs them that way.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "train/trainer.h"

namespace {

using namespace attn;
namespace fs = std::filesystem;

const Device kCuda = Device::cuda(0);

std::string cuda_reason() {
  try {
    backend_for(kCuda);
    return "cuda_available() is false";
  } catch (const Error& e) {
    return e.what();
  }
}

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda_reason()

// `gpu` must hold the values of `cpu` (any device) within
// tol * max|cpu| + 1e-6: an error relative to the tensor's scale, so that
// elements that are nearly zero by cancellation do not fail on rounding.
::testing::AssertionResult close(const Tensor& cpu, const Tensor& gpu, double tol) {
  if (!cpu.defined() || !gpu.defined())
    return ::testing::AssertionFailure() << "undefined tensor (cpu " << cpu.defined() << ", cuda "
                                         << gpu.defined() << ")";
  if (cpu.shape() != gpu.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(gpu.shape()) << " on cuda vs "
                                         << shape_str(cpu.shape()) << " on cpu";
  const std::vector<float> a = cpu.to_vector(), b = gpu.to_vector();
  double scale = 0;
  for (float x : a) scale = std::max(scale, std::fabs(static_cast<double>(x)));
  const double allowed = tol * scale + 1e-6;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) worst = d, at = i;  // NaN counts as the worst
  }
  if (worst <= allowed) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "element " << at << " of " << a.size() << ": cuda " << b[at]
                                       << " vs cpu " << a[at] << " (diff " << worst << ", allowed "
                                       << allowed << " = " << tol << " * max|cpu| " << scale << ")";
}

// ---------------------------------------------------------------------------
// Flash attention as an op: forward and the gradients of q, k, v.

TEST(GpuParity, FlashAttentionOpForwardBackward) {
  REQUIRE_CUDA();
  struct Case {
    const char* what;
    int64_t B, H, Hkv, T, d, window;
    bool alibi;
  };
  const Case cases[] = {
      {"causal MHA", 2, 4, 4, 33, 16, 0, false},
      {"GQA, T not a tile multiple", 1, 4, 2, 70, 32, 0, false},
      {"sliding window + ALiBi", 2, 2, 1, 40, 64, 7, true},
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    Generator gen(seed++);
    // q arrives as a transposed view, as the attention module hands it over.
    const Tensor q0 = transpose(randn({c.B, c.T, c.H, c.d}, gen), 1, 2);
    const Tensor k0 = randn({c.B, c.Hkv, c.T, c.d}, gen), v0 = randn({c.B, c.Hkv, c.T, c.d}, gen);
    const Tensor r = randn({c.B, c.H, c.T, c.d}, gen);  // loss = sum(out * r)
    FlashOptions o;
    o.window = c.window;
    if (c.alibi)
      for (int64_t h = 0; h < c.H; ++h) o.alibi.push_back(std::pow(2.0f, -8.0f * (h + 1) / c.H));
    struct Result {
      Tensor out, dq, dk, dv;
    };
    auto run = [&](const Device& dev) {
      Tensor q = q0.to(dev).detach().set_requires_grad(), k = k0.to(dev).detach().set_requires_grad(),
             v = v0.to(dev).detach().set_requires_grad();
      const Tensor out = flash_attention(q, k, v, o);
      sum(mul(out, r.to(dev))).backward();
      return Result{out, q.grad(), k.grad(), v.grad()};
    };
    const Result cpu = run(Device::cpu()), gpu = run(kCuda);
    EXPECT_TRUE(gpu.out.device().is_cuda()) << c.what;
    EXPECT_TRUE(close(cpu.out, gpu.out, 1e-5)) << c.what << ": out";
    EXPECT_TRUE(close(cpu.dq, gpu.dq, 1e-4)) << c.what << ": dq";
    EXPECT_TRUE(close(cpu.dk, gpu.dk, 1e-4)) << c.what << ": dk";
    EXPECT_TRUE(close(cpu.dv, gpu.dv, 1e-4)) << c.what << ": dv";
  }
}

// ---------------------------------------------------------------------------
// Attention dropout: the same stream drops the same probabilities on both
// devices, whichever path computes them (flash kernels, the dropout op on
// dense weights, the block kernel of the banded window path).

TEST(GpuParity, AttentionDropoutOpsDropTheSameEntries) {
  REQUIRE_CUDA();
  const AttentionDropoutArgs drop{0xabcdef12ULL, 4, 123, 0.3f};
  Generator gen(21);
  // Blocks of a [2, 3, 50, 70] matrix, unaligned, and the whole matrix: bit for bit.
  const Tensor w = randn({2, 3, 50, 70}, gen);
  EXPECT_EQ(drop_attention_weights(w, drop, 50, 70).to_vector(),
            drop_attention_weights(w.to(kCuda), drop, 50, 70).to_vector());
  const Tensor block = slice(slice(w, 2, 5, 29), 3, 3, 61).contiguous();
  EXPECT_EQ(drop_attention_weights(block, drop, 50, 70, 5, 3).to_vector(),
            drop_attention_weights(block.to(kCuda), drop, 50, 70, 5, 3).to_vector());
  // Flash attention as an op, with dropout: forward and gradients.
  const Tensor q0 = randn({2, 4, 70, 32}, gen), k0 = randn({2, 2, 70, 32}, gen), v0 = randn({2, 2, 70, 32}, gen);
  const Tensor r = randn({2, 4, 70, 32}, gen);
  for (int64_t window : {0, 9}) {
    FlashOptions o;
    o.window = window;
    o.dropout = drop;
    auto run = [&](const Device& dev) {
      Tensor q = q0.to(dev).detach().set_requires_grad(), k = k0.to(dev).detach().set_requires_grad(),
             v = v0.to(dev).detach().set_requires_grad();
      const Tensor out = flash_attention(q, k, v, o);
      sum(mul(out, r.to(dev))).backward();
      return std::vector<Tensor>{out, q.grad(), k.grad(), v.grad()};
    };
    const auto cpu = run(Device::cpu()), gpu = run(kCuda);
    const char* names[] = {"out", "dq", "dk", "dv"};
    for (int i = 0; i < 4; ++i)
      EXPECT_TRUE(close(cpu[i], gpu[i], i == 0 ? 1e-5 : 1e-4)) << "window " << window << ": " << names[i];
  }
}

// Every softmax variant in a training forward with attention dropout: the
// same logits and gradients on both devices.
class VariantDropoutParity : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantDropoutParity, GptTrainingForwardAndGradients) {
  REQUIRE_CUDA();
  GPTConfig config;
  config.vocab = 13;
  config.block_size = 80;  // flash and the banded window span several tiles and chunks
  config.layers = 2;
  config.heads = 4;
  config.embd = 32;
  config.attention = GetParam();
  config.attn_dropout = 0.3f;
  GPT cpu(config, 7), gpu(config, 7);
  gpu.to(kCuda);
  std::vector<int64_t> ids(2 * 80);
  Generator gen(3);
  for (auto& i : ids) i = static_cast<int64_t>(gen.uniform() * config.vocab) % config.vocab;
  std::vector<Tensor> logits;
  for (GPT* m : {&cpu, &gpu}) {
    m->dropout_source().first_sample = 64;
    const Tensor l = m->forward(from_ints(ids, {2, 80}, m == &cpu ? Device::cpu() : kCuda));
    sum(mul(l, l)).backward();
    logits.push_back(l);
  }
  EXPECT_TRUE(close(logits[0], logits[1], 1e-5)) << GetParam() << ": logits";
  EXPECT_EQ(cpu.dropout_source().offset, 2u);
  EXPECT_EQ(gpu.dropout_source().offset, 2u);
  const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  for (size_t i = 0; i < pc.size(); ++i)
    EXPECT_TRUE(close(pc[i].second->grad(), pg[i].second->grad(), 1e-4))
        << GetParam() << ": gradient of " << pc[i].first;
}

INSTANTIATE_TEST_SUITE_P(GpuParity, VariantDropoutParity,
                         ::testing::Values("mha", "gqa:kv_heads=2,alibi", "mla", "flash",
                                           "flash:window=20", "window:size=20", "sparse:local=4,stride=4",
                                           "blocksparse:block=8"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name;
                           for (char ch : info.param) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return name;
                         });

// ---------------------------------------------------------------------------
// Every variant inside a GPT: the same weights on both devices give the
// same logits, loss and parameter gradients.

GPTConfig tiny_config(const std::string& attention) {
  GPTConfig c;
  c.vocab = 13;
  c.block_size = 16;
  c.layers = 2;
  c.heads = 4;
  c.embd = 32;
  c.attention = attention;
  return c;
}

class VariantParity : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantParity, GptForwardAndGradients) {
  REQUIRE_CUDA();
  const GPTConfig config = tiny_config(GetParam());
  GPT cpu(config, 7), gpu(config, 7);  // same seed: same initial weights
  gpu.to(kCuda);
  Generator gen(3);
  std::vector<int64_t> ids(2 * 16), targets(2 * 16);
  for (auto& i : ids) i = static_cast<int64_t>(gen.uniform() * config.vocab) % config.vocab;
  for (auto& t : targets) t = static_cast<int64_t>(gen.uniform() * config.vocab) % config.vocab;

  const Tensor logits_c = cpu.forward(from_ints(ids, {2, 16}));
  const Tensor logits_g = gpu.forward(from_ints(ids, {2, 16}, kCuda));
  ASSERT_TRUE(logits_g.device().is_cuda());
  EXPECT_TRUE(close(logits_c, logits_g, 1e-5)) << GetParam() << ": logits";

  const Tensor loss_c = cross_entropy(logits_c, from_ints(targets, {2, 16}));
  const Tensor loss_g = cross_entropy(logits_g, from_ints(targets, {2, 16}, kCuda));
  EXPECT_NEAR(loss_c.item(), loss_g.item(), 1e-5) << GetParam() << ": loss";
  loss_c.backward();
  loss_g.backward();
  const auto pc = cpu.named_parameters(), pg = gpu.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i)
    EXPECT_TRUE(close(pc[i].second->grad(), pg[i].second->grad(), 1e-4))
        << GetParam() << ": gradient of " << pc[i].first;
}

INSTANTIATE_TEST_SUITE_P(GpuParity, VariantParity,
                         ::testing::Values("mha", "gqa:kv_heads=2", "mqa", "mla", "flash",
                                           "window:size=4", "linear", "multiscale:windows=3,0",
                                           "performer:features=8"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name;
                           for (char ch : info.param) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return name;
                         });

// ---------------------------------------------------------------------------
// train() on both devices: same seed, same batches, same dropout masks (they
// are drawn on the host), so the logged per-step losses agree.

std::vector<double> step_losses(const fs::path& run) {
  std::vector<double> losses;
  std::ifstream f(run / "metrics.jsonl");
  std::string line;
  while (std::getline(f, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("split") == "train_step") losses.push_back(j.at("loss").get<double>());
  }
  return losses;
}

TEST(GpuParity, TrainFiveStepsSameLosses) {
  REQUIRE_CUDA();
  const fs::path dir = fs::temp_directory_path() / ("attnlab_gpu_parity_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; i < 40; ++i) text += "the cat sat on the mat. the dog sat on the log.\n";
  std::ofstream(dir / "corpus.txt") << text;

  TrainOptions o;
  o.data = (dir / "corpus.txt").string();
  o.steps = 5;
  o.batch = 4;
  o.lr = 3e-3f;
  o.warmup = 1;
  o.log_every = 1;  // one loss per step
  o.eval_every = 5;
  o.eval_batches = 1;
  o.sample_tokens = 10;  // sampling runs on the device too
  o.quiet = true;
  o.model.block_size = 16;
  o.model.layers = 2;
  o.model.heads = 2;
  o.model.embd = 32;
  o.model.dropout = 0.1f;
  o.model.attn_dropout = 0.1f;  // the attention probabilities too

  o.out = (dir / "cpu").string();
  o.device = "cpu";
  const TrainResult rc = train(o);
  o.out = (dir / "cuda").string();
  o.device = "cuda";
  const TrainResult rg = train(o);

  const std::vector<double> lc = step_losses(dir / "cpu"), lg = step_losses(dir / "cuda");
  ASSERT_EQ(lc.size(), 5u);
  ASSERT_EQ(lg.size(), 5u);
  // Rounding differences grow a little with every AdamW step; 1e-4 of a
  // loss near 3 is still far below what any real bug would change.
  for (size_t i = 0; i < lc.size(); ++i)
    EXPECT_NEAR(lc[i], lg[i], 1e-4 * std::max(1.0, std::fabs(lc[i]))) << "step " << i + 1;
  EXPECT_NEAR(rc.final_val_loss, rg.final_val_loss, 1e-3);
  // Peak memory is the GPU allocator's when training on the GPU: the model,
  // its AdamW state and the activations live there, so it is well above the
  // parameters' own bytes.
  EXPECT_GT(rg.peak_bytes, static_cast<std::size_t>(3 * 4 * rg.parameters)) << "peak " << rg.peak_bytes;
  EXPECT_GT(device_memory_stats(kCuda).allocations, 0u);
  fs::remove_all(dir);
}

}  // namespace
