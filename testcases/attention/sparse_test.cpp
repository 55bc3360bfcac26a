// Strided and block-sparse attention: the patterns themselves (as pictures
// and against the rules written out here), their density, the attention
// they drive against a double-precision loop oracle, gradcheck, causality,
// decoding with a KV cache, and the registry's options.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "attention/pattern.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "attention/sparse.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "nn/gpt.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

// The rules as the course states them, spelled out independently of
// attention/sparse.cpp. p: query position, j: key position.
bool strided_rule(int64_t p, int64_t j, int64_t local, int64_t stride) {
  const bool in_local_window = j <= p && j >= p - local + 1;
  const bool summary_column = (j + 1) % stride == 0 && j <= p;
  return in_local_window || summary_column;
}

bool block_rule(int64_t p, int64_t j, int64_t block) {
  if (p < 0 || j > p) return false;
  const int64_t own = p / block, key = j / block;
  return key == own || key + 1 == own || key == 0;
}

using Rule = std::function<bool(int64_t p, int64_t j)>;

// One row per query: 'x' = allowed, '.' = not.
std::vector<std::string> picture(const Tensor& keep) {
  const int64_t tq = keep.shape()[0], tk = keep.shape()[1];
  const auto flags = keep.to_int_vector();
  std::vector<std::string> rows(tq);
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) rows[i] += flags[i * tk + j] ? 'x' : '.';
  return rows;
}

struct Case {
  int64_t B, H, Hkv, Tq, Tk, d, offset;
  bool alibi;  // power-of-two H only
};

// Softmax attention over the keys the rule allows, in double.
std::vector<double> oracle(const Case& c, const Rule& allowed, const std::vector<float>& q,
                           const std::vector<float>& k, const std::vector<float>& v) {
  std::vector<double> out(c.B * c.H * c.Tq * c.d, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kh = h / (c.H / c.Hkv);
      const double slope = std::pow(2.0, -8.0 * (h + 1) / c.H);
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t p = c.offset + i;
        std::vector<int64_t> js;
        std::vector<double> s;
        for (int64_t j = 0; j < c.Tk; ++j) {
          if (!allowed(p, j)) continue;
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e)
            dot += double(q[((b * c.H + h) * c.Tq + i) * c.d + e]) * k[((b * c.Hkv + kh) * c.Tk + j) * c.d + e];
          s.push_back(dot / std::sqrt(double(c.d)) - (c.alibi ? slope * double(p - j) : 0.0));
          js.push_back(j);
        }
        if (s.empty()) continue;
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (size_t n = 0; n < js.size(); ++n)
          for (int64_t e = 0; e < c.d; ++e)
            out[((b * c.H + h) * c.Tq + i) * c.d + e] +=
                s[n] / z * v[((b * c.Hkv + kh) * c.Tk + js[n]) * c.d + e];
      }
    }
  return out;
}

AttentionCall make_call(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset = 0,
                        bool alibi = false) {
  AttentionCall call;
  call.q = q, call.k = k, call.v = v, call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  if (alibi) call.alibi = alibi_slopes(q.shape()[1]);
  return call;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 2e-5 * (1 + std::fabs(want[i]))) << what << ", element " << i;
}

}  // namespace

TEST(SparsePattern, StridedPicture) {
  // local = 2, stride = 3: the last 2 keys, plus the summary columns 2, 5.
  const std::vector<std::string> want = {"x.......", "xx......", ".xx.....", "..xx....",
                                         "..xxx...", "..x.xx..", "..x..xx.", "..x..xxx"};
  EXPECT_EQ(picture(strided_sparse_mask(8, 8, 0, 2, 3)), want);
}

TEST(SparsePattern, BlockSparsePicture) {
  // block = 2: its own block (causally), the previous block, the first block.
  const std::vector<std::string> want = {"x.......", "xx......", "xxx.....", "xxxx....",
                                         "xxxxx...", "xxxxxx..", "xx..xxx.", "xx..xxxx"};
  EXPECT_EQ(picture(block_sparse_mask(8, 8, 0, 2)), want);
}

TEST(SparsePattern, MasksFollowTheRulesEverywhere) {
  for (int64_t tq : {1, 7, 20})
    for (int64_t offset : {0, 5})
      for (int64_t a : {1, 2, 3, 8})
        for (int64_t b : {1, 4, 5}) {
          const int64_t tk = tq + offset;
          const auto strided = strided_sparse_mask(tq, tk, offset, a, b).to_int_vector();
          const auto blocks = block_sparse_mask(tq, tk, offset, b).to_int_vector();
          for (int64_t i = 0; i < tq; ++i)
            for (int64_t j = 0; j < tk; ++j) {
              ASSERT_EQ(strided[i * tk + j] != 0, strided_rule(offset + i, j, a, b))
                  << "strided local=" << a << " stride=" << b << " query " << offset + i << " key " << j;
              ASSERT_EQ(blocks[i * tk + j] != 0, block_rule(offset + i, j, b))
                  << "block=" << b << " query " << offset + i << " key " << j;
            }
        }
}

TEST(SparsePattern, DensityCountsTheAllowedPairs) {
  const int64_t T = 1024;
  const double causal = double(T + 1) / (2.0 * T);
  EXPECT_DOUBLE_EQ(pattern_density(strided_sparse_mask(T, T, 0, T, 7)), causal);  // local >= T
  EXPECT_DOUBLE_EQ(pattern_density(strided_sparse_mask(T, T, 0, 1, 1)), causal);  // every key a summary
  EXPECT_DOUBLE_EQ(pattern_density(block_sparse_mask(T, T, 0, T)), causal);       // one block
  // The counts, worked out by hand: each query p sees min(p + 1, L) local
  // keys plus the summary columns j = S-1, 2S-1, ... older than p - L + 1.
  const int64_t L = 32, S = 32, B = 32;
  int64_t strided = 0, blocks = 0;
  for (int64_t p = 0; p < T; ++p) {
    const int64_t local = std::min(p + 1, L);
    const int64_t oldest_local = p - local + 1;
    strided += local + oldest_local / S;  // summaries at S-1 < oldest_local, 2S-1 < ..., ...
    const int64_t qb = p / B;
    blocks += (p % B + 1) + (qb >= 1 ? B : 0) + (qb >= 2 ? B : 0);
  }
  const double d_strided = pattern_density(strided_sparse_mask(T, T, 0, L, S));
  const double d_blocks = pattern_density(block_sparse_mask(T, T, 0, B));
  EXPECT_DOUBLE_EQ(d_strided, double(strided) / double(T * T));
  EXPECT_DOUBLE_EQ(d_blocks, double(blocks) / double(T * T));
  std::printf("[ density T=%lld ] causal %.4f, sparse:local=32,stride=32 %.4f, blocksparse:block=32 %.4f\n",
              static_cast<long long>(T), causal, d_strided, d_blocks);
  EXPECT_LT(d_strided, causal / 10);
  EXPECT_LT(d_blocks, causal / 5);
}

class SparseOracle : public ::testing::TestWithParam<Case> {};

TEST_P(SparseOracle, BothPatternsMatchLoops) {
  const Case c = GetParam();
  Generator g(c.Tq * 17 + c.offset);
  const Tensor q = randn({c.B, c.H, c.Tq, c.d}, g);
  const Tensor k = randn({c.B, c.Hkv, c.Tk, c.d}, g), v = randn({c.B, c.Hkv, c.Tk, c.d}, g);
  const auto qv = q.to_vector(), kv = k.to_vector(), vv = v.to_vector();
  const AttentionCall call = make_call(q, k, v, c.offset, c.alibi);
  for (auto [local, stride] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 3}, {3, 4}, {5, 2}, {40, 40}}) {
    // Init-captures: clang before 16 cannot capture structured bindings directly.
    const Rule rule = [l = local, s = stride](int64_t p, int64_t j) { return strided_rule(p, j, l, s); };
    expect_close(strided_sparse_kernel(local, stride)(call).to_vector(), oracle(c, rule, qv, kv, vv),
                 "sparse:local=" + std::to_string(local) + ",stride=" + std::to_string(stride));
  }
  for (int64_t block : {1, 2, 3, 8, 40}) {
    const Rule rule = [=](int64_t p, int64_t j) { return block_rule(p, j, block); };
    expect_close(block_sparse_kernel(block)(call).to_vector(), oracle(c, rule, qv, kv, vv),
                 "blocksparse:block=" + std::to_string(block));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SparseOracle,
    ::testing::Values(Case{1, 1, 1, 1, 1, 4, 0, false},    // T = 1
                      Case{2, 2, 2, 37, 37, 8, 0, false},  // odd T
                      Case{1, 4, 2, 24, 24, 4, 0, false},  // GQA
                      Case{1, 4, 1, 19, 19, 4, 0, true},   // ALiBi, MQA
                      Case{1, 2, 2, 3, 13, 4, 10, false},  // KV cache: 3 new tokens after 10
                      Case{1, 2, 2, 1, 9, 4, 8, true}));   // decoding one token

TEST(Sparse, PatternsThatAllowEverythingAreDenseCausal) {
  Generator g(2);
  const int64_t T = 21;
  const Tensor q = randn({1, 2, T, 4}, g), k = randn({1, 2, T, 4}, g), v = randn({1, 2, T, 4}, g);
  const auto dense = dense_causal_attention(make_call(q, k, v)).to_vector();
  const std::vector<double> want(dense.begin(), dense.end());
  expect_close(strided_sparse_kernel(T, 5)(make_call(q, k, v)).to_vector(), want, "local >= T");
  expect_close(strided_sparse_kernel(1, 1)(make_call(q, k, v)).to_vector(), want, "stride 1");
  expect_close(block_sparse_kernel(T)(make_call(q, k, v)).to_vector(), want, "block >= T");
}

TEST(Sparse, GradcheckBothPatterns) {
  Generator g(3);
  Tensor q = randn({1, 2, 7, 3}, g).set_requires_grad();
  Tensor k = randn({1, 1, 7, 3}, g).set_requires_grad();
  Tensor v = randn({1, 1, 7, 3}, g).set_requires_grad();
  for (const AttentionKernel& kernel : {strided_sparse_kernel(2, 3), block_sparse_kernel(2)}) {
    const GradcheckResult r = gradcheck(
        [kernel](const auto& in) { return kernel(make_call(in[0], in[1], in[2], 0, true)); }, {q, k, v});
    EXPECT_TRUE(r.ok) << r.message;
  }
}

TEST(Sparse, ChangingAFutureTokenNeverChangesEarlierOutputs) {
  const int64_t T = 24;
  Generator g(4);
  const Tensor q = randn({1, 1, T, 4}, g), k = randn({1, 1, T, 4}, g), v = randn({1, 1, T, 4}, g);
  for (const AttentionKernel& kernel : {strided_sparse_kernel(3, 4), block_sparse_kernel(4)}) {
    const auto base = kernel(make_call(q, k, v)).to_vector();
    for (int64_t t : {1, 3, 4, 11, 23}) {  // summary columns and block edges among them
      auto change = [&](const Tensor& x) {
        std::vector<float> xs = x.to_vector();
        for (int64_t e = 0; e < 4; ++e) xs[t * 4 + e] = 7.0f;
        return from_vector(xs, x.shape());
      };
      const auto out = kernel(make_call(change(q), change(k), change(v))).to_vector();
      for (int64_t i = 0; i < t * 4; ++i) ASSERT_EQ(out[i], base[i]) << "token " << t << " leaked";
    }
  }
}

TEST(Sparse, KvCacheDecodeMatchesFullForward) {
  for (const char* spec : {"sparse:local=2,stride=3,rope", "blocksparse:block=3,kv_heads=2"}) {
    GPTConfig c;
    c.vocab = 13, c.block_size = 12, c.layers = 2, c.heads = 4, c.embd = 16;
    c.attention = spec;
    GPT model(c, 5);
    model.eval();
    NoGradGuard ng;
    const std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
    const auto full = model.forward(from_ints(ids, {1, 10})).to_vector();
    KVCache cache = model.make_cache(1);
    std::vector<float> got = model.forward_cached(from_ints({3, 1, 4}, {1, 3}), cache).to_vector();
    for (size_t t = 3; t < ids.size(); ++t) {
      const auto step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache).to_vector();
      got.insert(got.end(), step.begin(), step.end());
    }
    ASSERT_EQ(got.size(), full.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], full[i], 1e-4) << spec << " position " << i / 13;
  }
}

TEST(Sparse, RegistryValidatesItsOptions) {
  AttentionConfig c;
  c.embd = 8, c.heads = 4, c.block_size = 8;
  Generator g(0);
  auto has = [](const std::string& error, const std::string& part) {
    EXPECT_NE(error.find(part), std::string::npos) << "'" << error << "' should contain '" << part << "'";
  };
  has(error_of([&] { make_attention("sparse:local=0,stride=2", c, g); }),
      "attention sparse: local must be >= 1, got 0");
  has(error_of([&] { make_attention("sparse:local=2,stride=0", c, g); }),
      "attention sparse: stride must be >= 1, got 0");
  has(error_of([&] { make_attention("sparse:local=2", c, g); }), "needs the option stride=N");
  has(error_of([&] { make_attention("sparse:local=2,stride=2,block=4", c, g); }), "unknown option 'block'");
  has(error_of([&] { make_attention("blocksparse:block=0", c, g); }),
      "attention blocksparse: block must be >= 1, got 0");
  has(error_of([&] { make_attention("blocksparse", c, g); }), "needs the option block=N");
  has(error_of([&] { make_attention("blocksparse:block=x", c, g); }), "block=x is not a non-negative integer");
  EXPECT_NO_THROW(make_attention("sparse:local=4,stride=4,alibi", c, g));
  // The weights of a sparse variant are zero exactly off the pattern.
  auto m = make_attention("blocksparse:block=2", c, g);
  m->keep_weights = true;
  NoGradGuard ng;
  Generator g2(1);
  m->forward(randn({1, 8, 8}, g2));
  ASSERT_TRUE(m->last_weights.defined());
  const auto w = m->last_weights.to_vector();  // [1, 4, 8, 8], head 0 first
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(w[i * 8 + j] != 0.0f, block_rule(i, j, 2)) << i << " " << j;
}
