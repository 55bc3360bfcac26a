// Row-wise softmax and log-softmax on the CPU.
//
// exp(x) overflows float for x > 88, so every row first subtracts its max:
// softmax(x) = softmax(x - max(x)) exactly, and now every exponent is <= 0.
#include <cmath>
#include <limits>

#include "core/cpu/cpu_backend.h"

namespace attn {

void CpuBackend::softmax(bool log, float* out, const float* in, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * cols;
    float* y = out + r * cols;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, x[c]);
    // A row of -inf (every position masked) has no max to subtract; treat
    // it as all-zero logits (a uniform row) rather than produce NaN. Only
    // setting mx = 0 is not enough: exp(-inf - 0) = 0 makes the sum 0, and
    // 0 * (1/0) is NaN again.
    if (mx == -std::numeric_limits<float>::infinity()) {
      const float n = static_cast<float>(cols);
      for (int64_t c = 0; c < cols; ++c) y[c] = log ? -std::log(n) : 1.0f / n;
      continue;
    }
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(static_cast<double>(x[c] - mx));
    if (log) {
      const float lse = static_cast<float>(std::log(sum));
      for (int64_t c = 0; c < cols; ++c) y[c] = x[c] - mx - lse;
    } else {
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t c = 0; c < cols; ++c) y[c] = std::exp(x[c] - mx) * inv;
    }
  }
}

void CpuBackend::softmax_backward(bool log, float* gx, const float* y, const float* gy,
                                  int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* gr = gy + r * cols;
    float* out = gx + r * cols;
    double dot = 0;
    if (log) {
      // y = x - lse(x):  dx = dy - softmax(x) * sum(dy)
      for (int64_t c = 0; c < cols; ++c) dot += gr[c];
      for (int64_t c = 0; c < cols; ++c) out[c] = gr[c] - std::exp(yr[c]) * static_cast<float>(dot);
    } else {
      // y = softmax(x):  dx = y * (dy - sum(dy * y))
      for (int64_t c = 0; c < cols; ++c) dot += static_cast<double>(gr[c]) * yr[c];
      for (int64_t c = 0; c < cols; ++c) out[c] = yr[c] * (gr[c] - static_cast<float>(dot));
    }
  }
}

}  // namespace attn
