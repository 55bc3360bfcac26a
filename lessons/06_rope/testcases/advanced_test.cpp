// Chapter 06, advanced suite: tables, rotations and rope attention against
// double-precision loops written here (head sizes 2 to 64, offsets up to
// 60000, NTK scales, GQA/MQA, dv != d), the relative-position property far
// from 0, gradcheck through apply_rope and rope_attention, scores near 1000,
// edge cases (T = 1, d = 2, odd d), angles rounded to float at large
// positions, your rope_attention decoding inside the library's GPT with its
// cache, and a tiny GPT trained on it through "student:rope".
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"
#include "nn/gpt.h"
#include "rope.h"

using namespace attn;

namespace {

using lesson_test::close;
using lesson_test::rejects;
using lesson_test::values;

Tensor rnd(const Shape& s, uint64_t seed, float scale = 1.0f) {
  return lesson_test::random_tensor(s, seed, scale);
}

// The NTK base, written out: base * scale^(d / (d - 2)); d = 2: scale^2.
double ntk(double base, double scale, int64_t d) {
  return base * std::pow(scale, d == 2 ? 2.0 : double(d) / (d - 2));
}

// Angle of pair i at position p in double.
double angle(int64_t p, int64_t i, int64_t d, double base) {
  return static_cast<double>(p) * std::pow(base, -2.0 * i / d);
}

// RoPE in double, half-split: rows of x [..., T, d] at positions offset + t.
std::vector<double> rotate(const std::vector<double>& x, int64_t T, int64_t d, int64_t offset,
                           double base) {
  std::vector<double> y(x.size());
  const int64_t half = d / 2;
  for (std::size_t r = 0; r < x.size() / d; ++r)
    for (int64_t i = 0; i < half; ++i) {
      const double a = angle(offset + static_cast<int64_t>(r) % T, i, d, base);
      const double x1 = x[r * d + i], x2 = x[r * d + i + half];
      y[r * d + i] = x1 * std::cos(a) - x2 * std::sin(a);
      y[r * d + i + half] = x1 * std::sin(a) + x2 * std::cos(a);
    }
  return y;
}

// Grouped causal attention of rotated q (positions offset..) and k
// (positions 0..), V untouched, in double.
std::vector<double> attention_oracle(const Tensor& q, const Tensor& k, const Tensor& v,
                                     int64_t offset, double base) {
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
  const int64_t Hkv = k.shape()[1], Tk = k.shape()[2], dv = v.shape()[3];
  const std::vector<double> Q = rotate(values(q), Tq, d, offset, base);
  const std::vector<double> K = rotate(values(k), Tk, d, 0, base), V = values(v);
  std::vector<double> out(B * H * Tq * dv, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t kh = b * Hkv + h / (H / Hkv), row = (b * H + h) * Tq + i;
        const int64_t seen = std::min(Tk, offset + i + 1);
        std::vector<double> w(seen);
        double mx = -INFINITY, z = 0;
        for (int64_t j = 0; j < seen; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += Q[row * d + c] * K[(kh * Tk + j) * d + c];
          mx = std::max(mx, w[j] = dot / std::sqrt(double(d)));
        }
        for (double& e : w) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j < seen; ++j)
          for (int64_t c = 0; c < dv; ++c) out[row * dv + c] += w[j] / z * V[(kh * Tk + j) * dv + c];
      }
  return out;
}

struct TableCase {
  int64_t T, d, offset;
  double base, scale;
  const char* name;
};
void PrintTo(const TableCase& c, std::ostream* os) { *os << c.name; }
class TableSweep : public ::testing::TestWithParam<TableCase> {};

struct AttnCase {
  int64_t B, H, Hkv, Tq, offset, d, dv;
  double base, scale;
  const char* name;
};
void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }
class AttentionSweep : public ::testing::TestWithParam<AttnCase> {};

}  // namespace

// -------------------------------------------------- random sweeps vs oracle

TEST_P(TableSweep, TablesAndRotationMatchTheDoubleOracle) {
  const TableCase c = GetParam();
  const lesson06::RopeTables t = lesson06::rope_tables(c.T, c.d, c.offset, c.base, c.scale);
  const double b = ntk(c.base, c.scale, c.d);
  std::vector<double> cw, sw;
  for (int64_t r = 0; r < c.T; ++r)
    for (int64_t i = 0; i < c.d / 2; ++i) {
      cw.push_back(std::cos(angle(c.offset + r, i, c.d, b)));
      sw.push_back(std::sin(angle(c.offset + r, i, c.d, b)));
    }
  // Absolute error 1e-5 at most: the angles must be exact in double before
  // rounding cos and sin to float.
  EXPECT_TRUE(close(std::string(c.name) + ": cos table", t.cos, cw, {c.T, c.d / 2}, 1e-5));
  EXPECT_TRUE(close(std::string(c.name) + ": sin table", t.sin, sw, {c.T, c.d / 2}, 1e-5));
  const Tensor x = rnd({2, 3, c.T, c.d}, 40 + c.d);
  EXPECT_TRUE(close(std::string(c.name) + ": apply_rope", lesson06::apply_rope(x, t),
                    rotate(values(x), c.T, c.d, c.offset, b), {2, 3, c.T, c.d}, 1e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, TableSweep,
    ::testing::Values(TableCase{1, 2, 0, 10000, 1, "one_position_d2"},
                      TableCase{7, 8, 3, 10000, 1, "d8_offset3"},
                      TableCase{5, 64, 0, 10000, 1, "d64"},
                      TableCase{4, 16, 1000, 500000, 1, "llama3_base"},
                      TableCase{6, 32, 20, 10000, 4, "ntk_scale4"},
                      TableCase{3, 6, 60000, 10000, 2.5, "far_positions_ntk"}),
    [](const ::testing::TestParamInfo<TableCase>& i) { return std::string(i.param.name); });

TEST_P(AttentionSweep, RopeAttentionMatchesTheDoubleOracle) {
  const AttnCase c = GetParam();
  const int64_t Tk = c.offset + c.Tq;
  const Tensor q = rnd({c.B, c.H, c.Tq, c.d}, 50 + c.H), k = rnd({c.B, c.Hkv, Tk, c.d}, 60 + Tk),
               v = rnd({c.B, c.Hkv, Tk, c.dv}, 70 + c.dv);
  Tensor w;
  const Tensor out = lesson06::rope_attention(q, k, v, c.offset, c.base, c.scale, &w);
  EXPECT_TRUE(close(std::string(c.name) + ": output", out,
                    attention_oracle(q, k, v, c.offset, ntk(c.base, c.scale, c.d)), {c.B, c.H, c.Tq, c.dv}));
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{c.B, c.H, c.Tq, Tk}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionSweep,
    ::testing::Values(AttnCase{1, 1, 1, 1, 0, 2, 1, 10000, 1, "one_token_d2"},
                      AttnCase{2, 4, 2, 6, 0, 8, 3, 10000, 1, "gqa_prefill"},
                      AttnCase{1, 6, 3, 1, 9, 8, 8, 10000, 1, "six_heads_decode"},
                      AttnCase{2, 5, 5, 3, 4, 4, 2, 100, 1, "five_heads_chunk_base100"},
                      AttnCase{1, 7, 1, 2, 5, 16, 5, 10000, 8, "seven_heads_mqa_ntk8"}),
    [](const ::testing::TestParamInfo<AttnCase>& i) { return std::string(i.param.name); });

// ------------------------------------------------------- relative position

TEST(RelativePosition, HoldsFarFromZeroAndForEveryDistance) {
  // Scores of q at m against k at n, for every pair up to 12 positions,
  // shifted by 40000: only m - n may matter.
  const int64_t d = 16;
  const Tensor q = rnd({1, d}, 80), k = rnd({1, d}, 81);
  auto dot = [&](int64_t m, int64_t n) {
    const std::vector<double> a = values(lesson06::apply_rope(q, lesson06::rope_tables(1, d, m)));
    const std::vector<double> b = values(lesson06::apply_rope(k, lesson06::rope_tables(1, d, n)));
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += a[c] * b[c];
    return s;
  };
  for (int64_t m = 0; m < 12; m += 3)
    for (int64_t n = 0; n <= m; n += 2) {
      const double near = dot(m, n), far = dot(m + 40000, n + 40000);
      EXPECT_NEAR(far, near, 1e-3 * (1 + std::fabs(near)))
          << "q at " << m + 40000 << ", k at " << n + 40000 << " vs q at " << m << ", k at " << n
          << ": the same distance must give the same score (angles in double?)";
    }
}

// ------------------------------------------------------------------ gradients

TEST(Gradients, GradcheckThroughApplyRope) {
  const Tensor x = rnd({2, 3, 6}, 90).set_requires_grad();
  const lesson06::RopeTables t = lesson06::rope_tables(3, 6, 2);
  const GradcheckResult r =
      gradcheck([&](const std::vector<Tensor>& in) { return lesson06::apply_rope(in[0], t); }, {x});
  EXPECT_TRUE(r.ok) << "gradients through apply_rope:\n" << r.message;
}

TEST(Gradients, GradcheckThroughRopeAttention) {
  const Tensor q = rnd({1, 4, 2, 4}, 91).set_requires_grad(), k = rnd({1, 2, 5, 4}, 92).set_requires_grad(),
               v = rnd({1, 2, 5, 3}, 93).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson06::rope_attention(in[0], in[1], in[2], 3); },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through rope_attention (0 = q, 1 = k, 2 = v):\n" << r.message;
}

// ------------------------------------------------------ stability and edges

TEST(Stability, ScoresNear1000) {
  // Rotation keeps lengths, so huge q and k stay huge: the softmax must
  // subtract the row max.
  const Tensor q = rnd({1, 2, 4, 8}, 100, 12.0f), k = rnd({1, 1, 4, 8}, 101, 12.0f), v = rnd({1, 1, 4, 2}, 102);
  EXPECT_TRUE(close("rope attention with scores of several hundred", lesson06::rope_attention(q, k, v),
                    attention_oracle(q, k, v, 0, 10000.0), {1, 2, 4, 2}, 1e-3))
      << "(NaN or inf: subtract the row max before exp)";
}

TEST(EdgeCases, OneTokenAndTheSmallestHead) {
  // d = 2: a single pair turning at 1 rad per position.
  const Tensor x = from_vector({1, 0}, {1, 2});
  EXPECT_TRUE(close("[1, 0] at position 3 (d = 2)", lesson06::apply_rope(x, lesson06::rope_tables(1, 2, 3)),
                    {std::cos(3.0), std::sin(3.0)}, {1, 2}));
  // T = 1 at position 0: attention over one key returns its value.
  const Tensor v = rnd({1, 1, 1, 3}, 110);
  EXPECT_TRUE(close("one token attends to itself", lesson06::rope_attention(rnd({1, 2, 1, 2}, 111), rnd({1, 1, 1, 2}, 112), v),
                    {values(v)[0], values(v)[1], values(v)[2], values(v)[0], values(v)[1], values(v)[2]},
                    {1, 2, 1, 3}));
}

TEST(EdgeCases, OddHeadSizeIsRejected) {
  EXPECT_TRUE(rejects("rope_tables with d = 7", [] { lesson06::rope_tables(4, 7); },
                      "feature 3 would have no partner: d must be even"));
  EXPECT_TRUE(rejects("rope_attention with d = 5",
                      [] { lesson06::rope_attention(rnd({1, 1, 2, 5}, 120), rnd({1, 1, 2, 5}, 121), rnd({1, 1, 2, 5}, 122)); },
                      "RoPE needs pairs of features"));
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, AnglesComputedInFloat) {
  // At position 50000 a float angle p * f is rounded to ~0.004 rad (the
  // spacing of floats near 50000), and f itself carries a float rounding
  // error that p multiplies. Compute p * f in double, round cos/sin at the end.
  const int64_t d = 64, p = 50000;
  const lesson06::RopeTables t = lesson06::rope_tables(4, d, p);
  const std::vector<double> got = values(t.cos);
  double worst = 0;
  int64_t at = 0;
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t i = 0; i < d / 2; ++i) {
      const double err = std::fabs(got[r * d / 2 + i] - std::cos(angle(p + r, i, d, 10000.0)));
      if (err > worst) worst = err, at = r * d / 2 + i;
    }
  EXPECT_LT(worst, 1e-5) << "cos table at positions 50000..50003 is off by " << worst << " at "
                         << lesson_test::index_str(at, {4, d / 2})
                         << (worst < 0.05 ? ". Float angles lose ~1e-3 rad there: compute the frequency "
                                            "and position * frequency in double, convert cos and sin "
                                            "to float last"
                                          : ". That is more than float rounding: check the tables at "
                                            "small positions first (RopeTables.* in the basic suite)");
}

// ----------------------------------------------- inside the library's GPT

TEST(Library, YourRopeDecodesInTheLibraryGPT) {
  // "student:rope" runs your rope_attention as the kernel; the library's
  // cache stores unrotated keys and your code rotates every key at 0..Tk-1
  // and the new queries at offset. Decoding must equal the full pass.
  GPTConfig c;
  c.vocab = 9, c.block_size = 12, c.layers = 2, c.heads = 4, c.embd = 16;
  c.attention = "student:rope:kv_heads=2";
  GPT model(c, 130);
  // GPT-2's init (std 0.02) makes every score ~0 and attention uniform, so
  // positions would hardly show: grow the query and key projections.
  for (auto& [name, p] : model.named_parameters())
    if (name.find(".wq.") != std::string::npos || name.find(".wk.") != std::string::npos)
      for (float* w = p->data<float>(), *end = w + p->numel(); w != end; ++w) *w *= 40.0f;
  const std::vector<int64_t> ids = {1, 5, 2, 8, 3, 0, 7};
  NoGradGuard no_grad;
  const std::vector<float> full = model.forward(from_ints(ids, {1, 7})).to_vector();
  KVCache cache = model.make_cache(1);
  model.forward_cached(from_ints({1, 5, 2, 8}, {1, 4}), cache);
  for (int64_t t = 4; t < 7; ++t)
    EXPECT_TRUE(close("library GPT on your rope, decode token " + std::to_string(t),
                      model.forward_cached(from_ints({ids[t]}, {1, 1}), cache),
                      std::vector<double>(full.begin() + t * 9, full.begin() + (t + 1) * 9), {1, 1, 9}))
        << "(the decoded query sits at position " << t << ": its angles start at the offset)";
}

// ------------------------------------------------------------------ training

TEST(Training, YourRopeTrainsATinyGPT) {
  // "Repeat the token two back": the model has no position embedding, so
  // only your rotations can tell it where "two back" is.
  GPTConfig c;
  c.vocab = 5, c.block_size = 8, c.layers = 1, c.heads = 4, c.embd = 16;
  c.attention = "student:rope";
  GPT model(c, 7);
  const int64_t B = 8, T = 8;
  Generator data_gen(8);
  std::vector<int64_t> ids, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(static_cast<int64_t>(data_gen.below(5)));
      targets.push_back(t < 2 ? ids.back() : ids[ids.size() - 3]);
    }
  const Tensor x = from_ints(ids, {B, T}), y = from_ints(targets, {B, T});
  // A plain Adam, so that the suite depends on nothing in train/.
  const std::vector<Tensor*> params = model.parameters();
  std::vector<std::vector<float>> m1(params.size()), m2(params.size());
  float first = 0, last = 0;
  for (int step = 1; step <= 80; ++step) {
    model.zero_grad();
    const Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    (step == 1 ? first : last) = loss.item();
    for (std::size_t p = 0; p < params.size(); ++p) {
      if (!params[p]->grad().defined()) continue;
      const std::vector<float> g = params[p]->grad().to_vector();
      float* w = params[p]->data<float>();
      m1[p].resize(g.size());
      m2[p].resize(g.size());
      const float c1 = 1 - std::pow(0.9f, float(step)), c2 = 1 - std::pow(0.999f, float(step));
      for (std::size_t i = 0; i < g.size(); ++i) {
        m1[p][i] = 0.9f * m1[p][i] + 0.1f * g[i];
        m2[p][i] = 0.999f * m2[p][i] + 0.001f * g[i] * g[i];
        w[i] -= 0.02f * (m1[p][i] / c1) / (std::sqrt(m2[p][i] / c2) + 1e-8f);
      }
    }
  }
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 80 steps; with working RoPE it more than halves";
}
