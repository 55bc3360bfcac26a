// Attention dropout inside the CPU flash kernels (core/cpu/flash_attention.cpp):
// forward and backward against a double-precision loop oracle that draws
// every keep decision with its own Philox (written again here from the
// paper's description, not core/philox.h), and bitwise the same results on
// 1, 2 and 3 threads. Also the shared keying helpers of
// core/attention_dropout.h against the same oracle.
//
// The oracle's math (nanoGPT's, PyTorch's): out = (P * Z) V with
// Z = keep / (1 - p) and P the undropped softmax; dV = (P * Z)^T dO;
// dP = (dO V^T) * Z; dS = P * (dP - D) scale with D_i = dO_i . out_i.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/attention_dropout.h"
#include "core/backend.h"
#include "core/dispatch.h"
#include "core/random.h"
#include "core/tensor.h"
#include "core/threads.h"
#include "testcases/philox_oracle.h"

namespace {

using namespace attn;

// The oracle of every keep decision: testcases/philox_oracle.h.

TEST(AttentionDropoutKeying, HelpersMatchTheOracle) {
  const AttentionDropoutArgs d{0x0123456789abcdefULL, 17, 40, 0.3f};
  const int64_t H = 3, tq = 37, tk = 45;
  for (int64_t b : {0, 2})
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < tq; i += 5) {
        // Every start within a group of four, so unaligned words are covered.
        for (int64_t j0 = 0; j0 < 8; ++j0) {
          const uint32_t bits =
              attention_dropout::keep_bits32(d, b, attention_dropout::element(d, h, i, j0, tq, tk));
          for (int k = 0; k < 32 && j0 + k < tk; ++k)
            ASSERT_EQ((bits >> k) & 1u, philox_oracle::keep(d, b, h, i, j0 + k, tq, tk) ? 1u : 0u)
                << "b " << b << " h " << h << " i " << i << " j " << j0 + k;
        }
        for (int64_t j = 0; j < tk; ++j)
          ASSERT_EQ(attention_dropout::keep(d, b, attention_dropout::element(d, h, i, j, tq, tk)),
                    philox_oracle::keep(d, b, h, i, j, tq, tk));
      }
}

TEST(AttentionDropoutKeying, ElementIndicesAre64Bit) {
  // H Tq Tk passes 2^32 at long sequences (8 heads, T = 32768: 2^33).
  EXPECT_EQ(attention_dropout::element({}, 7, 32767, 32767, 32768, 32768), (uint64_t{1} << 33) - 1);
}

TEST(AttentionDropoutKeying, ACallOverAGroupOfHeadsDrawsItsHeadsOwnNumbers) {
  // Head 1 of a call whose head 0 is the attention's head 4 is head 5.
  AttentionDropoutArgs group;
  group.first_head = 4;
  EXPECT_EQ(attention_dropout::element(group, 1, 3, 2, 10, 20), attention_dropout::element({}, 5, 3, 2, 10, 20));
}

// ---- the flash kernels with dropout ----

struct Case {
  int64_t B, H, Hkv, Tq, Tk, d, offset, window;
  bool causal, alibi;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "B" << c.B << " H" << c.H << " Hkv" << c.Hkv << " Tq" << c.Tq << " Tk" << c.Tk << " d" << c.d
    << " offset " << c.offset << " window " << c.window << (c.causal ? " causal" : " non-causal")
    << (c.alibi ? " alibi" : "");
  return s.str();
}

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
  in.q = normal(c.B * c.H * c.Tq * c.d, 11 + c.Tq, 2.0f);
  in.k = normal(c.B * c.Hkv * c.Tk * c.d, 12 + c.Tk, 1.0f);
  in.v = normal(c.B * c.Hkv * c.Tk * c.d, 13 + c.Tk, 1.0f);
  in.dout = normal(c.B * c.H * c.Tq * c.d, 14 + c.Tq, 1.0f);
  if (c.alibi)
    for (int64_t h = 0; h < c.H; ++h) in.slopes.push_back(0.5f / static_cast<float>(h + 1));
  return in;
}

// Contiguous [B, H, T, d] operands.
int64_t at(const Case& c, int64_t heads, int64_t t, int64_t b, int64_t h, int64_t i, int64_t e) {
  return ((b * heads + h) * t + i) * c.d + e;
}

struct Results {
  std::vector<float> out, lse, dq, dk, dv;
};

// drop: null = no dropout.
Results run_kernels(const Case& c, const Inputs& in, const AttentionDropoutArgs* drop, int threads) {
  Results r;
  r.out.assign(in.q.size(), -1.0f);
  r.lse.assign(c.B * c.H * c.Tq, -1.0f);
  r.dq.assign(in.q.size(), -1.0f);
  r.dk.assign(in.k.size(), -1.0f);
  r.dv.assign(in.v.size(), -1.0f);
  FlashArgs a;
  a.q = in.q.data(), a.k = in.k.data(), a.v = in.v.data();
  a.out = r.out.data(), a.lse = r.lse.data();
  a.batch = c.B, a.heads = c.H, a.kv_heads = c.Hkv, a.tq = c.Tq, a.tk = c.Tk, a.dim = c.d;
  a.offset = c.offset, a.window = c.window, a.causal = c.causal;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  a.alibi = c.alibi ? in.slopes.data() : nullptr;
  a.q_at = contiguous_layout(c.H, c.Tq, c.d);
  a.k_at = a.v_at = contiguous_layout(c.Hkv, c.Tk, c.d);
  const int saved = num_threads();
  set_num_threads(threads);
  Backend& cpu = backend_for(Device::cpu());
  cpu.flash_attention_forward(a, drop);
  cpu.flash_attention_backward(a, in.dout.data(), r.dq.data(), r.dk.data(), r.dv.data(), drop);
  set_num_threads(saved);
  return r;
}

struct Exact {
  std::vector<double> out, lse, dq, dk, dv;
  int64_t allowed = 0, dropped = 0;  // pairs that may attend, and how many were dropped
};

// One query row of the oracle: the allowed keys and their probabilities.
struct Row {
  std::vector<int64_t> keys;
  std::vector<double> p;
};

Row oracle_row(const Case& c, const Inputs& in, int64_t b, int64_t h, int64_t i) {
  const int64_t kh = h / (c.H / c.Hkv), pos = c.offset + i;
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  Row row;
  for (int64_t j = 0; j < c.Tk; ++j) {
    if ((c.causal && j > pos) || (c.window > 0 && j <= pos - c.window)) continue;
    double dot = 0;
    for (int64_t e = 0; e < c.d; ++e)
      dot += static_cast<double>(in.q[at(c, c.H, c.Tq, b, h, i, e)]) * in.k[at(c, c.Hkv, c.Tk, b, kh, j, e)];
    const double bias = c.alibi ? in.slopes[h] * std::fabs(static_cast<double>(pos - j)) : 0;
    row.keys.push_back(j);
    row.p.push_back(dot * scale - bias);
  }
  return row;
}

Exact oracle(const Case& c, const Inputs& in, const AttentionDropoutArgs& drop) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  const double keep_scale = 1.0f / (1.0f - drop.p);
  Exact x;
  x.out.assign(in.q.size(), 0.0);
  x.lse.assign(c.B * c.H * c.Tq, -INFINITY);
  x.dq.assign(in.q.size(), 0.0);
  x.dk.assign(in.k.size(), 0.0);
  x.dv.assign(in.v.size(), 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h)
      for (int64_t i = 0; i < c.Tq; ++i) {
        const int64_t kh = h / (c.H / c.Hkv);
        Row row = oracle_row(c, in, b, h, i);
        if (row.keys.empty()) continue;
        const double mx = *std::max_element(row.p.begin(), row.p.end());
        double z = 0;
        for (double& s : row.p) z += (s = std::exp(s - mx));
        for (double& s : row.p) s /= z;  // the undropped P normalises
        x.lse[(b * c.H + h) * c.Tq + i] = mx + std::log(z);
        const size_t n = row.keys.size();
        std::vector<double> zf(n), dp(n, 0.0);
        for (size_t t = 0; t < n; ++t) {
          zf[t] = philox_oracle::keep(drop, b, h, i, row.keys[t], c.Tq, c.Tk) ? keep_scale : 0.0;
          x.allowed += 1;
          x.dropped += zf[t] == 0.0;
        }
        double D = 0;
        for (size_t t = 0; t < n; ++t) {
          for (int64_t e = 0; e < c.d; ++e) {
            const double ve = in.v[at(c, c.Hkv, c.Tk, b, kh, row.keys[t], e)];
            x.out[at(c, c.H, c.Tq, b, h, i, e)] += row.p[t] * zf[t] * ve;
            dp[t] += in.dout[at(c, c.H, c.Tq, b, h, i, e)] * ve;
          }
          dp[t] *= zf[t];  // dP = (dO V^T) * Z
          D += row.p[t] * dp[t];
        }
        for (size_t t = 0; t < n; ++t) {
          const double ds = row.p[t] * (dp[t] - D) * scale;
          for (int64_t e = 0; e < c.d; ++e) {
            const int64_t qi = at(c, c.H, c.Tq, b, h, i, e), kj = at(c, c.Hkv, c.Tk, b, kh, row.keys[t], e);
            x.dq[qi] += ds * in.k[kj];
            x.dk[kj] += ds * in.q[qi];
            x.dv[kj] += row.p[t] * zf[t] * in.dout[qi];
          }
        }
      }
  return x;
}

// Within ~1e-5 of the tensor's largest element (see cpu_flash_threads_test).
::testing::AssertionResult close(const std::string& what, const std::vector<float>& got,
                                 const std::vector<double>& want) {
  double norm = 0;
  for (double w : want)
    if (std::isfinite(w)) norm = std::max(norm, std::fabs(w));
  for (size_t n = 0; n < got.size(); ++n) {
    const double g = got[n], w = want[n];
    const bool same_inf = std::isinf(w) && g == w;
    if (!same_inf && !(std::fabs(g - w) <= 1e-5 * (std::fabs(w) + norm) + 1e-6))
      return ::testing::AssertionFailure() << what << "[" << n << "] = " << g << ", expected " << w;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult bitwise_equal(const std::string& what, const std::vector<float>& a,
                                         const std::vector<float>& b) {
  for (size_t n = 0; n < a.size(); ++n)
    if (std::memcmp(&a[n], &b[n], sizeof(float)) != 0)
      return ::testing::AssertionFailure() << what << "[" << n << "] is " << b[n] << " here but "
                                           << a[n] << " on one thread";
  return ::testing::AssertionSuccess();
}

class CpuFlashDropout : public ::testing::TestWithParam<Case> {};

TEST_P(CpuFlashDropout, MatchesTheOracleAndAnyThreadCount) {
  const Case c = GetParam();
  SCOPED_TRACE(describe(c));
  const Inputs in = make_inputs(c);
  const AttentionDropoutArgs drop{0xfeedbeefULL, 3, 1000, 0.3f};
  const Results one = run_kernels(c, in, &drop, 1);
  const Exact x = oracle(c, in, drop);
  // The decisions do drop about p of the pairs (else this tests nothing).
  ASSERT_GT(x.allowed, 0);
  EXPECT_NEAR(static_cast<double>(x.dropped) / x.allowed, drop.p, 0.1) << x.dropped << " of " << x.allowed;
  EXPECT_TRUE(close("out", one.out, x.out));
  EXPECT_TRUE(close("lse", one.lse, x.lse));  // the undropped softmax's
  EXPECT_TRUE(close("dq", one.dq, x.dq));
  EXPECT_TRUE(close("dk", one.dk, x.dk));
  EXPECT_TRUE(close("dv", one.dv, x.dv));
  for (int threads : {2, 3}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    const Results many = run_kernels(c, in, &drop, threads);
    EXPECT_TRUE(bitwise_equal("out", one.out, many.out));
    EXPECT_TRUE(bitwise_equal("dq", one.dq, many.dq));
    EXPECT_TRUE(bitwise_equal("dk", one.dk, many.dk));
    EXPECT_TRUE(bitwise_equal("dv", one.dv, many.dv));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuFlashDropout,
    ::testing::Values(
        //   B  H Hkv  Tq   Tk   d off win causal alibi
        Case{2, 2, 2, 63, 63, 16, 0, 0, true, false},     // one short tile
        Case{2, 4, 2, 150, 150, 8, 0, 0, true, true},     // GQA, ALiBi, tiles across the diagonal
        Case{1, 2, 1, 130, 130, 8, 0, 37, true, false},   // window: tiles start at unaligned keys
        Case{1, 2, 2, 70, 133, 8, 63, 0, true, false},    // offset, Tk not a multiple of 4
        Case{1, 2, 2, 40, 90, 8, 0, 0, false, false},     // non-causal
        Case{1, 1, 1, 20, 20, 8, -3, 0, true, false}),    // first rows see no key
    [](const ::testing::TestParamInfo<Case>& info) { return "case" + std::to_string(info.index); });

TEST(CpuFlashDropout, ZeroProbabilityIsNoDropout) {
  const Case c{1, 2, 2, 70, 70, 8, 0, 0, true, false};
  const Inputs in = make_inputs(c);
  const AttentionDropoutArgs zero_p{5, 6, 7, 0.0f};
  const Results none = run_kernels(c, in, nullptr, 1), zero = run_kernels(c, in, &zero_p, 1);
  EXPECT_TRUE(bitwise_equal("out", none.out, zero.out));
  EXPECT_TRUE(bitwise_equal("dq", none.dq, zero.dq));
}

}  // namespace
