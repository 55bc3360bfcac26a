// Chapter 06, basic suite: the NTK base by hand, the rotation tables by hand
// (the README's example), one rotation by hand, position 0 changes nothing,
// rotations keep the length, the relative-position property (q.k after
// rotation depends only on the distance), rope attention against a loop
// here, a decode step equal to the last row, and the mistakes: neighbour
// pairing that does not match the tables, rotating V, the frequency
// exponent -i/d, a wrong NTK exponent, and a decode offset ignored.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"
#include "rope.h"

using namespace attn;

namespace {

using lesson_test::close;
using lesson_test::rejects;
using lesson_test::values;

Tensor rnd(const Shape& s, uint64_t seed) { return lesson_test::random_tensor(s, seed); }

// RoPE in double, half-split pairing: x [..., T, d] (row-major values),
// row t at position offset + t, pair i = (i, i + d/2) turned by
// (offset + t) * base^(-2i/d).
std::vector<double> rotate(const std::vector<double>& x, int64_t T, int64_t d, int64_t offset,
                           double base) {
  std::vector<double> y(x.size());
  const int64_t half = d / 2;
  for (std::size_t r = 0; r < x.size() / d; ++r) {
    const double p = static_cast<double>(offset + static_cast<int64_t>(r) % T);
    for (int64_t i = 0; i < half; ++i) {
      const double a = p * std::pow(base, -2.0 * i / d), c = std::cos(a), s = std::sin(a);
      const double x1 = x[r * d + i], x2 = x[r * d + i + half];
      y[r * d + i] = x1 * c - x2 * s;
      y[r * d + i + half] = x1 * s + x2 * c;
    }
  }
  return y;
}

// Grouped causal attention of RoPE'd q (positions offset..) and k
// (positions 0..), V untouched, in double. Shapes as in rope.h.
std::vector<double> rope_attention_loop(const Tensor& q, const Tensor& k, const Tensor& v,
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

// q rotated at position m dotted with k rotated at position n (your code).
double rotated_dot(const Tensor& q, const Tensor& k, int64_t m, int64_t n) {
  const int64_t d = q.shape()[1];
  const std::vector<double> a = values(lesson06::apply_rope(q, lesson06::rope_tables(1, d, m)));
  const std::vector<double> b = values(lesson06::apply_rope(k, lesson06::rope_tables(1, d, n)));
  double s = 0;
  for (int64_t c = 0; c < d; ++c) s += a[c] * b[c];
  return s;
}

// The README's example: d = 4, base 100, so f = [1, 0.1].
const double kCos1 = 0.5403023058681398, kSin1 = 0.8414709848078965;
const double kCos01 = 0.9950041652780258, kSin01 = 0.09983341664682815;
const double kCos2 = -0.4161468365471424, kSin2 = 0.9092974268256817;
const double kCos02 = 0.9800665778412416, kSin02 = 0.19866933079506122;

}  // namespace

// ------------------------------------------------------------------ ntk base

TEST(NtkBase, ByHand) {
  EXPECT_DOUBLE_EQ(lesson06::ntk_base(10000, 1, 64), 10000) << "scale 1 leaves the base alone";
  // d = 4: exponent d / (d - 2) = 2, so 10000 * 4^2.
  EXPECT_NEAR(lesson06::ntk_base(10000, 4, 4), 160000, 1e-6) << "base 10000, scale 4, d = 4";
  // d = 64: 10000 * 2^(64/62) = 20452.2287...
  EXPECT_NEAR(lesson06::ntk_base(10000, 2, 64), 20452.228712025368, 1e-6) << "base 10000, scale 2, d = 64";
  // d = 2: one pair; the library's convention is base * scale^2.
  EXPECT_NEAR(lesson06::ntk_base(10000, 2, 2), 40000, 1e-6) << "base 10000, scale 2, d = 2";
}

TEST(NtkBase, SlowestPairSlowsByTheScaleFastestStays) {
  // Pair 0 turns at 1 whatever the base; the last pair, i = d/2 - 1, at
  // b^(-(d-2)/d): the new base divides that frequency by the scale.
  const int64_t d = 16;
  const double b = lesson06::ntk_base(10000, 8, d);
  const double slow = std::pow(10000.0, -(d - 2.0) / d), slow_scaled = std::pow(b, -(d - 2.0) / d);
  EXPECT_NEAR(slow / slow_scaled, 8.0, 1e-9) << "the slowest pair must turn 8x slower with scale 8";
}

TEST(NtkBase, RejectsBadArguments) {
  EXPECT_TRUE(rejects("ntk_base with scale 0.5", [] { lesson06::ntk_base(10000, 0.5, 64); },
                      "a scale below 1 would shrink the context, not stretch it"));
  EXPECT_TRUE(rejects("ntk_base with an odd head_dim", [] { lesson06::ntk_base(10000, 2, 5); },
                      "RoPE pairs features: d must be even"));
}

// -------------------------------------------------------------------- tables

TEST(RopeTables, ReadmeWorkedExample) {
  // Positions 0, 1, 2 of d = 4 with base 100: frequencies [1, 0.1].
  const lesson06::RopeTables t = lesson06::rope_tables(3, 4, 0, 100.0);
  EXPECT_TRUE(close("cos table", t.cos, {1, 1, kCos1, kCos01, kCos2, kCos02}, {3, 2}));
  EXPECT_TRUE(close("sin table", t.sin, {0, 0, kSin1, kSin01, kSin2, kSin02}, {3, 2}));
}

TEST(RopeTables, OffsetShiftsTheRows) {
  const lesson06::RopeTables all = lesson06::rope_tables(8, 6, 0);
  const lesson06::RopeTables part = lesson06::rope_tables(3, 6, 5);
  EXPECT_TRUE(close("cos rows for positions 5..7", part.cos, values(narrow(all.cos, 0, 5, 3)), {3, 3}))
      << "rope_tables(3, d, offset = 5) must give the rows of positions 5, 6, 7";
  EXPECT_TRUE(close("sin rows for positions 5..7", part.sin, values(narrow(all.sin, 0, 5, 3)), {3, 3}));
}

TEST(RopeTables, NtkScaleRaisesTheBase) {
  const lesson06::RopeTables scaled = lesson06::rope_tables(5, 8, 0, 10000.0, 4.0);
  const lesson06::RopeTables raised = lesson06::rope_tables(5, 8, 0, lesson06::ntk_base(10000, 4, 8), 1.0);
  EXPECT_TRUE(close("cos with ntk_scale 4", scaled.cos, raised.cos))
      << "rope_tables(..., base, ntk_scale) uses the base ntk_base(base, ntk_scale, d)";
  EXPECT_TRUE(close("sin with ntk_scale 4", scaled.sin, raised.sin));
}

// ------------------------------------------------------------------ rotation

TEST(ApplyRope, RotationByHand) {
  // x = [1, 2, 3, 4] at position 1 (base 100): pair (x0, x2) = (1, 3) turns
  // by 1 rad, pair (x1, x3) = (2, 4) by 0.1 rad.
  const Tensor x = from_vector({1, 2, 3, 4}, {1, 4});
  const Tensor y = lesson06::apply_rope(x, lesson06::rope_tables(1, 4, 1, 100.0));
  EXPECT_TRUE(close("x = [1, 2, 3, 4] at position 1", y,
                    {-1.9841106485555495, 1.590674663968739, 2.4623779024123156, 4.17968349440576},
                    {1, 4}));
}

TEST(ApplyRope, PositionZeroChangesNothing) {
  const Tensor x = rnd({2, 3, 1, 8}, 1);
  EXPECT_TRUE(close("x at position 0", lesson06::apply_rope(x, lesson06::rope_tables(1, 8)), x))
      << "every angle at position 0 is 0: cos 1, sin 0";
}

TEST(ApplyRope, KeepsEachVectorsLength) {
  const Tensor x = rnd({2, 5, 8}, 2);
  const std::vector<double> a = values(x), b = values(lesson06::apply_rope(x, lesson06::rope_tables(5, 8, 3)));
  for (std::size_t r = 0; r < a.size() / 8; ++r) {
    double na = 0, nb = 0;
    for (int c = 0; c < 8; ++c) na += a[r * 8 + c] * a[r * 8 + c], nb += b[r * 8 + c] * b[r * 8 + c];
    EXPECT_NEAR(nb, na, 1e-4 * na) << "row " << r << ": a rotation keeps |x|^2";
  }
}

TEST(ApplyRope, RejectsTablesThatDoNotFit) {
  EXPECT_TRUE(rejects("apply_rope of 3 positions with tables for 2",
                      [] { lesson06::apply_rope(rnd({1, 3, 8}, 3), lesson06::rope_tables(2, 8)); },
                      "each position needs its own row of angles"));
  EXPECT_TRUE(rejects("apply_rope of d = 8 with tables for d = 4",
                      [] { lesson06::apply_rope(rnd({1, 2, 8}, 4), lesson06::rope_tables(2, 4)); },
                      "the tables need d/2 columns, one per pair"));
}

// --------------------------------------------------------- relative position

TEST(RelativePosition, DotDependsOnlyOnTheDistance) {
  // R(m) q . R(n) k = q . R(n - m) k: shifting both positions by the same
  // amount changes nothing.
  const Tensor q = rnd({1, 8}, 5), k = rnd({1, 8}, 6);
  const double at_2_0 = rotated_dot(q, k, 2, 0);
  for (auto [m, n] : std::vector<std::pair<int64_t, int64_t>>{{3, 1}, {7, 5}, {12, 10}, {102, 100}})
    EXPECT_NEAR(rotated_dot(q, k, m, n), at_2_0, 1e-4 * (1 + std::fabs(at_2_0)))
        << "q at " << m << ", k at " << n << ": distance 2, so q.k must equal q at 2 and k at 0";
  EXPECT_GT(std::fabs(rotated_dot(q, k, 5, 0) - at_2_0), 1e-3)
      << "distance 5 and distance 2 gave the same q.k: do the tables depend on the position?";
}

// ----------------------------------------------------------------- attention

TEST(RopeAttention, MatchesALoop) {
  const Tensor q = rnd({1, 4, 5, 8}, 10), k = rnd({1, 2, 5, 8}, 11), v = rnd({1, 2, 5, 3}, 12);
  Tensor w;
  EXPECT_TRUE(close("rope attention, 4 heads, 2 K/V heads, 5 tokens",
                    lesson06::rope_attention(q, k, v, 0, 10000.0, 1.0, &w),
                    rope_attention_loop(q, k, v, 0, 10000.0), {1, 4, 5, 3}));
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{1, 4, 5, 5}));
}

TEST(RopeAttention, DecodeStepEqualsTheLastRow) {
  // Query 5 alone (offset 5) over keys 0..5 = row 5 of the full pass.
  const Tensor q = rnd({1, 2, 6, 4}, 13), k = rnd({1, 1, 6, 4}, 14), v = rnd({1, 1, 6, 4}, 15);
  const Tensor full = lesson06::rope_attention(q, k, v);
  EXPECT_TRUE(close("decode step of query 5", lesson06::rope_attention(narrow(q, 2, 5, 1), k, v, 5),
                    values(narrow(full, 2, 5, 1)), {1, 2, 1, 4}));
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, RopePairingThatDoesNotMatchTheTables) {
  // Column i of the tables belongs to the pair (i, i + d/2). Pairing
  // neighbours (2i, 2i + 1) with these tables turns (1, 2) by 1 rad and
  // (3, 4) by 0.1 rad instead.
  const Tensor x = from_vector({1, 2, 3, 4}, {1, 4});
  const Tensor y = lesson06::apply_rope(x, lesson06::rope_tables(1, 4, 1, 100.0));
  const std::vector<double> neighbours = {-1.1426396637476532, 1.922075596544176, 2.585678829246765,
                                          4.279516911052588};
  EXPECT_TRUE(close("x = [1, 2, 3, 4] at position 1", y,
                    {-1.9841106485555495, 1.590674663968739, 2.4623779024123156, 4.17968349440576},
                    {1, 4}))
      << (close("", y, neighbours, {1, 4})
              ? ": you paired neighbours (2i, 2i + 1). This course pairs feature i with "
                "i + d/2 (the half-split of the tables): y[i] = x[i] cos - x[i + d/2] sin"
              : "");
}

TEST(Mistakes, RotatedV) {
  // Positions steer where a query looks (q.k), not what it reads: v must
  // come out as it went in. One query at position 1 over keys 0 and 1.
  const Tensor q = rnd({1, 1, 2, 4}, 20), k = rnd({1, 1, 2, 4}, 21), v = rnd({1, 1, 2, 4}, 22);
  const Tensor out = lesson06::rope_attention(q, k, v);
  const Tensor v_rot = from_vector([&] {
    const std::vector<double> r = rotate(values(v), 2, 4, 0, 10000.0);
    return std::vector<float>(r.begin(), r.end());
  }(), {1, 1, 2, 4});
  const bool rotated = close("", out, rope_attention_loop(q, k, v_rot, 0, 10000.0), {1, 1, 2, 4});
  EXPECT_TRUE(close("rope attention output", out, rope_attention_loop(q, k, v, 0, 10000.0), {1, 1, 2, 4}))
      << (rotated ? ": that is the output with V rotated too. Rotate q and k only" : "");
}

TEST(Mistakes, FrequencyExponentMissingTheTwo) {
  // f_i = base^(-2i/d): with d = 4 and base 100, f_1 = 0.1. With -i/d it is
  // 100^(-1/4) = 0.3162 and the frequencies stop halfway down the spectrum.
  const lesson06::RopeTables t = lesson06::rope_tables(2, 4, 0, 100.0);
  const float got = t.sin.to_vector().at(3);  // position 1, pair 1: sin(f_1)
  EXPECT_NEAR(got, kSin01, 1e-6) << "sin of position 1, pair 1 (d = 4, base 100)"
                                 << (std::fabs(got - std::sin(0.31622776601683794)) < 1e-5
                                         ? ": the angle is 0.3162 = 100^(-1/4). The exponent is "
                                           "-2i/d (pairs step the exponent by 2/d), not -i/d"
                                         : "");
}

TEST(Mistakes, NtkExponentWrong) {
  // b' = base * scale^(d / (d - 2)), so the slowest pair slows by exactly
  // the scale. Common slips: base * scale, or scale^(d/(d-1)), or
  // scale^((d-2)/d).
  const double got = lesson06::ntk_base(10000, 4, 8), want = 10000 * std::pow(4.0, 8.0 / 6.0);
  std::string hint;
  if (std::fabs(got - 40000) < 1e-3) hint = ": that is base * scale, the linear NTK guess";
  else if (std::fabs(got - 10000 * std::pow(4.0, 8.0 / 7.0)) < 1e-3) hint = ": exponent d/(d-1)";
  else if (std::fabs(got - 10000 * std::pow(4.0, 6.0 / 8.0)) < 1e-3) hint = ": exponent (d-2)/d, upside down";
  EXPECT_NEAR(got, want, 1e-6 * want)
      << "ntk_base(10000, 4, 8)" << hint
      << (hint.empty() ? "" : ". The exponent is d/(d-2): the slowest pair turns at b^(-(d-2)/d), "
                              "and (scale^(d/(d-2)))^(-(d-2)/d) = 1/scale");
}

TEST(Mistakes, DecodeOffsetIgnored) {
  // A decoded query sits at position offset, not 0. Rotating it at 0 keeps
  // the rows distinct but breaks the distances to every key.
  const Tensor q = rnd({1, 1, 5, 4}, 30), k = rnd({1, 1, 5, 4}, 31), v = rnd({1, 1, 5, 4}, 32);
  const std::vector<double> all = rope_attention_loop(q, k, v, 0, 10000.0);
  const Tensor q4 = narrow(q, 2, 4, 1);
  const Tensor got = lesson06::rope_attention(q4, k, v, 4);
  // The output of query 4 rotated at position 0 (the mistake), same keys.
  const std::vector<double> at0 = [&] {
    std::vector<double> r = rope_attention_loop(q4, k, v, 4, 10000.0);
    const std::vector<double> q0 = rotate(values(q4), 1, 4, 0, 10000.0), K = rotate(values(k), 5, 4, 0, 10000.0);
    std::vector<double> w(5);
    double mx = -INFINITY, z = 0;
    for (int j = 0; j < 5; ++j) {
      double s = 0;
      for (int c = 0; c < 4; ++c) s += q0[c] * K[j * 4 + c];
      mx = std::max(mx, w[j] = s / 2);
    }
    for (double& e : w) z += (e = std::exp(e - mx));
    const std::vector<double> V = values(v);
    for (int c = 0; c < 4; ++c) {
      r[c] = 0;
      for (int j = 0; j < 5; ++j) r[c] += w[j] / z * V[j * 4 + c];
    }
    return r;
  }();
  EXPECT_TRUE(close("decode step of query 4 (offset 4)", got,
                    std::vector<double>(all.begin() + 16, all.end()), {1, 1, 1, 4}))
      << (close("", got, at0, {1, 1, 1, 4})
              ? ": the query was rotated at position 0 (or the keys at offset.. too: only the "
                "difference counts). The query's tables start at the offset, "
                "rope_tables(Tq, d, offset); the keys' at 0"
              : close("", got, values(narrow(v, 2, 0, 1)), {1, 1, 1, 4})
                    ? ": that is v of key 0 alone, so the query saw only key 0. The causal mask "
                      "takes the offset too: key j is visible when j <= offset + i"
                    : "");
}
