// Row-wise softmax and log-softmax on the CPU, and the causal softmax of
// attention scores (scale, ALiBi, causal mask and softmax in one pass).
//
// exp(x) overflows float for x > 88, so every row first subtracts its max:
// softmax(x) = softmax(x - max(x)) exactly, and now every exponent is <= 0.
#include <algorithm>
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

namespace attn {

namespace {
// Keys query row i may see: j < causal_keys (j <= offset + i, within tk).
int64_t causal_keys(int64_t i, int64_t offset, int64_t tk) {
  return std::clamp<int64_t>(offset + i + 1, 0, tk);
}
}  // namespace

void CpuBackend::causal_softmax(float* y, const float* x, int64_t rows, int64_t heads, int64_t tq,
                                int64_t tk, int64_t offset, float scale, const float* alibi) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = r % tq, pos = offset + i, n = causal_keys(i, offset, tk);
    const float slope = alibi ? alibi[(r / tq) % heads] : 0.0f;
    const float* xr = x + r * tk;
    float* yr = y + r * tk;
    // The scores go into y first; then their exponentials; then the weights.
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      yr[j] = scale * xr[j] - slope * static_cast<float>(pos - j);
      mx = std::max(mx, yr[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      yr[j] = std::exp(yr[j] - mx);
      sum += yr[j];
    }
    const float inv = n > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
    for (int64_t j = 0; j < n; ++j) yr[j] *= inv;
    for (int64_t j = n; j < tk; ++j) yr[j] = 0.0f;  // masked keys, or a row with none
  }
}

void CpuBackend::causal_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                                         int64_t tq, int64_t tk, int64_t offset, float scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = causal_keys(r % tq, offset, tk);
    const float* yr = y + r * tk;
    const float* gr = dy + r * tk;
    float* out = dx + r * tk;
    double dot = 0;
    for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(gr[j]) * yr[j];
    const float d = static_cast<float>(dot);
    for (int64_t j = 0; j < n; ++j) out[j] = scale * yr[j] * (gr[j] - d);
    for (int64_t j = n; j < tk; ++j) out[j] = 0.0f;
  }
}

}  // namespace attn
