// Chapter 07, advanced suite: slopes for every head count and attention
// for many shapes against an independent double-precision oracle, gradcheck,
// large scores and long sequences, causality, and extrapolation: attention
// and a whole model run far beyond the length they were trained on, still
// finite, causal and equal to the oracle. Ends with a tiny GPT trained on
// your "student:alibi" variant.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "alibi.h"
#include "attention/registry.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"
#include "nn/gpt.h"

using namespace attn;
using lesson_test::close;
using lesson_test::rejects;
using lesson_test::values;

namespace {

Tensor rnd(const Shape& s, uint64_t seed, float scale = 1.0f) {
  return lesson_test::random_tensor(s, seed, scale);
}

// ---- the oracle: written from the paper's description, in double --------

// Slopes of the ALiBi paper: a geometric sequence starting at 2^(-8/n) with
// ratio 2^(-8/n) for n a power of two; otherwise the sequence of the power
// of two p below n, then every other element of the sequence for 2p.
std::vector<double> oracle_slopes(int64_t n) {
  auto geometric = [](int64_t count) {
    std::vector<double> s;
    const double start = std::pow(2.0, -8.0 / static_cast<double>(count));
    double x = start;
    for (int64_t i = 0; i < count; ++i, x *= start) s.push_back(x);
    return s;
  };
  const int64_t p = int64_t(1) << static_cast<int>(std::floor(std::log2(static_cast<double>(n))));
  std::vector<double> s = geometric(p);
  if (p < n) {
    const std::vector<double> more = geometric(2 * p);
    for (int64_t i = 0; static_cast<int64_t>(s.size()) < n; i += 2) s.push_back(more[i]);
  }
  return s;
}

// out[b, h, i, :] = sum_j softmax_j(q_i.k_j / sqrt(d) - m_h (offset + i - j)) v_j
// over j <= offset + i, in double.
std::vector<double> oracle(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset) {
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
  const int64_t Tk = k.shape()[2], dv = v.shape()[3];
  const std::vector<double> qv = values(q), kv = values(k), vv = values(v), m = oracle_slopes(H);
  std::vector<double> out(B * H * Tq * dv, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t p = offset + i, last = std::min(p, Tk - 1);
        std::vector<double> s(last + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += qv[((b * H + h) * Tq + i) * d + c] * kv[((b * H + h) * Tk + j) * d + c];
          s[j] = dot / std::sqrt(static_cast<double>(d)) - m[h] * static_cast<double>(p - j);
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= last; ++j)
          for (int64_t c = 0; c < dv; ++c)
            out[((b * H + h) * Tq + i) * dv + c] += s[j] / z * vv[((b * H + h) * Tk + j) * dv + c];
      }
  return out;
}

struct Dims {
  int64_t B, H, Tq, d, dv, offset;
  int64_t tk() const { return offset + Tq; }
};
struct Case {
  Dims n;
  const char* name;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
class AlibiSweep : public ::testing::TestWithParam<Case> {};

// ---- a tiny model, trained once for the extrapolation tests ---------------

// "Repeat the previous token" on a vocabulary of 5 (the first target is the
// first token itself): ids and targets of shape [B, T].
std::pair<Tensor, Tensor> copy_task(int64_t B, int64_t T, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> ids, targets;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      ids.push_back(static_cast<int64_t>(g.below(5)));
      targets.push_back(t == 0 ? ids.back() : ids[ids.size() - 2]);
    }
  return {from_ints(ids, {B, T}), from_ints(targets, {B, T})};
}

struct Trained {
  std::unique_ptr<GPT> model;
  float first_loss = 0, last_loss = 0;
};

// A 1-layer GPT with 8 ALiBi heads (your variant), block_size 16, trained
// with a plain Adam on the copy task. Built once and shared.
Trained& trained_alibi_gpt() {
  static Trained t = [] {
    GPTConfig c;
    c.vocab = 5;
    c.block_size = 16;
    c.layers = 1;
    c.heads = 8;
    c.embd = 32;
    c.attention = "student:alibi";
    Trained r;
    r.model = std::make_unique<GPT>(c, 7);
    GPT& model = *r.model;
    const std::vector<Tensor*> params = model.parameters();
    std::vector<std::vector<float>> m1(params.size()), m2(params.size());
    for (int step = 1; step <= 120; ++step) {
      const auto [x, y] = copy_task(16, 16, 100 + step);
      model.zero_grad();
      const Tensor loss = cross_entropy(model.forward(x), y);
      loss.backward();
      (step == 1 ? r.first_loss : r.last_loss) = loss.item();
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
    model.eval();
    return r;
  }();
  return t;
}

// Mean cross-entropy of the positions from..T-1 of logits [B, T, V].
double loss_from(const Tensor& logits, const Tensor& targets, int64_t from) {
  const int64_t T = logits.shape()[1];
  return cross_entropy(contiguous(narrow(logits, 1, from, T - from)),
                       contiguous(narrow(targets, 1, from, T - from)))
      .item();
}

}  // namespace

// ------------------------------------------------------------------ slopes

TEST(Slopes, EveryHeadCountFrom1To64MatchesThePaper) {
  for (int64_t n = 1; n <= 64; ++n) {
    const std::vector<float> got = lesson07::alibi_slopes(n);
    const std::vector<double> want = oracle_slopes(n);
    ASSERT_EQ(got.size(), want.size()) << "alibi_slopes(" << n << "): one slope per head";
    for (int64_t h = 0; h < n; ++h)
      ASSERT_NEAR(got[h], want[h], 1e-6 * want[h])
          << "alibi_slopes(" << n << ")[" << h << "]: expected " << want[h] << ", got " << got[h]
          << ((n & (n - 1)) ? " (" + std::to_string(n) + " is not a power of two: the first heads "
                                  "take the slopes of the power of two below, the rest every other "
                                  "slope of twice that)"
                            : "");
  }
}

TEST(Slopes, AllDifferentAllBetweenZeroAndOne) {
  for (int64_t n : {3, 6, 7, 12, 20, 24, 48}) {
    std::vector<float> s = lesson07::alibi_slopes(n);
    ASSERT_EQ(static_cast<int64_t>(s.size()), n);
    for (float x : s) EXPECT_TRUE(x > 0 && x < 1) << "alibi_slopes(" << n << ") holds " << x;
    std::sort(s.begin(), s.end());
    EXPECT_EQ(std::adjacent_find(s.begin(), s.end()), s.end())
        << "alibi_slopes(" << n << ") has two equal slopes: two heads would see distance the same "
        << "way";
  }
}

// ------------------------------------------------------ sweeps vs oracle

TEST_P(AlibiSweep, MatchesDoubleOracle) {
  const Dims n = GetParam().n;
  const Tensor q = rnd({n.B, n.H, n.Tq, n.d}, 100 + n.H * 7 + n.Tq),
               k = rnd({n.B, n.H, n.tk(), n.d}, 200 + n.H + n.offset),
               v = rnd({n.B, n.H, n.tk(), n.dv}, 300 + n.dv);
  Tensor w;
  const Tensor out = lesson07::alibi_attention(q, k, v, n.offset, &w);
  EXPECT_TRUE(close(std::string(GetParam().name) + ": alibi_attention", out, oracle(q, k, v, n.offset),
                    {n.B, n.H, n.Tq, n.dv}));
  ASSERT_TRUE(w.defined()) << "fill *weights_out when it is non-null";
  EXPECT_EQ(w.shape(), (Shape{n.B, n.H, n.Tq, n.tk()}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AlibiSweep,
    ::testing::Values(Case{{1, 1, 1, 1, 1, 0}, "one_head_T1_d1"},
                      Case{{2, 3, 5, 4, 3, 0}, "three_heads"},
                      Case{{1, 5, 7, 8, 2, 0}, "five_heads"},
                      Case{{2, 6, 4, 3, 3, 0}, "six_heads"},
                      Case{{1, 8, 9, 4, 4, 0}, "eight_heads"},
                      Case{{1, 12, 6, 2, 5, 0}, "twelve_heads"},
                      Case{{1, 7, 3, 4, 4, 5}, "cache_offset5_three_new_queries"},
                      Case{{2, 4, 1, 6, 2, 11}, "cache_offset11_one_new_query"},
                      Case{{1, 2, 33, 8, 8, 0}, "two_heads_T33"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST(Bias, RandomShapesMatchTheFormula) {
  for (auto [H, tq, offset] : std::vector<std::array<int64_t, 3>>{{1, 4, 0}, {3, 5, 2}, {6, 1, 9}, {12, 3, 0}}) {
    const int64_t tk = tq + offset;
    const Tensor b = lesson07::alibi_bias(H, tq, tk, offset);
    ASSERT_EQ(b.shape(), (Shape{H, tq, tk}));
    const std::vector<float> g = b.to_vector();
    const std::vector<double> m = oracle_slopes(H);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < tq; ++i)
        for (int64_t j = 0; j < tk; ++j) {
          const float x = g[(h * tq + i) * tk + j];
          ASSERT_TRUE(std::isfinite(x)) << "bias[" << h << "," << i << "," << j << "] = " << x;
          if (j > offset + i) continue;  // a future key: masked, any finite value
          ASSERT_NEAR(x, -m[h] * double(offset + i - j), 1e-5 * (1 + m[h] * (offset + i - j)))
              << "bias[" << h << "," << i << "," << j << "], " << H << " heads, offset " << offset;
        }
  }
}

// --------------------------------------------------------------- gradients

TEST(Gradients, GradcheckThroughAlibiAttention) {
  const Tensor q = rnd({1, 3, 4, 3}, 400).set_requires_grad(),
               k = rnd({1, 3, 4, 3}, 401).set_requires_grad(),
               v = rnd({1, 3, 4, 2}, 402).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson07::alibi_attention(in[0], in[1], in[2]); },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through alibi_attention (0 = q, 1 = k, 2 = v):\n" << r.message;
}

TEST(Gradients, GradcheckWithACacheOffset) {
  const Tensor q = rnd({1, 2, 2, 3}, 410).set_requires_grad(),
               k = rnd({1, 2, 5, 3}, 411).set_requires_grad(),
               v = rnd({1, 2, 5, 2}, 412).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson07::alibi_attention(in[0], in[1], in[2], 3); },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients with offset 3 (0 = q, 1 = k, 2 = v):\n" << r.message;
}

// ------------------------------------------------------------- stability

TEST(Stability, ScoresNearPlusAndMinus1000) {
  const float c = std::sqrt(2000.0f);  // q.k / sqrt(4) ~ +-1000
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> qv = rnd({1, 4, 6, 4}, 420).to_vector(), kv = rnd({1, 4, 6, 4}, 421).to_vector();
    for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = sign * c;
    for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
    const Tensor q = from_vector(qv, {1, 4, 6, 4}), k = from_vector(kv, {1, 4, 6, 4}),
                 v = rnd({1, 4, 6, 3}, 422);
    EXPECT_TRUE(close(sign > 0 ? "scores near +1000" : "scores near -1000",
                      lesson07::alibi_attention(q, k, v), oracle(q, k, v, 0), {1, 4, 6, 3}, 1e-3))
        << "(NaN or inf: exp() overflowed; let softmax subtract the row max)";
  }
}

TEST(Stability, HugeBiasesOfALongSequence) {
  // 8 heads: head 0 has slope 1/2, so key 0 of query 1199 gets -599.5. The
  // weights of old keys underflow to 0; nothing may become NaN.
  const Tensor q = rnd({1, 8, 4, 4}, 430), k = rnd({1, 8, 1200, 4}, 431), v = rnd({1, 8, 1200, 2}, 432);
  EXPECT_TRUE(close("4 queries at positions 1196..1199, 8 heads", lesson07::alibi_attention(q, k, v, 1196),
                    oracle(q, k, v, 1196), {1, 8, 4, 2}, 1e-3));
}

// ------------------------------------------------------------- causality

TEST(Causality, FutureKeysAndValuesDoNotMatter) {
  const Tensor q = rnd({2, 3, 7, 4}, 440), k = rnd({2, 3, 7, 4}, 441), v = rnd({2, 3, 7, 3}, 442);
  const Tensor future = from_bools({0, 0, 0, 0, 1, 1, 1}, {1, 1, 7, 1});
  const Tensor k2 = where(future, rnd({2, 3, 7, 4}, 443, 5.0f), k),
               v2 = where(future, rnd({2, 3, 7, 3}, 444, 5.0f), v);
  const std::vector<float> a = lesson07::alibi_attention(q, k, v).to_vector();
  const std::vector<float> b = lesson07::alibi_attention(q, k2, v2).to_vector();
  for (int64_t bh = 0; bh < 6; ++bh)
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t c = 0; c < 3; ++c)
        ASSERT_NEAR(a[(bh * 7 + t) * 3 + c], b[(bh * 7 + t) * 3 + c], 1e-6)
            << "out at (batch*head " << bh << ", token " << t << ") changed when only tokens 4..6 "
            << "changed. The ALiBi bias is not a mask: the causal mask is still needed (j <= i)";
}

TEST(Causality, WeightsAboveTheDiagonalAreZero) {
  Tensor w;
  lesson07::alibi_attention(rnd({1, 5, 6, 3}, 450), rnd({1, 5, 6, 3}, 451), rnd({1, 5, 6, 3}, 452), 0,
                            &w);
  ASSERT_TRUE(w.defined());
  const std::vector<float> g = w.to_vector();
  for (int64_t h = 0; h < 5; ++h)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = i + 1; j < 6; ++j)
        ASSERT_EQ(g[(h * 6 + i) * 6 + j], 0.0f)
            << "weights[0," << h << "," << i << "," << j << "]: query " << i
            << " must give key " << j << " (its future) weight 0";
}

// ---------------------------------------------------------- extrapolation

TEST(Extrapolation, AttentionFarBeyondAnyTrainingLength) {
  // Nothing in ALiBi has a length: T = 400 works like T = 4. Finite, equal
  // to the oracle, causal.
  const Tensor q = rnd({1, 4, 400, 8}, 460), k = rnd({1, 4, 400, 8}, 461), v = rnd({1, 4, 400, 4}, 462);
  const Tensor out = lesson07::alibi_attention(q, k, v);
  EXPECT_TRUE(close("alibi_attention at T = 400", out, oracle(q, k, v, 0), {1, 4, 400, 4}, 2e-4));
  // The first 8 rows do not depend on the 392 tokens after them.
  const Tensor short_out = lesson07::alibi_attention(narrow(q, 2, 0, 8), narrow(k, 2, 0, 8),
                                                     narrow(v, 2, 0, 8));
  EXPECT_TRUE(close("rows 0..7 of T = 400 vs the same 8 tokens alone", contiguous(narrow(out, 2, 0, 8)),
                    short_out, 1e-5));
}

TEST(Extrapolation, ExtendContextKeepsTheWeightsAndGrowsTheBlock) {
  Trained& t = trained_alibi_gpt();
  const std::unique_ptr<GPT> longer = lesson07::extend_context(*t.model, 64);
  ASSERT_TRUE(longer) << "extend_context returned nullptr";
  EXPECT_EQ(longer->config().block_size, 64);
  EXPECT_EQ(longer->config().attention, t.model->config().attention);
  const auto a = t.model->state_dict(), b = longer->state_dict();
  ASSERT_EQ(a.size(), b.size()) << "the longer model must have the same tensors";
  for (const auto& [name, w] : a) {
    ASSERT_TRUE(b.count(name)) << name << " is missing from the extended model";
    EXPECT_TRUE(close("extended " + name, b.at(name), w, 0)) << "copy the trained weights";
  }
}

TEST(Extrapolation, ATinyModelTrainedOn16TokensRunsOn64) {
  Trained& t = trained_alibi_gpt();
  ASSERT_LT(t.last_loss, 0.5f * t.first_loss) << "the model did not train (loss " << t.first_loss
                                              << " -> " << t.last_loss << "); see Training.*";
  const std::unique_ptr<GPT> longer = lesson07::extend_context(*t.model, 64);
  ASSERT_TRUE(longer);
  longer->eval();
  const auto [x, y] = copy_task(4, 64, 900);
  const Tensor logits = longer->forward(x);
  ASSERT_EQ(logits.shape(), (Shape{4, 64, 5}));
  for (float z : logits.to_vector()) ASSERT_TRUE(std::isfinite(z)) << "logits at T = 64 are not finite";
  // The first 16 positions are exactly what the original model computes.
  const Tensor head = t.model->forward(contiguous(narrow(x, 1, 0, 16)));
  EXPECT_TRUE(close("logits of positions 0..15, extended model vs trained model",
                    contiguous(narrow(logits, 1, 0, 16)), head, 1e-4));
  // Causal at T = 64: changing token 40 leaves positions 0..39 alone.
  std::vector<int64_t> ids = x.to_int_vector();
  ids[40] = (ids[40] + 1) % 5;
  const Tensor changed = longer->forward(from_ints(ids, {4, 64}));
  EXPECT_TRUE(close("logits of positions 0..39 after changing token 40",
                    contiguous(narrow(changed, 1, 0, 40)), contiguous(narrow(logits, 1, 0, 40)), 1e-5));
  // And it still does its job on positions it never saw in training.
  const double unseen = loss_from(logits, y, 16);
  std::cout << "  loss at the end of training (T = 16): " << t.last_loss
            << "; on positions 16..63 of T = 64, never seen: " << unseen << "\n";
  EXPECT_LT(unseen, 0.5 * t.first_loss)
      << "loss on positions 16..63 (never seen in training) is " << unseen << " (end of training: "
      << t.last_loss << ", untrained: " << t.first_loss << "): ALiBi should carry the copy task "
      << "to longer sequences";
}

TEST(Extrapolation, LearnedPositionsCannotBeExtended) {
  GPTConfig c;
  c.vocab = 5, c.block_size = 8, c.layers = 1, c.heads = 2, c.embd = 8, c.attention = "mha";
  GPT learned(c, 1);
  EXPECT_TRUE(rejects("extend_context(a model with learned positions, 64)",
                      [&] { lesson07::extend_context(learned, 64); },
                      "its wpe table has 8 rows: positions 8..63 have no embedding"));
}

TEST(Extrapolation, ShorterBlockIsAnError) {
  Trained& t = trained_alibi_gpt();
  EXPECT_TRUE(rejects("extend_context(block 16 model, 4)", [&] { lesson07::extend_context(*t.model, 4); },
                      "extending to a shorter block makes no sense"));
}

// ---------------------------------------------------------------- mistakes

TEST(Mistakes, BiasScaledTogetherWithTheScores) {
  // (q.k + bias) / sqrt(d) shrinks the bias by sqrt(d); with q = 0 only the
  // bias speaks, so the weights show it. d = 16: the slope looks 4x smaller.
  const Tensor q = zeros({1, 4, 5, 16}), k = rnd({1, 4, 5, 16}, 470), v = rnd({1, 4, 5, 2}, 471);
  Tensor w;
  lesson07::alibi_attention(q, k, v, 0, &w);
  ASSERT_TRUE(w.defined());
  const double m = 0.25;  // head 0 of 4
  double z = 0;
  for (int j = 0; j < 5; ++j) z += std::exp(-m * j);
  const double want = std::exp(-m * 4) / z, got = w.to_vector()[4 * 5 + 0];
  EXPECT_NEAR(got, want, 1e-5) << "head 0 (slope 1/4), query 4, key 0: weight expected " << want << ", got "
                               << got << ". Scale q k^T by 1/sqrt(d) first, THEN add the bias: the "
                               << "slopes are per unit of distance, not per unit of q.k";
}

TEST(Mistakes, MissingOneOverSqrtDScale) {
  // d = 16, one head (slope 1/256). q . k0 = 4, q . k1 = 0, so query 1 has
  // scores [4 / sqrt(16) - 1/256, 0] = [0.99609, 0]; v = [1, 0] makes the
  // output the weight of key 0.
  const Tensor q = full({1, 1, 2, 16}, 0.5), v = from_vector({1, 0}, {1, 1, 2, 1});
  std::vector<float> kv(32, 0.0f);
  for (int c = 0; c < 16; ++c) kv[c] = 0.5f;
  const Tensor k = from_vector(kv, {1, 1, 2, 16});
  const float got = lesson07::alibi_attention(q, k, v).to_vector()[1];
  const double m = 1.0 / 256, want = 1 / (1 + std::exp(-(1 - m))), unscaled = 1 / (1 + std::exp(-(4 - m)));
  EXPECT_NEAR(got, want, 1e-5) << "query 1, d = 16: weight of key 0 expected " << want << ", got " << got
                               << (std::fabs(got - unscaled) < 1e-4
                                       ? ": that is softmax of the UNSCALED scores. Multiply q k^T by "
                                         "1/sqrt(d) = 1/4 (then add the bias)"
                                       : "");
}

TEST(Mistakes, BiasIgnoresTheCacheOffset) {
  // Decoding: one query at position 9 over 10 keys. Its bias row must be
  // -m * (9 - j); measured from row 0 it would be -m * (0 - j) = +m * j.
  const Tensor q = rnd({1, 4, 10, 4}, 480), k = rnd({1, 4, 10, 4}, 481), v = rnd({1, 4, 10, 3}, 482);
  const Tensor full = lesson07::alibi_attention(q, k, v);
  EXPECT_TRUE(close("the newest token decoded alone (offset 9)",
                    lesson07::alibi_attention(narrow(q, 2, 9, 1), k, v, 9), contiguous(narrow(full, 2, 9, 1))))
      << "the query of row i sits at position offset + i: use it for the distance (and the mask)";
}

TEST(Mistakes, BiasIsNotAMask) {
  // A signed bias -m (p - j) is POSITIVE for future keys: without the causal
  // mask they get the largest weights of all.
  Tensor w;
  lesson07::alibi_attention(zeros({1, 2, 4, 2}), rnd({1, 2, 4, 2}, 490), rnd({1, 2, 4, 2}, 491), 0, &w);
  ASSERT_TRUE(w.defined());
  const std::vector<float> g = w.to_vector();
  EXPECT_EQ(g[0 * 4 + 3], 0.0f) << "query 0 gives key 3 (the future) weight " << g[3]
                                << ": ALiBi changes the scores, it does not replace the causal mask";
}

// ---------------------------------------------------------------- training

TEST(Training, YourALiBiTrainsATinyGPT) {
  // "Repeat the previous token" with no position embedding at all: only the
  // ALiBi bias tells the model which token is the previous one. The glue in
  // alibi_glue.cpp registers "student:alibi" (your alibi_attention).
  Trained& t = trained_alibi_gpt();
  ASSERT_TRUE(std::isfinite(t.first_loss) && std::isfinite(t.last_loss)) << "the loss became NaN or inf";
  EXPECT_LT(t.last_loss, 0.5f * t.first_loss)
      << "the loss went from " << t.first_loss << " to " << t.last_loss
      << " in 120 steps; with working ALiBi attention it more than halves";
}
