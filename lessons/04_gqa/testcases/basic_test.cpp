// Chapter 04, basic suite: repeat_kv on tensors whose values say where they
// came from, the README's worked example, MHA and MQA as the two ends of the
// knob, the KV-cache formula, the module next to the library's, and the two
// mistakes everybody meets: tiling K/V heads instead of repeating them in
// place, and head counts that do not divide.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "attention/multi_head.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "gqa.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// Head counts that do not divide must be refused with attn::Error.
::testing::AssertionResult rejects(const std::string& what, const std::function<void()>& f) {
  return lesson_test::rejects(what, f,
                              "some query heads would have no K/V head or two groups would have "
                              "different sizes");
}

// [B, Hkv, T, d] filled with 1000 * b + 100 * head + 10 * t + c: every
// value says where it came from.
Tensor labelled(int64_t B, int64_t H, int64_t T, int64_t d) {
  std::vector<float> x;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < d; ++c) x.push_back(float(1000 * b + 100 * h + 10 * t + c));
  return from_vector(x, {B, H, T, d});
}

// Which K/V head each output head of repeat_kv came from, read back from
// labelled() values (B = 1, T = 1, d = 1: the value is 100 * head).
std::vector<int64_t> source_heads(const Tensor& repeated) {
  std::vector<int64_t> src;
  for (float x : repeated.to_vector()) src.push_back(std::lround(x / 100.0f));
  return src;
}

std::string list(const std::vector<int64_t>& v) {
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

// Plain causal attention on [B, H, T, d] written with library ops (not your
// code), for the equivalences.
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t t = q.shape()[2];
  const Tensor scores = mul(matmul(q, transpose(k, -2, -1)), 1.0f / std::sqrt(float(q.shape()[3])));
  const Tensor future = eq(tril(ones({t, t})), 0.0);
  return matmul(softmax(masked_fill(scores, future, -1e9f), -1), v);
}

// K/V heads copied to H heads by hand: head h = kv head h / (H / Hkv).
Tensor repeat_by_hand(const Tensor& kv, int64_t H) {
  const int64_t g = H / kv.shape()[1];
  std::vector<Tensor> heads;
  for (int64_t h = 0; h < H; ++h) heads.push_back(narrow(kv, 1, h / g, 1));
  return cat(heads, 1);
}

// The README's worked example: H = 4 query heads, Hkv = 2, T = 2, d = 1.
struct Example {
  // q[head][token]: token 0 only ever sees key 0, so its value does not matter.
  Tensor q = from_vector({1, 0, /**/ 1, 2, /**/ 1, 1, /**/ 1, -1}, {1, 4, 2, 1});
  Tensor k = from_vector({0, 1, /**/ 1, 0}, {1, 2, 2, 1});
  Tensor v = from_vector({1, 3, /**/ 2, -2}, {1, 2, 2, 1});
};

}  // namespace

// ---------------------------------------------------------------- repeat_kv

TEST(RepeatKv, EachKvHeadServesItsGroup) {
  // B = 2, Hkv = 2, T = 3, d = 2 -> 6 heads: output head h is input head h / 3.
  const Tensor kv = labelled(2, 2, 3, 2);
  std::vector<double> want;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 6; ++h)
      for (int64_t t = 0; t < 3; ++t)
        for (int64_t c = 0; c < 2; ++c) want.push_back(1000 * b + 100 * (h / 3) + 10 * t + c);
  EXPECT_TRUE(close("repeat_kv([2, 2, 3, 2], heads 6)", lesson04::repeat_kv(kv, 6), want,
                       {2, 6, 3, 2}))
      << "(values are 1000 b + 100 head + 10 t + c, so a wrong value says which head it came from)";
}

TEST(RepeatKv, AsManyKvHeadsAsQueryHeadsIsMHA) {
  const Tensor kv = labelled(1, 3, 2, 2);
  EXPECT_TRUE(close("repeat_kv with Hkv = heads = 3", lesson04::repeat_kv(kv, 3), values(kv),
                       {1, 3, 2, 2}))
      << "with one K/V head per query head there is nothing to repeat";
}

TEST(RepeatKv, OneKvHeadServesEveryQueryHeadMQA) {
  const Tensor kv = labelled(1, 1, 2, 3);
  std::vector<double> want;
  for (int64_t h = 0; h < 5; ++h)
    for (double x : values(kv)) want.push_back(x);
  EXPECT_TRUE(close("repeat_kv with Hkv = 1, heads 5", lesson04::repeat_kv(kv, 5), want,
                       {1, 5, 2, 3}));
}

TEST(RepeatKv, HeadsNotDivisibleByKvHeadsIsAnError) {
  EXPECT_TRUE(rejects("repeat_kv(3 K/V heads, heads 4)",
                      [] { lesson04::repeat_kv(labelled(1, 3, 2, 2), 4); }));
  EXPECT_TRUE(rejects("repeat_kv(4 K/V heads, heads 6)",
                      [] { lesson04::repeat_kv(labelled(1, 4, 2, 2), 6); }));
  EXPECT_TRUE(rejects("repeat_kv(4 K/V heads, heads 2)",
                      [] { lesson04::repeat_kv(labelled(1, 4, 2, 2), 2); }))
      << "fewer query heads than K/V heads is not a grouping either";
}

// -------------------------------------------------------- grouped attention

TEST(GroupedAttention, ReadmeWorkedExample) {
  // Query heads 0, 1 use K/V head 0 (k = [0, 1], v = [1, 3]); heads 2, 3
  // use K/V head 1 (k = [1, 0], v = [2, -2]). Token 0 sees only key 0.
  // Token 1, head 1: scores [0, 2], weights [0.1192, 0.8808], out 2.7616.
  const Example e;
  Tensor w;
  const Tensor out = lesson04::grouped_attention(e.q, e.k, e.v, 0, &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("weights", w,
                       {1, 0, 0.5, 0.5,                        // head 0
                        1, 0, 0.1192029, 0.8807971,            // head 1
                        1, 0, 0.7310586, 0.2689414,            // head 2
                        1, 0, 0.2689414, 0.7310586},           // head 3
                       {1, 4, 2, 2}));
  EXPECT_TRUE(close("out", out, {1, 2, 1, 2.7615942, 2, 0.9242343, 2, -0.9242343}, {1, 4, 2, 1}));
}

TEST(GroupedAttention, EqualsMHAOnRepeatedKV) {
  // GQA is MHA where groups of heads happen to share K and V.
  const Tensor q = random_tensor({2, 6, 5, 4}, 1), k = random_tensor({2, 2, 5, 4}, 2), v = random_tensor({2, 2, 5, 3}, 3);
  EXPECT_TRUE(close("grouped_attention(6 query heads, 2 K/V heads)",
                       lesson04::grouped_attention(q, k, v),
                       values(causal_attention(q, repeat_by_hand(k, 6), repeat_by_hand(v, 6))),
                       {2, 6, 5, 3}));
}

TEST(GroupedAttention, KvHeadsEqualHeadsIsPlainMHA) {
  const Tensor q = random_tensor({1, 3, 4, 4}, 4), k = random_tensor({1, 3, 4, 4}, 5), v = random_tensor({1, 3, 4, 4}, 6);
  EXPECT_TRUE(close("grouped_attention with Hkv = H = 3", lesson04::grouped_attention(q, k, v),
                       values(causal_attention(q, k, v)), {1, 3, 4, 4}));
}

TEST(GroupedAttention, MQAWithEqualQueriesGivesEqualHeads) {
  // One K/V head for all: query heads that ask the same question get the
  // same answer.
  const Tensor q1 = random_tensor({1, 1, 4, 4}, 7);
  const Tensor q = cat({q1, q1, q1, q1}, 1), k = random_tensor({1, 1, 4, 4}, 8), v = random_tensor({1, 1, 4, 2}, 9);
  const Tensor out = lesson04::grouped_attention(q, k, v);
  const std::vector<double> head0 = values(select(out, 1, 0));
  std::vector<double> want;
  for (int h = 0; h < 4; ++h) want.insert(want.end(), head0.begin(), head0.end());
  EXPECT_TRUE(close("MQA out with four equal query heads", out, want, {1, 4, 4, 2}));
  EXPECT_TRUE(close("MQA head 0", select(out, 1, 0),
                       values(causal_attention(q1, k, v)), {1, 4, 2}));
}

TEST(GroupedAttention, CausalFutureKeysDoNotMatter) {
  const Tensor q = random_tensor({1, 4, 6, 4}, 10), k = random_tensor({1, 2, 6, 4}, 11), v = random_tensor({1, 2, 6, 3}, 12);
  const Tensor future = from_bools({0, 0, 0, 1, 1, 1}, {1, 1, 6, 1});
  const Tensor k2 = where(future, random_tensor({1, 2, 6, 4}, 13), k), v2 = where(future, random_tensor({1, 2, 6, 3}, 14), v);
  const std::vector<float> a = lesson04::grouped_attention(q, k, v).to_vector();
  const std::vector<float> b = lesson04::grouped_attention(q, k2, v2).to_vector();
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t c = 0; c < 3; ++c)
        ASSERT_NEAR(a[(h * 6 + t) * 3 + c], b[(h * 6 + t) * 3 + c], 1e-6)
            << "out[0," << h << "," << t << "," << c << "] changed when only tokens 3..5 "
            << "changed: apply the causal mask (key j is visible to query i when j <= i)";
}

// ------------------------------------------------------------- cache size

TEST(KvCacheSize, FormulaByHand) {
  // 32 layers, head_dim 128, fp16 (2 bytes): 32 K/V heads (MHA) cost
  // 2 * 32 * 32 * 128 * 2 = 524288 B = 512 KiB per token; 8 K/V heads (GQA)
  // 128 KiB; one (MQA) 16 KiB.
  EXPECT_EQ(lesson04::kv_cache_bytes_per_token(32, 32, 128, 2), 524288);
  EXPECT_EQ(lesson04::kv_cache_bytes_per_token(32, 8, 128, 2), 131072);
  EXPECT_EQ(lesson04::kv_cache_bytes_per_token(32, 1, 128, 2), 16384);
  // The model of the training command: 4 layers, 4 heads of 32, float32.
  EXPECT_EQ(lesson04::kv_cache_bytes_per_token(4, 4, 32), 4096)
      << "bytes_per_value defaults to 4 (float32)";
}

// --------------------------------------------------------------- the module

TEST(Module, ProjectionsShrinkWithKvHeadsAndOutputKeepsItsShape) {
  for (int64_t kv : {4, 2, 1}) {
    Generator gen(20);
    lesson04::GroupedQueryAttention m(16, 4, kv, gen);
    int64_t wk = 0;
    for (auto& [name, p] : m.named_parameters())
      if (name == "wk.weight") wk = p->numel();
    EXPECT_EQ(wk, 16 * kv * 4) << "wk maps C = 16 to kv_heads * d = " << kv * 4;
    const Tensor out = m.forward(random_tensor({2, 5, 16}, 21));
    EXPECT_EQ(out.shape(), (Shape{2, 5, 16})) << "kv_heads = " << kv << ": out is [B, T, C]";
  }
}

TEST(Module, MatchesTheLibraryWithTheSameWeights) {
  // Same parameter names as attn::MultiHeadAttention, so the library's
  // weights load into your module; the outputs must agree.
  for (int64_t kv : {6, 3, 2, 1}) {
    Generator g1(30), g2(31);
    AttentionConfig c;
    c.embd = 12, c.heads = 6, c.block_size = 8;
    MultiHeadAttention ref(c, kv, g1);
    lesson04::GroupedQueryAttention mine(12, 6, kv, g2);
    mine.load_state_dict(ref.state_dict());
    const Tensor x = random_tensor({2, 7, 12}, 32);
    EXPECT_TRUE(close("forward, 6 heads, kv_heads " + std::to_string(kv), mine.forward(x),
                         values(ref.forward(x)), {2, 7, 12}));
  }
}

// ----------------------------------------------------------------- mistakes

TEST(Mistakes, RepeatInsteadOfRepeatInterleave) {
  // 2 K/V heads for 6 query heads: k0 k0 k0 k1 k1 k1. torch's .repeat (a
  // tile) gives k0 k1 k0 k1 k0 k1: the right shape, the wrong pairing.
  const std::vector<int64_t> got = source_heads(lesson04::repeat_kv(labelled(1, 2, 1, 1), 6));
  const std::vector<int64_t> want = {0, 0, 0, 1, 1, 1};
  std::string hint;
  if (got == std::vector<int64_t>{0, 1, 0, 1, 0, 1})
    hint = "\nThat is a tile (k0 k1 k0 k1 ...: torch .repeat / cat of whole copies). Query head h "
           "belongs to group h / 3, so each K/V head must be repeated in place: k0 k0 k0 k1 k1 k1 "
           "(repeat_interleave(kv, heads / Hkv, 1))";
  EXPECT_EQ(got, want) << "query heads 0..5 read K/V heads " << list(got) << ", expected "
                       << list(want) << hint;
}

TEST(Mistakes, WrongPairingShowsInTheAttentionOutput) {
  // Each K/V head's values are its own index (v = 0 for K/V head 0, 1 for
  // head 1), so every query head's output says which K/V head it read.
  const Tensor q = random_tensor({1, 4, 3, 2}, 40), k = random_tensor({1, 2, 3, 2}, 41);
  const Tensor v = from_vector({0, 0, 0, /**/ 1, 1, 1}, {1, 2, 3, 1});
  const std::vector<float> out = lesson04::grouped_attention(q, k, v).to_vector();
  std::vector<int64_t> read;
  for (int64_t h = 0; h < 4; ++h) read.push_back(std::lround(out[h * 3 + 2]));
  const std::vector<int64_t> want = {0, 0, 1, 1};
  EXPECT_EQ(read, want) << "query heads 0..3 read K/V heads " << list(read) << ", expected "
                        << list(want)
                        << (read == std::vector<int64_t>{0, 1, 0, 1}
                                ? ": heads 1 and 2 read the other group's K/V. Repeat each K/V "
                                  "head in place (k0 k0 k1 k1), do not tile (k0 k1 k0 k1)"
                                : "");
}

TEST(Mistakes, GroupedAttentionWithIndivisibleHeads) {
  EXPECT_TRUE(rejects("grouped_attention(4 query heads, 3 K/V heads)", [] {
    lesson04::grouped_attention(random_tensor({1, 4, 2, 2}, 42), random_tensor({1, 3, 2, 2}, 43), random_tensor({1, 3, 2, 2}, 44));
  }));
}

TEST(Mistakes, KvCacheFormulaForgetsVOrLayers) {
  const int64_t got = lesson04::kv_cache_bytes_per_token(6, 2, 16, 4), want = 2 * 6 * 2 * 16 * 4;
  std::string hint;
  if (got == want / 2) hint = ": half the answer. The cache holds K AND V: the factor 2";
  else if (got == want / 6) hint = ": every layer keeps its own cache: multiply by layers";
  else if (got == want / 4) hint = ": times bytes_per_value (4 for float32)";
  EXPECT_EQ(got, want) << "kv_cache_bytes_per_token(layers 6, kv_heads 2, head_dim 16, 4 B) = " << got
                       << ", expected 2 * 6 * 2 * 16 * 4 = " << want << hint;
}
