// Chapter 09, advanced suite: both patterns for many sizes and offsets
// against the rules written out as loops, exact pair counts (and the closed
// form of the strided count) against T^2, attention through the patterns
// against an independent double-precision oracle, fully masked rows,
// gradcheck, large scores, causality, the "two hops reach everything"
// property, and a tiny GPT trained on your "student:sparse" variant.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "attention/registry.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"
#include "tiny_training.h"
#include "nn/gpt.h"
#include "sparse_attention.h"

using namespace attn;
using lesson_test::close;
using lesson_test::values;
using lesson_test::TinyTraining;
using lesson_test::train_previous_token;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, float scale = 1.0f) {
  return lesson_test::random_tensor(s, seed, scale);
}

// ---- the rules as loops (the oracle) ----------------------------------------

bool strided_rule(int64_t p, int64_t j, int64_t local, int64_t stride) {
  if (j > p) return false;
  return p - j < local || j % stride == stride - 1;
}

bool block_rule(int64_t p, int64_t j, int64_t block) {
  if (j > p) return false;
  const int64_t qb = p / block, kb = j / block;
  return kb == qb || kb + 1 == qb || kb == 0;
}

template <class Rule>
std::vector<bool> rule_mask(int64_t tq, int64_t tk, int64_t offset, Rule allows) {
  std::vector<bool> m(tq * tk);
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) m[i * tk + j] = allows(offset + i, j);
  return m;
}

// A failure names the first (query, key) pair that disagrees with the rule.
::testing::AssertionResult matches_rule(const std::string& what, const Tensor& keep,
                                        const std::vector<bool>& want, int64_t tq, int64_t tk,
                                        int64_t offset) {
  if (!keep.defined() || keep.dtype() != DType::Bool || keep.shape() != Shape{tq, tk})
    return ::testing::AssertionFailure()
           << what << ": expected a bool mask " << shape_str({tq, tk}) << ", got "
           << (keep.defined() ? std::string(dtype_name(keep.dtype())) + " " + shape_str(keep.shape())
                              : "an undefined Tensor");
  const std::vector<int64_t> got = keep.to_int_vector();
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j)
      if ((got[i * tk + j] != 0) != want[i * tk + j])
        return ::testing::AssertionFailure()
               << what << ": query row " << i << " (position " << offset + i << "), key " << j
               << ": expected " << (want[i * tk + j] ? "allowed" : "masked") << ", got "
               << (got[i * tk + j] ? "allowed" : "masked");
  return ::testing::AssertionSuccess();
}

Tensor to_mask(const std::vector<bool>& m, int64_t tq, int64_t tk) { return from_bools(m, {tq, tk}); }

// out[b, h, i] = sum_j softmax over allowed j of (q_i . k_j / sqrt(d)) v_j,
// in double; a row with no allowed key is 0.
std::vector<double> oracle(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<bool>& keep) {
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
  const int64_t Tk = k.shape()[2], dv = v.shape()[3];
  const std::vector<double> qv = values(q), kv = values(k), vv = values(v);
  std::vector<double> out(B * H * Tq * dv, 0.0);
  for (int64_t bh = 0; bh < B * H; ++bh)
    for (int64_t i = 0; i < Tq; ++i) {
      std::vector<double> s(Tk, -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j < Tk; ++j) {
        if (!keep[i * Tk + j]) continue;
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += qv[(bh * Tq + i) * d + c] * kv[(bh * Tk + j) * d + c];
        s[j] = dot / std::sqrt(static_cast<double>(d));
        mx = std::max(mx, s[j]);
      }
      if (mx == -INFINITY) continue;  // no key: zeros
      double z = 0;
      for (int64_t j = 0; j < Tk; ++j) z += s[j] == -INFINITY ? 0 : std::exp(s[j] - mx);
      for (int64_t j = 0; j < Tk; ++j) {
        if (s[j] == -INFINITY) continue;
        const double w = std::exp(s[j] - mx) / z;
        for (int64_t c = 0; c < dv; ++c) out[(bh * Tq + i) * dv + c] += w * vv[(bh * Tk + j) * dv + c];
      }
    }
  return out;
}

struct MaskCase {
  int64_t tq, offset, a, b;  // strided: a = local, b = stride; block: a = block
  const char* name;
};
void PrintTo(const MaskCase& c, std::ostream* os) { *os << c.name; }
class StridedSweep : public ::testing::TestWithParam<MaskCase> {};
class BlockSweep : public ::testing::TestWithParam<MaskCase> {};

struct AttnCase {
  int64_t B, H, Tq, d, dv, offset;
  bool strided;
  int64_t a, b;
  const char* name;
};
void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }
class AttentionSweep : public ::testing::TestWithParam<AttnCase> {};

}  // namespace

// ------------------------------------------------------ patterns vs rules

TEST_P(StridedSweep, MatchesTheRule) {
  const MaskCase c = GetParam();
  const int64_t tk = c.offset + c.tq;
  EXPECT_TRUE(matches_rule(std::string(c.name) + ": strided_mask", lesson09::strided_mask(c.tq, tk, c.a, c.b, c.offset),
                           rule_mask(c.tq, tk, c.offset, [&](int64_t p, int64_t j) { return strided_rule(p, j, c.a, c.b); }),
                           c.tq, tk, c.offset));
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, StridedSweep,
    ::testing::Values(MaskCase{1, 0, 1, 1, "T1"}, MaskCase{16, 0, 4, 4, "T16_L4_S4"},
                      MaskCase{17, 0, 3, 5, "T17_L3_S5"}, MaskCase{20, 0, 7, 2, "local_wider_than_stride"},
                      MaskCase{12, 0, 1, 6, "local1"}, MaskCase{9, 0, 20, 3, "local_longer_than_T"},
                      MaskCase{3, 13, 4, 4, "cache_offset13"}, MaskCase{1, 30, 5, 8, "decode_one_at_30"}),
    [](const ::testing::TestParamInfo<MaskCase>& i) { return std::string(i.param.name); });

TEST_P(BlockSweep, MatchesTheRule) {
  const MaskCase c = GetParam();
  const int64_t tk = c.offset + c.tq;
  EXPECT_TRUE(matches_rule(std::string(c.name) + ": block_sparse_mask", lesson09::block_sparse_mask(c.tq, tk, c.a, c.offset),
                           rule_mask(c.tq, tk, c.offset, [&](int64_t p, int64_t j) { return block_rule(p, j, c.a); }),
                           c.tq, tk, c.offset));
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, BlockSweep,
    ::testing::Values(MaskCase{1, 0, 1, 0, "T1"}, MaskCase{16, 0, 4, 0, "T16_B4"},
                      MaskCase{17, 0, 5, 0, "T17_B5_last_block_short"}, MaskCase{10, 0, 1, 0, "B1"},
                      MaskCase{7, 0, 7, 0, "one_block"}, MaskCase{4, 21, 4, 0, "cache_offset21"},
                      MaskCase{1, 40, 6, 0, "decode_one_at_40"}),
    [](const ::testing::TestParamInfo<MaskCase>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ counts

TEST(Counting, PairsAgainstTheLoopCount) {
  for (auto [T, L, S] : std::vector<std::array<int64_t, 3>>{{8, 2, 3}, {64, 8, 8}, {100, 10, 7}, {33, 1, 32}}) {
    const std::vector<bool> m = rule_mask(T, T, 0, [&](int64_t p, int64_t j) { return strided_rule(p, j, L, S); });
    const int64_t want = std::count(m.begin(), m.end(), true);
    EXPECT_EQ(lesson09::attended_pairs(to_mask(m, T, T)), want) << "strided T=" << T << " L=" << L << " S=" << S;
    EXPECT_NEAR(lesson09::density(to_mask(m, T, T)), double(want) / double(T * T), 1e-12)
        << "density = pairs / (Tq * Tk), T=" << T;
  }
}

TEST(Counting, StridedCountHasAClosedForm) {
  // Query p reads min(L, p + 1) local keys plus the summaries older than
  // its window, j in 0..p-L with j % S == S - 1: floor((p - L + 1) / S) of
  // them. Your mask must agree with the formula for every (T, L, S).
  for (int64_t T : {16, 64, 256})
    for (int64_t L : {1, 4, 16})
      for (int64_t S : {2, 4, 16}) {
        int64_t formula = 0;
        for (int64_t p = 0; p < T; ++p) formula += std::min(L, p + 1) + (p - L + 1 > 0 ? (p - L + 1) / S : 0);
        EXPECT_EQ(lesson09::attended_pairs(lesson09::strided_mask(T, T, L, S)), formula)
            << "T=" << T << " local=" << L << " stride=" << S;
      }
}

TEST(Counting, SparsityGrowsWithLength) {
  // L = S = sqrt(T): about T^1.5 pairs instead of T^2 / 2; block-sparse
  // with B = 32: at most 3B keys per query.
  double last_strided = 1, last_block = 1;
  for (int64_t T : {64, 256, 1024}) {
    const int64_t r = static_cast<int64_t>(std::lround(std::sqrt(double(T))));
    const Tensor s = lesson09::strided_mask(T, T, r, r), b = lesson09::block_sparse_mask(T, T, 32);
    const int64_t ps = lesson09::attended_pairs(s), pb = lesson09::attended_pairs(b);
    std::cout << "  T = " << T << ": causal " << T * (T + 1) / 2 << " pairs, strided (L = S = " << r << ") "
              << ps << ", block-sparse (B = 32) " << pb << " of T^2 = " << T * T << "\n";
    EXPECT_LE(ps, T * r + T * T / (2 * r) + T) << "strided pairs at T = " << T << " exceed T L + T^2 / (2S)";
    EXPECT_LE(pb, T * 3 * 32) << "block-sparse pairs at T = " << T << " exceed 3 B per query";
    const double ds = lesson09::density(s), db = lesson09::density(b);
    EXPECT_LT(ds, last_strided) << "strided density must fall as T grows";
    EXPECT_LE(db, last_block) << "block-sparse density must not grow with T";
    last_strided = ds, last_block = db;
  }
  EXPECT_LT(last_strided, 0.1) << "strided density at T = 1024 with L = S = 32";
  EXPECT_LT(last_block, 0.1) << "block-sparse density at T = 1024 with B = 32";
}

TEST(Counting, EmptyAndFullMasks) {
  EXPECT_EQ(lesson09::attended_pairs(from_bools(std::vector<bool>(12, false), {3, 4})), 0);
  EXPECT_EQ(lesson09::density(from_bools(std::vector<bool>(12, false), {3, 4})), 0.0);
  EXPECT_EQ(lesson09::attended_pairs(from_bools(std::vector<bool>(12, true), {3, 4})), 12);
  EXPECT_EQ(lesson09::density(from_bools(std::vector<bool>(12, true), {3, 4})), 1.0)
      << "a rectangular mask (Tq = 3, Tk = 4): divide by Tq * Tk";
}

// ------------------------------------------------------ attention vs oracle

TEST_P(AttentionSweep, MatchesDoubleOracle) {
  const AttnCase c = GetParam();
  const int64_t tk = c.offset + c.Tq;
  const std::vector<bool> m = c.strided
      ? rule_mask(c.Tq, tk, c.offset, [&](int64_t p, int64_t j) { return strided_rule(p, j, c.a, c.b); })
      : rule_mask(c.Tq, tk, c.offset, [&](int64_t p, int64_t j) { return block_rule(p, j, c.a); });
  const Tensor keep = c.strided ? lesson09::strided_mask(c.Tq, tk, c.a, c.b, c.offset)
                                : lesson09::block_sparse_mask(c.Tq, tk, c.a, c.offset);
  const Tensor q = rnd({c.B, c.H, c.Tq, c.d}, 100 + c.Tq), k = rnd({c.B, c.H, tk, c.d}, 200 + c.H),
               v = rnd({c.B, c.H, tk, c.dv}, 300 + c.dv);
  Tensor w;
  const Tensor out = lesson09::sparse_attention(q, k, v, keep, &w);
  EXPECT_TRUE(close(std::string(c.name) + ": sparse_attention with your mask", out, oracle(q, k, v, m),
                    {c.B, c.H, c.Tq, c.dv}));
  ASSERT_TRUE(w.defined()) << "fill *weights_out when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{c.B, c.H, c.Tq, tk}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionSweep,
    ::testing::Values(AttnCase{1, 1, 1, 1, 1, 0, true, 1, 1, "T1"},
                      AttnCase{2, 3, 12, 4, 3, 0, true, 3, 4, "strided_three_heads"},
                      AttnCase{1, 5, 17, 8, 2, 0, true, 4, 5, "strided_five_heads_T17"},
                      AttnCase{2, 2, 3, 4, 4, 9, true, 2, 4, "strided_after_cache"},
                      AttnCase{1, 3, 16, 4, 4, 0, false, 4, 0, "block4_three_heads"},
                      AttnCase{2, 7, 11, 2, 3, 0, false, 3, 0, "block3_seven_heads_T11"},
                      AttnCase{1, 2, 1, 6, 2, 14, false, 5, 0, "block_decode_one_at_14"}),
    [](const ::testing::TestParamInfo<AttnCase>& i) { return std::string(i.param.name); });

TEST(EdgeCases, FullyMaskedRowsGiveZeros) {
  // A hand-made pattern whose row 1 allows nothing: zeros, not NaN.
  const std::vector<bool> m = {1, 0, 0, /**/ 0, 0, 0, /**/ 1, 0, 1};
  const Tensor q = rnd({1, 2, 3, 4}, 400), k = rnd({1, 2, 3, 4}, 401), v = rnd({1, 2, 3, 2}, 402);
  Tensor w;
  const Tensor out = lesson09::sparse_attention(q, k, v, to_mask(m, 3, 3), &w);
  EXPECT_TRUE(close("out with an empty row 1", out, oracle(q, k, v, m), {1, 2, 3, 2}))
      << "(NaN in row 1: softmax of a row of -inf is 0/0; give rows without any allowed key zeros)";
  ASSERT_TRUE(w.defined());
  const std::vector<float> g = w.to_vector();
  for (int h = 0; h < 2; ++h)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(g[(h * 3 + 1) * 3 + j], 0.0f) << "weights of the empty row must be 0";
}

TEST(EdgeCases, AMaskOfTheWrongShapeIsAnError) {
  EXPECT_TRUE(lesson_test::rejects(
      "sparse_attention(T = 4, mask [4, 5])",
      [] { lesson09::sparse_attention(rnd({1, 1, 4, 2}, 410), rnd({1, 1, 4, 2}, 411), rnd({1, 1, 4, 2}, 412), from_bools(std::vector<bool>(20, true), {4, 5})); },
      "a [4, 5] pattern cannot belong to 4 queries and 4 keys; check keep.shape() == {Tq, Tk}"));
}

// --------------------------------------------------------------- gradients

TEST(Gradients, GradcheckThroughTheStridedPattern) {
  const Tensor keep = lesson09::strided_mask(6, 6, 2, 3);
  const Tensor q = rnd({1, 2, 6, 3}, 420).set_requires_grad(), k = rnd({1, 2, 6, 3}, 421).set_requires_grad(),
               v = rnd({1, 2, 6, 2}, 422).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [&keep](const std::vector<Tensor>& in) { return lesson09::sparse_attention(in[0], in[1], in[2], keep); },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through sparse_attention (0 = q, 1 = k, 2 = v):\n" << r.message;
}

TEST(Gradients, MaskedKeysGetNoGradient) {
  // Query 7 of the strided pattern (L = 2, S = 3) reads keys 2, 5, 6, 7:
  // a loss on query 7 alone must leave keys 0, 1, 3, 4 with zero gradient.
  const Tensor q = rnd({1, 1, 8, 3}, 430), k = rnd({1, 1, 8, 3}, 431).set_requires_grad(),
               v = rnd({1, 1, 8, 2}, 432).set_requires_grad();
  sum(narrow(lesson09::sparse_attention(q, k, v, lesson09::strided_mask(8, 8, 2, 3)), 2, 7, 1)).backward();
  ASSERT_TRUE(k.grad().defined() && v.grad().defined()) << "k/v.grad undefined after backward()";
  const std::vector<float> gk = k.grad().to_vector(), gv = v.grad().to_vector();
  for (int64_t j : {0, 1, 3, 4}) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(gk[j * 3 + c], 0.0f) << "k.grad of masked key " << j;
    for (int c = 0; c < 2; ++c) EXPECT_EQ(gv[j * 2 + c], 0.0f) << "v.grad of masked key " << j;
  }
  for (int64_t j : {2, 5, 6, 7}) EXPECT_NE(gv[j * 2], 0.0f) << "v.grad of key " << j << ", which query 7 reads";
}

// ------------------------------------------------------------- stability

TEST(Stability, ScoresNearPlusAndMinus1000) {
  const float c = std::sqrt(2000.0f);  // q.k / sqrt(4) ~ +-1000
  const std::vector<bool> m = rule_mask(8, 8, 0, [](int64_t p, int64_t j) { return block_rule(p, j, 2); });
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> qv = rnd({1, 2, 8, 4}, 440).to_vector(), kv = rnd({1, 2, 8, 4}, 441).to_vector();
    for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = sign * c;
    for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
    const Tensor q = from_vector(qv, {1, 2, 8, 4}), k = from_vector(kv, {1, 2, 8, 4}), v = rnd({1, 2, 8, 3}, 442);
    EXPECT_TRUE(close(sign > 0 ? "scores near +1000" : "scores near -1000",
                      lesson09::sparse_attention(q, k, v, to_mask(m, 8, 8)), oracle(q, k, v, m), {1, 2, 8, 3}, 1e-3))
        << "(NaN or inf: exp() overflowed; let softmax subtract the row max)";
  }
}

// ------------------------------------------------------------- causality

TEST(Causality, BothPatternsIgnoreTheFuture) {
  const int64_t T = 24;
  const Tensor q = rnd({1, 2, T, 4}, 450), k = rnd({1, 2, T, 4}, 451), v = rnd({1, 2, T, 3}, 452);
  std::vector<bool> fut(T);
  for (int64_t t = 12; t < T; ++t) fut[t] = true;
  const Tensor future = from_bools(fut, {1, 1, T, 1});
  const Tensor k2 = where(future, rnd({1, 2, T, 4}, 453, 5.0f), k), v2 = where(future, rnd({1, 2, T, 3}, 454, 5.0f), v);
  for (const auto& [name, keep] : std::vector<std::pair<std::string, Tensor>>{
           {"strided (local 3, stride 5)", lesson09::strided_mask(T, T, 3, 5)},
           {"block-sparse (block 5)", lesson09::block_sparse_mask(T, T, 5)}}) {
    const Tensor a = lesson09::sparse_attention(q, k, v, keep), b = lesson09::sparse_attention(q, k2, v2, keep);
    EXPECT_TRUE(close(name + ": tokens 0..11 after changing tokens 12..23", contiguous(narrow(b, 2, 0, 12)),
                      contiguous(narrow(a, 2, 0, 12)), 1e-6))
        << "a token must not read keys after it: keep every rule inside j <= p";
  }
}

TEST(Causality, TwoHopsReachEveryEarlierToken) {
  // With local >= stride, every key j <= p reaches query p in at most two
  // steps (j -> the summary of its block, or j -> p directly). That is why
  // a few stacked sparse layers can still mix the whole sequence.
  const int64_t T = 40, L = 6, S = 6;
  const std::vector<int64_t> f = lesson09::strided_mask(T, T, L, S).to_int_vector();
  ASSERT_EQ(static_cast<int64_t>(f.size()), T * T);
  for (int64_t p = 0; p < T; ++p)
    for (int64_t j = 0; j <= p; ++j) {
      bool reach = f[p * T + j] != 0;
      for (int64_t m = j; m <= p && !reach; ++m) reach = f[p * T + m] && f[m * T + j];
      ASSERT_TRUE(reach) << "key " << j << " cannot reach query " << p << " in two hops with local = stride = 6";
    }
}

// ---------------------------------------------------------------- training

TEST(Training, YourSparseAttentionTrainsATinyGPT) {
  // "Repeat the previous token" through both of your patterns: local = 2
  // (the previous token is in every window) and blocks of 4 (the previous
  // token is in the own block or the block before).
  for (const std::string spec : {"student:sparse:local=2,stride=4", "student:sparse:block=4"}) {
    const TinyTraining t = train_previous_token(spec, 2, 16);
    const float first = t.first_loss, last = t.last_loss;
    ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << spec << ": the loss became NaN or inf";
    EXPECT_LT(last, 0.5f * first) << spec << ": the loss went from " << first << " to " << last
                                  << " in 60 steps; with working attention it more than halves";
  }
}
