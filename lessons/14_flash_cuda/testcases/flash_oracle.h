// Shared by both suites of chapter 14: the GPU guard and the plain-loop,
// double-precision attention the kernel is checked against.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/dispatch.h"
#include "core/tensor.h"

namespace lesson14_test {

// Every test of chapter 14 needs a GPU; without one it is skipped, saying so.
class OnGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!attn::cuda_available())
      GTEST_SKIP() << "no CUDA device: chapter 14's suites run where a GPU exists";
  }
};

struct Problem {
  int64_t B = 1, H = 1, Hkv = 1, Tq = 1, Tk = 1, d = 4;
  bool causal = true;
  int64_t offset = 0, window = 0;
  double scale = 0;  // 0 = 1/sqrt(d)
};

struct Expected {
  std::vector<double> out;  // [B, H, Tq, d]
  std::vector<double> lse;  // [B, H, Tq]; -inf for a row without keys
};

// Attention written the long way: every score, the row max, the sum.
inline Expected attention_oracle(const Problem& p, const std::vector<float>& q,
                                 const std::vector<float>& k, const std::vector<float>& v) {
  const double scale = p.scale > 0 ? p.scale : 1.0 / std::sqrt(static_cast<double>(p.d));
  Expected e;
  e.out.assign(p.B * p.H * p.Tq * p.d, 0.0);
  e.lse.assign(p.B * p.H * p.Tq, -std::numeric_limits<double>::infinity());
  for (int64_t b = 0; b < p.B; ++b)
    for (int64_t h = 0; h < p.H; ++h) {
      const int64_t g = h / (p.H / p.Hkv);
      for (int64_t i = 0; i < p.Tq; ++i) {
        const int64_t pos = p.offset + i, row = (b * p.H + h) * p.Tq + i;
        std::vector<double> s(p.Tk, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < p.Tk; ++j) {
          if (p.causal && j > pos) continue;
          if (p.window > 0 && j <= pos - p.window) continue;
          double dot = 0;
          for (int64_t f = 0; f < p.d; ++f)
            dot += double(q[row * p.d + f]) * k[((b * p.Hkv + g) * p.Tk + j) * p.d + f];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        if (std::isinf(mx)) continue;  // no key: zeros, lse = -inf
        double sum = 0;
        for (int64_t j = 0; j < p.Tk; ++j) sum += std::isinf(s[j]) ? 0.0 : std::exp(s[j] - mx);
        for (int64_t j = 0; j < p.Tk; ++j) {
          if (std::isinf(s[j])) continue;
          const double w = std::exp(s[j] - mx) / sum;
          for (int64_t f = 0; f < p.d; ++f)
            e.out[row * p.d + f] += w * v[((b * p.Hkv + g) * p.Tk + j) * p.d + f];
        }
        e.lse[row] = mx + std::log(sum);
      }
    }
  return e;
}

}  // namespace lesson14_test
