// Chapter 14, advanced suite: random problems of every shape the contract
// allows against the double-precision loops (head dims 1..128, lengths that
// are not multiples of a tile, GQA, decoding offsets, windows, rows without
// keys), huge logits, gradients through the library's backward fed by your
// forward, the memory your kernel needs, and a GPT running on your kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "flash_cuda.h"
#include "lesson_test.h"
#include "nn/gpt.h"
#include "testcases/flash_oracle.h"

using namespace attn;
using namespace lesson_test;
using lesson14_test::attention_oracle;
using lesson14_test::Problem;

namespace {

using Advanced = lesson14_test::OnGpu;

struct Case {
  std::string name;
  Problem p;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

Problem make(int64_t B, int64_t H, int64_t Hkv, int64_t Tq, int64_t Tk, int64_t d, bool causal,
             int64_t offset = 0, int64_t window = 0) {
  Problem p;
  p.B = B, p.H = H, p.Hkv = Hkv, p.Tq = Tq, p.Tk = Tk, p.d = d, p.causal = causal;
  p.offset = offset, p.window = window;
  return p;
}

lesson14::FlashCudaOptions options_of(const Problem& p) {
  lesson14::FlashCudaOptions o;
  o.causal = p.causal;
  o.offset = p.offset;
  o.window = p.window;
  return o;
}

class Sweep : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: chapter 14's suites run where a GPU exists";
  }
};

}  // namespace

TEST_P(Sweep, MatchesTheLoops) {
  const Problem& p = GetParam().p;
  const Tensor q = random_tensor({p.B, p.H, p.Tq, p.d}, 100 + p.d);
  const Tensor k = random_tensor({p.B, p.Hkv, p.Tk, p.d}, 200 + p.Tk);
  const Tensor v = random_tensor({p.B, p.Hkv, p.Tk, p.d}, 300 + p.Tq);
  const auto e = attention_oracle(p, q.to_vector(), k.to_vector(), v.to_vector());
  Tensor lse;
  const Tensor out = lesson14::flash_attention_cuda(q.to(Device::cuda()), k.to(Device::cuda()),
                                                    v.to(Device::cuda()), options_of(p), &lse);
  EXPECT_TRUE(close("out", out, e.out, {p.B, p.H, p.Tq, p.d}, 2e-4));
  EXPECT_TRUE(close("lse", lse, e.lse, {p.B, p.H, p.Tq}, 2e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Sweep,
    ::testing::Values(Case{"d1", make(1, 2, 2, 7, 7, 1, true)},
                      Case{"d16_T33", make(2, 3, 3, 33, 33, 16, true)},
                      Case{"d64_T100", make(1, 2, 1, 100, 100, 64, true)},
                      Case{"d80_full", make(1, 2, 2, 45, 70, 80, false)},
                      Case{"d128_T129", make(1, 2, 2, 129, 129, 128, true)},
                      Case{"d127_odd", make(1, 1, 1, 40, 40, 127, true)},
                      Case{"gqa_6_over_2", make(2, 6, 2, 37, 37, 32, true)},
                      Case{"mqa", make(1, 4, 1, 20, 20, 16, true)},
                      Case{"decode_one_row", make(2, 4, 2, 1, 77, 64, true, 76)},
                      Case{"prefill_offset", make(1, 2, 2, 10, 50, 32, true, 40)},
                      Case{"window_8", make(1, 2, 2, 70, 70, 32, true, 0, 8)},
                      Case{"window_offset", make(1, 2, 1, 9, 60, 16, true, 51, 20)},
                      Case{"rows_without_keys", make(1, 1, 1, 4, 4, 8, true, 10, 2)}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST_F(Advanced, HugeLogitsStayFinite) {
  // Scores in the thousands: exp overflows unless every exponent is taken
  // relative to the running max.
  const Problem p = make(1, 2, 2, 70, 70, 32, true);
  const Tensor q = random_tensor({1, 2, 70, 32}, 400, 300.0f);
  const Tensor k = random_tensor({1, 2, 70, 32}, 401), v = random_tensor({1, 2, 70, 32}, 402);
  const auto e = attention_oracle(p, q.to_vector(), k.to_vector(), v.to_vector());
  Tensor lse;
  const Tensor out = lesson14::flash_attention_cuda(q.to(Device::cuda()), k.to(Device::cuda()),
                                                    v.to(Device::cuda()), {}, &lse);
  EXPECT_TRUE(close("out with scores ~ 1000", out, e.out, {1, 2, 70, 32}, 1e-3))
      << "subtract the running max before every exp";
  EXPECT_TRUE(close("lse with scores ~ 1000", lse, e.lse, {1, 2, 70}, 1e-4));
}

TEST_F(Advanced, GradientsThroughTheLibraryBackwardMatchTheCpu) {
  // The backward recomputes the weights from your lse: exp(s - lse). If out
  // or lse is off, dq, dk and dv are too. Checked against the CPU flash op.
  const int64_t B = 1, H = 4, Hkv = 2, T = 50, d = 32;
  const Tensor q = random_tensor({B, H, T, d}, 500), k = random_tensor({B, Hkv, T, d}, 501),
               v = random_tensor({B, Hkv, T, d}, 502), w = random_tensor({B, H, T, d}, 503);
  std::vector<std::vector<double>> grads[2];
  for (int on_gpu = 0; on_gpu < 2; ++on_gpu) {
    const Device dev = on_gpu ? Device::cuda() : Device::cpu();
    Tensor qd = q.to(dev).set_requires_grad(), kd = k.to(dev).set_requires_grad(),
           vd = v.to(dev).set_requires_grad();
    const Tensor out = on_gpu ? lesson14::flash_attention_cuda(qd, kd, vd)
                              : flash_attention(qd, kd, vd, FlashOptions{});
    sum(mul(out, w.to(dev))).backward();
    grads[on_gpu] = {values(qd.grad()), values(kd.grad()), values(vd.grad())};
  }
  const char* names[] = {"dq", "dk", "dv"};
  const Shape shapes[] = {{B, H, T, d}, {B, Hkv, T, d}, {B, Hkv, T, d}};
  for (int g = 0; g < 3; ++g) {
    Tensor got = from_vector(std::vector<float>(grads[1][g].begin(), grads[1][g].end()), shapes[g]);
    EXPECT_TRUE(close(names[g], got, grads[0][g], shapes[g], 1e-3));
  }
}

TEST_F(Advanced, MemoryStaysLinearInT) {
  // T = 4096: the score matrix alone would be 64 MiB. Your forward may use
  // the output and lse, nothing of size T x T.
  const int64_t T = 4096, d = 64;
  const Tensor q = random_tensor({1, 1, T, d}, 600).to(Device::cuda());
  const Tensor k = random_tensor({1, 1, T, d}, 601).to(Device::cuda());
  const Tensor v = random_tensor({1, 1, T, d}, 602).to(Device::cuda());
  device_synchronize(Device::cuda());
  const std::size_t before = device_memory_stats(Device::cuda()).current;
  reset_device_peak(Device::cuda());
  Tensor out;
  {
    NoGradGuard no_grad;
    out = lesson14::flash_attention_cuda(q, k, v);
  }
  const double extra = double(device_memory_stats(Device::cuda()).peak - before);
  const double scores = double(T) * T * sizeof(float);
  EXPECT_GT(out.numel(), 0);
  EXPECT_LT(extra, scores / 16) << "the forward took " << extra / (1 << 20)
                                << " MiB above its inputs; the T x T scores would be "
                                << scores / (1 << 20) << " MiB";
}

TEST_F(Advanced, HeadDimAbove128IsRefused) {
  const Tensor q = random_tensor({1, 1, 4, 130}, 700).to(Device::cuda());
  EXPECT_TRUE(rejects("head dim 130", [&] { lesson14::flash_attention_cuda(q, q, q); },
                      "the contract covers head dims 1..128; check a.dim before launching"));
}

TEST_F(Advanced, AGptRunsOnYourKernel) {
  // The same GPT (same seed, so the same weights) with the library's dense
  // attention on the CPU and with "student:flash_cuda" on the GPU: the
  // same logits, loss and gradients.
  GPTConfig c;
  c.vocab = 11, c.block_size = 40, c.layers = 2, c.heads = 4, c.embd = 32;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 2 * 40; ++i) ids.push_back((i * 7 + 3) % 11);
  const Tensor x = from_ints(ids, {2, 40});
  std::vector<double> loss(2), grad(2);
  for (int on_gpu = 0; on_gpu < 2; ++on_gpu) {
    c.attention = on_gpu ? "student:flash_cuda" : "mha";
    GPT model(c, 42);
    const Device dev = on_gpu ? Device::cuda() : Device::cpu();
    model.to(dev);
    const Tensor l = cross_entropy(model.forward(x.to(dev)), x.to(dev));
    l.backward();
    loss[on_gpu] = l.item();
    grad[on_gpu] = values(model.parameters()[0]->grad())[5];
  }
  EXPECT_NEAR(loss[1], loss[0], 1e-4) << "the GPT's loss on your kernel differs from dense attention";
  EXPECT_NEAR(grad[1], grad[0], 1e-4) << "a gradient of the GPT on your kernel differs";
}
