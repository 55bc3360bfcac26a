// Chapter 11, advanced suite: random sweeps of out AND lse against a
// double-precision loop oracle written here (not the library), gradients by
// finite differences through the recomputing backward (they are only right
// if your lse is), scores near 1000 that rise tile after tile, rows with no
// key, causality, memory measured with the allocator AND the heap (no T x T
// buffer of any kind), and a tiny GPT trained with your forward.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "flash_attention.h"
#include "nn/gpt.h"
#include "lesson_test.h"
#include "tiny_training.h"

using namespace attn;
using namespace lesson_test;

// ---- heap accounting --------------------------------------------------------
// Tensors come from attnlab's allocator, which counts its bytes; a
// std::vector or new[] does not. To see scratch buffers of every kind, this
// program replaces the global operator new/delete with malloc/free plus a
// byte count (glibc's malloc_usable_size gives a block's size back at
// delete time) that runs while `counting` is on.
namespace heap {
std::atomic<bool> counting{false};
std::atomic<long long> live{0}, peak{0};

// noinline: the compiler must not look through these into the callers'
// new/delete pairs (it would then warn about free() after new).
[[gnu::noinline]] void* take(std::size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (p && counting.load(std::memory_order_relaxed)) {
    const long long now = live += static_cast<long long>(malloc_usable_size(p));
    long long old = peak.load();
    while (now > old && !peak.compare_exchange_weak(old, now)) {
    }
  }
  return p;
}

[[gnu::noinline]] void give(void* p) {
  if (p && counting.load(std::memory_order_relaxed))
    live -= static_cast<long long>(malloc_usable_size(p));
  std::free(p);
}
}  // namespace heap

void* operator new(std::size_t n) {
  if (void* p = heap::take(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = heap::take(n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return heap::take(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return heap::take(n); }
void operator delete(void* p) noexcept { heap::give(p); }
void operator delete[](void* p) noexcept { heap::give(p); }
void operator delete(void* p, std::size_t) noexcept { heap::give(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::give(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::give(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::give(p); }

namespace {

struct Dims {
  int64_t B, H, Tq, Tk, d;
  bool causal;
  int64_t offset;
};

// What the oracle computes, besides the right answer: the online softmax
// with one of its rescales left out, to recognise those mistakes.
enum class Bug { None, NoRescaleOfL, NoRescaleOfAcc };

// The oracle, in double. Query i sees keys j <= offset + i (causal) or all
// keys; out_i = softmax(s_i) v, lse_i = log sum_j exp(s_ij) (-inf and
// out = 0 without keys). With a Bug it runs the online softmax over tiles
// of `tile` keys and makes that mistake.
void oracle(const Tensor& qt, const Tensor& kt, const Tensor& vt, const Dims& n,
            std::vector<double>& out, std::vector<double>& lse, Bug bug = Bug::None,
            int64_t tile = 1) {
  const std::vector<float> q = qt.to_vector(), k = kt.to_vector(), v = vt.to_vector();
  out.assign(n.B * n.H * n.Tq * n.d, 0.0);
  lse.assign(n.B * n.H * n.Tq, -INFINITY);
  const double scale = 1.0 / std::sqrt(static_cast<double>(n.d));
  for (int64_t bh = 0; bh < n.B * n.H; ++bh)
    for (int64_t i = 0; i < n.Tq; ++i) {
      const int64_t hi = n.causal ? std::min(n.Tk, n.offset + i + 1) : n.Tk;
      if (hi <= 0) continue;
      std::vector<double> s(hi);
      for (int64_t j = 0; j < hi; ++j) {
        double dot = 0;
        for (int64_t c = 0; c < n.d; ++c)
          dot += static_cast<double>(q[(bh * n.Tq + i) * n.d + c]) * k[(bh * n.Tk + j) * n.d + c];
        s[j] = dot * scale;
      }
      double m = -INFINITY, l = 0;
      std::vector<double> acc(n.d, 0.0);
      const int64_t step = bug == Bug::None ? hi : tile;  // the right answer: one tile
      for (int64_t j0 = 0; j0 < hi; j0 += step) {
        const int64_t j1 = std::min(hi, j0 + step);
        double m_new = m;
        for (int64_t j = j0; j < j1; ++j) m_new = std::max(m_new, s[j]);
        const double alpha = std::exp(m - m_new);
        if (bug != Bug::NoRescaleOfL) l *= alpha;
        if (bug != Bug::NoRescaleOfAcc)
          for (double& a : acc) a *= alpha;
        for (int64_t j = j0; j < j1; ++j) {
          const double p = std::exp(s[j] - m_new);
          l += p;
          for (int64_t c = 0; c < n.d; ++c) acc[c] += p * v[(bh * n.Tk + j) * n.d + c];
        }
        m = m_new;
      }
      for (int64_t c = 0; c < n.d; ++c) out[(bh * n.Tq + i) * n.d + c] = acc[c] / l;
      lse[bh * n.Tq + i] = m + std::log(l);
    }
}

struct Case {
  Dims n;
  int64_t tile;
  const char* name;
};

// gtest prints a failing parameter with this (instead of its raw bytes).
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class FlashSweep : public ::testing::TestWithParam<Case> {};

struct Peaks {
  double allocator, heap;
};

// Extra bytes at the peak of f(), from attnlab's allocator and from the
// heap (operator new), relative to before it ran.
template <class F>
Peaks peak_extra_bytes(F f) {
  const std::size_t before = cpu_allocator().stats().current;
  cpu_allocator().reset_peak();
  heap::live = 0;
  heap::peak = 0;
  heap::counting = true;
  { const lesson11::FlashResult r = f(); }
  heap::counting = false;
  return {static_cast<double>(cpu_allocator().stats().peak - before), static_cast<double>(heap::peak.load())};
}

}  // namespace

// ---------------------------------------------------- random sweeps vs oracle

TEST_P(FlashSweep, OutAndLseMatchDoubleOracle) {
  const Case c = GetParam();
  const Dims& n = c.n;
  const Tensor q = random_tensor({n.B, n.H, n.Tq, n.d}, 10 + n.Tq), k = random_tensor({n.B, n.H, n.Tk, n.d}, 20 + n.Tk),
               v = random_tensor({n.B, n.H, n.Tk, n.d}, 30 + n.d);
  std::vector<double> want_out, want_lse;
  oracle(q, k, v, n, want_out, want_lse);
  const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, n.causal, c.tile, n.offset);
  const std::string tag = std::string(c.name) + " (tile " + std::to_string(c.tile) + ")";
  EXPECT_TRUE(close(tag + ": out", r.out, want_out, {n.B, n.H, n.Tq, n.d}));
  EXPECT_TRUE(close(tag + ": lse", r.lse, want_lse, {n.B, n.H, n.Tq}));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FlashSweep,
    ::testing::Values(Case{{1, 1, 1, 1, 1, true, 0}, 1, "T1_d1"},
                      Case{{2, 1, 1, 5, 4, false, 0}, 2, "one_query_five_keys"},
                      Case{{2, 3, 9, 9, 4, true, 0}, 4, "three_heads_tile_not_dividing_T"},
                      Case{{1, 5, 7, 7, 3, true, 0}, 1, "five_heads_tile1"},
                      Case{{1, 2, 6, 11, 8, false, 0}, 3, "rectangular_not_causal"},
                      Case{{1, 2, 5, 5, 4, true, 0}, 64, "tile_larger_than_T"},
                      Case{{1, 2, 3, 8, 4, true, 5}, 2, "cache_offset5"},
                      Case{{1, 1, 70, 70, 8, true, 0}, 16, "T70_several_tiles_per_row"},
                      Case{{1, 1, 6, 6, 1, true, 0}, 2, "d1"}),
    [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ------------------------------------------------------------------ gradients

TEST(Gradients, GradcheckCausal) {
  // The backward rebuilds p_ij = exp(s_ij - lse_i): only your right lse
  // gives right gradients.
  const Tensor q = random_tensor({1, 2, 5, 3}, 41).set_requires_grad(),
               k = random_tensor({1, 2, 5, 3}, 42).set_requires_grad(),
               v = random_tensor({1, 2, 5, 3}, 43).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson11::flash_attention(in[0], in[1], in[2], true, 2);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through your flash forward (0 = q, 1 = k, 2 = v). The forward "
                       "values may be right and these wrong if lse is not m + log(l):\n"
                    << r.message;
}

TEST(Gradients, GradcheckNotCausalWithMoreKeys) {
  const Tensor q = random_tensor({1, 1, 3, 4}, 44).set_requires_grad(),
               k = random_tensor({1, 1, 7, 4}, 45).set_requires_grad(),
               v = random_tensor({1, 1, 7, 4}, 46).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson11::flash_attention(in[0], in[1], in[2], false, 3);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through your flash forward, not causal (0 = q, 1 = k, 2 = v):\n"
                    << r.message;
}

TEST(Gradients, GradcheckWithCacheOffset) {
  const Tensor q = random_tensor({1, 1, 2, 3}, 47).set_requires_grad(),
               k = random_tensor({1, 1, 6, 3}, 48).set_requires_grad(),
               v = random_tensor({1, 1, 6, 3}, 49).set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const std::vector<Tensor>& in) {
        return lesson11::flash_attention(in[0], in[1], in[2], true, 2, 4);
      },
      {q, k, v});
  EXPECT_TRUE(r.ok) << "gradients through your flash forward with offset 4:\n" << r.message;
}

// ------------------------------------------------------------------ stability

TEST(Stability, ScoresNear1000RisingEveryTile) {
  // The first component of q is c and of key j is c (1 + j / 100), with
  // c^2 / sqrt(4) = 1000: scores 1000, 1010, 1020, ... plus a little noise.
  // exp(1000) overflows float32; the max rises on every tile of 2 keys.
  const int64_t T = 12;
  const Dims n{1, 1, T, T, 4, false, 0};
  const float c = std::sqrt(2000.0f);
  std::vector<float> qv = random_tensor({1, 1, T, 4}, 51, 0.3f).to_vector(), kv = random_tensor({1, 1, T, 4}, 52, 0.3f).to_vector();
  for (int64_t i = 0; i < T; ++i) {
    qv[i * 4] = c;
    kv[i * 4] = c * (1.0f + 0.01f * float(i));
  }
  const Tensor q = from_vector(qv, {1, 1, T, 4}), k = from_vector(kv, {1, 1, T, 4}),
               v = random_tensor({1, 1, T, 4}, 53);
  std::vector<double> want_out, want_lse;
  oracle(q, k, v, n, want_out, want_lse);
  const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, false, 2);
  EXPECT_TRUE(close("out with scores 1000, 1010, ...", r.out, want_out, {1, 1, T, 4}, 1e-3))
      << "(a NaN or inf means exp() of a raw score overflowed: always exponentiate s - m)";
  EXPECT_TRUE(close("lse with scores 1000, 1010, ...", r.lse, want_lse, {1, 1, T}, 1e-4));
}

TEST(EdgeCases, RowsWithNoKeyGiveZerosAndMinusInfLse) {
  // offset -2: the queries sit at positions -2, -1, 0, 1 over keys 0, 1.
  // Queries 0 and 1 have no key at all.
  const Dims n{1, 2, 4, 2, 3, true, -2};
  const Tensor q = random_tensor({1, 2, 4, 3}, 61), k = random_tensor({1, 2, 2, 3}, 62), v = random_tensor({1, 2, 2, 3}, 63);
  std::vector<double> want_out, want_lse;
  oracle(q, k, v, n, want_out, want_lse);
  const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, true, 2, -2);
  EXPECT_TRUE(close("out with empty rows", r.out, want_out, {1, 2, 4, 3}))
      << "a row with no key outputs zeros (l = 0: do not divide by it)";
  EXPECT_TRUE(close("lse with empty rows", r.lse, want_lse, {1, 2, 4}))
      << "a row with no key has lse = log(0) = -inf";
}

TEST(EdgeCases, SingleQueryOverManyKeysEqualsItsFullSoftmax) {
  // Decoding: one query after a cache of 99 tokens, tiles of 8.
  const Dims n{1, 3, 1, 100, 8, true, 99};
  const Tensor q = random_tensor({1, 3, 1, 8}, 64), k = random_tensor({1, 3, 100, 8}, 65), v = random_tensor({1, 3, 100, 8}, 66);
  std::vector<double> want_out, want_lse;
  oracle(q, k, v, n, want_out, want_lse);
  const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, true, 8, 99);
  EXPECT_TRUE(close("out of one query over 100 keys", r.out, want_out, {1, 3, 1, 8}));
  EXPECT_TRUE(close("lse of one query over 100 keys", r.lse, want_lse, {1, 3, 1}));
}

// ------------------------------------------------------------------ causality

TEST(Causality, FutureKeysDoNotChangeThePast) {
  const Tensor q = random_tensor({1, 2, 9, 4}, 71), k = random_tensor({1, 2, 9, 4}, 72), v = random_tensor({1, 2, 9, 4}, 73);
  const Tensor future = from_bools({0, 0, 0, 0, 0, 1, 1, 1, 1}, {1, 1, 9, 1});
  const Tensor k2 = where(future, random_tensor({1, 2, 9, 4}, 74), k), v2 = where(future, random_tensor({1, 2, 9, 4}, 75), v);
  const lesson11::FlashResult a = lesson11::flash_forward(q, k, v, true, 2);
  const lesson11::FlashResult b = lesson11::flash_forward(q, k2, v2, true, 2);
  const std::vector<float> oa = a.out.to_vector(), ob = b.out.to_vector();
  const std::vector<float> la = a.lse.to_vector(), lb = b.lse.to_vector();
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t t = 0; t < 5; ++t) {
      ASSERT_NEAR(la[h * 9 + t], lb[h * 9 + t], 1e-6)
          << "lse[0," << h << "," << t << "] changed when only keys 5..8 changed: a causal row "
          << "must stop at key offset + i";
      for (int64_t c = 0; c < 4; ++c)
        ASSERT_NEAR(oa[(h * 9 + t) * 4 + c], ob[(h * 9 + t) * 4 + c], 1e-6)
            << "out[0," << h << "," << t << "," << c << "] changed when only keys 5..8 changed";
    }
}

// ------------------------------------------------------------------ memory

TEST(Memory, NeverATxTBuffer) {
  // T = 2048, d = 16: one T x T float matrix is 16 MiB; out + lse are
  // 136 KiB. Both the allocator (tensors) and the heap (std::vector, new)
  // must stay far below the matrix.
  const int64_t T = 2048;
  const Tensor q = random_tensor({1, 1, T, 16}, 81), k = random_tensor({1, 1, T, 16}, 82), v = random_tensor({1, 1, T, 16}, 83);
  const double txt = double(T) * T * 4;
  for (bool causal : {true, false}) {
    const Peaks p = peak_extra_bytes([&] { return lesson11::flash_forward(q, k, v, causal, 64); });
    const std::string tag = causal ? "causal" : "not causal";
    EXPECT_LT(p.allocator, txt / 16)
        << "flash_forward (" << tag << ", T = 2048) took " << p.allocator << " extra bytes from "
        << "the tensor allocator at its peak; one T x T float matrix is " << txt << ". Keep one "
        << "tile of scores at a time, not a row or matrix of them";
    EXPECT_LT(p.heap, txt / 16)
        << "flash_forward (" << tag << ", T = 2048) held " << p.heap << " heap bytes (std::vector, "
        << "new) at its peak; one T x T float matrix is " << txt << ". A scratch buffer of "
        << "Tq x Tk scores is exactly what flash attention avoids";
  }
}

TEST(Memory, GrowsLinearlyInT) {
  auto total_at = [](int64_t T) {
    const Tensor q = random_tensor({1, 1, T, 16}, 84), k = random_tensor({1, 1, T, 16}, 85), v = random_tensor({1, 1, T, 16}, 86);
    const Peaks p = peak_extra_bytes([&] { return lesson11::flash_forward(q, k, v, true, 64); });
    return p.allocator + p.heap;
  };
  const double m1 = total_at(1024), m2 = total_at(2048);
  EXPECT_LT(m2 / m1, 2.6) << "flash_forward used " << m1 << " B at T = 1024 and " << m2
                          << " B at T = 2048 (x" << m2 / m1 << "); O(T d) means about x2";
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, RescaleForgetsRunningSumOverManyTiles) {
  // 16 keys in tiles of 2 whose scores rise tile after tile (key j has
  // first component j / 4): the max moves up on every tile, so a running
  // sum l that is not multiplied by exp(m_old - m_new) is far too large.
  const int64_t T = 16;
  const Dims n{1, 1, 3, T, 4, false, 0};
  std::vector<float> kv = random_tensor({1, 1, T, 4}, 91, 0.2f).to_vector();
  for (int64_t j = 0; j < T; ++j) kv[j * 4] = 0.25f * float(j);
  const Tensor q = from_vector({4, 0, 0, 0, /**/ 3, 0.5f, 0, 0, /**/ 5, 0, -1, 0}, {1, 1, 3, 4}),
               k = from_vector(kv, {1, 1, T, 4}), v = random_tensor({1, 1, T, 4}, 92);
  std::vector<double> want_out, want_lse, l_out, l_lse, acc_out, acc_lse;
  oracle(q, k, v, n, want_out, want_lse);
  oracle(q, k, v, n, l_out, l_lse, Bug::NoRescaleOfL, 2);
  oracle(q, k, v, n, acc_out, acc_lse, Bug::NoRescaleOfAcc, 2);
  const lesson11::FlashResult r = lesson11::flash_forward(q, k, v, false, 2);
  const bool forgot_l = close("", r.out, l_out, {1, 1, 3, 4}, 1e-3);
  const bool forgot_acc = close("", r.out, acc_out, {1, 1, 3, 4}, 1e-3);
  EXPECT_TRUE(close("out over 8 tiles of rising scores", r.out, want_out, {1, 1, 3, 4}))
      << (forgot_l ? "your output is what the online softmax gives when the running sum l is NOT "
                     "rescaled: when a tile raises the max from m_old to m_new, do "
                     "l = l * exp(m_old - m_new) before adding the tile's exp(s - m_new)"
                   : "")
      << (forgot_acc ? "your output is what the online softmax gives when the accumulator is NOT "
                       "rescaled: multiply the running sum of p * v by exp(m_old - m_new) too"
                     : "");
  const bool lse_forgot_l = close("", r.lse, l_lse, {1, 1, 3}, 1e-3);
  EXPECT_TRUE(close("lse over 8 tiles of rising scores", r.lse, want_lse, {1, 1, 3}))
      << (lse_forgot_l ? "your lse is m + log(l) with an l that was not rescaled when the max rose"
                       : "");
}

TEST(Mistakes, LseIsNotTheMaxNorLogL) {
  // lse = m + log(l). Returning m alone, or log(l) alone, breaks the
  // backward, which rebuilds p = exp(s - lse).
  const Dims n{1, 1, 4, 4, 4, true, 0};
  const Tensor q = random_tensor({1, 1, 4, 4}, 93, 2.0f), k = random_tensor({1, 1, 4, 4}, 94, 2.0f), v = random_tensor({1, 1, 4, 4}, 95);
  std::vector<double> want_out, want_lse;
  oracle(q, k, v, n, want_out, want_lse);
  const std::vector<float> lse = lesson11::flash_forward(q, k, v, true, 2).lse.to_vector();
  // The row maxima, for the hint.
  const std::vector<float> qv = q.to_vector(), kv = k.to_vector();
  for (int64_t i = 0; i < 4; ++i) {
    double m = -INFINITY;
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t c = 0; c < 4; ++c) s += double(qv[i * 4 + c]) * kv[j * 4 + c];
      m = std::max(m, s / 2);
    }
    std::string hint;
    if (i > 0 && std::fabs(lse[i] - m) < 1e-4) hint = ": that is the row max m alone; add log(l)";
    else if (i > 0 && std::fabs(lse[i] - (want_lse[i] - m)) < 1e-4)
      hint = ": that is log(l) alone; add the max m (l is a sum of exp(s - m))";
    EXPECT_NEAR(lse[i], want_lse[i], 1e-4 * (1 + std::fabs(want_lse[i])))
        << "lse of causal row " << i << " is " << lse[i] << ", expected log sum_j exp(s_ij) = "
        << want_lse[i] << hint;
  }
}

TEST(Mistakes, OutputNotDividedByL) {
  // The accumulator holds sum_j exp(s_j - m) v_j; the output is that / l.
  const Tensor q = random_tensor({1, 1, 3, 4}, 96), k = random_tensor({1, 1, 6, 4}, 97);
  const Tensor v = ones({1, 1, 6, 4});
  const std::vector<float> out = lesson11::flash_forward(q, k, v, false, 2).out.to_vector();
  for (int64_t i = 0; i < 12; ++i)
    ASSERT_NEAR(out[i], 1.0f, 1e-5) << "with v = 1 every output must be 1 (the weights sum to 1); "
                                    << "out[" << index_str(i, {1, 1, 3, 4}) << "] = " << out[i]
                                    << ". Divide the accumulator by l at the end of the row";
}

// ------------------------------------------------------------------ training

TEST(Training, YourFlashTrainsATinyGPT) {
  // "Repeat the previous token". The glue in flash_attention.cpp registers
  // "student:flash": the library's multi-head module on your forward, with
  // the recomputing backward fed by your lse.
  const TinyTraining t = train_previous_token("student:flash");
  const float first = t.first_loss, last = t.last_loss;
  ASSERT_TRUE(std::isfinite(first) && std::isfinite(last)) << "the loss became NaN or inf";
  EXPECT_LT(last, 0.5f * first) << "the loss went from " << first << " to " << last
                                << " in 60 steps; with a working flash forward it more than halves";
}

// ------------------------------------------------------------- GPU parity
// flash_attention on CUDA tensors (the glue runs your flash_forward on CPU
// copies and moves the results back) must give what it gives on the CPU:
// the output on the GPU, and gradients recomputed from your lse that land on
// the GPU with the same values. Skipped where no GPU exists.

TEST(GpuParity, FlashAttentionOnCudaTensors) {
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: GPU parity runs where a GPU exists";
  const struct {
    Dims n;
    int64_t tile;
    const char* name;
  } cases[] = {{{2, 2, 9, 9, 4, true, 0}, 4, "causal, T = 9, tiles of 4"},
               {{1, 3, 5, 12, 8, true, 7}, 3, "causal, 5 queries after a cache of 7, tiles of 3"},
               {{2, 1, 6, 10, 5, false, 0}, 4, "not causal, Tq = 6, Tk = 10, tiles of 4"}};
  for (const auto& c : cases) {
    const Dims n = c.n;
    const int64_t tile = c.tile;
    EXPECT_TRUE(same_on_both_devices(
        std::string("flash_attention, ") + c.name,
        [n, tile](const std::vector<Tensor>& in) {
          return lesson11::flash_attention(in[0], in[1], in[2], n.causal, tile, n.offset);
        },
        {random_tensor({n.B, n.H, n.Tq, n.d}, 1100), random_tensor({n.B, n.H, n.Tk, n.d}, 1101),
         random_tensor({n.B, n.H, n.Tk, n.d}, 1102)},
        {"q", "k", "v"}));
  }
}
