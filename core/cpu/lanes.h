// Sums and maxima along a row that the compiler can vectorise.
//
// A plain `for (...) sum += x[i]` stays scalar: each addition waits for the
// one before, and reordering float additions changes the result, which the
// compiler may not do on its own. Here the row is added in kLanes
// interleaved partial sums (lane l takes elements l, l + kLanes, ...) that
// are combined in a fixed order at the end: SIMD-friendly, and always the
// same result for the same row, on any machine and any thread count.
#pragma once
#include <cstdint>

#include "core/cpu/vmath.h"

namespace attn::cpu {

constexpr int kLanes = 16;

// Sum in double (8 significant digits more than the floats it adds).
inline double sum_of(const float* x, int64_t n) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += x[i + l];
  for (int l = 0; i < n; ++i, ++l) lane[l] += x[i];
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

// Sum of x[i] * y[i] in double.
inline double dot_of(const float* x, const float* y, int64_t n) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += static_cast<double>(x[i + l]) * y[i + l];
  for (int l = 0; i < n; ++i, ++l) lane[l] += static_cast<double>(x[i]) * y[i];
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

// Sum of (x[i] - c)^2 in double: a variance about a known mean.
inline double sq_dev_of(const float* x, double c, int64_t n) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double d = x[i + l] - c;
      lane[l] += d * d;
    }
  for (int l = 0; i < n; ++i, ++l) {
    const double d = x[i] - c;
    lane[l] += d * d;
  }
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

// Sum of exp(x[i] - shift) in double: a softmax denominator.
inline double sum_exp_of(const float* x, float shift, int64_t n) {
  double lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] += vmath::exp(x[i + l] - shift);
  for (int l = 0; i < n; ++i, ++l) lane[l] += vmath::exp(x[i] - shift);
  double s = 0;
  for (int l = 0; l < kLanes; ++l) s += lane[l];
  return s;
}

// Largest element; NaN if any element is NaN (a NaN must not hide): a NaN
// taken into a lane stays there, since no comparison with it is true.
inline float max_of(const float* x, int64_t n) {
  auto pick = [](float best, float v) { return v > best || v != v ? v : best; };
  float lane[kLanes];
  for (int l = 0; l < kLanes; ++l) lane[l] = -__builtin_inff();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lane[l] = pick(lane[l], x[i + l]);
  for (int l = 0; i < n; ++i, ++l) lane[l] = pick(lane[l], x[i]);
  float m = lane[0];
  for (int l = 1; l < kLanes; ++l) m = pick(m, lane[l]);
  return m;
}

}  // namespace attn::cpu
