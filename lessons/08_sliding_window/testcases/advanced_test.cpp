// Chapter 08, advanced suite: random sweeps against a double-precision loop
// oracle written here (not the library), gradients by finite differences,
// huge logits, T = 1, odd head counts, a KV-cache offset, causality and the
// window's far edge, the memory of masked vs banded measured with the
// allocator, chunk-boundary mistakes, and a tiny GPT trained with your code.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "nn/gpt.h"
#include "sliding_window.h"
#include "lesson_test.h"
#include "tiny_training.h"

using namespace attn;
using namespace lesson_test;

namespace {

struct Dims {
  int64_t B, H, Tq, offset, d, dv;
  int64_t tk() const { return offset + Tq; }
};

// The oracle, in double: query i (position p = offset + i) attends to keys
// j with p - w < j <= p, softmax of q.k / sqrt(d) over those keys.
std::vector<double> oracle(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Dims& n,
                           int64_t w, std::vector<double>* weights = nullptr) {
  const std::vector<float> q = qt.to_vector(), k = kt.to_vector(), v = vt.to_vector();
  const int64_t tk = n.tk();
  std::vector<double> out(n.B * n.H * n.Tq * n.dv, 0.0);
  if (weights) weights->assign(n.B * n.H * n.Tq * tk, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(n.d));
  for (int64_t bh = 0; bh < n.B * n.H; ++bh)
    for (int64_t i = 0; i < n.Tq; ++i) {
      const int64_t p = n.offset + i, lo = std::max<int64_t>(0, p - w + 1);
      std::vector<double> s(tk, 0.0);
      double mx = -INFINITY;
      for (int64_t j = lo; j <= p; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < n.d; ++c)
          dot += static_cast<double>(q[(bh * n.Tq + i) * n.d + c]) * k[(bh * tk + j) * n.d + c];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (int64_t j = lo; j <= p; ++j) z += std::exp(s[j] - mx);
      for (int64_t j = lo; j <= p; ++j) {
        const double wt = std::exp(s[j] - mx) / z;
        if (weights) (*weights)[(bh * n.Tq + i) * tk + j] = wt;
        for (int64_t c = 0; c < n.dv; ++c)
          out[(bh * n.Tq + i) * n.dv + c] += wt * v[(bh * tk + j) * n.dv + c];
      }
    }
  return out;
}

struct Case {
  Dims n;
  int64_t window, chunk;
  const char* name;
};

// gtest prints a failing parameter with this (instead of its raw bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class WindowSweep : public ::testing::TestWithParam<Case> {};

// Extra bytes the allocator handed out at the peak of f(), relative to
// before it ran. Whatever f returns is dropped inside (with its graph).
template <class F>
double peak_extra_bytes(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  { const Tensor out = f(); }
  return static_cast<double>(cpu_allocator().stats().peak - before);
}

}  // namespace

// -------------------------------------------------- random sweeps vs oracle

TEST_P(WindowSweep, MaskedMatchesDoubleOracle) {
  const Case c = GetParam();
  const Dims& n = c.n;
  const Tensor q = random_tensor({n.B, n.H, n.Tq, n.d}, 10 + n.Tq), k = random_tensor({n.B, n.H, n.tk(), n.d}, 20 + n.d),
               v = random_tensor({n.B, n.H, n.tk(), n.dv}, 30 + n.dv);
  std::vector<double> want_w;
  const std::vector<double> want = oracle(q, k, v, n, c.window, &want_w);
  Tensor w;
  const Tensor out = lesson08::window_attention_masked(q, k, v, c.window, n.offset, &w);
  EXPECT_TRUE(close(std::string(c.name) + ": masked out", out, want, {n.B, n.H, n.Tq, n.dv}));
  EXPECT_TRUE(close(std::string(c.name) + ": masked weights", w, want_w, {n.B, n.H, n.Tq, n.tk()}));
}

TEST_P(WindowSweep, BandedMatchesDoubleOracle) {
  const Case c = GetParam();
  const Dims& n = c.n;
  const Tensor q = random_tensor({n.B, n.H, n.Tq, n.d}, 10 + n.Tq), k = random_tensor({n.B, n.H, n.tk(), n.d}, 20 + n.d),
               v = random_tensor({n.B, n.H, n.tk(), n.dv}, 30 + n.dv);
  EXPECT_TRUE(close(std::string(c.name) + ": banded out (chunk " + std::to_string(c.chunk) + ")",
                      lesson08::window_attention_banded(q, k, v, c.window, c.chunk, n.offset),
                      oracle(q, k, v, n, c.window), {n.B, n.H, n.Tq, n.dv}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WindowSweep,
    ::testing::Values(Case{{1, 1, 1, 0, 1, 1}, 1, 1, "T1_W1"},
                      Case{{2, 1, 1, 0, 4, 3}, 8, 4, "T1_W8"},
                      Case{{2, 3, 9, 0, 4, 5}, 3, 4, "three_heads_chunk_not_dividing_T"},
                      Case{{1, 5, 16, 0, 8, 8}, 4, 4, "five_heads_chunk_equals_W"},
                      Case{{2, 2, 13, 0, 3, 2}, 5, 2, "chunk_smaller_than_W"},
                      Case{{1, 2, 12, 0, 6, 4}, 1, 5, "W1_chunks_of_5"},
                      Case{{1, 1, 20, 0, 4, 4}, 20, 7, "W_equals_T"},
                      Case{{2, 2, 33, 0, 8, 8}, 7, 16, "T33_W7"},
                      Case{{1, 3, 3, 5, 4, 4}, 4, 2, "cache_offset5_three_new_queries"},
                      Case{{2, 1, 1, 9, 4, 2}, 3, 1, "cache_offset9_one_new_query"},
                      Case{{1, 2, 6, 10, 5, 3}, 32, 4, "cache_window_longer_than_everything"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ gradients

TEST(Gradients, MaskedGradcheck) {
  const Tensor q = random_tensor({1, 2, 6, 3}, 41).set_requires_grad(),
               k = random_tensor({1, 2, 6, 3}, 42).set_requires_grad(),
               v = random_tensor({1, 2, 6, 2}, 43).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson08::window_attention_masked(in[0], in[1], in[2], 3);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through window_attention_masked (0 = q, 1 = k, 2 = v):\n"
                    << r.message;
}

TEST(Gradients, BandedGradcheckAcrossChunks) {
  // chunk 3 over T = 7: three chunks whose bands overlap, so keys get
  // gradient from two chunks; both must add up.
  const Tensor q = random_tensor({1, 2, 7, 3}, 44).set_requires_grad(),
               k = random_tensor({1, 2, 7, 3}, 45).set_requires_grad(),
               v = random_tensor({1, 2, 7, 2}, 46).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson08::window_attention_banded(in[0], in[1], in[2], 3, 3);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through window_attention_banded (0 = q, 1 = k, 2 = v):\n"
                    << r.message;
}

TEST(Gradients, BandedGradcheckWithCacheOffset) {
  const Tensor q = random_tensor({1, 1, 3, 4}, 47).set_requires_grad(),
               k = random_tensor({1, 1, 7, 4}, 48).set_requires_grad(),
               v = random_tensor({1, 1, 7, 3}, 49).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson08::window_attention_banded(in[0], in[1], in[2], 3, 2, 4);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through window_attention_banded with offset 4:\n" << r.message;
}

// ------------------------------------------------------------------ stability

TEST(Stability, ScoresNearPlusAndMinus1000) {
  // The first component of every q and k is c with c^2 / sqrt(4) = 1000:
  // every score is +-1000 plus a small normal part. Without the max
  // subtraction of softmax, exp() overflows (or gives 0 / 0).
  const Dims n{1, 2, 8, 0, 4, 3};
  const float c = std::sqrt(2000.0f);
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> qv = random_tensor({1, 2, 8, 4}, 51).to_vector(), kv = random_tensor({1, 2, 8, 4}, 52).to_vector();
    for (std::size_t i = 0; i < qv.size(); i += 4) qv[i] = sign * c;
    for (std::size_t i = 0; i < kv.size(); i += 4) kv[i] = c;
    const Tensor q = from_vector(qv, {1, 2, 8, 4}), k = from_vector(kv, {1, 2, 8, 4}),
                 v = random_tensor({1, 2, 8, 3}, 53);
    const std::vector<double> want = oracle(q, k, v, n, 3);
    const std::string tag = sign > 0 ? "scores near +1000" : "scores near -1000";
    EXPECT_TRUE(close("masked, " + tag, lesson08::window_attention_masked(q, k, v, 3), want,
                        {1, 2, 8, 3}, 1e-3));
    EXPECT_TRUE(close("banded, " + tag, lesson08::window_attention_banded(q, k, v, 3, 3), want,
                        {1, 2, 8, 3}, 1e-3))
        << "(a NaN or inf here means exp() overflowed: use softmax, which subtracts the row max)";
  }
}

// ------------------------------------------------- causality and the far edge

TEST(Causality, FutureKeysDoNotChangeThePast) {
  // Keys and values at positions 6..9 change; outputs 0..5 must not.
  const Tensor q = random_tensor({1, 2, 10, 4}, 61), k = random_tensor({1, 2, 10, 4}, 62), v = random_tensor({1, 2, 10, 3}, 63);
  const Tensor future = from_bools({0, 0, 0, 0, 0, 0, 1, 1, 1, 1}, {1, 1, 10, 1});
  const Tensor k2 = where(future, random_tensor({1, 2, 10, 4}, 64), k),
               v2 = where(future, random_tensor({1, 2, 10, 3}, 65), v);
  for (int64_t chunk : {4, 10}) {
    const std::vector<float> a = lesson08::window_attention_banded(q, k, v, 4, chunk).to_vector();
    const std::vector<float> b = lesson08::window_attention_banded(q, k2, v2, 4, chunk).to_vector();
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t t = 0; t < 6; ++t)
        for (int64_t c = 0; c < 3; ++c) {
          const int64_t i = (h * 10 + t) * 3 + c;
          ASSERT_NEAR(a[i], b[i], 1e-6)
              << "banded out[0," << h << "," << t << "," << c << "] (chunk " << chunk
              << ") changed when only positions 6..9 changed: a query sees keys after itself. "
                 "Inside a chunk's band, the window mask must still hide the later keys";
        }
  }
}

TEST(Causality, KeysJustOutsideTheWindowAreIgnored) {
  // W = 3: the query at 7 sees 5, 6, 7. Changing key/value 4 (and all
  // earlier ones) must leave out[7] alone.
  const Tensor q = random_tensor({1, 1, 8, 4}, 66), k = random_tensor({1, 1, 8, 4}, 67), v = random_tensor({1, 1, 8, 3}, 68);
  const Tensor old = from_bools({1, 1, 1, 1, 1, 0, 0, 0}, {1, 1, 8, 1});
  const Tensor k2 = where(old, random_tensor({1, 1, 8, 4}, 69), k), v2 = where(old, random_tensor({1, 1, 8, 3}, 70), v);
  for (int64_t chunk : {1, 4, 8}) {
    const std::vector<float> a = lesson08::window_attention_banded(q, k, v, 3, chunk).to_vector();
    const std::vector<float> b = lesson08::window_attention_banded(q, k2, v2, 3, chunk).to_vector();
    for (int64_t c = 0; c < 3; ++c)
      ASSERT_NEAR(a[7 * 3 + c], b[7 * 3 + c], 1e-6)
          << "out[7] (W = 3, chunk " << chunk << ") changed when only keys 0..4 changed: "
          << "query 7 may see keys 5, 6, 7 only. A change through key 4 means the window is one "
             "key too wide (p - W <= j instead of p - W < j)";
  }
}

TEST(Causality, NoGradientOutsideTheWindow) {
  const Tensor q = random_tensor({1, 1, 9, 3}, 71).set_requires_grad(),
               k = random_tensor({1, 1, 9, 3}, 72).set_requires_grad(),
               v = random_tensor({1, 1, 9, 2}, 73).set_requires_grad();
  const Tensor out = lesson08::window_attention_banded(q, k, v, 2, 4);
  sum(select(out, 2, 5)).backward();  // query 5 only: it sees keys 4 and 5
  ASSERT_TRUE(k.grad().defined() && v.grad().defined()) << "k/v.grad undefined after backward()";
  const std::vector<float> gk = k.grad().to_vector(), gv = v.grad().to_vector();
  for (int64_t j = 0; j < 9; ++j) {
    if (j == 4 || j == 5) continue;
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_EQ(gk[j * 3 + c], 0.0f) << "d out[5] / d k[" << j << "] is not 0, but query 5 "
                                     << "with W = 2 sees keys 4 and 5 only";
    for (int64_t c = 0; c < 2; ++c)
      EXPECT_EQ(gv[j * 2 + c], 0.0f) << "d out[5] / d v[" << j << "] is not 0, but query 5 "
                                     << "with W = 2 sees keys 4 and 5 only";
  }
}

// ------------------------------------------------------------------ memory

TEST(Memory, MaskedPathHoldsATxTMatrix) {
  // The readable path pays for the whole T x T score matrix, window or not.
  const int64_t T = 1024;
  const Tensor q = random_tensor({1, 1, T, 8}, 81), k = random_tensor({1, 1, T, 8}, 82), v = random_tensor({1, 1, T, 8}, 83);
  NoGradGuard no_grad;
  const double bytes =
      peak_extra_bytes([&] { return lesson08::window_attention_masked(q, k, v, 16); });
  EXPECT_GE(bytes, double(T) * T * 4) << "the masked path at T = 1024 peaked at " << bytes
                                      << " extra bytes, less than one T x T float matrix (4 MiB)";
}

TEST(Memory, BandedPathNeverHoldsATxTMatrix) {
  // W = 16, chunks of 16: each chunk's scores are 16 x 31. Even with the
  // autograd graph keeping every chunk's pieces for backward, the total is
  // a few T x (chunk + W) matrices, far below one T x T matrix.
  const int64_t T = 2048;
  const Tensor q = random_tensor({1, 1, T, 8}, 84).set_requires_grad(),
               k = random_tensor({1, 1, T, 8}, 85).set_requires_grad(),
               v = random_tensor({1, 1, T, 8}, 86).set_requires_grad();
  const double txt = double(T) * T * 4;  // 16 MiB
  const double with_graph =
      peak_extra_bytes([&] { return lesson08::window_attention_banded(q, k, v, 16, 16); });
  EXPECT_LT(with_graph, txt / 4)
      << "window_attention_banded at T = 2048, W = 16, chunk 16 (graph kept for backward) "
      << "peaked at " << with_graph << " extra bytes; one T x T float matrix is " << txt
      << ". Slice K and V to each chunk's band (narrow) instead of scoring every key";
  NoGradGuard no_grad;
  const double without_graph =
      peak_extra_bytes([&] { return lesson08::window_attention_banded(q, k, v, 16, 16); });
  EXPECT_LT(without_graph, txt / 16)
      << "without a graph the banded path peaked at " << without_graph << " extra bytes at "
      << "T = 2048; only one chunk's scores need to be alive at a time";
}

TEST(Memory, BandedGrowsLinearlyInT) {
  // O(T W): doubling T doubles the memory (the masked path quadruples it).
  auto bytes_at = [](int64_t T) {
    const Tensor q = random_tensor({1, 1, T, 8}, 87).set_requires_grad(),
                 k = random_tensor({1, 1, T, 8}, 88).set_requires_grad(),
                 v = random_tensor({1, 1, T, 8}, 89).set_requires_grad();
    return peak_extra_bytes([&] { return lesson08::window_attention_banded(q, k, v, 16, 16); });
  };
  const double m1 = bytes_at(1024), m2 = bytes_at(2048);
  EXPECT_LT(m2 / m1, 2.6) << "banded memory went from " << m1 << " B at T = 1024 to " << m2
                          << " B at T = 2048 (x" << m2 / m1 << "); O(T W) means about x2";
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, ChunkBandMustStartWMinus1KeysBeforeTheChunk) {
  // W = 3, chunks of 4: the chunk of queries 4..7 needs keys 2..7. A band
  // that starts at the chunk's first query (key 4) starves queries 4 and 5.
  const Dims n{1, 1, 8, 0, 4, 3};
  const Tensor q = random_tensor({1, 1, 8, 4}, 91), k = random_tensor({1, 1, 8, 4}, 92), v = random_tensor({1, 1, 8, 3}, 93);
  const std::vector<double> want = oracle(q, k, v, n, 3);
  const std::vector<float> got = lesson08::window_attention_banded(q, k, v, 3, 4).to_vector();
  auto row_ok = [&](int64_t t) {
    for (int64_t c = 0; c < 3; ++c)
      if (!(std::fabs(got[t * 3 + c] - want[t * 3 + c]) < 1e-4)) return false;
    return true;
  };
  for (int64_t t = 0; t < 8; ++t) {
    const bool chunk_head = t == 4 || t == 5;
    EXPECT_TRUE(row_ok(t)) << "banded out[" << t << "] (W = 3, chunk 4) is wrong"
                           << (chunk_head && row_ok(6) && row_ok(7)
                                   ? ": the first rows of the second chunk are wrong while its "
                                     "last rows are right. Does the chunk's band start W - 1 = 2 "
                                     "keys before its first query (key 2), clipped at 0?"
                                   : "");
  }
}

TEST(Mistakes, BandWithoutTheMaskInsideIt) {
  // Inside a chunk, the band holds keys that are too old for the later
  // queries and keys that are in the future of the earlier ones. Changing
  // key/value 5 must not move query 4 (same chunk, key in its future).
  const Tensor q = random_tensor({1, 1, 8, 4}, 94), k = random_tensor({1, 1, 8, 4}, 95), v = random_tensor({1, 1, 8, 3}, 96);
  const Tensor at5 = from_bools({0, 0, 0, 0, 0, 1, 0, 0}, {1, 1, 8, 1});
  const Tensor k2 = where(at5, random_tensor({1, 1, 8, 4}, 97), k), v2 = where(at5, random_tensor({1, 1, 8, 3}, 98), v);
  const std::vector<float> a = lesson08::window_attention_banded(q, k, v, 3, 4).to_vector();
  const std::vector<float> b = lesson08::window_attention_banded(q, k2, v2, 3, 4).to_vector();
  for (int64_t c = 0; c < 3; ++c)
    ASSERT_NEAR(a[4 * 3 + c], b[4 * 3 + c], 1e-6)
        << "out[4] (W = 3, chunk 4: queries 4..7 share the band of keys 2..7) changed when only "
           "key 5 changed. Query 4 must not see key 5: apply the window mask inside the band "
           "(keep[i, j] with the query and key positions shifted by the band's first key)";
}

// ------------------------------------------------------------------ training

TEST(Training, YourWindowTrainsATinyGPT) {
  // "Repeat the previous token" needs exactly a window of 2: the token
  // itself and the one before. The glue in sliding_window.cpp registers
  // "student:window": the library's multi-head module on your banded path.
  const TinyTraining t = train_previous_token("student:window:size=2");
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with a working window of 2 it more than halves";
}

// ------------------------------------------------------------- GPU parity
// Both of your window attentions on CUDA tensors must give what they give
// on the CPU, gradients included. (A mask you build inside them must be on
// q.device(): window_mask makes it on the CPU, .to(q.device()) moves it.)
// Skipped where no GPU exists.

TEST(GpuParity, MaskedAndBandedWindowAttention) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  const struct {
    Dims n;
    int64_t window, chunk;
    const char* name;
  } cases[] = {{{2, 3, 11, 0, 4, 3}, 4, 3, "T = 11, window 4, chunks of 3"},
               {{1, 2, 9, 0, 5, 5}, 1, 4, "T = 9, window 1, chunks of 4"},
               {{2, 2, 7, 0, 3, 2}, 16, 5, "T = 7, window 16 (wider than T), chunks of 5"},
               {{1, 3, 4, 6, 4, 4}, 5, 3, "4 queries after a cache of 6, window 5, chunks of 3"}};
  for (const auto& c : cases) {
    const Dims n = c.n;
    const int64_t window = c.window, chunk = c.chunk, offset = n.offset;
    const std::vector<Tensor> qkv = {random_tensor({n.B, n.H, n.Tq, n.d}, 990),
                                     random_tensor({n.B, n.H, n.tk(), n.d}, 991),
                                     random_tensor({n.B, n.H, n.tk(), n.dv}, 992)};
    EXPECT_TRUE(same_on_both_devices(
        std::string("window_attention_masked, ") + c.name,
        [=](const std::vector<Tensor>& in) {
          return lesson08::window_attention_masked(in[0], in[1], in[2], window, offset);
        },
        qkv, {"q", "k", "v"}));
    EXPECT_TRUE(same_on_both_devices(
        std::string("window_attention_banded, ") + c.name,
        [=](const std::vector<Tensor>& in) {
          return lesson08::window_attention_banded(in[0], in[1], in[2], window, chunk, offset);
        },
        qkv, {"q", "k", "v"}));
  }
  // And the weights window_attention_masked hands back.
  const Tensor q = random_tensor({1, 2, 6, 3}, 993), k = random_tensor({1, 2, 6, 3}, 994),
               v = random_tensor({1, 2, 6, 2}, 995);
  Tensor w_cpu, w_gpu;
  lesson08::window_attention_masked(q, k, v, 3, 0, &w_cpu);
  lesson08::window_attention_masked(q.to(Device::cuda()), k.to(Device::cuda()), v.to(Device::cuda()),
                                    3, 0, &w_gpu);
  EXPECT_TRUE(same_on_both_devices("window_attention_masked: weights_out", w_gpu, w_cpu));
}
