// The CPU flash attention kernels (core/cpu/flash_attention.cpp) on several
// threads: forward and backward must give bitwise the same out, lse, dq, dk
// and dv on 1, 2 and 3 threads (DESIGN.md, "Threads": determinism is a
// contract), and agree with a plain double-precision loop oracle.
//
// The shapes aim at the tiling's edges: lengths below, at and above the
// 64-row tile and not a multiple of it, GQA, a sliding window that cuts
// tiles, ALiBi, a cache offset (queries later than keys), non-causal
// attention, rows that see no key at all, and q/k/v read in the
// token-major layout of a projection's output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/dispatch.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/threads.h"

namespace {

using namespace attn;

struct Case {
  int64_t B, H, Hkv, Tq, Tk, d, offset, window;
  bool causal, alibi, token_major;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "B" << c.B << " H" << c.H << " Hkv" << c.Hkv << " Tq" << c.Tq << " Tk" << c.Tk << " d" << c.d
    << " offset " << c.offset << " window " << c.window << (c.causal ? " causal" : " non-causal")
    << (c.alibi ? " alibi" : "") << (c.token_major ? " token-major" : "");
  return s.str();
}

void PrintTo(const Case& c, std::ostream* os) { *os << describe(c); }

// Where element (b, h, i, e) of a [B, H, T, d] operand lives, and its layout:
// contiguous [B, H, T, d] or token-major [B, T, H, d].
struct Layout {
  int64_t H, T, d;
  bool token_major;
  int64_t at(int64_t b, int64_t h, int64_t i, int64_t e) const {
    return token_major ? ((b * T + i) * H + h) * d + e : ((b * H + h) * T + i) * d + e;
  }
  FlashLayout flash() const {
    return token_major ? FlashLayout{T * H * d, d, H * d} : FlashLayout{H * T * d, T * d, d};
  }
};

// Everything one run reads and writes, as host vectors.
struct Results {
  std::vector<float> out, lse, dq, dk, dv;
};

struct Inputs {
  std::vector<float> q, k, v, dout, slopes;
};

std::vector<float> normal(int64_t n, uint64_t seed, float scale) {
  Generator g(seed);
  std::vector<float> x = randn({n}, g).to_vector();
  for (float& e : x) e *= scale;
  return x;
}

Inputs make_inputs(const Case& c) {
  Inputs in;
  // q scaled up so the running max moves between tiles.
  in.q = normal(c.B * c.H * c.Tq * c.d, 1 + c.Tq, 2.0f);
  in.k = normal(c.B * c.Hkv * c.Tk * c.d, 2 + c.Tk, 1.0f);
  in.v = normal(c.B * c.Hkv * c.Tk * c.d, 3 + c.Tk, 1.0f);
  in.dout = normal(c.B * c.H * c.Tq * c.d, 4 + c.Tq, 1.0f);
  if (c.alibi)
    for (int64_t h = 0; h < c.H; ++h) in.slopes.push_back(0.5f / static_cast<float>(h + 1));
  return in;
}

FlashArgs args_for(const Case& c, const Inputs& in, const Layout& ql, const Layout& kl) {
  FlashArgs a;
  a.q = in.q.data(), a.k = in.k.data(), a.v = in.v.data();
  a.batch = c.B, a.heads = c.H, a.kv_heads = c.Hkv, a.tq = c.Tq, a.tk = c.Tk, a.dim = c.d;
  a.offset = c.offset, a.window = c.window, a.causal = c.causal;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  a.alibi = c.alibi ? in.slopes.data() : nullptr;
  a.q_at = ql.flash(), a.k_at = kl.flash(), a.v_at = kl.flash();
  return a;
}

Results run_kernels(const Case& c, const Inputs& in, int threads) {
  const Layout ql{c.H, c.Tq, c.d, c.token_major}, kl{c.Hkv, c.Tk, c.d, c.token_major};
  Results r;
  r.out.assign(in.q.size(), -1.0f);  // junk: every element must be written
  r.lse.assign(c.B * c.H * c.Tq, -1.0f);
  r.dq.assign(in.q.size(), -1.0f);
  r.dk.assign(in.k.size(), -1.0f);
  r.dv.assign(in.v.size(), -1.0f);
  FlashArgs a = args_for(c, in, ql, kl);
  a.out = r.out.data(), a.lse = r.lse.data();
  set_num_threads(threads);
  Backend& cpu = backend_for(Device::cpu());
  cpu.flash_attention_forward(a);
  cpu.flash_attention_backward(a, in.dout.data(), r.dq.data(), r.dk.data(), r.dv.data());
  set_num_threads(1);
  return r;
}

// The oracle: attention and its gradients in double, one query row at a
// time, straight from the definitions.
struct Exact {
  std::vector<double> out, lse, dq, dk, dv;
};

Exact oracle(const Case& c, const Inputs& in) {
  const Layout ql{c.H, c.Tq, c.d, c.token_major}, kl{c.Hkv, c.Tk, c.d, c.token_major};
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  Exact x;
  x.out.assign(in.q.size(), 0.0);
  x.lse.assign(c.B * c.H * c.Tq, -INFINITY);
  x.dq.assign(in.q.size(), 0.0);
  x.dk.assign(in.k.size(), 0.0);
  x.dv.assign(in.v.size(), 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kh = h / (c.H / c.Hkv);
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t pos = c.offset + i;
        std::vector<int64_t> keys;
        std::vector<double> p;
        for (int64_t j = 0; j < c.Tk; ++j) {
          if ((c.causal && j > pos) || (c.window > 0 && j <= pos - c.window)) continue;
          double dot = 0;
          for (int64_t e = 0; e < c.d; ++e)
            dot += static_cast<double>(in.q[ql.at(b, h, i, e)]) * in.k[kl.at(b, kh, j, e)];
          const double bias = c.alibi ? in.slopes[h] * std::fabs(static_cast<double>(pos - j)) : 0;
          keys.push_back(j);
          p.push_back(dot * scale - bias);
        }
        if (keys.empty()) continue;  // zeros, lse = -inf, no gradient
        const double mx = *std::max_element(p.begin(), p.end());
        double z = 0;
        for (double& s : p) z += (s = std::exp(s - mx));
        for (double& s : p) s /= z;
        x.lse[(b * c.H + h) * c.Tq + i] = mx + std::log(z);
        // out_i = sum_j p_j v_j; dP_j = dout_i . v_j; dS_j = p_j (dP_j - sum_k p_k dP_k).
        std::vector<double> dp(keys.size(), 0.0);
        double D = 0;
        for (size_t n = 0; n < keys.size(); ++n) {
          for (int64_t e = 0; e < c.d; ++e) {
            const double ve = in.v[kl.at(b, kh, keys[n], e)];
            x.out[ql.at(b, h, i, e)] += p[n] * ve;
            dp[n] += in.dout[ql.at(b, h, i, e)] * ve;
          }
          D += p[n] * dp[n];
        }
        for (size_t n = 0; n < keys.size(); ++n) {
          const double ds = p[n] * (dp[n] - D) * scale;
          for (int64_t e = 0; e < c.d; ++e) {
            x.dq[ql.at(b, h, i, e)] += ds * in.k[kl.at(b, kh, keys[n], e)];
            x.dk[kl.at(b, kh, keys[n], e)] += ds * in.q[ql.at(b, h, i, e)];
            x.dv[kl.at(b, kh, keys[n], e)] += p[n] * in.dout[ql.at(b, h, i, e)];
          }
        }
      }
    }
  return x;
}

// got == want to ~1e-5 of the tensor's largest element (an element near
// zero is the difference of large terms; only a bound relative to the whole
// tensor is fair to it), plus 1e-6 for a tensor that is exactly zero (one
// key: dS = p (dP - D) = 0 up to rounding); infinities must match exactly.
::testing::AssertionResult close(const std::string& what, const std::vector<float>& got,
                                 const std::vector<double>& want) {
  double norm = 0;
  for (double w : want)
    if (std::isfinite(w)) norm = std::max(norm, std::fabs(w));
  for (size_t n = 0; n < got.size(); ++n) {
    const double g = got[n], w = want[n];
    const bool same_inf = std::isinf(w) && g == w;
    if (!same_inf && !(std::fabs(g - w) <= 1e-5 * (std::fabs(w) + norm) + 1e-6))
      return ::testing::AssertionFailure() << what << "[" << n << "] = " << g << ", expected " << w
                                           << " (largest |" << what << "| " << norm << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult bitwise_equal(const std::string& what, const std::vector<float>& a,
                                         const std::vector<float>& b) {
  for (size_t n = 0; n < a.size(); ++n)
    if (std::memcmp(&a[n], &b[n], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << what << "[" << n << "] is " << b[n]
                                           << " here but " << a[n] << " on one thread";
  return ::testing::AssertionSuccess();
}

class CpuFlashThreads : public ::testing::TestWithParam<Case> {};

TEST_P(CpuFlashThreads, SameBitsOnAnyThreadCountAndMatchesLoops) {
  const Case c = GetParam();
  SCOPED_TRACE(describe(c));
  const Inputs in = make_inputs(c);
  const Results one = run_kernels(c, in, 1);
  const Exact x = oracle(c, in);
  EXPECT_TRUE(close("out", one.out, x.out));
  EXPECT_TRUE(close("lse", one.lse, x.lse));
  EXPECT_TRUE(close("dq", one.dq, x.dq));
  EXPECT_TRUE(close("dk", one.dk, x.dk));
  EXPECT_TRUE(close("dv", one.dv, x.dv));
  for (int threads : {2, 3}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    const Results many = run_kernels(c, in, threads);
    EXPECT_TRUE(bitwise_equal("out", one.out, many.out));
    EXPECT_TRUE(bitwise_equal("lse", one.lse, many.lse));
    EXPECT_TRUE(bitwise_equal("dq", one.dq, many.dq));
    EXPECT_TRUE(bitwise_equal("dk", one.dk, many.dk));
    EXPECT_TRUE(bitwise_equal("dv", one.dv, many.dv));
  }
  EXPECT_EQ(num_threads(), 1);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuFlashThreads,
    ::testing::Values(
        //   B  H Hkv  Tq   Tk   d off win causal alibi token-major
        Case{1, 1, 1, 1, 1, 8, 0, 0, true, false, false},         // T = 1
        Case{2, 2, 2, 63, 63, 16, 0, 0, true, false, false},      // one short tile
        Case{1, 2, 1, 64, 64, 64, 0, 0, true, false, true},       // exactly one tile, MQA
        Case{1, 4, 2, 65, 65, 32, 0, 0, true, true, false},       // one row past a tile, GQA, ALiBi
        Case{2, 4, 2, 200, 200, 64, 0, 0, true, false, true},     // GQA, tiles straddle the diagonal
        Case{1, 4, 2, 200, 200, 24, 0, 50, true, true, false},    // window cuts tiles, ALiBi
        Case{1, 2, 2, 130, 200, 16, 70, 0, true, false, false},   // cache offset: Tq < Tk
        Case{1, 4, 2, 65, 200, 8, 135, 40, true, true, true},     // offset + window + ALiBi
        Case{1, 2, 1, 70, 70, 8, -5, 0, true, false, false},      // first rows see no key
        Case{1, 2, 2, 100, 150, 16, 0, 0, false, true, false},    // non-causal, ALiBi both sides
        Case{1, 2, 2, 100, 150, 16, 0, 30, false, false, false}), // non-causal window
    [](const ::testing::TestParamInfo<Case>& info) { return "case" + std::to_string(info.index); });

}  // namespace
