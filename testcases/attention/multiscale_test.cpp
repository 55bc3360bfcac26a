// Multi-scale attention in the library: the grouped flash path against a
// double-precision loop oracle (windows per head group, offsets, ALiBi,
// GQA), its gradients against the masked path, proof by the allocator that
// the groups read their heads in place, the module with a KV cache, and the
// variant's option list: parsing, round trip and the bad values.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "attention/multi_head.h"
#include "attention/multiscale.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/threads.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

struct Case {
  int64_t B, H, Hkv, Tq, d, offset;
  std::vector<int64_t> windows;
  bool alibi;
};

// Head h belongs to group h / (H / n) and takes its window; its K/V head is
// h / (H / Hkv). Query i at p = offset + i reads keys max(0, p - W + 1)..p
// (0..p for W = 0), with ALiBi's -slope * (p - j) when asked.
std::vector<double> oracle(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                           const std::vector<float>& v) {
  const int64_t tk = c.offset + c.Tq, per = c.H / static_cast<int64_t>(c.windows.size());
  const std::vector<float> slopes = alibi_slopes(c.H);
  std::vector<double> out(c.B * c.H * c.Tq * c.d, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t w = c.windows[h / per], kh = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t p = c.offset + i, first = w == 0 ? 0 : std::max<int64_t>(0, p - w + 1);
        std::vector<double> s;
        for (int64_t j = first; j <= p; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e)
            dot += double(q[((b * c.H + h) * c.Tq + i) * c.d + e]) * k[((b * c.Hkv + kh) * tk + j) * c.d + e];
          s.push_back(dot / std::sqrt(double(c.d)) - (c.alibi ? double(slopes[h]) * (p - j) : 0.0));
        }
        const double m = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - m));
        for (int64_t j = first; j <= p; ++j)
          for (int64_t e = 0; e < c.d; ++e)
            out[((b * c.H + h) * c.Tq + i) * c.d + e] += s[j - first] / z * v[((b * c.Hkv + kh) * tk + j) * c.d + e];
      }
    }
  return out;
}

AttentionCall call_of(const Case& c, const Tensor& q, const Tensor& k, const Tensor& v) {
  AttentionCall call;
  call.q = q, call.k = k, call.v = v;
  call.offset = c.offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  if (c.alibi) call.alibi = alibi_slopes(c.H);
  return call;
}

// [B, H, T, d] seen through a [B, T, H, d] tensor, as a projection's output
// arrives in the multi-head module ("token-major").
Tensor token_major(const Tensor& x) { return transpose(transpose(x, 1, 2).contiguous(), 1, 2); }

}  // namespace

TEST(Multiscale, GroupedFlashMatchesTheLoopOracle) {
  const std::vector<Case> cases = {
      {1, 3, 3, 9, 4, 0, {2, 5, 0}, false},     {2, 4, 4, 70, 8, 0, {1, 16}, false},
      {1, 6, 6, 5, 4, 11, {3, 0, 8}, false},    {1, 4, 4, 33, 4, 0, {4, 0}, true},
      {2, 8, 4, 12, 4, 3, {2, 6, 0, 1}, false}, {1, 4, 2, 10, 6, 0, {3, 0}, true},
  };
  Generator g(3);
  for (const Case& c : cases) {
    const int64_t tk = c.offset + c.Tq;
    const Tensor q = randn({c.B, c.H, c.Tq, c.d}, g), k = randn({c.B, c.Hkv, tk, c.d}, g),
                 v = randn({c.B, c.Hkv, tk, c.d}, g);
    const std::vector<double> want = oracle(c, q.to_vector(), k.to_vector(), v.to_vector());
    for (bool in_place : {false, true}) {
      const AttentionCall call = in_place ? call_of(c, token_major(q), token_major(k), token_major(v))
                                          : call_of(c, q, k, v);
      const std::vector<float> got = multiscale_attention(call, scale_groups(c.H, c.windows)).to_vector();
      const std::vector<float> masked =
          multiscale_attention_masked(call, scale_groups(c.H, c.windows)).to_vector();
      ASSERT_EQ(got.size(), want.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 2e-5) << "grouped flash, case H=" << c.H << " Tq=" << c.Tq
                                           << (in_place ? " token-major" : " contiguous") << ", element " << i;
        ASSERT_NEAR(masked[i], want[i], 2e-5) << "masked path, element " << i;
      }
    }
  }
}

TEST(Multiscale, GradientsMatchTheMaskedPath) {
  const Case c{2, 6, 3, 40, 8, 0, {4, 0, 9}, false};
  Generator g(5);
  const Tensor q0 = randn({2, 6, 40, 8}, g), k0 = randn({2, 3, 40, 8}, g), v0 = randn({2, 3, 40, 8}, g);
  const Tensor w = randn({2, 6, 40, 8}, g);
  std::vector<std::vector<float>> grads[2];
  for (int path = 0; path < 2; ++path) {
    Tensor q = q0.clone().set_requires_grad(), k = k0.clone().set_requires_grad(), v = v0.clone().set_requires_grad();
    const AttentionCall call = call_of(c, q, k, v);
    const auto groups = scale_groups(c.H, c.windows);
    const Tensor out = path == 0 ? multiscale_attention(call, groups) : multiscale_attention_masked(call, groups);
    sum(mul(out, w)).backward();
    grads[path] = {q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
  }
  const char* names[3] = {"dq", "dk", "dv"};
  for (int t = 0; t < 3; ++t)
    for (std::size_t i = 0; i < grads[0][t].size(); ++i)
      ASSERT_NEAR(grads[0][t][i], grads[1][t][i], 1e-4) << names[t] << " element " << i;
}

TEST(Multiscale, GroupsReadTheirHeadsInPlace) {
  // Token-major q, k, v as the module makes them: the forward allocates the
  // output and the softmax statistics (lse) and nothing else, so no group's
  // heads were copied apart. Sizes are multiples of 512 bytes, so the
  // allocator's rounding adds nothing.
  const int64_t B = 2, H = 8, T = 64, d = 16;
  Generator g(7);
  const Tensor q = token_major(randn({B, H, T, d}, g)), k = token_major(randn({B, H, T, d}, g)),
               v = token_major(randn({B, H, T, d}, g));
  AttentionCall call = call_of({B, H, H, T, d, 0, {8, 32, 0, 128}, false}, q, k, v);
  cpu_allocator().reset_peak();
  const MemoryStats before = cpu_allocator().stats();
  const Tensor out = multiscale_attention(call, scale_groups(H, {8, 32, 0, 128}));
  const MemoryStats after = cpu_allocator().stats();
  const std::size_t out_bytes = B * H * T * d * sizeof(float), lse_bytes = B * H * T * sizeof(float);
  EXPECT_EQ(after.allocations - before.allocations, 2u) << "the output and lse only";
  EXPECT_EQ(after.peak - before.current, out_bytes + lse_bytes);
  // No input wants a gradient, so no graph keeps lse: only the output lives on.
  EXPECT_EQ(after.current - before.current, out_bytes);
}

TEST(Multiscale, SameBitsAtAnyThreadCount) {
  const Case c{2, 6, 6, 150, 16, 0, {8, 0, 40}, false};
  Generator g(17);
  const Tensor q0 = randn({2, 6, 150, 16}, g), k0 = randn({2, 6, 150, 16}, g), v0 = randn({2, 6, 150, 16}, g);
  const Tensor w = randn({2, 6, 150, 16}, g);
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Tensor q = q0.clone().set_requires_grad(), k = k0.clone().set_requires_grad(), v = v0.clone().set_requires_grad();
    const Tensor out = multiscale_attention(call_of(c, q, k, v), scale_groups(6, c.windows));
    sum(mul(out, w)).backward();
    std::vector<float> all = out.to_vector();
    for (const Tensor* t : {&q, &k, &v}) {
      const std::vector<float> grad = t->grad().to_vector();
      all.insert(all.end(), grad.begin(), grad.end());
    }
    runs.push_back(all);
  }
  set_num_threads(1);
  EXPECT_EQ(runs[0], runs[1]) << "1 vs 2 threads";
  EXPECT_EQ(runs[0], runs[2]) << "1 vs 3 threads";
}

TEST(Multiscale, CudaTakesTheMaskedPathAndAgreesWithTheCpu) {
  // The grouped flash path is CPU-only (the CUDA backward clears dq densely
  // per call); on CUDA multiscale_attention runs the masked path.
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device here: the GPU half runs where one exists";
  const Case c{1, 4, 4, 20, 8, 0, {3, 0}, false};
  Generator g(13);
  const Tensor q = randn({1, 4, 20, 8}, g), k = randn({1, 4, 20, 8}, g), v = randn({1, 4, 20, 8}, g);
  const auto groups = scale_groups(4, {3, 0});
  const std::vector<float> cpu = multiscale_attention(call_of(c, q, k, v), groups).to_vector();
  const Device gpu = Device::cuda();
  const std::vector<float> on_gpu =
      multiscale_attention(call_of(c, q.to(gpu), k.to(gpu), v.to(gpu)), groups).to(Device::cpu()).to_vector();
  for (std::size_t i = 0; i < cpu.size(); ++i) ASSERT_NEAR(on_gpu[i], cpu[i], 1e-4) << i;
  EXPECT_NE(error_of([&] { flash_attention_groups(q.to(gpu), k.to(gpu), v.to(gpu), {}, groups); })
                .find("head groups run on the CPU only"),
            std::string::npos);
}

TEST(Multiscale, ModuleWithAKvCacheMatchesTheWholeSequence) {
  AttentionConfig c;
  c.embd = 24, c.heads = 6, c.block_size = 16;
  Generator gen(11);
  auto attention = make_attention("multiscale:windows=2,5,0", c, gen);
  const Tensor x = randn({2, 12, 24}, gen);
  NoGradGuard no_grad;
  const std::vector<float> whole = attention->forward(x).to_vector();
  KVCache cache(1, 2, attention->cache_layout(), 16, Device::cpu());
  std::vector<Tensor> steps;
  for (int64_t s = 0; s < 12; s += s < 4 ? 4 : 1) {
    const int64_t n = s < 4 ? 4 : 1;
    steps.push_back(attention->forward_cached(narrow(x, 1, s, n), cache, 0));
    cache.commit(n);
  }
  const std::vector<float> cached = cat(steps, 1).to_vector();
  for (std::size_t i = 0; i < whole.size(); ++i) ASSERT_NEAR(cached[i], whole[i], 1e-5) << i;
}

TEST(Multiscale, VariantListsParseAndRoundTrip) {
  const VariantSpec s = parse_variant("multiscale:windows=8,32,0,rope");
  EXPECT_EQ(s.options.at("windows"), "8,32,0");
  EXPECT_TRUE(s.options.count("rope"));
  EXPECT_EQ(parse_variant(s.str()).options, s.options);
  EXPECT_EQ(parse_windows("8,32,0"), (std::vector<int64_t>{8, 32, 0}));
  // A number that continues no list is not a flag.
  EXPECT_NE(error_of([] { parse_variant("mha:5"); }).find("a bare number continues the list"),
            std::string::npos);
}

TEST(Multiscale, BadWindowsNameTheOptionTheValueAndTheRule) {
  AttentionConfig c;
  c.embd = 16, c.heads = 4, c.block_size = 8;
  auto error = [&c](const std::string& spec) {
    return error_of([&] {
      Generator g(0);
      make_attention(spec, c, g);
    });
  };
  EXPECT_NE(error("multiscale:windows=8,32,0").find(
                "attention multiscale: windows=8,32,0 lists 3 windows, which do not divide heads=4"),
            std::string::npos);
  EXPECT_NE(error("multiscale:windows=8,-1").find("attention multiscale: windows=8,-1 has '-1'; expected"),
            std::string::npos);
  EXPECT_NE(error("multiscale").find("attention multiscale: needs the option windows=W1,W2,..."),
            std::string::npos);
  EXPECT_NE(error_of([] { scale_groups(4, {}); }).find("attention multiscale: windows is empty"),
            std::string::npos);
  EXPECT_NE(error_of([] { scale_groups(4, {2, -3}); }).find("every window must be >= 0"), std::string::npos);
}

TEST(Multiscale, AttentionDropoutEqualsTheMaskedPath) {
  // One flash call per group, each head drawing the numbers it has in the
  // whole attention (AttentionDropoutArgs::first_head): the same decisions
  // as the masked path's one dropout over [B, H, Tq, Tk].
  const Case c{2, 6, 3, 40, 8, 0, {4, 0, 9}, false};
  Generator g(6);
  const Tensor q0 = randn({2, 6, 40, 8}, g), k0 = randn({2, 3, 40, 8}, g), v0 = randn({2, 3, 40, 8}, g);
  const Tensor w = randn({2, 6, 40, 8}, g);
  std::vector<std::vector<float>> got[2];
  for (int path = 0; path < 2; ++path) {
    Tensor q = q0.clone().set_requires_grad(), k = k0.clone().set_requires_grad(), v = v0.clone().set_requires_grad();
    AttentionCall call = call_of(c, q, k, v);
    call.dropout = {0xfeed, 3, 7, 0.3f};
    const auto groups = scale_groups(c.H, c.windows);
    const Tensor out = path == 0 ? multiscale_attention(call, groups) : multiscale_attention_masked(call, groups);
    sum(mul(out, w)).backward();
    got[path] = {out.to_vector(), q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
  }
  const char* names[4] = {"out", "dq", "dk", "dv"};
  for (int t = 0; t < 4; ++t)
    for (std::size_t i = 0; i < got[0][t].size(); ++i)
      ASSERT_NEAR(got[0][t][i], got[1][t][i], 1e-4) << names[t] << " element " << i;
}
