// BigBird-style attention (attention/bigbird.h): the mask against the rule
// spelled out here, the block-sparse kernel against the same pattern run as
// a dense mask (outputs and gradients, with grouped K/V heads and after a
// cache), the pair-count formula, the same bits at 1 and 2 threads, KV-cache
// decoding, and the registry's options.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "attention/bigbird.h"
#include "attention/pattern.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "core/threads.h"
#include "nn/gpt.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

BigBirdPattern make_pattern(int64_t window, int64_t global, int64_t random, int64_t block, uint64_t seed) {
  BigBirdPattern p;
  p.window = window, p.global = global, p.random = random, p.block = block, p.seed = seed;
  return p;
}

// The random blocks by the header's recipe: candidates counted one by one,
// then the shuffle on a full array of slots.
std::vector<int64_t> drawn_blocks(const BigBirdPattern& p, int64_t qb) {
  const int64_t c0 = (p.global + p.block - 1) / p.block;
  int64_t n = 0;
  while ((c0 + n + 1) * p.block <= qb * p.block - p.window + 1) ++n;
  std::vector<int64_t> slots(n);
  std::iota(slots.begin(), slots.end(), int64_t{0});
  const int64_t count = std::min(p.random, n);
  for (int64_t r = 0; r < count; ++r)
    std::swap(slots[r], slots[r + static_cast<int64_t>(bigbird_draw_below(p.seed, qb, r, n - r))]);
  std::vector<int64_t> blocks(slots.begin(), slots.begin() + count);
  for (int64_t& b : blocks) b += c0;
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}

bool rule(const BigBirdPattern& p, int64_t pos, int64_t j) {
  if (j > pos) return false;
  const auto blocks = drawn_blocks(p, pos / p.block);
  return pos - j < p.window || j < p.global ||
         std::find(blocks.begin(), blocks.end(), j / p.block) != blocks.end();
}

AttentionCall make_call(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset) {
  AttentionCall c;
  c.q = q, c.k = k, c.v = v, c.offset = offset;
  c.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  return c;
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  const auto g = got.to_vector(), w = want.to_vector();
  ASSERT_EQ(g.size(), w.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], 1e-5 * (1 + std::fabs(w[i]))) << what << " at " << i;
}

const std::vector<BigBirdPattern> kPatterns = {
    make_pattern(3, 2, 1, 2, 7), make_pattern(4, 3, 2, 4, 1), make_pattern(1, 0, 3, 1, 2),
    make_pattern(30, 1, 2, 4, 4), make_pattern(2, 20, 1, 4, 5), make_pattern(5, 1, 99, 3, 6)};

}  // namespace

TEST(BigBird, MaskFollowsTheRule) {
  for (const BigBirdPattern& p : kPatterns)
    for (const auto& shape : std::vector<std::pair<int64_t, int64_t>>{{33, 0}, {5, 18}, {1, 40}}) {
      const int64_t tq = shape.first, offset = shape.second;
      const int64_t tk = offset + tq;
      const auto got = bigbird_mask(p, tq, tk, offset).to_int_vector();
      for (int64_t i = 0; i < tq; ++i)
        for (int64_t j = 0; j < tk; ++j)
          ASSERT_EQ(got[i * tk + j] != 0, rule(p, offset + i, j))
              << "W=" << p.window << " G=" << p.global << " R=" << p.random << " B=" << p.block
              << ": query " << offset + i << ", key " << j;
    }
}

TEST(BigBird, PairCountIsTheCountOfTheMask) {
  for (const BigBirdPattern& p : kPatterns)
    for (int64_t T : {1, 17, 64}) {
      const double counted = pattern_density(bigbird_mask(p, T, T, 0)) * double(T * T);
      EXPECT_EQ(bigbird_pair_count(p, T), std::llround(counted)) << "T = " << T << ", W = " << p.window;
    }
}

TEST(BigBird, BlockKernelEqualsTheDenseMaskForwardAndBackward) {
  // Grouped K/V heads (4 query heads, 2 K/V heads), and queries after a cache.
  for (const BigBirdPattern& p : kPatterns)
    for (const auto& shape : std::vector<std::pair<int64_t, int64_t>>{{23, 0}, {6, 13}}) {
      const int64_t tq = shape.first, offset = shape.second;  // named: the lambda below captures them (clang 14 cannot capture structured bindings)
      const int64_t tk = offset + tq;
      Generator g(11);
      const Tensor q0 = randn({2, 4, tq, 3}, g), k0 = randn({2, 2, tk, 3}, g), v0 = randn({2, 2, tk, 2}, g);
      const Tensor w = randn({2, 4, tq, 2}, g);
      auto run = [&](bool dense) {
        Tensor q = q0.detach().set_requires_grad(), k = k0.detach().set_requires_grad(),
               v = v0.detach().set_requires_grad();
        const AttentionCall c = make_call(q, k, v, offset);
        const Tensor out = dense ? attention_with_pattern(c, bigbird_mask(p, tq, tk, offset)) : bigbird_attention(c, p);
        sum(mul(out, w)).backward();
        return std::vector<Tensor>{out, q.grad(), k.grad(), v.grad()};
      };
      const auto blocked = run(false), dense = run(true);
      const char* names[] = {"out", "q.grad", "k.grad", "v.grad"};
      for (int n = 0; n < 4; ++n)
        expect_close(blocked[n], dense[n], std::string(names[n]) + " W=" + std::to_string(p.window) +
                                               " offset=" + std::to_string(offset));
    }
}

TEST(BigBird, DropoutAndAlibiEqualTheMaskedPath) {
  // The block kernel draws each kept probability at its (b, h, i, j) as the
  // mask path does, and ALiBi measures distances between positions.
  const BigBirdPattern p = make_pattern(9, 4, 2, 16, 5);
  const int64_t T = 150;
  Generator g(21);
  const Tensor q0 = randn({2, 4, T, 8}, g), k0 = randn({2, 2, T, 8}, g), v0 = randn({2, 2, T, 8}, g);
  const Tensor w = randn({2, 4, T, 8}, g);
  auto run = [&](bool masked) {
    Tensor q = q0.detach().set_requires_grad(), k = k0.detach().set_requires_grad(),
           v = v0.detach().set_requires_grad();
    AttentionCall c = make_call(q, k, v, 0);
    c.alibi = {0.5f, 0.25f, 0.125f, 0.0625f};
    c.dropout = {0x5eed, 4, 17, 0.3f};
    const Tensor out = masked ? attention_with_pattern(c, bigbird_mask(p, T, T, 0)) : bigbird_attention(c, p);
    sum(mul(out, w)).backward();
    return std::vector<Tensor>{out, q.grad(), k.grad(), v.grad()};
  };
  const auto blocked = run(false), masked = run(true);
  const char* names[] = {"out", "q.grad", "k.grad", "v.grad"};
  for (int n = 0; n < 4; ++n) expect_close(blocked[n], masked[n], names[n]);
}

TEST(BigBird, Gradcheck) {
  const BigBirdPattern p = make_pattern(2, 1, 1, 2, 3);
  Generator g(3);
  const Tensor q = randn({1, 2, 9, 3}, g).set_requires_grad(), k = randn({1, 1, 9, 3}, g).set_requires_grad(),
               v = randn({1, 1, 9, 3}, g).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) { return bigbird_attention(make_call(in[0], in[1], in[2], 0), p); }, {q, k, v});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(BigBird, SameBitsAtOneAndTwoThreads) {
  const BigBirdPattern p = make_pattern(8, 4, 2, 8, 1);
  Generator g(5);
  const Tensor q = randn({2, 2, 200, 16}, g), k = randn({2, 2, 200, 16}, g), v = randn({2, 2, 200, 16}, g);
  const int before = num_threads();
  set_num_threads(1);
  const auto one = bigbird_attention(make_call(q, k, v, 0), p).to_vector();
  set_num_threads(2);
  const auto two = bigbird_attention(make_call(q, k, v, 0), p).to_vector();
  set_num_threads(before);
  EXPECT_EQ(one, two);
}

TEST(BigBird, KvCacheDecodeMatchesFullForward) {
  GPTConfig c;
  c.vocab = 13, c.block_size = 16, c.layers = 2, c.heads = 4, c.embd = 16;
  c.attention = "bigbird:window=3,global=2,random=1,block=2,seed=4,kv_heads=2,rope";
  GPT model(c, 5);
  model.eval();
  NoGradGuard ng;
  const std::vector<int64_t> ids = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7};
  const auto full = model.forward(from_ints(ids, {1, 14})).to_vector();
  KVCache cache = model.make_cache(1);
  std::vector<float> got = model.forward_cached(from_ints({3, 1, 4}, {1, 3}), cache).to_vector();
  for (size_t t = 3; t < ids.size(); ++t) {
    const auto step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache).to_vector();
    got.insert(got.end(), step.begin(), step.end());
  }
  ASSERT_EQ(got.size(), full.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], full[i], 1e-4) << "position " << i / 13;
}

TEST(BigBird, RegistryValidatesItsOptions) {
  AttentionConfig c;
  c.embd = 8, c.heads = 4, c.block_size = 8;
  Generator g(0);
  auto has = [](const std::string& error, const std::string& part) {
    EXPECT_NE(error.find(part), std::string::npos) << "'" << error << "' should contain '" << part << "'";
  };
  has(error_of([&] { make_attention("bigbird:window=0,global=1,random=1", c, g); }),
      "attention bigbird: window must be >= 1");
  has(error_of([&] { make_attention("bigbird:window=2,global=1,random=-1", c, g); }),
      "attention bigbird: option random=-1 is not a non-negative integer");
  has(error_of([&] { make_attention("bigbird:window=2,global=1,random=1,block=0", c, g); }),
      "attention bigbird: block must be >= 1 (tokens per block), got 0");
  has(error_of([&] { make_attention("bigbird:window=2,random=1", c, g); }), "needs the option global=N");
  has(error_of([&] { make_attention("bigbird:window=2,global=1,random=1,nope", c, g); }), "unknown option 'nope'");
  // ALiBi and attention dropout are the block kernel's, keyed by position.
  AttentionConfig with_dropout = c;
  with_dropout.dropout = 0.1f;
  EXPECT_NE(make_attention("bigbird:window=2,global=1,random=1,alibi", with_dropout, g), nullptr);
  // Heatmaps: the weights are zero exactly off the pattern.
  auto m = make_attention("bigbird:window=2,global=1,random=1,block=2,seed=3", c, g);
  m->keep_weights = true;
  NoGradGuard ng;
  Generator g2(1);
  m->forward(randn({1, 8, 8}, g2));
  ASSERT_TRUE(m->last_weights.defined());
  const auto w = m->last_weights.to_vector();  // [1, 4, 8, 8], head 0 first
  const BigBirdPattern p = make_pattern(2, 1, 1, 2, 3);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(w[i * 8 + j] != 0.0f, rule(p, i, j)) << i << " " << j;
}
