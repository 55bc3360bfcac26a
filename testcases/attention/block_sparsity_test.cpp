// Sparse patterns compiled to blocks (attention/block_sparsity.h) and the
// block-skipping flash kernel that runs them: the compiled blocks expand
// back to the pattern's own mask, skip what it never touches, and attention
// over them equals attention through the mask (outputs, gradients, with
// GQA, ALiBi, a KV cache offset and attention dropout), bit for bit equals
// causal flash when every causal block is listed, and does not depend on
// the thread count.
#include <gtest/gtest.h>

#include <cmath>

#include "attention/bigbird.h"
#include "attention/block_sparsity.h"
#include "attention/flash.h"
#include "attention/pattern.h"
#include "attention/positions.h"
#include "attention/sparse.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/threads.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

// Every key up to the query: causal attention as a pattern.
PairRule causal_rule() {
  return {causal_count, [](int64_t p, int64_t j) { return j <= p; }};
}

// A pattern from its pair rule alone, counted by brute force: it checks the
// compiler and the kernel, not a pattern's counting formula.
PairRule brute_rule(std::function<bool(int64_t, int64_t)> allows) {
  return {[allows](int64_t p, int64_t j0, int64_t j1) {
            int64_t n = 0;
            for (int64_t j = j0; j < j1; ++j) n += allows(p, j);
            return n;
          },
          allows};
}

// A pattern with empty rows: query p sees keys j <= p - 3 that are even.
PairRule late_even_rule() {
  return brute_rule([](int64_t p, int64_t j) { return j <= p - 3 && j % 2 == 0; });
}

Tensor pattern_mask(const PairRule& rule, int64_t tq, int64_t tk, int64_t offset) {
  std::vector<bool> keep(static_cast<size_t>(tq * tk));
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) keep[static_cast<size_t>(i * tk + j)] = rule.allows(offset + i, j);
  return from_bools(keep, {tq, tk});
}

struct Inputs {
  Tensor q, k, v, dout;
};

Inputs inputs(int64_t B, int64_t H, int64_t Hkv, int64_t tq, int64_t tk, int64_t d, uint64_t seed) {
  Generator g(seed);
  return {randn({B, H, tq, d}, g), randn({B, Hkv, tk, d}, g), randn({B, Hkv, tk, d}, g),
          randn({B, H, tq, d}, g)};
}

struct Grads {
  std::vector<float> out, dq, dk, dv;
};

// out and the gradients of sum(out * dout) for attention `run`.
template <class Run>
Grads run_with_grads(const Inputs& in, Run run) {
  const Tensor q = in.q.detach().set_requires_grad(), k = in.k.detach().set_requires_grad(),
               v = in.v.detach().set_requires_grad();
  const Tensor out = run(q, k, v);
  sum(mul(out, in.dout)).backward();
  return {out.to_vector(), q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
}

AttentionCall call_of(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset, bool alibi,
                      const AttentionDropoutArgs& drop) {
  AttentionCall c;
  c.q = q, c.k = k, c.v = v, c.offset = offset;
  c.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  if (alibi) c.alibi = alibi_slopes(q.shape()[1]);
  c.dropout = drop;
  return c;
}

Tensor blocked(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset, bool alibi,
               const AttentionDropoutArgs& drop, std::shared_ptr<const BlockSparsity> blocks) {
  FlashOptions o;
  o.offset = offset;
  if (alibi) o.alibi = alibi_slopes(q.shape()[1]);
  o.dropout = drop;
  o.blocks = std::move(blocks);
  return flash_attention(q, k, v, o);
}

void expect_near(const std::vector<float>& got, const std::vector<float>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << ", element " << i;
}

}  // namespace

TEST(BlockSparsity, CompiledBlocksExpandToThePatternMask) {
  for (int64_t block : {1, 5, 8, 64})
    for (int64_t tq : {1, 13, 70})
      for (int64_t offset : {0, 9}) {
        const int64_t tk = tq + offset;
        const std::string at = " block " + std::to_string(block) + " tq " + std::to_string(tq) +
                               " offset " + std::to_string(offset);
        EXPECT_EQ(strided_sparse_blocks(tq, tk, offset, 3, 4, block).mask().to_int_vector(),
                  strided_sparse_mask(tq, tk, offset, 3, 4).to_int_vector())
            << "sparse:local=3,stride=4" << at;
        EXPECT_EQ(strided_sparse_blocks(tq, tk, offset, 17, 9, block).mask().to_int_vector(),
                  strided_sparse_mask(tq, tk, offset, 17, 9).to_int_vector())
            << "sparse:local=17,stride=9" << at;
        for (int64_t pattern_block : {1, 3, 8, 16})
          EXPECT_EQ(block_sparse_blocks(tq, tk, offset, pattern_block, block).mask().to_int_vector(),
                    block_sparse_mask(tq, tk, offset, pattern_block).to_int_vector())
              << "blocksparse:block=" << pattern_block << at;
        EXPECT_EQ(BlockSparsity(tq, tk, offset, block, late_even_rule()).mask().to_int_vector(),
                  pattern_mask(late_even_rule(), tq, tk, offset).to_int_vector())
            << "late even keys" << at;
      }
}

TEST(BlockSparsity, SkipsTheBlocksThePatternNeverTouches) {
  // blocksparse with the kernel's block: query block r visits key blocks 0,
  // r - 1 and r (its own, the diagonal, the only partial one).
  const int64_t T = 1024, n = T / 64;
  const BlockSparsity b = block_sparse_blocks(T, T, 0, 64, 64);
  EXPECT_EQ(b.entries(), 1 + 2 + 3 * (n - 2));
  EXPECT_EQ(b.partial_entries(), n);
  // Causal: every block on or below the diagonal, the diagonal partial.
  const BlockSparsity c(T, T, 0, 64, causal_rule());
  EXPECT_EQ(c.entries(), n * (n + 1) / 2);
  EXPECT_EQ(c.partial_entries(), n);
  // The backward's listing by key block holds the same entries.
  const BlockList l = b.list();
  EXPECT_EQ(l.col_begin[l.key_blocks], b.entries());
  EXPECT_EQ(l.col_begin[1] - l.col_begin[0], n);  // key block 0: read by every query block
}

TEST(BlockSparsity, FlashOverBlocksEqualsAttentionThroughTheMask) {
  struct Case {
    int64_t B, H, Hkv, tq, tk, d, offset, block;
    bool alibi;
    float p;
  };
  const PairRule strided =
      brute_rule([](int64_t p, int64_t j) { return j <= p && (p - j < 5 || j % 7 == 6); });
  for (const Case& c : {Case{2, 2, 2, 77, 77, 8, 0, 8, false, 0.0f},
                       Case{1, 4, 2, 50, 50, 4, 0, 16, true, 0.0f},   // GQA, ALiBi
                       Case{1, 2, 1, 9, 40, 4, 31, 8, false, 0.0f},   // KV cache: 9 new after 31
                       Case{2, 2, 2, 45, 45, 8, 0, 8, false, 0.3f},   // attention dropout
                       Case{1, 2, 2, 70, 70, 8, 0, 64, true, 0.2f}}) {
    const std::string what = "T " + std::to_string(c.tq) + " offset " + std::to_string(c.offset) +
                             " block " + std::to_string(c.block) + " p " + std::to_string(c.p);
    const Inputs in = inputs(c.B, c.H, c.Hkv, c.tq, c.tk, c.d, 7 + c.tq);
    const AttentionDropoutArgs drop{0xd12, 3, 11, c.p};
    for (const PairRule& rule : {strided, late_even_rule()}) {
      const auto blocks = std::make_shared<const BlockSparsity>(c.tq, c.tk, c.offset, c.block, rule);
      const Tensor mask = pattern_mask(rule, c.tq, c.tk, c.offset);
      const Grads want = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
        return attention_with_pattern(call_of(q, k, v, c.offset, c.alibi, drop), mask);
      });
      const Grads got = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
        return blocked(q, k, v, c.offset, c.alibi, drop, blocks);
      });
      expect_near(got.out, want.out, 2e-5, "out, " + what);
      expect_near(got.dq, want.dq, 5e-5, "dq, " + what);
      expect_near(got.dk, want.dk, 5e-5, "dk, " + what);
      expect_near(got.dv, want.dv, 5e-5, "dv, " + what);
    }
  }
}

TEST(BlockSparsity, BigBirdBlocksExpandToItsMask) {
  for (const BigBirdPattern& pat : {BigBirdPattern{5, 3, 2, 4, 7}, BigBirdPattern{16, 0, 1, 16, 1},
                                    BigBirdPattern{1, 40, 3, 8, 2}})
    for (int64_t block : {8, 64})
      for (const auto& [tq, offset] : std::vector<std::pair<int64_t, int64_t>>{{150, 0}, {7, 93}}) {
        EXPECT_EQ(bigbird_blocks(pat, tq, tq + offset, offset, block).mask().to_int_vector(),
                  bigbird_mask(pat, tq, tq + offset, offset).to_int_vector())
            << "bigbird window " << pat.window << " global " << pat.global << " random "
            << pat.random << " block " << pat.block << ", kernel block " << block << ", tq " << tq
            << " offset " << offset;
      }
}

TEST(BlockSparsity, RowsThatSeeNothingGiveZerosAndNoNaN) {
  const Inputs in = inputs(1, 1, 1, 12, 12, 4, 5);
  const auto blocks = std::make_shared<const BlockSparsity>(12, 12, 0, 4, late_even_rule());
  const Grads g = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return blocked(q, k, v, 0, false, {}, blocks);
  });
  for (int64_t e = 0; e < 3 * 4; ++e) EXPECT_EQ(g.out[e], 0.0f) << "rows 0-2 see no key";
  for (const auto* v : {&g.out, &g.dq, &g.dk, &g.dv})
    for (float x : *v) ASSERT_TRUE(std::isfinite(x));
}

TEST(BlockSparsity, EveryCausalBlockListedIsCausalFlashBitForBit) {
  // Same tiles, same order, same masks: the same arithmetic.
  const int64_t T = 200;
  const Inputs in = inputs(2, 4, 2, T, T, 16, 9);
  const auto blocks = std::make_shared<const BlockSparsity>(T, T, 0, 64, causal_rule());
  const AttentionDropoutArgs drop{5, 1, 0, 0.25f};
  const Grads want = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    FlashOptions o;
    o.dropout = drop;
    return flash_attention(q, k, v, o);
  });
  const Grads got = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return blocked(q, k, v, 0, false, drop, blocks);
  });
  EXPECT_EQ(got.out, want.out);
  EXPECT_EQ(got.dq, want.dq);
  EXPECT_EQ(got.dk, want.dk);
  EXPECT_EQ(got.dv, want.dv);
}

TEST(BlockSparsity, StridedGathersItsSummaryKeysAndStillEqualsTheMask) {
  // The strided kernel runs over [K ; K_sum] (sparse.cpp): positions carry
  // ALiBi distances and dropout numbers back to the whole sequence, so the
  // result is the mask's, dropout decisions included.
  struct Case {
    int64_t T, offset, local, stride;
  };
  for (const Case& c : {Case{150, 0, 20, 16}, Case{200, 0, 64, 7}, Case{40, 110, 9, 10},
                       Case{130, 0, 1, 1}, Case{90, 0, 100, 3}}) {
    const std::string what = "sparse:local=" + std::to_string(c.local) + ",stride=" +
                             std::to_string(c.stride) + " T " + std::to_string(c.T) + " offset " +
                             std::to_string(c.offset);
    const Inputs in = inputs(2, 4, 2, c.T, c.T + c.offset, 8, 3 + c.T);
    const AttentionDropoutArgs drop{0xabc, 2, 5, 0.25f};
    const Tensor mask = strided_sparse_mask(c.T, c.T + c.offset, c.offset, c.local, c.stride);
    const AttentionKernel kernel = strided_sparse_kernel(c.local, c.stride);
    const Grads want = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
      return attention_with_pattern(call_of(q, k, v, c.offset, true, drop), mask);
    });
    const Grads got = run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
      return kernel(call_of(q, k, v, c.offset, true, drop));
    });
    expect_near(got.out, want.out, 2e-5, "out, " + what);
    expect_near(got.dq, want.dq, 5e-5, "dq, " + what);
    expect_near(got.dk, want.dk, 5e-5, "dk, " + what);
    expect_near(got.dv, want.dv, 5e-5, "dv, " + what);
  }
  // The gathered layout visits far fewer blocks than the summary columns
  // left in place would touch: at T = 4096, L = 256, S = 16 (1/8 of the
  // causal pairs), about (L + p / S) / 64 blocks a row against p / 64.
  const int64_t T = 4096, n = T / 64;
  const BlockSparsity gathered = strided_sparse_blocks(T, T, 0, 256, 16);
  EXPECT_LT(gathered.entries(), n * (n + 1) / 2 / 4) << "gathered blocks " << gathered.entries();
}

TEST(BlockSparsity, ThreadCountNeverChangesTheBits) {
  const int64_t T = 300;
  const Inputs in = inputs(1, 4, 4, T, T, 16, 11);
  const AttentionKernel kernel = strided_sparse_kernel(40, 50);
  const int before = num_threads();
  std::vector<Grads> runs;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    runs.push_back(run_with_grads(in, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
      return kernel(call_of(q, k, v, 0, false, {9, 0, 0, 0.1f}));
    }));
  }
  set_num_threads(before);
  for (size_t r = 1; r < runs.size(); ++r) {
    EXPECT_EQ(runs[r].out, runs[0].out);
    EXPECT_EQ(runs[r].dq, runs[0].dq);
    EXPECT_EQ(runs[r].dk, runs[0].dk);
    EXPECT_EQ(runs[r].dv, runs[0].dv);
  }
}

TEST(BlockSparsity, Gradcheck) {
  Generator g(13);
  const Tensor q = randn({1, 2, 11, 3}, g).set_requires_grad();
  const Tensor k = randn({1, 1, 11, 3}, g).set_requires_grad();
  const Tensor v = randn({1, 1, 11, 3}, g).set_requires_grad();
  const auto blocks = std::make_shared<const BlockSparsity>(11, 11, 0, 4, late_even_rule());
  const GradcheckResult r = gradcheck(
      [&](const auto& x) { return blocked(x[0], x[1], x[2], 0, true, {}, blocks); }, {q, k, v});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(BlockSparsity, BadInputsSayWhatIsWrong) {
  EXPECT_EQ(error_of([] { BlockSparsity(8, 8, 0, 65, causal_rule()); }),
            "block_sparsity: block 65 outside 1..64 (one word of bits per row)");
  EXPECT_EQ(error_of([] { BlockSparsity(8, 8, -1, 8, causal_rule()); }),
            "block_sparsity: 8 queries at offset -1 over 8 keys");
  const Inputs in = inputs(1, 1, 1, 8, 8, 4, 1);
  const auto blocks = std::make_shared<const BlockSparsity>(16, 16, 0, 8, causal_rule());
  EXPECT_EQ(error_of([&] { blocked(in.q, in.k, in.v, 0, false, {}, blocks); }),
            "flash_attention: a block list made for 16 queries at offset 0 over 16 keys, called "
            "with 8 at offset 0 over 8");
}

TEST(BlockSparsityCuda, TheGpuKernelEqualsTheCpuKernel) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: block-sparse flash runs on the CPU here";
  // Every pattern kind (partial and full blocks, gathered keys with their
  // positions), GQA, ALiBi and attention dropout, forward and backward: the
  // CUDA kernel's 3xTF32 products and atomic dq sums against the CPU's fp32.
  const int64_t T = 300;
  const Inputs in = inputs(2, 4, 2, T, T, 32, 17);
  BigBirdPattern pat;
  pat.window = 40, pat.global = 8, pat.random = 2, pat.block = 32, pat.seed = 3;
  const std::vector<std::pair<std::string, AttentionKernel>> kernels = {
      {"sparse:local=40,stride=16", strided_sparse_kernel(40, 16)},
      {"blocksparse:block=32", block_sparse_kernel(32)},
      {"bigbird", bigbird_kernel(pat)}};
  for (const auto& named : kernels) {
    const AttentionKernel& kernel = named.second;
    for (float p : {0.0f, 0.2f}) {
      const std::string what = named.first + " p " + std::to_string(p);
      const AttentionDropoutArgs drop{0x77, 1, 3, p};
      auto on = [&](const Device& dev) {
        const Inputs x{in.q.to(dev), in.k.to(dev), in.v.to(dev), in.dout.to(dev)};
        return run_with_grads(x, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
          return kernel(call_of(q, k, v, 0, true, drop));
        });
      };
      const Grads cpu = on(Device::cpu()), gpu = on(Device::cuda(0));
      expect_near(gpu.out, cpu.out, 1e-4, "out, " + what);
      expect_near(gpu.dq, cpu.dq, 2e-4, "dq, " + what);
      expect_near(gpu.dk, cpu.dk, 2e-4, "dk, " + what);
      expect_near(gpu.dv, cpu.dv, 2e-4, "dv, " + what);
    }
  }
}

TEST(BlockSparsityCuda, ListsRunOnTheGpuKernelAsOnTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: block-sparse flash runs on the CPU here";
  // The block lists themselves through flash_attention on both devices:
  // full and partial blocks, rows that see nothing, a KV cache offset.
  const int64_t T = 200;
  BigBirdPattern pat;
  pat.window = 20, pat.global = 3, pat.random = 1, pat.block = 64, pat.seed = 9;
  struct Named {
    std::string name;
    int64_t tq, offset;
    std::shared_ptr<const BlockSparsity> blocks;
  };
  const std::vector<Named> lists = {
      {"blocksparse", T, 0, std::make_shared<const BlockSparsity>(block_sparse_blocks(T, T, 0, 48))},
      {"bigbird", T, 0, std::make_shared<const BlockSparsity>(bigbird_blocks(pat, T, T, 0))},
      {"late even keys", T, 0, std::make_shared<const BlockSparsity>(T, T, 0, 64, late_even_rule())},
      {"late even keys after a cache", 70, 130,
       std::make_shared<const BlockSparsity>(70, T, 130, 64, late_even_rule())},
      // Key block 0 is listed by all 16 query blocks, the others by 2 or 3:
      // its column is cut into pieces that sum into the same dK, dV rows
      // (core/column_pieces.h).
      {"blocksparse, a long first column", 1024, 0,
       std::make_shared<const BlockSparsity>(block_sparse_blocks(1024, 1024, 0, 64))}};
  for (const Named& l : lists) {
    const int64_t tk = l.tq + l.offset;
    const Inputs in = inputs(1, 4, 2, l.tq, tk, 64, 23);
    auto on = [&](const Device& dev) {
      const Inputs x{in.q.to(dev), in.k.to(dev), in.v.to(dev), in.dout.to(dev)};
      return run_with_grads(x, [&](const Tensor& q, const Tensor& k, const Tensor& v) {
        return blocked(q, k, v, l.offset, true, {5, 0, 0, 0.1f}, l.blocks);
      });
    };
    const Grads cpu = on(Device::cpu()), gpu = on(Device::cuda(0));
    expect_near(gpu.out, cpu.out, 1e-4, "out, " + l.name);
    expect_near(gpu.dq, cpu.dq, 2e-4, "dq, " + l.name);
    expect_near(gpu.dk, cpu.dk, 2e-4, "dk, " + l.name);
    expect_near(gpu.dv, cpu.dv, 2e-4, "dv, " + l.name);
  }
}
