// Performer (FAVOR+) and Linformer (attention/performer.h): double-precision
// loop oracles, gradcheck, the projection's seed, orthogonality and norms,
// causal rows against the masked estimated weights, the same bits at one and
// two threads, the approximation error as the feature count grows (the
// numbers of chapter 16's README), the module's seeded redraw, the variant
// in a GPT, Linformer's refusal in the causal GPT and the bad option values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "../error_of.h"
#include "attention/performer.h"
#include "attention/registry.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/random.h"
#include "core/threads.h"
#include "nn/gpt.h"

using namespace attn;

namespace {

Tensor randn_scaled(const Shape& shape, uint64_t seed, float scale = 1.0f) {
  Generator g(seed);
  return mul(randn(shape, g), scale);
}

// The positive random features in double, with no stabiliser:
// phi(x)_m = exp(w_m . x' - |x'|^2 / 2) / sqrt(M), x' = x d^(-1/4).
// x holds `rows` rows of d; returns rows x M.
std::vector<double> features_oracle(const std::vector<float>& x, int64_t rows, int64_t d,
                                    const std::vector<float>& w, int64_t m) {
  const double r = std::pow(double(d), -0.25);
  std::vector<double> f(rows * m);
  for (int64_t i = 0; i < rows; ++i) {
    double half = 0;
    for (int64_t e = 0; e < d; ++e) half += 0.5 * (x[i * d + e] * r) * (x[i * d + e] * r);
    for (int64_t j = 0; j < m; ++j) {
      double a = 0;
      for (int64_t e = 0; e < d; ++e) a += double(w[j * d + e]) * x[i * d + e] * r;
      f[i * m + j] = std::exp(a - half) / std::sqrt(double(m));
    }
  }
  return f;
}

// FAVOR+ as masked estimated weights: A_ij = phi(q_i) . phi(k_j), zeroed for
// j > i when causal, each row divided by its sum, times v. q [BH, T, d],
// k, v [BH, T, d] (as many K/V heads as query heads).
std::vector<double> favor_oracle(const std::vector<float>& q, const std::vector<float>& k,
                                 const std::vector<float>& v, int64_t bh, int64_t t, int64_t d,
                                 const std::vector<float>& w, int64_t m, bool causal) {
  const std::vector<double> fq = features_oracle(q, bh * t, d, w, m), fk = features_oracle(k, bh * t, d, w, m);
  std::vector<double> out(bh * t * d, 0.0);
  for (int64_t h = 0; h < bh; ++h)
    for (int64_t i = 0; i < t; ++i) {
      double z = 0;
      for (int64_t j = 0; j < t; ++j) {
        if (causal && j > i) continue;  // the mask
        double a = 0;
        for (int64_t f = 0; f < m; ++f) a += fq[(h * t + i) * m + f] * fk[(h * t + j) * m + f];
        z += a;
        for (int64_t e = 0; e < d; ++e) out[(h * t + i) * d + e] += a * v[(h * t + j) * d + e];
      }
      for (int64_t e = 0; e < d; ++e) out[(h * t + i) * d + e] /= z;
    }
  return out;
}

std::vector<double> softmax_oracle(const std::vector<float>& q, const std::vector<float>& k,
                                   const std::vector<float>& v, int64_t bh, int64_t t, int64_t d) {
  std::vector<double> out(bh * t * d, 0.0);
  for (int64_t h = 0; h < bh; ++h)
    for (int64_t i = 0; i < t; ++i) {
      std::vector<double> p(t);
      double mx = -1e300, z = 0;
      for (int64_t j = 0; j < t; ++j) {
        double a = 0;
        for (int64_t e = 0; e < d; ++e) a += double(q[(h * t + i) * d + e]) * k[(h * t + j) * d + e];
        mx = std::max(mx, p[j] = a / std::sqrt(double(d)));
      }
      for (double& x : p) z += (x = std::exp(x - mx));
      for (int64_t j = 0; j < t; ++j)
        for (int64_t e = 0; e < d; ++e) out[(h * t + i) * d + e] += p[j] / z * v[(h * t + j) * d + e];
    }
  return out;
}

std::vector<double> as_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// Largest |got - want| / (1 + |want|).
double worst(const Tensor& got, const std::vector<double>& want) {
  const std::vector<float> g = got.to_vector();
  double e = 0;
  for (std::size_t i = 0; i < g.size(); ++i)
    e = std::max(e, std::isfinite(g[i]) ? std::fabs(g[i] - want[i]) / (1 + std::fabs(want[i])) : 1e30);
  return e;
}

double relative_error(const Tensor& got, const std::vector<double>& want) {
  const std::vector<float> g = got.to_vector();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < g.size(); ++i) num += std::fabs(g[i] - want[i]), den += std::fabs(want[i]);
  return num / den;
}

AttentionConfig small_config() {
  AttentionConfig c;
  c.embd = 16, c.heads = 2, c.block_size = 16;
  return c;
}

}  // namespace

// ------------------------------------------------------------------ FAVOR+

TEST(Performer, MatchesTheDoubleOracleAcrossChunks) {
  // T = 70 crosses the chunk of 64 of the causal path.
  const int64_t H = 3, T = 70, d = 8, M = 24;
  const Tensor q = randn_scaled({1, H, T, d}, 1, 0.7f), k = randn_scaled({1, H, T, d}, 2, 0.7f),
               v = randn_scaled({1, H, T, d}, 3);
  const Tensor w = performer_projection(M, d, true, 4);
  for (bool causal : {false, true}) {
    const double e = worst(performer_attention(q, k, v, w, causal),
                           favor_oracle(q.to_vector(), k.to_vector(), v.to_vector(), H, T, d, w.to_vector(), M, causal));
    EXPECT_LT(e, 1e-4) << (causal ? "causal" : "non-causal");
  }
}

TEST(Performer, SharedKeyValueHeads) {
  // 4 query heads over 2 K/V heads: query head h reads K/V head h / 2.
  const Tensor q = randn_scaled({2, 4, 6, 4}, 5, 0.5f), k = randn_scaled({2, 2, 6, 4}, 6, 0.5f),
               v = randn_scaled({2, 2, 6, 4}, 7);
  const Tensor w = performer_projection(10, 4, false, 8);
  const Tensor got = performer_attention(q, k, v, w, true);
  const Tensor want = performer_attention(q, repeat_kv(k, 4), repeat_kv(v, 4), w, true);
  EXPECT_LT(worst(got, as_double(want)), 1e-6);
}

TEST(Performer, GradcheckNonCausalAndCausal) {
  const Tensor w = performer_projection(6, 3, true, 9);
  for (bool causal : {false, true}) {
    Tensor q = randn_scaled({1, 2, 5, 3}, 10, 0.5f), k = randn_scaled({1, 2, 5, 3}, 11, 0.5f),
           v = randn_scaled({1, 2, 5, 3}, 12);
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
    const GradcheckResult r = gradcheck(
        [w, causal](const std::vector<Tensor>& in) { return performer_attention(in[0], in[1], in[2], w, causal); },
        {q, k, v});
    EXPECT_TRUE(r.ok) << (causal ? "causal: " : "non-causal: ") << r.message;
  }
}

TEST(Performer, CausalWeightsAreTheMaskedEstimate) {
  // performer_weights(causal) is the lower triangle of phi(Q) phi(K)^T with
  // rows normalised: row i holds exactly keys 0..i, summing to 1, and times
  // v it is the causal attention.
  const int64_t T = 7, d = 4, M = 12;
  const Tensor q = randn_scaled({1, 1, T, d}, 13), k = randn_scaled({1, 1, T, d}, 14), v = randn_scaled({1, 1, T, d}, 15);
  const Tensor w = performer_projection(M, d, true, 16);
  const std::vector<float> a = performer_weights(q, k, w, true).to_vector();
  for (int64_t i = 0; i < T; ++i) {
    double rowsum = 0;
    for (int64_t j = 0; j < T; ++j) {
      if (j > i) {
        EXPECT_EQ(a[i * T + j], 0.0f) << "weight of future key " << j << " for query " << i;
      }
      rowsum += a[i * T + j];
    }
    EXPECT_NEAR(rowsum, 1.0, 1e-5) << "row " << i;
  }
  EXPECT_LT(worst(performer_attention(q, k, v, w, true), as_double(matmul(performer_weights(q, k, w, true), v))),
            1e-5);
}

TEST(Performer, LargeInputsStayFinite) {
  // |q| about 40 in d = 8: exp(w.x - |x|^2/2) alone would underflow to 0 in
  // float (0/0); the stabilisers keep the result equal to the oracle.
  const int64_t H = 2, T = 6, d = 8, M = 16;
  const Tensor q = randn_scaled({1, H, T, d}, 17, 14.0f), k = randn_scaled({1, H, T, d}, 18, 0.2f),
               v = randn_scaled({1, H, T, d}, 19);
  const Tensor w = performer_projection(M, d, true, 20);
  EXPECT_LT(worst(performer_attention(q, k, v, w, false),
                  favor_oracle(q.to_vector(), k.to_vector(), v.to_vector(), H, T, d, w.to_vector(), M, false)),
            1e-3);
}

TEST(Performer, SameBitsWithOneAndTwoThreads) {
  // Forward and gradients, causal across two chunks of 64.
  const Tensor w = performer_projection(32, 16, true, 40);
  auto run = [&w](int threads) {
    set_num_threads(threads);
    Tensor q = randn_scaled({2, 2, 100, 16}, 41, 0.5f), k = randn_scaled({2, 2, 100, 16}, 42, 0.5f),
           v = randn_scaled({2, 2, 100, 16}, 43);
    for (Tensor* t : {&q, &k, &v}) t->set_requires_grad(true);
    const Tensor out = performer_attention(q, k, v, w, true);
    sum(mul(out, randn_scaled(out.shape(), 44))).backward();
    std::vector<float> all = out.to_vector();
    for (const Tensor* t : {&q, &k, &v}) {
      const std::vector<float> g = t->grad().to_vector();
      all.insert(all.end(), g.begin(), g.end());
    }
    return all;
  };
  const int before = num_threads();
  const std::vector<float> one = run(1), two = run(2);
  set_num_threads(before);
  EXPECT_EQ(one, two);
}

// ------------------------------------------------------------------ the projection

TEST(Performer, ProjectionSeedOrthogonalityAndNorms) {
  const int64_t M = 1000, d = 8;  // 125 full blocks
  const Tensor a = performer_projection(M, d, true, 21);
  EXPECT_EQ(a.to_vector(), performer_projection(M, d, true, 21).to_vector()) << "same seed, same matrix";
  EXPECT_NE(a.to_vector(), performer_projection(M, d, true, 22).to_vector()) << "seeds 21 and 22";
  const std::vector<float> w = a.to_vector(), iid = performer_projection(M, d, false, 21).to_vector();
  auto dot = [](const std::vector<float>& m, int64_t r, int64_t s) {
    double x = 0;
    for (int64_t e = 0; e < d; ++e) x += double(m[r * d + e]) * m[s * d + e];
    return x;
  };
  double worst_cos = 0, iid_cos = 0, mean_sq = 0;
  for (int64_t r = 0; r < M; ++r) {
    mean_sq += dot(w, r, r) / M;
    const int64_t next = r + 1;
    if (next % d == 0 || next >= M) continue;  // the next row starts a new block
    worst_cos = std::max(worst_cos, std::fabs(dot(w, r, next)) / std::sqrt(dot(w, r, r) * dot(w, next, next)));
    iid_cos = std::max(iid_cos, std::fabs(dot(iid, r, next)) / std::sqrt(dot(iid, r, r) * dot(iid, next, next)));
  }
  EXPECT_LT(worst_cos, 1e-5) << "neighbouring rows of one block must be orthogonal";
  EXPECT_GT(iid_cos, 0.5) << "iid rows should not all be orthogonal";
  // chi_d norms: E|w|^2 = d; over 1000 rows the standard error is 0.13.
  EXPECT_NEAR(mean_sq, double(d), 0.6);
  // A count that is not a multiple of d: the last block is cut.
  EXPECT_EQ(performer_projection(10, 4, true, 1).shape(), (Shape{10, 4}));
  EXPECT_NE(error_of([] { performer_projection(0, 4, true, 1); }).find("performer: features=0: expected a positive count"),
            std::string::npos);
}

// ------------------------------------------------------------------ the approximation

TEST(Performer, ErrorFallsAsTheFeatureCountGrows) {
  // Chapter 16's experiment: mean relative error of the non-causal output
  // against exact softmax, T = 64, d = 16, 4 heads, |q|, |k| about 2, mean
  // over 8 seeds per M. A Monte Carlo error falls like 1/sqrt(M), so
  // M = 16 -> 1024 should divide it by about 8: the test asks for 4, and for
  // every 4x step to lower it. Orthogonal draws must not do worse than iid
  // (the mean over all M; per M they are within noise of each other at small M).
  const int64_t H = 4, T = 64, d = 16;
  const Tensor q = randn_scaled({1, H, T, d}, 23, 0.5f), k = randn_scaled({1, H, T, d}, 24, 0.5f),
               v = randn_scaled({1, H, T, d}, 25);
  const std::vector<double> exact = softmax_oracle(q.to_vector(), k.to_vector(), v.to_vector(), H, T, d);
  double total[2] = {0, 0};
  for (bool orthogonal : {true, false}) {
    std::vector<double> err;
    for (int64_t m : {16, 64, 256, 1024}) {
      double e = 0;
      for (uint64_t seed = 1; seed <= 8; ++seed)
        e += relative_error(performer_attention(q, k, v, performer_projection(m, d, orthogonal, seed), false), exact) / 8;
      std::printf("  %-10s M=%-5lld mean relative error %.4f\n", orthogonal ? "orthogonal" : "iid",
                  static_cast<long long>(m), e);
      if (!err.empty()) {
        EXPECT_LT(e, err.back()) << "M=" << m << " is no better than M=" << m / 4;
      }
      err.push_back(e);
      total[orthogonal] += e;
    }
    EXPECT_LT(err[3], err[0] / 4) << (orthogonal ? "orthogonal" : "iid");
  }
  EXPECT_LE(total[1], total[0]) << "orthogonal draws did worse than iid ones over all M";
}

// ------------------------------------------------------------------ the module and the variant

TEST(Performer, ModuleRedrawsReproduciblyEveryNTrainingForwards) {
  PerformerOptions o;
  o.features = 8, o.redraw = 2, o.seed = 3;
  Generator g1(5), g2(5);
  PerformerAttention a(small_config(), o, g1), b(small_config(), o, g2);
  const Tensor x = randn_scaled({2, 4, 16}, 26);
  std::vector<std::vector<float>> seen = {a.projection().to_vector()};
  for (int step = 1; step <= 5; ++step) {
    a.forward(x), b.forward(x);
    EXPECT_EQ(a.projection().to_vector(), b.projection().to_vector()) << "same seeds, forward " << step;
    seen.push_back(a.projection().to_vector());
  }
  // Forwards 1 and 2 use draw 0, 3 and 4 draw 1, 5 draw 2.
  EXPECT_EQ(seen[1], seen[0]);
  EXPECT_EQ(seen[2], seen[0]);
  EXPECT_NE(seen[3], seen[2]);
  EXPECT_EQ(seen[4], seen[3]);
  EXPECT_NE(seen[5], seen[4]);
  EXPECT_EQ(a.draws(), 2);
  a.eval();
  for (int i = 0; i < 3; ++i) a.forward(x);
  EXPECT_EQ(a.projection().to_vector(), seen[5]) << "evaluation must not redraw";
  // On request: the next draw, the same for both modules.
  a.redraw(), b.redraw();
  EXPECT_NE(a.projection().to_vector(), seen[5]);
  EXPECT_EQ(a.projection().to_vector(), b.projection().to_vector());
  EXPECT_EQ(a.draws(), 3);
  // The projection is a buffer: it travels with the state dict.
  EXPECT_EQ(a.state_dict().count("projection"), 1u);
}

TEST(Performer, VariantTrainsInTheGpt) {
  GPTConfig c;
  c.vocab = 5, c.block_size = 8, c.layers = 2, c.heads = 2, c.embd = 16;
  c.attention = "performer:features=16,redraw=3,seed=1";
  GPT model(c, 7);
  std::vector<int64_t> ids, targets;
  Generator data(8);
  for (int64_t i = 0; i < 4 * 8; ++i) ids.push_back(static_cast<int64_t>(data.below(5)));
  for (int64_t i = 0; i < 4 * 8; ++i) targets.push_back(i % 8 == 0 ? ids[i] : ids[i - 1]);
  const Tensor x = from_ints(ids, {4, 8}), y = from_ints(targets, {4, 8});
  float first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    model.zero_grad();
    const Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    (step == 0 ? first : last) = loss.item();
    for (Tensor* p : model.parameters())
      if (p->grad().defined()) {
        float* wp = p->data<float>();
        const std::vector<float> gr = p->grad().to_vector();
        for (std::size_t i = 0; i < gr.size(); ++i) wp[i] -= 0.5f * gr[i];
      }
  }
  ASSERT_TRUE(std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, first) << "30 steps of SGD did not lower the loss";
}

TEST(Performer, BadOptionsNameTheValueAndTheRule) {
  auto error = [](const std::string& spec) {
    return error_of([&] {
      Generator g(0);
      make_attention(spec, small_config(), g);
    });
  };
  EXPECT_NE(error("performer:features=0").find("attention performer: features=0: expected a positive count"),
            std::string::npos);
  EXPECT_NE(error("performer:features=-1").find("attention performer: features=-1: expected a positive count"),
            std::string::npos);
  EXPECT_NE(error("performer:features=20000").find("features=20000: expected at most 16384"), std::string::npos);
  EXPECT_NE(error("performer:orthogonal=2").find("orthogonal=2: expected 0 (iid rows) or 1"), std::string::npos);
  EXPECT_NE(error("performer:window=4").find("attention performer: unknown option 'window'"), std::string::npos);
  EXPECT_NE(error("performer:alibi").find("unknown option 'alibi'"), std::string::npos);
  EXPECT_NE(error("linformer:k=0").find("attention linformer: k=0: expected a positive count"), std::string::npos);
  EXPECT_NE(error("linformer").find("attention linformer: needs the option k=K"), std::string::npos);
  EXPECT_NE(error("linformer:k=8,rows=2").find("unknown option 'rows'"), std::string::npos);
  AttentionConfig with_dropout = small_config();
  with_dropout.dropout = 0.1f;
  EXPECT_NE(error_of([&] {
              Generator g(0);
              make_attention("performer", with_dropout, g);
            }).find("has no attention dropout"),
            std::string::npos);
}

// ------------------------------------------------------------------ Linformer

TEST(Linformer, MatchesAPlainLoopOracle) {
  const int64_t BH = 3, T = 10, d = 4, kp = 3, tmax = 12;
  const Tensor q = randn_scaled({1, BH, T, d}, 27), k = randn_scaled({1, BH, T, d}, 28), v = randn_scaled({1, BH, T, d}, 29);
  const Tensor e = randn_scaled({kp, tmax}, 30, 0.3f), f = randn_scaled({kp, tmax}, 31, 0.3f);
  const std::vector<float> qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector(), ev = e.to_vector(), fv = f.to_vector();
  std::vector<double> want(BH * T * d, 0.0);
  for (int64_t h = 0; h < BH; ++h) {
    std::vector<double> kk(kp * d, 0.0), vp(kp * d, 0.0);  // E K, F V over the first T columns
    for (int64_t r = 0; r < kp; ++r)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t x = 0; x < d; ++x) {
          kk[r * d + x] += double(ev[r * tmax + t]) * kv[(h * T + t) * d + x];
          vp[r * d + x] += double(fv[r * tmax + t]) * vv[(h * T + t) * d + x];
        }
    for (int64_t i = 0; i < T; ++i) {
      std::vector<double> p(kp);
      double mx = -1e300, z = 0;
      for (int64_t r = 0; r < kp; ++r) {
        double a = 0;
        for (int64_t x = 0; x < d; ++x) a += double(qv[(h * T + i) * d + x]) * kk[r * d + x];
        mx = std::max(mx, p[r] = a / std::sqrt(double(d)));
      }
      for (double& x : p) z += (x = std::exp(x - mx));
      for (int64_t r = 0; r < kp; ++r)
        for (int64_t x = 0; x < d; ++x) want[(h * T + i) * d + x] += p[r] / z * vp[r * d + x];
    }
  }
  EXPECT_LT(worst(linformer_attention(q, k, v, e, f), want), 1e-5);
}

TEST(Linformer, GradcheckAndEveryQueryReadsTheFuture) {
  Tensor q = randn_scaled({1, 2, 5, 3}, 32), k = randn_scaled({1, 2, 5, 3}, 33), v = randn_scaled({1, 2, 5, 3}, 34);
  Tensor e = randn_scaled({2, 5}, 35, 0.5f), f = randn_scaled({2, 5}, 36, 0.5f);
  for (Tensor* t : {&q, &k, &v, &e, &f}) t->set_requires_grad(true);
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return linformer_attention(in[0], in[1], in[2], in[3], in[4]); },
      {q, k, v, e, f});
  EXPECT_TRUE(r.ok) << r.message;
  // Why it cannot be causal: query 0's output depends on the last value.
  const Tensor out = linformer_attention(q, k, v, e, f);
  sum(narrow(out, 2, 0, 1)).backward();
  const std::vector<float> gv = v.grad().to_vector();
  double last = 0;
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t x = 0; x < 3; ++x) last += std::fabs(gv[(h * 5 + 4) * 3 + x]);
  EXPECT_GT(last, 1e-3) << "query 0 should read value 4 through F";
}

TEST(Linformer, RefusedInTheCausalGptWithTheReason) {
  const std::string msg = error_of([] {
    Generator g(0);
    make_attention("linformer:k=4", small_config(), g);
  });
  EXPECT_NE(msg.find("attention linformer: cannot run in a causal GPT"), std::string::npos) << msg;
  EXPECT_NE(msg.find("future tokens included"), std::string::npos) << msg;
}
