// Row-wise softmax and log-softmax on the CPU, and the causal softmax of
// attention scores (scale, ALiBi, causal mask and softmax in one pass, and
// attention dropout with it when training).
//
// exp(x) overflows float for x > 88, so every row first subtracts its max:
// softmax(x) = softmax(x - max(x)) exactly, and now every exponent is <= 0.
//
// Rows are independent: they go to the thread pool in chunks, and each row
// runs vectorised loops (core/cpu/vmath.h, core/cpu/lanes.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/lanes.h"
#include "core/cpu/parallel.h"
#include "core/cpu/philox_groups.h"
#include "core/cpu/vmath.h"

namespace attn {
using namespace cpu;

namespace {

ATTN_VECTOR_CLONES void softmax_rows(bool log, float* out, const float* in, int64_t r0, int64_t r1,
                                     int64_t cols) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = in + r * cols;
    float* y = out + r * cols;
    const float mx = max_of(x, cols);
    // A row of -inf (every position masked) has no max to subtract; treat
    // it as all-zero logits (a uniform row) rather than produce NaN. Only
    // setting mx = 0 is not enough: exp(-inf - 0) = 0 makes the sum 0, and
    // 0 * (1/0) is NaN again.
    if (mx == -std::numeric_limits<float>::infinity()) {
      const float n = static_cast<float>(cols);
      for (int64_t c = 0; c < cols; ++c) y[c] = log ? -std::log(n) : 1.0f / n;
      continue;
    }
    // x is read again after the sum, so out may be in.
    const double sum = sum_exp_of(x, mx, cols);
    if (log) {
      const float lse = static_cast<float>(std::log(sum));
      for (int64_t c = 0; c < cols; ++c) y[c] = x[c] - mx - lse;
    } else {
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t c = 0; c < cols; ++c) y[c] = vmath::exp(x[c] - mx) * inv;
    }
  }
}

ATTN_VECTOR_CLONES void softmax_backward_rows(bool log, float* gx, const float* y, const float* gy,
                                              int64_t r0, int64_t r1, int64_t cols) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* yr = y + r * cols;
    const float* gr = gy + r * cols;
    float* out = gx + r * cols;
    if (log) {
      // y = x - lse(x):  dx = dy - softmax(x) * sum(dy)
      const float dot = static_cast<float>(sum_of(gr, cols));
      for (int64_t c = 0; c < cols; ++c) out[c] = gr[c] - vmath::exp(yr[c]) * dot;
    } else {
      // y = softmax(x):  dx = y * (dy - sum(dy * y))
      const float dot = static_cast<float>(dot_of(gr, yr, cols));
      for (int64_t c = 0; c < cols; ++c) out[c] = yr[c] * (gr[c] - dot);
    }
  }
}

// Keys query row i may see: j < causal_keys (j <= offset + i, within tk).
int64_t causal_keys(int64_t i, int64_t offset, int64_t tk) {
  return std::clamp<int64_t>(offset + i + 1, 0, tk);
}

ATTN_VECTOR_CLONES void causal_softmax_rows(float* y, const float* x, int64_t r0, int64_t r1,
                                            int64_t heads, int64_t tq, int64_t tk, int64_t offset,
                                            float scale, const float* alibi) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t i = r % tq, pos = offset + i, n = causal_keys(i, offset, tk);
    const float slope = alibi ? alibi[(r / tq) % heads] : 0.0f;
    const float* xr = x + r * tk;
    float* yr = y + r * tk;
    // The scores go into y first; then their exponentials; then the weights.
    for (int64_t j = 0; j < n; ++j) yr[j] = scale * xr[j] - slope * static_cast<float>(pos - j);
    const float mx = max_of(yr, n);
    for (int64_t j = 0; j < n; ++j) yr[j] = vmath::exp(yr[j] - mx);
    const float inv = n > 0 ? static_cast<float>(1.0 / sum_of(yr, n)) : 0.0f;
    for (int64_t j = 0; j < n; ++j) yr[j] *= inv;
    for (int64_t j = n; j < tk; ++j) yr[j] = 0.0f;  // masked keys, or a row with none
  }
}

// The dropout multipliers Z of row r's visible keys (r = (b * heads + h) * tq + i).
void row_keep_scales(const AttentionDropoutArgs& d, int64_t r, int64_t heads, int64_t tq, int64_t tk,
                     int64_t n, float* z) {
  const int64_t i = r % tq, h = r / tq % heads, b = r / tq / heads;
  keep_scales(d, b, attention_dropout::element(d, h, i, 0, tq, tk), n, z);
}

// dropped = y * Z over rows r0 .. r1 of the weights just computed.
ATTN_VECTOR_CLONES void drop_rows(float* dropped, const float* y, int64_t r0, int64_t r1, int64_t heads,
                                  int64_t tq, int64_t tk, int64_t offset, const AttentionDropoutArgs& d) {
  std::vector<float> z(static_cast<size_t>(tk));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = causal_keys(r % tq, offset, tk);
    row_keep_scales(d, r, heads, tq, tk, n, z.data());
    const float* yr = y + r * tk;
    float* out = dropped + r * tk;
    for (int64_t j = 0; j < n; ++j) out[j] = yr[j] * z[j];
    for (int64_t j = n; j < tk; ++j) out[j] = 0.0f;
  }
}

// With dropout, the gradient arriving is that of the dropped weights: it
// is first multiplied by the same Z (the chain rule through y * Z), written
// into dx, and the softmax backward then works on dx in place.
ATTN_VECTOR_CLONES void causal_softmax_backward_rows(float* dx, const float* y, const float* dy,
                                                     int64_t r0, int64_t r1, int64_t heads, int64_t tq,
                                                     int64_t tk, int64_t offset, float scale,
                                                     const AttentionDropoutArgs* d) {
  std::vector<float> z(d ? static_cast<size_t>(tk) : 0);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t n = causal_keys(r % tq, offset, tk);
    const float* yr = y + r * tk;
    const float* gr = dy + r * tk;
    float* out = dx + r * tk;
    if (d) {
      row_keep_scales(*d, r, heads, tq, tk, n, z.data());
      for (int64_t j = 0; j < n; ++j) out[j] = gr[j] * z[j];
      gr = out;
    }
    const float dot = static_cast<float>(dot_of(gr, yr, n));
    for (int64_t j = 0; j < n; ++j) out[j] = scale * yr[j] * (gr[j] - dot);
    for (int64_t j = n; j < tk; ++j) out[j] = 0.0f;
  }
}

}  // namespace

void CpuBackend::softmax(bool log, float* out, const float* in, int64_t rows, int64_t cols) {
  parallel_for(rows, rows_per_chunk(cols),
               [&](int64_t r0, int64_t r1) { softmax_rows(log, out, in, r0, r1, cols); });
}

void CpuBackend::softmax_backward(bool log, float* gx, const float* y, const float* gy,
                                  int64_t rows, int64_t cols) {
  parallel_for(rows, rows_per_chunk(cols),
               [&](int64_t r0, int64_t r1) { softmax_backward_rows(log, gx, y, gy, r0, r1, cols); });
}

void CpuBackend::causal_softmax(float* y, const float* x, int64_t rows, int64_t heads, int64_t tq,
                                int64_t tk, int64_t offset, float scale, const float* alibi,
                                const AttentionDropoutArgs* dropout, float* dropped) {
  parallel_for(rows, rows_per_chunk(tk), [&](int64_t r0, int64_t r1) {
    causal_softmax_rows(y, x, r0, r1, heads, tq, tk, offset, scale, alibi);
    if (dropout) drop_rows(dropped, y, r0, r1, heads, tq, tk, offset, *dropout);
  });
}

void CpuBackend::causal_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                                         int64_t heads, int64_t tq, int64_t tk, int64_t offset,
                                         float scale, const AttentionDropoutArgs* dropout) {
  parallel_for(rows, rows_per_chunk(tk), [&](int64_t r0, int64_t r1) {
    causal_softmax_backward_rows(dx, y, dy, r0, r1, heads, tq, tk, offset, scale, dropout);
  });
}

}  // namespace attn
