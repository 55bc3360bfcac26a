// Chapter 10, advanced suite: random sweeps against a double-precision loop
// oracle written here (not the library), gradients by finite differences,
// huge and tiny inputs, T = 1, odd head counts, causality at chunk
// boundaries, O(T) memory measured with the allocator, and a tiny GPT
// trained with your causal linear attention.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "linear_attention.h"
#include "nn/gpt.h"
#include "lesson_test.h"
#include "tiny_training.h"

using namespace attn;
using namespace lesson_test;

namespace {

struct Dims {
  int64_t B, H, T, Tk, d, dv;
};

double phi(double x) { return x > 0 ? x + 1 : std::exp(x); }

// The oracle, in double, the quadratic way (no state, no chunks):
//   out_i = sum_j a_ij v_j / (sum_j a_ij + eps),  a_ij = phi(q_i) . phi(k_j)
// over all j (non-causal) or j <= i (causal). `q_scale` multiplies q first
// (1 for the real thing; the mistake tests use other values).
std::vector<double> oracle(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Dims& n,
                           bool causal, double eps = 1e-6, double q_scale = 1) {
  const std::vector<float> q = qt.to_vector(), k = kt.to_vector(), v = vt.to_vector();
  std::vector<double> out(n.B * n.H * n.T * n.dv, 0.0);
  for (int64_t bh = 0; bh < n.B * n.H; ++bh)
    for (int64_t i = 0; i < n.T; ++i) {
      const int64_t last = causal ? i : n.Tk - 1;
      double den = 0;
      std::vector<double> num(n.dv, 0.0);
      for (int64_t j = 0; j <= last; ++j) {
        double a = 0;
        for (int64_t c = 0; c < n.d; ++c)
          a += phi(q_scale * q[(bh * n.T + i) * n.d + c]) * phi(k[(bh * n.Tk + j) * n.d + c]);
        den += a;
        for (int64_t c = 0; c < n.dv; ++c) num[c] += a * v[(bh * n.Tk + j) * n.dv + c];
      }
      for (int64_t c = 0; c < n.dv; ++c) out[(bh * n.T + i) * n.dv + c] = num[c] / (den + eps);
    }
  return out;
}

struct Case {
  Dims n;
  int64_t chunk;
  const char* name;
};

// gtest prints a failing parameter with this (instead of its raw bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class LinearSweep : public ::testing::TestWithParam<Case> {};

template <class F>
double peak_extra_bytes(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  { const Tensor out = f(); }
  return static_cast<double>(cpu_allocator().stats().peak - before);
}

}  // namespace

// ---------------------------------------------------- random sweeps vs oracle

TEST_P(LinearSweep, NonCausalMatchesDoubleOracle) {
  const Case c = GetParam();
  const Dims& n = c.n;
  const Tensor q = random_tensor({n.B, n.H, n.T, n.d}, 10 + n.T), k = random_tensor({n.B, n.H, n.Tk, n.d}, 20 + n.Tk),
               v = random_tensor({n.B, n.H, n.Tk, n.dv}, 30 + n.dv);
  EXPECT_TRUE(close(std::string(c.name) + ": non-causal out",
                      lesson10::linear_attention_noncausal(q, k, v), oracle(q, k, v, n, false),
                      {n.B, n.H, n.T, n.dv}));
}

TEST_P(LinearSweep, CausalMatchesDoubleOracle) {
  const Case c = GetParam();
  Dims n = c.n;
  n.Tk = n.T;  // causal: one key per query
  const Tensor q = random_tensor({n.B, n.H, n.T, n.d}, 10 + n.T), k = random_tensor({n.B, n.H, n.T, n.d}, 40 + n.T),
               v = random_tensor({n.B, n.H, n.T, n.dv}, 50 + n.dv);
  EXPECT_TRUE(close(std::string(c.name) + ": causal out (chunk " + std::to_string(c.chunk) + ")",
                      lesson10::linear_attention_causal(q, k, v, c.chunk), oracle(q, k, v, n, true),
                      {n.B, n.H, n.T, n.dv}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearSweep,
    ::testing::Values(Case{{1, 1, 1, 1, 1, 1}, 1, "T1_d1"},
                      Case{{2, 3, 1, 4, 4, 2}, 4, "T1_three_heads"},
                      Case{{2, 3, 7, 5, 4, 3}, 3, "three_heads_chunk_not_dividing_T"},
                      Case{{1, 5, 16, 16, 8, 8}, 4, "five_heads"},
                      Case{{2, 1, 9, 12, 3, 6}, 1, "chunk1_rnn_form"},
                      Case{{1, 2, 13, 13, 5, 2}, 32, "chunk_larger_than_T"},
                      Case{{1, 2, 40, 40, 8, 4}, 16, "T40_chunk16"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ gradients

TEST(Gradients, FeatureMapGradcheck) {
  // Away from 0, where elu's second derivative jumps.
  std::vector<float> x = random_tensor({12}, 41, 2.0f).to_vector();
  for (float& e : x) e += e >= 0 ? 0.1f : -0.1f;
  const Tensor t = from_vector(x, {3, 4}).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson10::elu_feature_map(in[0]); }, {t}, 1e-3);
  EXPECT_TRUE(r.ok) << "the gradient of elu_feature_map disagrees with finite differences:\n"
                    << r.message;
}

TEST(Gradients, NonCausalGradcheck) {
  const Tensor q = random_tensor({1, 2, 4, 3}, 42).set_requires_grad(),
               k = random_tensor({1, 2, 5, 3}, 43).set_requires_grad(),
               v = random_tensor({1, 2, 5, 2}, 44).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson10::linear_attention_noncausal(in[0], in[1], in[2]);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through linear_attention_noncausal (0 = q, 1 = k, 2 = v):\n"
                    << r.message;
}

TEST(Gradients, CausalGradcheckAcrossChunks) {
  for (int64_t chunk : {1, 2}) {
    const Tensor q = random_tensor({1, 2, 5, 3}, 45).set_requires_grad(),
                 k = random_tensor({1, 2, 5, 3}, 46).set_requires_grad(),
                 v = random_tensor({1, 2, 5, 2}, 47).set_requires_grad();
    const GradcheckResult r = gradcheck(
        [chunk](const std::vector<Tensor>& in) {
          return lesson10::linear_attention_causal(in[0], in[1], in[2], chunk);
        },
        {q, k, v});
    EXPECT_TRUE(r.ok) << "gradients through linear_attention_causal, chunk " << chunk
                      << " (0 = q, 1 = k, 2 = v):\n"
                      << r.message;
  }
}

// ------------------------------------------------------------------ stability

TEST(Stability, LargePositiveInputsStayExact) {
  // phi grows only linearly (x + 1) for x > 0: no exp() to overflow, so
  // inputs of size ~100 still match the oracle (relative tolerance).
  const Dims n{1, 2, 6, 6, 4, 3};
  const Tensor q = add(abs(random_tensor({1, 2, 6, 4}, 51, 100.0f)), 1.0f),
               k = add(abs(random_tensor({1, 2, 6, 4}, 52, 100.0f)), 1.0f), v = random_tensor({1, 2, 6, 3}, 53);
  EXPECT_TRUE(close("causal out with q, k ~ 100", lesson10::linear_attention_causal(q, k, v, 4),
                      oracle(q, k, v, n, true), {1, 2, 6, 3}, 1e-3));
  EXPECT_TRUE(close("non-causal out with q, k ~ 100", lesson10::linear_attention_noncausal(q, k, v),
                      oracle(q, k, v, n, false), {1, 2, 6, 3}, 1e-3));
}

TEST(Stability, VeryNegativeQueriesGiveFiniteOutputs) {
  // phi(-200) = exp(-200) is 0 in float32: numerator and denominator are 0.
  // The eps in the denominator turns 0 / 0 into 0 instead of NaN.
  const Tensor q = full({1, 1, 4, 3}, -200.0), k = random_tensor({1, 1, 4, 3}, 54), v = random_tensor({1, 1, 4, 2}, 55);
  for (const Tensor& out : {lesson10::linear_attention_causal(q, k, v, 2),
                            lesson10::linear_attention_noncausal(q, k, v)})
    for (float x : out.to_vector())
      ASSERT_TRUE(std::isfinite(x)) << "an output is " << x << " for q = -200: phi(q) underflows "
                                    << "to 0, so divide by (phi(q) . z + eps), not by phi(q) . z";
}

// ------------------------------------------------------------------ causality

TEST(Causality, LeakAcrossAChunkBoundary) {
  // chunk 4: positions 0..3 | 4..7 | 8..9. Changing position 4 (the first of
  // the second chunk) must move nothing before it; changing 7 must not move
  // 4, 5, 6 (same chunk, earlier).
  const Tensor q = random_tensor({1, 1, 10, 4}, 61), k = random_tensor({1, 1, 10, 4}, 62), v = random_tensor({1, 1, 10, 3}, 63);
  for (int64_t changed : {4, 7}) {
    std::vector<bool> flag(10, false);
    flag[changed] = true;
    const Tensor at = from_bools(flag, {1, 1, 10, 1});
    const Tensor k2 = where(at, random_tensor({1, 1, 10, 4}, 64), k), v2 = where(at, random_tensor({1, 1, 10, 3}, 65), v);
    const std::vector<float> a = lesson10::linear_attention_causal(q, k, v, 4).to_vector();
    const std::vector<float> b = lesson10::linear_attention_causal(q, k2, v2, 4).to_vector();
    for (int64_t t = 0; t < changed; ++t)
      for (int64_t c = 0; c < 3; ++c)
        ASSERT_NEAR(a[t * 3 + c], b[t * 3 + c], 1e-5)
            << "out[" << t << "] (chunk 4) changed when only position " << changed
            << " changed. The running state must hold the EARLIER chunks only while a chunk "
               "is computed, and inside the chunk tril must hide the later keys";
  }
}

TEST(Causality, NoGradientToFutureKeys) {
  const Tensor q = random_tensor({1, 1, 7, 3}, 66).set_requires_grad(),
               k = random_tensor({1, 1, 7, 3}, 67).set_requires_grad(),
               v = random_tensor({1, 1, 7, 2}, 68).set_requires_grad();
  sum(select(lesson10::linear_attention_causal(q, k, v, 3), 2, 3)).backward();  // query 3 only
  ASSERT_TRUE(k.grad().defined() && v.grad().defined()) << "k/v.grad undefined after backward()";
  const std::vector<float> gk = k.grad().to_vector(), gv = v.grad().to_vector();
  for (int64_t j = 4; j < 7; ++j) {
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_EQ(gk[j * 3 + c], 0.0f) << "d out[3] / d k[" << j << "] is not 0: key " << j
                                     << " is in query 3's future";
    for (int64_t c = 0; c < 2; ++c)
      EXPECT_EQ(gv[j * 2 + c], 0.0f) << "d out[3] / d v[" << j << "] is not 0: value " << j
                                     << " is in query 3's future";
  }
}

// ------------------------------------------------------------------- memory

TEST(Memory, NoTxTMatrixEvenWithTheGraph) {
  // T = 2048: one T x T float matrix is 16 MiB. Linear attention keeps
  // d x dv states and chunk x chunk blocks, even for backward.
  const int64_t T = 2048;
  const Tensor q = random_tensor({1, 1, T, 8}, 71).set_requires_grad(),
               k = random_tensor({1, 1, T, 8}, 72).set_requires_grad(),
               v = random_tensor({1, 1, T, 8}, 73).set_requires_grad();
  const double txt = double(T) * T * 4;
  const double causal =
      peak_extra_bytes([&] { return lesson10::linear_attention_causal(q, k, v, 32); });
  EXPECT_LT(causal, txt / 4)
      << "linear_attention_causal at T = 2048, chunk 32 (graph kept) peaked at " << causal
      << " extra bytes; one T x T float matrix is " << txt << ". Did you form "
      << "tril(phi(Q) phi(K)^T) over the whole sequence? Only chunk x chunk blocks are allowed";
  const double noncausal =
      peak_extra_bytes([&] { return lesson10::linear_attention_noncausal(q, k, v); });
  EXPECT_LT(noncausal, txt / 4)
      << "linear_attention_noncausal at T = 2048 peaked at " << noncausal << " extra bytes; "
      << "compute phi(K)^T V first (d x dv), never phi(Q) phi(K)^T (T x T)";
}

TEST(Memory, CausalGrowsLinearlyInT) {
  auto bytes_at = [](int64_t T) {
    const Tensor q = random_tensor({1, 1, T, 8}, 74).set_requires_grad(),
                 k = random_tensor({1, 1, T, 8}, 75).set_requires_grad(),
                 v = random_tensor({1, 1, T, 8}, 76).set_requires_grad();
    return peak_extra_bytes([&] { return lesson10::linear_attention_causal(q, k, v, 32); });
  };
  const double m1 = bytes_at(1024), m2 = bytes_at(2048);
  EXPECT_LT(m2 / m1, 2.6) << "causal linear attention used " << m1 << " B at T = 1024 and " << m2
                          << " B at T = 2048 (x" << m2 / m1 << "); O(T) means about x2";
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, SoftmaxScaleCarriedOver) {
  // Linear attention has no softmax and no 1/sqrt(d): phi is applied to q
  // and k as they are.
  const Dims n{1, 1, 5, 5, 16, 2};
  const Tensor q = random_tensor({1, 1, 5, 16}, 81), k = random_tensor({1, 1, 5, 16}, 82), v = random_tensor({1, 1, 5, 2}, 83);
  const Tensor out = lesson10::linear_attention_noncausal(q, k, v);
  const bool scaled = close("", out, oracle(q, k, v, n, false, 1e-6, 0.25), {1, 1, 5, 2});
  EXPECT_TRUE(close("non-causal out with d = 16", out, oracle(q, k, v, n, false), {1, 1, 5, 2}))
      << (scaled ? "your output is what phi(q / sqrt(d)) gives: linear attention has no "
                   "1/sqrt(d) scale (that belongs to softmax's exp(q.k / sqrt(d)))"
                 : "");
}

TEST(Mistakes, FeatureMapOnlyOnQueriesOrOnlyOnKeys) {
  // phi goes on both q and k; phi(q) . k can be negative and the
  // "weights" then no longer average the values. The oracle applies phi to
  // both; a half-applied map fails here with d = 4.
  const Dims n{1, 2, 6, 6, 4, 3};
  const Tensor q = random_tensor({1, 2, 6, 4}, 84), k = random_tensor({1, 2, 6, 4}, 85), v = random_tensor({1, 2, 6, 3}, 86);
  EXPECT_TRUE(close("causal out (phi on q AND k)", lesson10::linear_attention_causal(q, k, v, 2),
                      oracle(q, k, v, n, true), {1, 2, 6, 3}))
      << "apply elu_feature_map to q and to k (and never to v)";
}

// ------------------------------------------------------------------ training

TEST(Training, YourLinearAttentionTrainsATinyGPT) {
  // "Repeat the previous token". The glue in linear_attention.cpp registers
  // "student:linear": the library's multi-head module on your causal form.
  const TinyTraining t = train_previous_token("student:linear", 2, 8, 80);
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 80 steps; a working causal linear attention halves it";
}

// ------------------------------------------------------------- GPU parity
// Your feature map and both linear attentions on CUDA tensors must give what
// they give on the CPU, gradients included. (A tril mask or a zero state you
// make inside must be on q.device().) Skipped where no GPU exists.

TEST(GpuParity, FeatureMap) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  EXPECT_TRUE(same_on_both_devices(
      "elu_feature_map(x [3, 4, 5])",
      [](const std::vector<Tensor>& in) { return lesson10::elu_feature_map(in[0]); },
      {random_tensor({3, 4, 5}, 1000, 3.0f)}, {"x"}));
}

TEST(GpuParity, NoncausalLinearAttention) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  EXPECT_TRUE(same_on_both_devices(
      "linear_attention_noncausal (T = 6, Tk = 9)",
      [](const std::vector<Tensor>& in) {
        return lesson10::linear_attention_noncausal(in[0], in[1], in[2]);
      },
      {random_tensor({2, 3, 6, 4}, 1001), random_tensor({2, 3, 9, 4}, 1002),
       random_tensor({2, 3, 9, 5}, 1003)},
      {"q", "k", "v"}));
}

TEST(GpuParity, CausalLinearAttention) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // The RNN form (chunk 1), chunks that do not divide T, one chunk for all.
  const std::vector<Tensor> qkv = {random_tensor({2, 2, 10, 4}, 1004), random_tensor({2, 2, 10, 4}, 1005),
                                   random_tensor({2, 2, 10, 3}, 1006)};
  for (int64_t chunk : {1, 3, 10}) {
    EXPECT_TRUE(same_on_both_devices(
        "linear_attention_causal (T = 10, chunk " + std::to_string(chunk) + ")",
        [chunk](const std::vector<Tensor>& in) {
          return lesson10::linear_attention_causal(in[0], in[1], in[2], chunk);
        },
        qkv, {"q", "k", "v"}));
  }
}
