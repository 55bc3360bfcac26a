// Chapter 04, advanced suite: grouped attention and the whole module against
// double-precision loop oracles written here (not the library), gradients by
// finite differences (a shared K/V head collects the gradient of its whole
// group), huge logits, T = 1, odd head counts, queries after a cache, the
// KV-cache formula checked against memory a real cache allocates, and a tiny
// GPT trained on your module.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attention/kv_cache.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "gqa.h"
#include "nn/gpt.h"
#include "lesson_test.h"
#include "tiny_training.h"

using namespace attn;
using namespace lesson_test;

namespace {

struct Dims {
  int64_t B, H, Hkv, Tq, offset, d, dv;
  int64_t tk() const { return offset + Tq; }
};

// The oracle, in double: query head h reads K/V head h / (H / Hkv); query i
// (position offset + i) sees keys 0 .. offset + i.
std::vector<double> oracle(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Dims& n) {
  const std::vector<float> q = qt.to_vector(), k = kt.to_vector(), v = vt.to_vector();
  const int64_t tk = n.tk(), g = n.H / n.Hkv;
  std::vector<double> out(n.B * n.H * n.Tq * n.dv, 0.0);
  for (int64_t b = 0; b < n.B; ++b)
    for (int64_t h = 0; h < n.H; ++h) {
      const int64_t kvh = b * n.Hkv + h / g, qh = b * n.H + h;
      for (int64_t i = 0; i < n.Tq; ++i) {
        const int64_t last = n.offset + i;
        std::vector<double> s(last + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < n.d; ++c)
            dot += double(q[(qh * n.Tq + i) * n.d + c]) * k[(kvh * tk + j) * n.d + c];
          s[j] = dot / std::sqrt(double(n.d));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (int64_t j = 0; j <= last; ++j)
          for (int64_t c = 0; c < n.dv; ++c)
            out[(qh * n.Tq + i) * n.dv + c] += s[j] / z * v[(kvh * tk + j) * n.dv + c];
      }
    }
  return out;
}

// y[r, o] = sum_i x[r, i] W[o, i] + b[o], in double (W as stored by Linear).
std::vector<double> linear(const std::vector<double>& x, int64_t rows, int64_t in,
                           const Tensor& w, const Tensor& bias) {
  const std::vector<float> W = w.to_vector(), bv = bias.to_vector();
  const int64_t out = w.shape()[0];
  std::vector<double> y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bv[o];
      for (int64_t i = 0; i < in; ++i) s += x[r * in + i] * W[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

// The whole module in double, from its own weights.
std::vector<double> module_oracle(lesson04::GroupedQueryAttention& m, const Tensor& xt) {
  auto sd = m.state_dict();
  const int64_t B = xt.shape()[0], T = xt.shape()[1], C = xt.shape()[2];
  const int64_t H = m.heads(), Hkv = m.kv_heads(), d = m.head_dim();
  const std::vector<float> xf = xt.to_vector();
  const std::vector<double> x(xf.begin(), xf.end());
  const auto q = linear(x, B * T, C, sd.at("wq.weight"), sd.at("wq.bias"));
  const auto k = linear(x, B * T, C, sd.at("wk.weight"), sd.at("wk.bias"));
  const auto v = linear(x, B * T, C, sd.at("wv.weight"), sd.at("wv.bias"));
  std::vector<double> merged(B * T * C, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / (H / Hkv);
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += q[(b * T + i) * C + h * d + c] * k[(b * T + j) * Hkv * d + kvh * d + c];
          s[j] = dot / std::sqrt(double(d));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t c = 0; c < d; ++c)
            merged[(b * T + i) * C + h * d + c] += s[j] / z * v[(b * T + j) * Hkv * d + kvh * d + c];
      }
    }
  return linear(merged, B * T, C, sd.at("wo.weight"), sd.at("wo.bias"));
}

struct Case {
  Dims n;
  const char* name;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }
class GroupedSweep : public ::testing::TestWithParam<Case> {};

struct ModuleCase {
  int64_t B, T, C, H, Hkv;
  const char* name;
};
void PrintTo(const ModuleCase& c, std::ostream* os) { *os << c.name; }
class ModuleSweep : public ::testing::TestWithParam<ModuleCase> {};

// Bytes the allocator handed out for whatever f() builds and keeps alive.
template <class F>
std::size_t bytes_kept(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  auto kept = f();
  const std::size_t after = cpu_allocator().stats().current;
  return after - before;
}

}  // namespace

// -------------------------------------------------- random sweeps vs oracle

TEST_P(GroupedSweep, MatchesDoubleOracle) {
  const Dims n = GetParam().n;
  const Tensor q = random_tensor({n.B, n.H, n.Tq, n.d}, 100 + n.H), k = random_tensor({n.B, n.Hkv, n.tk(), n.d}, 200 + n.Hkv),
               v = random_tensor({n.B, n.Hkv, n.tk(), n.dv}, 300 + n.dv);
  EXPECT_TRUE(close(std::string(GetParam().name) + ": grouped_attention",
                       lesson04::grouped_attention(q, k, v, n.offset), oracle(q, k, v, n),
                       {n.B, n.H, n.Tq, n.dv}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GroupedSweep,
    ::testing::Values(Case{{1, 1, 1, 1, 0, 1, 1}, "one_head_T1_d1"},
                      Case{{2, 4, 2, 1, 0, 4, 3}, "T1_gqa"},
                      Case{{2, 6, 3, 7, 0, 4, 5}, "six_heads_three_groups"},
                      Case{{1, 6, 2, 5, 0, 8, 8}, "six_heads_two_groups"},
                      Case{{2, 6, 1, 6, 0, 4, 4}, "six_heads_mqa"},
                      Case{{1, 5, 5, 9, 0, 3, 2}, "five_heads_mha"},
                      Case{{1, 7, 1, 8, 0, 5, 3}, "seven_heads_mqa"},
                      Case{{2, 9, 3, 4, 0, 2, 6}, "nine_heads_three_groups"},
                      Case{{1, 4, 2, 3, 5, 4, 4}, "cache_offset5_three_new_queries"},
                      Case{{2, 8, 2, 1, 11, 4, 2}, "cache_offset11_one_new_query"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

TEST_P(ModuleSweep, MatchesDoubleOracle) {
  const ModuleCase c = GetParam();
  Generator gen(400 + c.H * 10 + c.Hkv);
  lesson04::GroupedQueryAttention m(c.C, c.H, c.Hkv, gen);
  // Bigger weights than the init, so that the attention is far from uniform
  // and a wrong pairing cannot hide.
  auto sd = m.state_dict();
  int seed = 0;
  for (auto& [name, t] : sd) t = random_tensor(t.shape(), 500 + seed++, 0.5f);
  m.load_state_dict(sd);
  const Tensor x = random_tensor({c.B, c.T, c.C}, 600 + c.T);
  EXPECT_TRUE(close(std::string(c.name) + ": module forward", m.forward(x), module_oracle(m, x),
                       {c.B, c.T, c.C}, 2e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ModuleSweep,
    ::testing::Values(ModuleCase{1, 1, 8, 4, 2, "T1"}, ModuleCase{2, 6, 12, 6, 2, "six_heads_two_groups"},
                      ModuleCase{2, 5, 12, 6, 3, "six_heads_three_groups"},
                      ModuleCase{1, 7, 10, 5, 1, "five_heads_mqa"},
                      ModuleCase{2, 4, 9, 3, 3, "three_heads_mha"},
                      ModuleCase{1, 9, 14, 7, 7, "seven_heads_mha"},
                      ModuleCase{1, 5, 8, 8, 4, "head_dim_1"}),
    [](const ::testing::TestParamInfo<ModuleCase>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ gradients

TEST(Gradients, GradcheckThroughGroupedAttention) {
  const Tensor q = random_tensor({1, 4, 4, 3}, 700).set_requires_grad(),
               k = random_tensor({1, 2, 4, 3}, 701).set_requires_grad(),
               v = random_tensor({1, 2, 4, 2}, 702).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) { return lesson04::grouped_attention(in[0], in[1], in[2]); },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through grouped_attention (0 = q, 1 = k, 2 = v):\n" << r.message;
}

TEST(Gradients, GradcheckThroughTheModule) {
  Generator gen(703);
  lesson04::GroupedQueryAttention m(8, 4, 2, gen);
  const Tensor x = random_tensor({2, 3, 8}, 704).set_requires_grad();
  const GradcheckResult r =
      gradcheck([&m](const std::vector<Tensor>& in) { return m.forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << "gradient of the module output with respect to x:\n" << r.message;
  const Tensor loss = sum(square(m.forward(x)));
  loss.backward();
  for (auto& [name, p] : m.named_parameters())
    EXPECT_TRUE(p->grad().defined()) << name << " got no gradient: is it used in forward?";
}

TEST(Gradients, ASharedKvHeadCollectsItsGroupsGradient) {
  // d loss / d k[kv head j] = sum over the query heads of group j of the
  // gradient a private copy of k would get. Check it against MHA on copies.
  const Tensor q = random_tensor({1, 6, 5, 4}, 710), k = random_tensor({1, 2, 5, 4}, 711).set_requires_grad(),
               v = random_tensor({1, 2, 5, 4}, 712).set_requires_grad(), w = random_tensor({1, 6, 5, 4}, 713);
  sum(mul(lesson04::grouped_attention(q, k, v), w)).backward();
  ASSERT_TRUE(k.grad().defined() && v.grad().defined()) << "k/v.grad undefined after backward()";
  // The same attention on six independent copies (kv head h / 3 for head h).
  std::vector<Tensor> kc, vc;
  for (int64_t h = 0; h < 6; ++h) {
    kc.push_back(narrow(k, 1, h / 3, 1).detach().set_requires_grad());
    vc.push_back(narrow(v, 1, h / 3, 1).detach().set_requires_grad());
  }
  sum(mul(lesson04::grouped_attention(q, cat(kc, 1), cat(vc, 1)), w)).backward();
  std::vector<double> gk, gv;
  for (int64_t j = 0; j < 2; ++j) {
    Tensor sk = add(add(kc[3 * j].grad(), kc[3 * j + 1].grad()), kc[3 * j + 2].grad());
    Tensor sv = add(add(vc[3 * j].grad(), vc[3 * j + 1].grad()), vc[3 * j + 2].grad());
    for (float x : sk.to_vector()) gk.push_back(x);
    for (float x : sv.to_vector()) gv.push_back(x);
  }
  EXPECT_TRUE(close("k.grad (shared heads)", k.grad(), gk, {1, 2, 5, 4}))
      << "each K/V head must receive the summed gradient of the 3 query heads that read it";
  EXPECT_TRUE(close("v.grad (shared heads)", v.grad(), gv, {1, 2, 5, 4}));
}

// ------------------------------------------------------ stability and edges

TEST(Stability, ScoresNearPlusAndMinus1000) {
  // First component of q and k set so that every score is about +-1000.
  const Dims n{1, 4, 2, 6, 0, 4, 3};
  const float c = std::sqrt(2000.0f);
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> qv = random_tensor({1, 4, 6, 4}, 720).to_vector(), kv = random_tensor({1, 2, 6, 4}, 721).to_vector();
    for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = sign * c;
    for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
    const Tensor q = from_vector(qv, {1, 4, 6, 4}), k = from_vector(kv, {1, 2, 6, 4}),
                 v = random_tensor({1, 2, 6, 3}, 722);
    EXPECT_TRUE(close(sign > 0 ? "scores near +1000" : "scores near -1000",
                         lesson04::grouped_attention(q, k, v), oracle(q, k, v, n), {1, 4, 6, 3}, 1e-3))
        << "(NaN or inf means exp() overflowed: let softmax subtract the row max)";
  }
}

TEST(EdgeCases, DecodingOneQueryAfterACacheEqualsTheLastRow) {
  // The newest token's output is the last row of the full computation.
  const Tensor q = random_tensor({1, 6, 8, 4}, 730), k = random_tensor({1, 3, 8, 4}, 731), v = random_tensor({1, 3, 8, 2}, 732);
  const Tensor full = lesson04::grouped_attention(q, k, v);
  const Tensor one = lesson04::grouped_attention(narrow(q, 2, 7, 1), k, v, 7);
  EXPECT_TRUE(close("one query at position 7 over 8 keys", one,
                       [&] {
                         const std::vector<float> f = contiguous(narrow(full, 2, 7, 1)).to_vector();
                         return std::vector<double>(f.begin(), f.end());
                       }(),
                       {1, 6, 1, 2}))
      << "a query at position offset + i sees keys 0 .. offset + i";
}

TEST(EdgeCases, IndivisibleHeadsAreRejectedEverywhere) {
  auto is_error = [](auto f) {
    try {
      f();
    } catch (const NotImplemented&) {
      return std::string("not implemented yet");
    } catch (const Error&) {
      return std::string("error");
    }
    return std::string("no error");
  };
  EXPECT_EQ(is_error([] { lesson04::repeat_kv(random_tensor({1, 4, 3, 2}, 740), 6); }), "error")
      << "repeat_kv(4 K/V heads -> 6 heads) must throw attn::Error";
  EXPECT_EQ(is_error([] {
              lesson04::grouped_attention(random_tensor({1, 6, 3, 2}, 741), random_tensor({1, 4, 3, 2}, 742),
                                          random_tensor({1, 4, 3, 2}, 743));
            }),
            "error")
      << "grouped_attention(6 query heads, 4 K/V heads) must throw attn::Error";
  EXPECT_EQ(is_error([] { lesson04::repeat_kv(random_tensor({1, 2, 3, 2}, 744), 0); }), "error")
      << "repeat_kv(..., heads 0) must throw attn::Error";
}

// ------------------------------------------------------------------ memory

TEST(Memory, FormulaMatchesWhatARealCacheAllocates) {
  // The library's KV cache preallocates [B, Hkv, capacity, d] for K and V in
  // every layer. Its allocation, measured by the allocator, divided by the
  // capacity, is the cost of one token: your formula.
  const int64_t layers = 3, d = 16, capacity = 64;
  std::map<int64_t, std::size_t> per_token;
  for (int64_t kv : {8, 2, 1}) {
    const std::size_t bytes = bytes_kept([&] {
      return KVCache(layers, 1, CacheLayout{kv, d, d}, capacity, Device::cpu());
    });
    per_token[kv] = bytes / capacity;
    EXPECT_EQ(static_cast<int64_t>(per_token[kv]), lesson04::kv_cache_bytes_per_token(layers, kv, d))
        << "a cache of " << capacity << " tokens with " << kv << " K/V heads of " << d
        << " floats in " << layers << " layers allocated " << bytes << " bytes";
  }
  EXPECT_EQ(per_token[8], 4 * per_token[2]) << "8 K/V heads (MHA) vs 2 (GQA): 4x the cache";
  EXPECT_EQ(per_token[8], 8 * per_token[1]) << "8 K/V heads (MHA) vs 1 (MQA): 8x the cache";
}

TEST(Memory, RepeatKvForMHAIsFree) {
  // With one K/V head per query head, repeat_kv has nothing to do: it must
  // not allocate a copy.
  const Tensor kv = random_tensor({2, 4, 64, 16}, 750);
  const std::size_t bytes = bytes_kept([&] { return lesson04::repeat_kv(kv, 4); });
  EXPECT_EQ(bytes, 0u) << "repeat_kv(kv with 4 heads, 4) allocated " << bytes
                       << " bytes: return kv itself when Hkv == heads";
}

TEST(Memory, RepeatedKvCostsGroupTimesTheCache) {
  // What GQA saves is the *stored* K/V (the cache). repeat_kv materialises
  // the group copies for the attention of the moment: heads / Hkv times the
  // K/V it was given.
  const Tensor kv = random_tensor({1, 2, 128, 16}, 751);
  const std::size_t bytes = bytes_kept([&] { return lesson04::repeat_kv(kv, 8); });
  EXPECT_EQ(bytes, 8u * 128 * 16 * 4)
      << "repeat_kv(2 K/V heads -> 8) kept " << bytes << " bytes; 8 heads of 128 x 16 floats are "
      << 8 * 128 * 16 * 4;
}

// ----------------------------------------------------------------- mistakes

TEST(Mistakes, ModuleReadsTheWrongKvHead) {
  // Wv = 0 and bias_v = the K/V head's index, Wo = identity: each output
  // column block then says which K/V head its query head read.
  Generator gen(760);
  const int64_t C = 8, H = 4, Hkv = 2, d = 2;
  lesson04::GroupedQueryAttention m(C, H, Hkv, gen);
  auto sd = m.state_dict();
  sd["wv.weight"] = zeros({Hkv * d, C});
  sd["wv.bias"] = from_vector({0, 0, 1, 1}, {Hkv * d});
  std::vector<float> eye(C * C, 0.0f);
  for (int64_t i = 0; i < C; ++i) eye[i * C + i] = 1;
  sd["wo.weight"] = from_vector(eye, {C, C});
  sd["wo.bias"] = zeros({C});
  m.load_state_dict(sd);
  const std::vector<float> out = m.forward(random_tensor({1, 3, C}, 761)).to_vector();
  std::vector<int64_t> read;
  for (int64_t h = 0; h < H; ++h) read.push_back(std::lround(out[2 * C + h * d]));
  const std::vector<int64_t> want = {0, 0, 1, 1};
  std::ostringstream got;
  for (int64_t h = 0; h < H; ++h) got << (h ? ", " : "") << read[h];
  EXPECT_EQ(read, want) << "query heads 0..3 of the module read K/V heads [" << got.str()
                        << "], expected [0, 0, 1, 1]"
                        << (read == std::vector<int64_t>{0, 1, 0, 1}
                                ? ": K/V heads are tiled (k0 k1 k0 k1) instead of repeated in "
                                  "place (k0 k0 k1 k1)"
                                : "");
}

// ------------------------------------------------------------------ training

TEST(Training, YourMQATrainsATinyGPT) {
  // "Repeat the previous token" with one K/V head shared by 4 query heads.
  // The glue in gqa_glue.cpp registers "student:gqa" (your module).
  const TinyTraining t = train_previous_token("student:gqa:kv_heads=1", 4);
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with working attention it more than halves";
}

// ------------------------------------------------------------- GPU parity
// Your functions and your module on CUDA tensors must give what they give
// on the CPU, gradients included. Skipped where no GPU exists.

TEST(GpuParity, RepeatKv) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  EXPECT_TRUE(same_on_both_devices(
      "repeat_kv(kv [2, 2, 5, 3], 6)",
      [](const std::vector<Tensor>& in) { return lesson04::repeat_kv(in[0], 6); },
      {random_tensor({2, 2, 5, 3}, 960)}, {"kv"}));
}

TEST(GpuParity, GroupedAttention) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // GQA (6 query heads, 2 K/V heads), MQA, and queries after a cache.
  const struct {
    Dims n;
    const char* name;
  } cases[] = {{{2, 6, 2, 7, 0, 4, 3}, "grouped_attention, 6 heads / 2 K/V heads"},
               {{1, 5, 1, 6, 0, 3, 5}, "grouped_attention, MQA (5 heads / 1 K/V head)"},
               {{2, 4, 2, 3, 5, 4, 4}, "grouped_attention, 3 queries after a cache of 5"}};
  for (const auto& c : cases) {
    const Dims n = c.n;
    const int64_t offset = n.offset;
    EXPECT_TRUE(same_on_both_devices(
        c.name,
        [offset](const std::vector<Tensor>& in) {
          return lesson04::grouped_attention(in[0], in[1], in[2], offset);
        },
        {random_tensor({n.B, n.H, n.Tq, n.d}, 961), random_tensor({n.B, n.Hkv, n.tk(), n.d}, 962),
         random_tensor({n.B, n.Hkv, n.tk(), n.dv}, 963)},
        {"q", "k", "v"}));
  }
  // And the weights it hands back.
  const Tensor q = random_tensor({1, 4, 5, 3}, 964), k = random_tensor({1, 2, 5, 3}, 965),
               v = random_tensor({1, 2, 5, 2}, 966);
  Tensor w_cpu, w_gpu;
  lesson04::grouped_attention(q, k, v, 0, &w_cpu);
  lesson04::grouped_attention(q.to(Device::cuda()), k.to(Device::cuda()), v.to(Device::cuda()), 0,
                              &w_gpu);
  EXPECT_TRUE(same_on_both_devices("grouped_attention: weights_out", w_gpu, w_cpu));
}

TEST(GpuParity, ModuleOutputsAndGradients) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  // 6 query heads, 2 K/V heads: the module on CUDA gets the CPU module's
  // weights; output, x.grad and every parameter's gradient must agree.
  Generator g1(967), g2(968);
  lesson04::GroupedQueryAttention on_cpu(12, 6, 2, g1), on_gpu(12, 6, 2, g2);
  auto sd = on_cpu.state_dict();
  int seed = 0;
  for (auto& [name, t] : sd) t = random_tensor(t.shape(), 969 + seed++, 0.5f);
  on_cpu.load_state_dict(sd);
  EXPECT_TRUE(module_same_on_both_devices(
      "GroupedQueryAttention(12, 6 heads, 2 K/V heads)", on_cpu, on_gpu,
      [](Module& m, const Tensor& x) { return static_cast<lesson04::GroupedQueryAttention&>(m).forward(x); },
      random_tensor({2, 6, 12}, 975), 2e-4));
}
