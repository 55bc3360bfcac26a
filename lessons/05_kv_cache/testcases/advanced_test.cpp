// Chapter 05, advanced suite: cached attention and the whole decoder
// against double-precision loop oracles written here (prompts of every
// length, odd head counts, MHA/GQA/MQA, batches, chunked prefill), gradcheck
// through the cache, huge logits, the block-size edge, the bytes per token
// of MHA, GQA and MQA measured from your cache with the allocator, memory
// mistakes (a graph kept alive, repeated K/V cached), your cached_attention
// running inside the library's GPT and its own cache, and a tiny GPT trained
// on it through "student:kv_cache".
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/error.h"
#include "kv_cache.h"
#include "lesson_test.h"
#include "tiny_training.h"
#include "nn/gpt.h"

using namespace attn;

namespace {

using lesson_test::close;
using lesson_test::values;
using lesson_test::TinyTraining;
using lesson_test::train_previous_token;

Tensor rnd(const Shape& s, uint64_t seed, float scale = 1.0f) {
  return lesson_test::random_tensor(s, seed, scale);
}

// Causal grouped attention in double: q [B,H,T,d], k [B,Hkv,T,d], v [B,Hkv,T,dv],
// query i sees keys 0..i, query head h reads K/V head h / (H / Hkv).
std::vector<double> attention_oracle(const std::vector<double>& q, const std::vector<double>& k,
                                     const std::vector<double>& v, int64_t B, int64_t H,
                                     int64_t Hkv, int64_t T, int64_t d, int64_t dv) {
  std::vector<double> out(B * H * T * dv, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kh = b * Hkv + h / (H / Hkv), qh = b * H + h;
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += q[(qh * T + i) * d + c] * k[(kh * T + j) * d + c];
          s[j] = dot / std::sqrt(double(d));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t c = 0; c < dv; ++c) out[(qh * T + i) * dv + c] += s[j] / z * v[(kh * T + j) * dv + c];
      }
    }
  return out;
}



// The whole TinyDecoder in double, from its state_dict: logits [B, T, V]
// for ids [B][T] at positions 0..T-1.
std::vector<double> decoder_oracle(lesson05::TinyDecoder& m, const std::vector<std::vector<int64_t>>& ids) {
  auto sd = m.state_dict();
  const auto& c = m.config();
  const int64_t B = static_cast<int64_t>(ids.size()), T = static_cast<int64_t>(ids[0].size());
  const int64_t C = c.embd, H = c.heads, Hkv = c.kv_heads, d = C / H, V = c.vocab;
  const std::vector<double> wte = values(sd.at("wte.weight")), wpe = values(sd.at("wpe.weight"));
  std::vector<double> x(B * T * C);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < C; ++e) x[(b * T + t) * C + e] = wte[ids[b][t] * C + e] + wpe[t * C + e];
  auto linear = [&](const std::vector<double>& in, const std::string& name) {
    const std::vector<double> W = values(sd.at(name + ".weight")), bias = values(sd.at(name + ".bias"));
    const int64_t out = static_cast<int64_t>(bias.size());
    std::vector<double> y(B * T * out);
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = bias[o];
        for (int64_t i = 0; i < C; ++i) s += in[r * C + i] * W[o * C + i];
        y[r * out + o] = s;
      }
    return y;
  };
  // [B, T, heads * d] -> [B, heads, T, d]
  auto split = [&](const std::vector<double>& y, int64_t heads) {
    std::vector<double> s(y.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t e = 0; e < d; ++e)
            s[((b * heads + h) * T + t) * d + e] = y[(b * T + t) * heads * d + h * d + e];
    return s;
  };
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    const auto o = attention_oracle(split(linear(x, p + "wq"), H), split(linear(x, p + "wk"), Hkv),
                                    split(linear(x, p + "wv"), Hkv), B, H, Hkv, T, d, d);
    std::vector<double> merged(B * T * C);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t e = 0; e < d; ++e) merged[(b * T + t) * C + h * d + e] = o[((b * H + h) * T + t) * d + e];
    const auto y = linear(merged, p + "wo");
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += y[i];
  }
  std::vector<double> logits(B * T * V);
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t w = 0; w < V; ++w) {
      double s = 0;
      for (int64_t e = 0; e < C; ++e) s += x[r * C + e] * wte[w * C + e];
      logits[r * V + w] = s;
    }
  return logits;
}

// Rows t0 .. t0 + n - 1 of every batch entry of a [B, T, W] row-major array.
std::vector<double> rows(const std::vector<double>& a, int64_t B, int64_t T, int64_t W, int64_t t0,
                         int64_t n) {
  std::vector<double> r;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = t0; t < t0 + n; ++t)
      for (int64_t w = 0; w < W; ++w) r.push_back(a[(b * T + t) * W + w]);
  return r;
}

std::vector<std::vector<int64_t>> random_ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<std::vector<int64_t>> ids(B, std::vector<int64_t>(T));
  for (auto& row : ids)
    for (auto& x : row) x = static_cast<int64_t>(g.below(static_cast<uint64_t>(V)));
  return ids;
}

Tensor ids_tensor(const std::vector<std::vector<int64_t>>& ids, int64_t t0, int64_t n) {
  std::vector<int64_t> flat;
  for (const auto& row : ids)
    for (int64_t t = t0; t < t0 + n; ++t) flat.push_back(row[t]);
  return from_ints(flat, {static_cast<int64_t>(ids.size()), n});
}

// Extra bytes the allocator holds after f() compared with before.
template <class F>
long long bytes_held_after(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  f();
  return static_cast<long long>(cpu_allocator().stats().current) - static_cast<long long>(before);
}

struct AttnCase {
  int64_t B, H, Hkv, d, dv;
  std::vector<int64_t> chunks;  // tokens per call: the first is the prefill
  const char* name;
};
void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }
class CachedAttentionSweep : public ::testing::TestWithParam<AttnCase> {};

struct DecoderCase {
  int64_t B, layers, embd, heads, kv_heads, prompt, decode;
  const char* name;
};
void PrintTo(const DecoderCase& c, std::ostream* os) { *os << c.name; }
class DecoderSweep : public ::testing::TestWithParam<DecoderCase> {};

}  // namespace

// -------------------------------------------------- random sweeps vs oracle

TEST_P(CachedAttentionSweep, ChunkedCallsMatchTheDoubleOracle) {
  const AttnCase c = GetParam();
  int64_t T = 0;
  for (int64_t n : c.chunks) T += n;
  const Tensor q = rnd({c.B, c.H, T, c.d}, 10 + T), k = rnd({c.B, c.Hkv, T, c.d}, 20 + c.H),
               v = rnd({c.B, c.Hkv, T, c.dv}, 30 + c.dv);
  const std::vector<double> want =
      attention_oracle(values(q), values(k), values(v), c.B, c.H, c.Hkv, T, c.d, c.dv);
  lesson05::KVCache cache(1);
  int64_t t0 = 0;
  for (int64_t n : c.chunks) {
    const Tensor out = lesson05::cached_attention(narrow(q, 2, t0, n), narrow(k, 2, t0, n),
                                                  narrow(v, 2, t0, n), cache, 0);
    std::vector<double> w;
    for (int64_t bh = 0; bh < c.B * c.H; ++bh)
      for (int64_t t = t0; t < t0 + n; ++t)
        for (int64_t e = 0; e < c.dv; ++e) w.push_back(want[(bh * T + t) * c.dv + e]);
    EXPECT_TRUE(close(std::string(c.name) + ": tokens " + std::to_string(t0) + ".." +
                             std::to_string(t0 + n - 1) + " (cache held " + std::to_string(t0) + ")",
                         out, w, {c.B, c.H, n, c.dv}));
    t0 += n;
  }
  EXPECT_EQ(cache.length(0), T);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CachedAttentionSweep,
    ::testing::Values(AttnCase{1, 1, 1, 1, 1, {1, 1, 1}, "one_token_prompt_d1"},
                      AttnCase{2, 4, 2, 4, 3, {5, 1, 1, 1}, "gqa_prompt5_three_steps"},
                      AttnCase{1, 6, 3, 8, 8, {2, 3, 1, 4}, "six_heads_uneven_chunks"},
                      AttnCase{2, 5, 5, 3, 2, {1, 1, 1, 1, 1, 1}, "five_heads_mha_one_by_one"},
                      AttnCase{1, 7, 1, 4, 5, {6, 1, 2}, "seven_heads_mqa"},
                      AttnCase{3, 2, 1, 2, 2, {9}, "prefill_only"}),
    [](const ::testing::TestParamInfo<AttnCase>& i) { return std::string(i.param.name); });

TEST_P(DecoderSweep, FullAndCachedMatchTheDoubleOracle) {
  const DecoderCase c = GetParam();
  lesson05::DecoderConfig cfg;
  cfg.vocab = 13, cfg.block_size = 24, cfg.layers = c.layers, cfg.embd = c.embd;
  cfg.heads = c.heads, cfg.kv_heads = c.kv_heads;
  lesson05::TinyDecoder m(cfg, 100 + c.layers * 10 + c.kv_heads);
  const int64_t T = c.prompt + c.decode, V = cfg.vocab;
  const auto ids = random_ids(c.B, T, V, 200 + T);
  const std::vector<double> want = decoder_oracle(m, ids);
  EXPECT_TRUE(close(std::string(c.name) + ": forward without a cache", m.forward(ids_tensor(ids, 0, T)),
                       want, {c.B, T, V}, 2e-4));
  lesson05::KVCache cache(c.layers);
  NoGradGuard no_grad;
  EXPECT_TRUE(close(std::string(c.name) + ": prefill", m.forward(ids_tensor(ids, 0, c.prompt), &cache),
                       rows(want, c.B, T, V, 0, c.prompt), {c.B, c.prompt, V}, 2e-4));
  for (int64_t t = c.prompt; t < T; ++t)
    EXPECT_TRUE(close(std::string(c.name) + ": decode token " + std::to_string(t),
                         m.forward(ids_tensor(ids, t, 1), &cache), rows(want, c.B, T, V, t, 1),
                         {c.B, 1, V}, 2e-4));
}

INSTANTIATE_TEST_SUITE_P(
    Configs, DecoderSweep,
    ::testing::Values(DecoderCase{1, 1, 8, 2, 2, 1, 4, "one_layer_mha_prompt1"},
                      DecoderCase{2, 2, 16, 4, 2, 4, 3, "gqa_batch2"},
                      DecoderCase{1, 3, 12, 6, 3, 5, 2, "three_layers_six_heads"},
                      DecoderCase{2, 2, 12, 3, 1, 3, 4, "three_heads_mqa"},
                      DecoderCase{1, 2, 20, 5, 5, 7, 1, "five_heads_mha"}),
    [](const ::testing::TestParamInfo<DecoderCase>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ gradients

TEST(Gradients, GradcheckThroughTheCache) {
  // Gradients flow into the cached keys too (through the concatenation), so
  // cached_attention also works for training on chunked sequences.
  const Tensor q = rnd({1, 4, 2, 3}, 300).set_requires_grad(),
               k_old = rnd({1, 2, 3, 3}, 301).set_requires_grad(),
               v_old = rnd({1, 2, 3, 2}, 302).set_requires_grad(),
               k_new = rnd({1, 2, 2, 3}, 303).set_requires_grad(),
               v_new = rnd({1, 2, 2, 2}, 304).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        lesson05::KVCache cache(1);
        cache.append(0, in[1], in[2]);
        return lesson05::cached_attention(in[0], in[3], in[4], cache, 0);
      },
      {q, k_old, v_old, k_new, v_new});
  EXPECT_TRUE(r.ok) << "gradients through cached_attention (0 = q_new, 1 = cached k, 2 = cached v, "
                    << "3 = k_new, 4 = v_new):\n" << r.message;
}

// ------------------------------------------------------ stability and edges

TEST(Stability, DecodingWithScoresNear1000) {
  // Every score about +1000: exp() would overflow without the max shift.
  const float c = std::sqrt(2000.0f);
  std::vector<float> qv = rnd({1, 2, 6, 4}, 310).to_vector(), kv = rnd({1, 1, 6, 4}, 311).to_vector();
  for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = c;
  for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
  const Tensor q = from_vector(qv, {1, 2, 6, 4}), k = from_vector(kv, {1, 1, 6, 4}), v = rnd({1, 1, 6, 3}, 312);
  const auto want = attention_oracle(values(q), values(k), values(v), 1, 2, 1, 6, 4, 3);
  lesson05::KVCache cache(1);
  lesson05::cached_attention(narrow(q, 2, 0, 5), narrow(k, 2, 0, 5), narrow(v, 2, 0, 5), cache, 0);
  const Tensor out = lesson05::cached_attention(narrow(q, 2, 5, 1), narrow(k, 2, 5, 1), narrow(v, 2, 5, 1), cache, 0);
  EXPECT_TRUE(close("decode step with scores near 1000", out, {want[15], want[16], want[17], want[33], want[34], want[35]},
                       {1, 2, 1, 3}, 1e-3))
      << "(NaN or inf: let softmax subtract the row max)";
}

TEST(EdgeCases, DecodingFillsTheBlockExactlyAndNoFurther) {
  lesson05::DecoderConfig cfg;
  cfg.vocab = 5, cfg.block_size = 6, cfg.layers = 1, cfg.embd = 8, cfg.heads = 2, cfg.kv_heads = 1;
  lesson05::TinyDecoder m(cfg, 320);
  lesson05::KVCache cache(1);
  NoGradGuard no_grad;
  m.forward(from_ints({1, 2, 3}, {1, 3}), &cache);
  for (int64_t id : {4, 0, 1}) m.forward(from_ints({id}, {1, 1}), &cache);
  EXPECT_EQ(cache.length(), 6) << "positions 0..5 fill a block of 6";
  bool rejected = false;
  try {
    m.forward(from_ints({2}, {1, 1}), &cache);
  } catch (const NotImplemented&) {
    throw;
  } catch (const Error& e) {
    rejected = true;
    std::cout << "  position 6 rejected as expected: " << e.what() << "\n";
  }
  EXPECT_TRUE(rejected) << "a 7th token would sit at position 6, past the block of 6: it must throw "
                           "attn::Error (the given embed() does, if you pass it the right positions)";
  // generate_greedy checks the same up front.
  lesson05::KVCache fresh(1);
  EXPECT_THROW(lesson05::generate_greedy(m, {1, 2, 3}, 5, &fresh), Error)
      << "3 prompt tokens + 5 new ones need 7 positions; the block has 6";
  lesson05::KVCache fits(1);
  EXPECT_EQ(lesson05::generate_greedy(m, {1, 2, 3}, 4, &fits).size(), 4u)
      << "3 prompt tokens + 4 new ones need 6 positions: that fits";
}

TEST(EdgeCases, BatchedDecodingKeepsSequencesApart) {
  lesson05::TinyDecoder m(lesson05::DecoderConfig{9, 16, 2, 16, 4, 2}, 330);
  const auto ids = random_ids(2, 6, 9, 331);
  NoGradGuard no_grad;
  lesson05::KVCache both(2);
  m.forward(ids_tensor(ids, 0, 4), &both);
  m.forward(ids_tensor(ids, 4, 1), &both);
  const std::vector<float> batched = m.forward(ids_tensor(ids, 5, 1), &both).to_vector();
  for (int64_t b = 0; b < 2; ++b) {
    lesson05::KVCache alone(2);
    const std::vector<std::vector<int64_t>> one = {ids[b]};
    m.forward(ids_tensor(one, 0, 4), &alone);
    m.forward(ids_tensor(one, 4, 1), &alone);
    const std::vector<float> single = m.forward(ids_tensor(one, 5, 1), &alone).to_vector();
    for (int64_t w = 0; w < 9; ++w)
      ASSERT_NEAR(batched[b * 9 + w], single[w], 1e-4)
          << "sequence " << b << " decoded in a batch of 2 differs from decoding it alone at logit "
          << w << ": the cache concatenates along time (dim 2), never along the batch";
  }
}

// ------------------------------------------------------------------ memory

TEST(Memory, BytesPerTokenMeasuredForMHAGQAMQA) {
  // 2 layers, 4 query heads of d = 8, float32: one token costs
  // 2 (K, V) * 2 layers * Hkv * 8 * 4 bytes = 128 * Hkv bytes.
  std::map<int64_t, double> per_token;
  for (int64_t kv : {4, 2, 1}) {
    lesson05::TinyDecoder m(lesson05::DecoderConfig{7, 32, 2, 32, 4, kv}, 340);
    lesson05::KVCache cache(2);
    const auto ids = random_ids(1, 16, 7, 341);
    NoGradGuard no_grad;
    const long long held = bytes_held_after([&] {
      m.forward(ids_tensor(ids, 0, 12), &cache);
      for (int64_t t = 12; t < 16; ++t) m.forward(ids_tensor(ids, t, 1), &cache);
    });
    per_token[kv] = double(held) / 16;
    EXPECT_EQ(held, 16 * 128 * kv) << "after 16 tokens with " << kv << " K/V heads the allocator "
                                   << "holds " << held << " bytes more; the cache needs 16 * 2 * 2 * "
                                   << kv << " * 8 * 4 = " << 16 * 128 * kv
                                   << ". Only the cached K/V should outlive a forward pass";
    EXPECT_EQ(cache.bytes(), static_cast<std::size_t>(16 * 128 * kv)) << "cache.bytes() with " << kv
                                                                      << " K/V heads";
    const std::size_t formula = lesson05::bytes_per_token(m.config());
    EXPECT_EQ(static_cast<long long>(16 * formula), held)
        << "your bytes_per_token says " << formula << " bytes per token with " << kv
        << " K/V heads; the allocator measured " << held << " / 16 = " << held / 16;
  }
  std::cout << "  measured bytes per token: MHA " << per_token[4] << ", GQA(2) " << per_token[2]
            << ", MQA " << per_token[1] << "\n";
  EXPECT_EQ(per_token[4], 2 * per_token[2]) << "GQA with 2 of 4 K/V heads caches half of MHA";
  EXPECT_EQ(per_token[4], 4 * per_token[1]) << "MQA with 1 of 4 K/V heads caches a quarter of MHA";
}

TEST(Memory, CacheGrowsLinearlyWithTokens) {
  lesson05::TinyDecoder m(lesson05::DecoderConfig{7, 64, 1, 16, 2, 1}, 350);
  lesson05::KVCache cache(1);
  const auto ids = random_ids(1, 48, 7, 351);
  NoGradGuard no_grad;
  m.forward(ids_tensor(ids, 0, 16), &cache);
  const std::size_t at16 = cache.bytes();
  for (int64_t t = 16; t < 48; ++t) m.forward(ids_tensor(ids, t, 1), &cache);
  EXPECT_EQ(cache.bytes(), 3 * at16) << "48 tokens must hold 3x the bytes of 16 tokens (" << at16
                                     << "); got " << cache.bytes();
}

TEST(Mistakes, DecodingWithoutNoGradKeepsEveryOldCache) {
  // The parameters require gradients, so without NoGradGuard every cat()
  // records a node that holds the previous cache (and the activations of
  // every step): memory grows with the square of the length.
  lesson05::TinyDecoder m(lesson05::DecoderConfig{7, 32, 2, 32, 4, 4}, 360);
  lesson05::KVCache cache(2);
  ASSERT_TRUE(grad_enabled()) << "(the test runs with gradients on, as a training script would)";
  const long long held = bytes_held_after([&] { lesson05::generate_greedy(m, {1, 2, 3, 4, 5}, 12, &cache); });
  const long long needed = static_cast<long long>(cache.bytes());
  EXPECT_EQ(cache.length(), 16);
  EXPECT_LE(held, needed + 4096)
      << "after generate_greedy the allocator holds " << held << " bytes more, but the cache itself "
      << "is " << needed << " bytes. Something keeps old tensors alive: run generation inside "
      << "attn::NoGradGuard, so that the cached tensors carry no autograd graph";
}

TEST(Mistakes, CachingRepeatedKVLosesTheGQASaving) {
  // Store the Hkv heads, repeat them only inside the attention. A cache of
  // the repeated K/V is as big as MHA's.
  lesson05::KVCache cache(1);
  NoGradGuard no_grad;
  lesson05::cached_attention(rnd({1, 8, 4, 4}, 370), rnd({1, 2, 4, 4}, 371), rnd({1, 2, 4, 4}, 372),
                             cache, 0);
  const std::size_t want = 2 * 2 * 4 * 4 * 4;
  EXPECT_EQ(cache.bytes(), want) << "4 tokens with 2 K/V heads of 4 floats (K and V) are " << want
                                 << " bytes; the cache holds " << cache.bytes()
                                 << (cache.bytes() == 4 * want
                                         ? ": the K/V after repeat_kv (8 heads). Append k_new and "
                                           "v_new as given; repeat what append returns"
                                         : "");
}

// ----------------------------------------------- inside the library's GPT

TEST(Library, YourCachedAttentionDecodesInTheLibraryGPT) {
  // "student:kv_cache" is the library's attention module with your
  // cached_attention as its kernel; GPT::forward_cached decodes with the
  // library's preallocated cache and hands your kernel its keys.
  GPTConfig c;
  c.vocab = 9, c.block_size = 12, c.layers = 2, c.heads = 4, c.embd = 16;
  c.attention = "student:kv_cache:kv_heads=2";
  GPT model(c, 380);
  const std::vector<int64_t> ids = {1, 5, 2, 8, 3, 0, 7};
  NoGradGuard no_grad;
  const std::vector<float> full = model.forward(from_ints(ids, {1, 7})).to_vector();
  KVCache cache = model.make_cache(1);
  model.forward_cached(from_ints({1, 5, 2, 8}, {1, 4}), cache);
  for (int64_t t = 4; t < 7; ++t) {
    const Tensor step = model.forward_cached(from_ints({ids[t]}, {1, 1}), cache);
    EXPECT_TRUE(close("library GPT on your kernel, decode token " + std::to_string(t), step,
                         std::vector<double>(full.begin() + t * 9, full.begin() + (t + 1) * 9), {1, 1, 9}));
  }
}

// ------------------------------------------------------------------ training

TEST(Training, YourKernelTrainsATinyGPT) {
  // "Repeat the previous token", trained through "student:kv_cache": in
  // training there is no cache, so your cached_attention runs with an empty
  // one (plain causal attention) and its gradients train the model.
  const TinyTraining t = train_previous_token("student:kv_cache:kv_heads=2", 4);
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with working attention it more than halves";
}
