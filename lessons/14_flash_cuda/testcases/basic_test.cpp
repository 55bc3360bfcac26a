// Chapter 14, basic suite: the README's worked example, shapes, the causal
// diagonal, the logsumexp, and the classic mistakes of a first flash kernel
// (a running sum that is not rescaled, a missing scale, an off-by-one causal
// test, the wrong K/V head, a logsumexp without its max). Every test needs a
// GPU and is skipped without one.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "flash_cuda.h"
#include "lesson_test.h"
#include "testcases/flash_oracle.h"

using namespace attn;
using namespace lesson_test;
using lesson14_test::attention_oracle;
using lesson14_test::Problem;

namespace {

using Basic = lesson14_test::OnGpu;
using Mistakes = lesson14_test::OnGpu;

Tensor gpu(const std::vector<float>& values, const Shape& shape) {
  return from_vector(values, shape).to(Device::cuda());
}

struct Result {
  Tensor out, lse;
};

// Random q, k, v for problem p, run through your kernel.
Result run(const Problem& p, uint64_t seed, float logit_scale, std::vector<float>* q_out,
        std::vector<float>* k_out, std::vector<float>* v_out) {
  *q_out = random_tensor({p.B, p.H, p.Tq, p.d}, seed, logit_scale).to_vector();
  *k_out = random_tensor({p.B, p.Hkv, p.Tk, p.d}, seed + 1).to_vector();
  *v_out = random_tensor({p.B, p.Hkv, p.Tk, p.d}, seed + 2).to_vector();
  lesson14::FlashCudaOptions o;
  o.causal = p.causal;
  o.offset = p.offset;
  o.window = p.window;
  Result r;
  r.out = lesson14::flash_attention_cuda(gpu(*q_out, {p.B, p.H, p.Tq, p.d}),
                                         gpu(*k_out, {p.B, p.Hkv, p.Tk, p.d}),
                                         gpu(*v_out, {p.B, p.Hkv, p.Tk, p.d}), o, &r.lse);
  return r;
}

}  // namespace

TEST_F(Basic, WorkedExampleFromTheReadme) {
  // T = 3, d = 4, causal, scale 1/2 (README, "A worked example").
  const Tensor q = gpu({2, 0, 0, 0, /**/ 0, 2, 0, 0, /**/ 2, 2, 0, 0}, {1, 1, 3, 4});
  const Tensor k = gpu({1, 0, 0, 0, /**/ 0, 1, 0, 0, /**/ 1, 1, 0, 0}, {1, 1, 3, 4});
  const Tensor v = gpu({1, 0, 0, 0, /**/ 0, 1, 0, 0, /**/ 1, 1, 1, 1}, {1, 1, 3, 4});
  Tensor lse;
  const Tensor out = lesson14::flash_attention_cuda(q, k, v, {}, &lse);
  EXPECT_TRUE(close("out", out,
                    {1, 0, 0, 0, /**/ 0.268941, 0.731059, 0, 0, /**/ 0.788080, 0.788080, 0.576117, 0.576117},
                    {1, 1, 3, 4}));
  EXPECT_TRUE(close("lse", lse, {1.0, 1.313262, 2.551445}, {1, 1, 3}));
}

TEST_F(Basic, ShapesOfOutputAndLogsumexp) {
  Problem p;
  p.B = 2, p.H = 4, p.Hkv = 2, p.Tq = 5, p.Tk = 7, p.d = 16, p.offset = 2;
  std::vector<float> q, k, v;
  const Result r = run(p, 10, 1.0f, &q, &k, &v);
  ASSERT_TRUE(r.out.defined() && r.lse.defined());
  EXPECT_EQ(r.out.shape(), (Shape{2, 4, 5, 16}));
  EXPECT_EQ(r.lse.shape(), (Shape{2, 4, 5}));
}

TEST_F(Basic, FirstCausalRowCopiesTheFirstValue) {
  // Row 0 may only see key 0: its weight is 1, out = v[0], lse = the score.
  Problem p;
  p.Tq = p.Tk = 6, p.d = 8;
  std::vector<float> q, k, v;
  const Result r = run(p, 20, 1.0f, &q, &k, &v);
  const std::vector<double> out = values(r.out), lse = values(r.lse);
  double score = 0;
  for (int f = 0; f < 8; ++f) score += double(q[f]) * k[f];
  score /= std::sqrt(8.0);
  for (int f = 0; f < 8; ++f)
    EXPECT_NEAR(out[f], v[f], 1e-5) << "row 0, feature " << f << ": row 0 sees only key 0";
  EXPECT_NEAR(lse[0], score, 1e-5) << "row 0's logsumexp is its only score";
}

TEST_F(Basic, SmallCausalAndFullMatchTheLoops) {
  for (const bool causal : {true, false}) {
    Problem p;
    p.H = 2, p.Hkv = 2, p.Tq = p.Tk = 9, p.d = 8, p.causal = causal;
    std::vector<float> q, k, v;
    const Result r = run(p, 30, 1.0f, &q, &k, &v);
    const auto e = attention_oracle(p, q, k, v);
    const char* what = causal ? "causal out" : "non-causal out";
    EXPECT_TRUE(close(what, r.out, e.out, {1, 2, 9, 8}));
    EXPECT_TRUE(close(causal ? "causal lse" : "non-causal lse", r.lse, e.lse, {1, 2, 9}));
  }
}

TEST_F(Basic, OneQueryOneKey) {
  Problem p;
  p.Tq = p.Tk = 1, p.d = 3;
  std::vector<float> q, k, v;
  const Result r = run(p, 40, 1.0f, &q, &k, &v);
  EXPECT_TRUE(close("T = 1", r.out, {v[0], v[1], v[2]}, {1, 1, 1, 3}));
}

TEST_F(Mistakes, RunningSumNotRescaled) {
  // Scores grow with the key index, so every new key tile brings a larger
  // max. The running sum l must be multiplied by exp(m_old - m_new) like the
  // accumulator; forgetting it leaves l too large and the output too small.
  Problem p;
  p.Tq = 1, p.Tk = 130, p.d = 4, p.causal = false;
  std::vector<float> q = {1, 0, 0, 0}, k(p.Tk * 4, 0.0f), v(p.Tk * 4, 0.0f);
  for (int64_t j = 0; j < p.Tk; ++j) {
    k[j * 4] = 0.05f * j;  // score j / 40
    v[j * 4 + 1] = 1.0f;   // every value row is [0, 1, 0, 0]: out must be too
  }
  const Tensor out = lesson14::flash_attention_cuda(gpu(q, {1, 1, 1, 4}), gpu(k, {1, 1, p.Tk, 4}),
                                                    gpu(v, {1, 1, p.Tk, 4}), {false, 0, 0, 0});
  const std::vector<double> o = values(out);
  EXPECT_NEAR(o[1], 1.0, 1e-4)
      << "every value row is [0, 1, 0, 0], so the output must be exactly that, got " << o[1]
      << " for feature 1: the weights do not sum to 1. When the running max grows, rescale "
         "the running sum l as well as the accumulator by exp(m_old - m_new)";
}

TEST_F(Mistakes, MissingOneOverSqrtDScale) {
  Problem p;
  p.Tq = p.Tk = 4, p.d = 16;
  std::vector<float> q, k, v;
  const Result r = run(p, 50, 1.0f, &q, &k, &v);
  const auto e = attention_oracle(p, q, k, v);
  Problem unscaled = p;
  unscaled.scale = 1.0;
  const auto wrong = attention_oracle(unscaled, q, k, v);
  const double got = values(r.lse)[3];
  EXPECT_NEAR(got, e.lse[3], 1e-4)
      << (std::fabs(got - wrong.lse[3]) < 1e-3
              ? "your scores are sqrt(d) = 4x too large: multiply q . k by a.scale"
              : "the last row's logsumexp is wrong");
}

TEST_F(Mistakes, CausalDiagonalOffByOne) {
  // Value row j is the one-hot e_j: out[i][j] is the weight row i gives key
  // j. Key i itself must get weight (diagonal included), key i+1 none.
  Problem p;
  p.Tq = p.Tk = 4, p.d = 4;
  std::vector<float> q(16, 0.0f), k(16, 0.0f), v(16, 0.0f);
  for (int j = 0; j < 4; ++j) v[j * 4 + j] = 1.0f;
  const Tensor out = lesson14::flash_attention_cuda(gpu(q, {1, 1, 4, 4}), gpu(k, {1, 1, 4, 4}),
                                                    gpu(v, {1, 1, 4, 4}));
  // All scores are 0: row i spreads 1/(i+1) over keys 0..i.
  std::vector<double> want(16, 0.0);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j <= i; ++j) want[i * 4 + j] = 1.0 / (i + 1);
  EXPECT_TRUE(close("weights given to each key (row i, key j)", out, want, {1, 1, 4, 4}))
      << "row i must see keys 0..i: key i itself included, key i+1 excluded (j <= offset + i)";
}

TEST_F(Mistakes, WrongKvHeadForGroupedQueries) {
  // 4 query heads, 2 K/V heads: heads 0, 1 read K/V head 0 and heads 2, 3
  // read K/V head 1 (h / group), not h % Hkv. V head g holds the value g.
  const int64_t H = 4, Hkv = 2, T = 3, d = 2;
  std::vector<float> v;
  for (int64_t g = 0; g < Hkv; ++g)
    for (int64_t i = 0; i < T * d; ++i) v.push_back(static_cast<float>(g));
  const Tensor q = random_tensor({1, H, T, d}, 60).to(Device::cuda());
  const Tensor k = random_tensor({1, Hkv, T, d}, 61).to(Device::cuda());
  const std::vector<double> out =
      values(lesson14::flash_attention_cuda(q, k, gpu(v, {1, Hkv, T, d})));
  std::vector<double> read(H);
  for (int64_t h = 0; h < H; ++h) read[h] = out[h * T * d];
  EXPECT_EQ(read, (std::vector<double>{0, 0, 1, 1}))
      << "query heads 0..3 read K/V heads [" << read[0] << ", " << read[1] << ", " << read[2]
      << ", " << read[3] << "]: query head h reads K/V head h / (H / Hkv)";
}

TEST_F(Mistakes, LogsumexpWithoutTheMax) {
  // Large scores: lse = m + log(l) where l was summed relative to m. Saving
  // log(l) alone loses m; the backward then computes wrong weights.
  Problem p;
  p.Tq = p.Tk = 5, p.d = 8;
  std::vector<float> q, k, v;
  const Result r = run(p, 70, 30.0f, &q, &k, &v);
  const auto e = attention_oracle(p, q, k, v);
  EXPECT_TRUE(close("lse with large scores", r.lse, e.lse, {1, 1, 5}, 1e-4))
      << "lse must be m + log(l), the running max plus the log of the rescaled sum";
}
