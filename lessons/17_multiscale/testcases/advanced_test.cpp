// Chapter 17, advanced suite: random shapes against a double-precision loop
// oracle, gradcheck, huge scores, causality at each group's window edge,
// generation through the windowed cache against full recomputation, the
// cache's bytes measured by the allocator, and a tiny GPT trained on your
// code through "student:multiscale".
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "lesson_test.h"
#include "tiny_training.h"
#include "multiscale.h"
#include "nn/gpt.h"

using namespace attn;
using namespace lesson_test;

namespace {

struct Case {
  int64_t B, H, Tq, d, offset;
  std::vector<int64_t> windows;
};

std::string describe(const Case& c) {
  std::string w;
  for (int64_t x : c.windows) {
    if (!w.empty()) w += ',';
    w += std::to_string(x);
  }
  return "B=" + std::to_string(c.B) + " H=" + std::to_string(c.H) + " Tq=" + std::to_string(c.Tq) +
         " d=" + std::to_string(c.d) + " offset=" + std::to_string(c.offset) + " windows=" + w;
}

// Head h takes windows[h / (H / n)]; query i at p = offset + i reads keys
// max(0, p - W + 1) .. p (0 .. p when W = 0). Plain loops in double.
std::vector<double> oracle(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v) {
  const int64_t tk = c.offset + c.Tq, per = c.H / static_cast<int64_t>(c.windows.size());
  std::vector<double> out(c.B * c.H * c.Tq * c.d, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t w = c.windows[h / per];
      const int64_t bh = b * c.H + h;
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t p = c.offset + i, first = w == 0 ? 0 : std::max<int64_t>(0, p - w + 1);
        std::vector<double> s;
        double m = -1e300;
        for (int64_t j = first; j <= p; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e) dot += double(q[(bh * c.Tq + i) * c.d + e]) * k[(bh * tk + j) * c.d + e];
          s.push_back(dot / std::sqrt(double(c.d)));
          m = std::max(m, s.back());
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - m));
        for (int64_t j = first; j <= p; ++j)
          for (int64_t e = 0; e < c.d; ++e)
            out[(bh * c.Tq + i) * c.d + e] += s[j - first] / z * v[(bh * tk + j) * c.d + e];
      }
    }
  return out;
}

Tensor run_masked(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v) {
  return lesson17::multiscale_attention_masked(q, k, v, lesson17::scale_groups(c.H, c.windows), c.offset);
}

}  // namespace

// ------------------------------------------------------------------ sweeps

TEST(Oracle, RandomShapesWindowsAndOffsets) {
  const std::vector<Case> cases = {
      {1, 1, 1, 4, 0, {1}},           {2, 3, 7, 5, 0, {2, 4, 0}},    {1, 4, 9, 8, 0, {8, 0}},
      {2, 6, 5, 3, 4, {1, 3, 0}},     {1, 8, 12, 4, 0, {2, 4, 8, 0}}, {1, 2, 3, 6, 9, {4, 0}},
      {3, 4, 6, 2, 2, {5, 5, 1, 0}},  {1, 6, 10, 4, 0, {3, 0}},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const int64_t tk = c.offset + c.Tq;
    const Tensor q = random_tensor({c.B, c.H, c.Tq, c.d}, seed++), k = random_tensor({c.B, c.H, tk, c.d}, seed++),
                 v = random_tensor({c.B, c.H, tk, c.d}, seed++);
    EXPECT_TRUE(close(describe(c), run_masked(c, q, k, v), oracle(c, q.to_vector(), k.to_vector(), v.to_vector()),
                      {c.B, c.H, c.Tq, c.d}));
  }
}

TEST(Oracle, HugeScoresStayFinite) {
  // Scores near +-1000: a softmax without the max subtracted overflows.
  const Case c{1, 2, 6, 4, 0, {2, 0}};
  const Tensor q = random_tensor({1, 2, 6, 4}, 7, 30.0f), k = random_tensor({1, 2, 6, 4}, 8, 30.0f),
               v = random_tensor({1, 2, 6, 4}, 9);
  EXPECT_TRUE(close("scores near +-1000", run_masked(c, q, k, v),
                    oracle(c, q.to_vector(), k.to_vector(), v.to_vector()), {1, 2, 6, 4}, 1e-3));
}

TEST(Gradcheck, MaskedPathWithTwoScales) {
  const auto groups = lesson17::scale_groups(4, {2, 0});
  const Tensor q = random_tensor({1, 4, 5, 3}, 21).set_requires_grad();
  const Tensor k = random_tensor({1, 4, 5, 3}, 22).set_requires_grad();
  const Tensor v = random_tensor({1, 4, 5, 3}, 23).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [groups](const auto& in) { return lesson17::multiscale_attention_masked(in[0], in[1], in[2], groups); },
      {q, k, v});
  EXPECT_TRUE(r.ok) << r.message;
}

// ------------------------------------------------------------------ causality

TEST(Causality, AKeyJustOutsideAGroupsWindowIsIgnored) {
  // Heads 0-1 window 3, heads 2-3 full. Changing key 2 must leave query 5
  // of heads 0-1 alone (5 - 3 = 2 is out) and move query 5 of heads 2-3.
  const auto groups = lesson17::scale_groups(4, {3, 0});
  const Tensor q = random_tensor({1, 4, 6, 4}, 31), k = random_tensor({1, 4, 6, 4}, 32), v = random_tensor({1, 4, 6, 4}, 33);
  std::vector<bool> at2(6, false);
  at2[2] = true;
  const Tensor mask = from_bools(at2, {1, 1, 6, 1});
  const Tensor k2 = where(mask, random_tensor({1, 4, 6, 4}, 34), k), v2 = where(mask, random_tensor({1, 4, 6, 4}, 35), v);
  const std::vector<float> a = lesson17::multiscale_attention_masked(q, k, v, groups).to_vector();
  const std::vector<float> b = lesson17::multiscale_attention_masked(q, k2, v2, groups).to_vector();
  auto at = [](int64_t h, int64_t i, int64_t e) { return (h * 6 + i) * 4 + e; };
  for (int64_t h : {0, 1})
    for (int64_t e = 0; e < 4; ++e)
      ASSERT_NEAR(a[at(h, 5, e)], b[at(h, 5, e)], 1e-6)
          << "head " << h << " (window 3): query 5 changed when only key 2 changed";
  double moved = 0;
  for (int64_t h : {2, 3})
    for (int64_t e = 0; e < 4; ++e) moved += std::fabs(a[at(h, 5, e)] - b[at(h, 5, e)]);
  EXPECT_GT(moved, 1e-4) << "heads 2-3 (full) must see key 2 from query 5";
}

TEST(Causality, FutureTokensChangeNothing) {
  const auto groups = lesson17::scale_groups(2, {2, 0});
  const Tensor q = random_tensor({1, 2, 7, 3}, 41), k = random_tensor({1, 2, 7, 3}, 42), v = random_tensor({1, 2, 7, 3}, 43);
  const Tensor head = lesson17::multiscale_attention_masked(narrow(q, 2, 0, 4), narrow(k, 2, 0, 4), narrow(v, 2, 0, 4), groups);
  EXPECT_TRUE(close("the first 4 outputs of 7 tokens vs of the first 4 tokens alone",
                    narrow(lesson17::multiscale_attention_masked(q, k, v, groups), 2, 0, 4), head));
}

// ------------------------------------------------------------------ the cache

TEST(WindowedCache, GenerationEqualsFullRecomputation) {
  // Prefill 5 tokens, then one at a time, then 3 at a time, over windows
  // 1, 3, 6 and full: every step's outputs equal the rows of attention over
  // the whole sequence.
  const int64_t T = 20;
  const auto groups = lesson17::scale_groups(8, {1, 3, 6, 0});
  const Tensor q = random_tensor({2, 8, T, 4}, 51), k = random_tensor({2, 8, T, 4}, 52), v = random_tensor({2, 8, T, 4}, 53);
  const Tensor whole = lesson17::multiscale_attention_masked(q, k, v, groups);
  lesson17::WindowedCache cache(groups);
  int64_t s = 0;
  for (int64_t step : {5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3}) {
    cache.append(narrow(k, 2, s, step), narrow(v, 2, s, step));
    ASSERT_TRUE(close("tokens " + std::to_string(s) + ".." + std::to_string(s + step - 1) + " through the cache",
                      lesson17::attend_cached(narrow(q, 2, s, step), cache), narrow(whole, 2, s, step)));
    s += step;
  }
  ASSERT_EQ(s, T);
}

TEST(WindowedCache, BytesMeasuredByTheAllocatorMatchTheFormula) {
  // 6 heads of d = 16 in groups of 2 with windows 4, 8 and full, 40 tokens
  // one at a time. Kept keys per head: 4, 8 and 40. Formula:
  // B * 2 heads * (4 + 8 + 40) * d * 2 (K, V) * 4 bytes = 13312 bytes, and
  // the allocator's live bytes grow by exactly that (each block a multiple of 512).
  const auto groups = lesson17::scale_groups(6, {4, 8, 0});
  const std::size_t before = cpu_allocator().stats().current;
  std::size_t measured = 0, reported = 0;
  {
    lesson17::WindowedCache cache(groups);
    for (int64_t t = 0; t < 40; ++t) cache.append(random_tensor({1, 6, 1, 16}, 70 + t), random_tensor({1, 6, 1, 16}, 170 + t));
    measured = cpu_allocator().stats().current - before;
    reported = cache.bytes();
  }
  const std::size_t formula = 1 * 2 * (4 + 8 + 40) * 16 * 2 * sizeof(float);
  EXPECT_EQ(reported, formula) << "cache.bytes(): kept keys per head must be min(t, W) for W > 0, t for W = 0";
  EXPECT_EQ(measured, formula)
      << "live bytes after 40 tokens: the cache must hold only what it keeps (no views of the "
         "appended tensors, no old buffers kept alive)";
}

TEST(WindowedCache, WindowedGroupsStayFlatAsTheSequenceGrows) {
  // Only the full group grows: from 100 to 200 tokens the bytes grow by
  // 100 tokens x 1 full head x d 4 x 2 x 4 bytes = 3200.
  lesson17::WindowedCache cache(lesson17::scale_groups(3, {2, 16, 0}));
  std::size_t at100 = 0;
  for (int64_t t = 0; t < 200; ++t) {
    cache.append(random_tensor({1, 3, 1, 4}, 300 + t), random_tensor({1, 3, 1, 4}, 600 + t));
    if (t == 99) at100 = cache.bytes();
  }
  EXPECT_EQ(cache.bytes() - at100, 3200u);
  EXPECT_EQ(at100, (2u + 16u + 100u) * 4u * 2u * 4u);
}

// ------------------------------------------------------------------ training

TEST(Training, YourMultiscaleTrainsATinyGPT) {
  // "Repeat the previous token": the window-2 heads solve it alone; the
  // full heads ride along. "student:multiscale" is the library's multi-head
  // module on your scale_groups and masked path.
  const TinyTraining t = train_previous_token("student:multiscale:windows=2,0");
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last << " in 60 steps";
}
