// Walking N strided views over one shape in row-major order.
//
// `strided_for_each<N>(ndim, shape, strides, f)` calls f(off) for every index,
// where off[k] is the element offset of that index in view k. The innermost
// dim is a tight loop; outer dims advance like an odometer.
#pragma once
#include <array>
#include <cstdint>

#include "core/backend.h"
#include "core/bfloat16.h"
#include "core/dtype.h"

namespace attn::cpu {

template <int N, class F>
void strided_for_each(int ndim, const int64_t* shape, const std::array<const int64_t*, N>& strides,
                      F&& f) {
  std::array<int64_t, N> off{};
  if (ndim == 0) {
    f(off);
    return;
  }
  int64_t total = 1;
  for (int d = 0; d < ndim; ++d) total *= shape[d];
  if (total == 0) return;
  const int last = ndim - 1;
  const int64_t inner = shape[last];
  int64_t idx[kMaxDims] = {};
  for (int64_t row = 0; row < total / inner; ++row) {
    std::array<int64_t, N> o = off;
    for (int64_t i = 0; i < inner; ++i) {
      f(o);
      for (int k = 0; k < N; ++k) o[k] += strides[k][last];
    }
    for (int d = last - 1; d >= 0; --d) {
      for (int k = 0; k < N; ++k) off[k] += strides[k][d];
      if (++idx[d] < shape[d]) break;
      for (int k = 0; k < N; ++k) off[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

// The rows of a walk, for kernels that split rows over threads and run a
// vectorised loop along each one: calls f(off, inner) for rows
// [row_begin, row_end), where a row is one index of every dim but the last,
// off[k] is the row's first element in view k and inner the row's length
// (step along it: strides[k][ndim - 1]). A 0-d view is one row of length 1.
template <int N, class F>
void for_each_row(int ndim, const int64_t* shape, const std::array<const int64_t*, N>& strides,
                  int64_t row_begin, int64_t row_end, F&& f) {
  std::array<int64_t, N> off{};
  if (ndim == 0) {
    if (row_begin == 0 && row_end > 0) f(off, int64_t{1});
    return;
  }
  const int last = ndim - 1;
  // The odometer of the outer dims, started at row_begin.
  int64_t idx[kMaxDims] = {};
  for (int64_t rest = row_begin, d = last - 1; d >= 0; --d) {
    idx[d] = rest % shape[d];
    rest /= shape[d];
    for (int k = 0; k < N; ++k) off[k] += idx[d] * strides[k][d];
  }
  for (int64_t row = row_begin; row < row_end; ++row) {
    f(off, shape[last]);
    for (int d = last - 1; d >= 0; --d) {
      for (int k = 0; k < N; ++k) off[k] += strides[k][d];
      if (++idx[d] < shape[d]) break;
      for (int k = 0; k < N; ++k) off[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

// Rows of a walk over `shape` (every dim but the last), and their length.
inline int64_t row_count(int ndim, const int64_t* shape) {
  int64_t rows = 1;
  for (int d = 0; d + 1 < ndim; ++d) rows *= shape[d];
  return ndim == 0 ? 1 : rows;
}

inline bool is_dense(const View& v) {
  int64_t expected = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != expected) return false;
    expected *= v.shape[d];
  }
  return true;
}

inline int64_t view_numel(const View& v) {
  int64_t n = 1;
  for (int d = 0; d < v.ndim; ++d) n *= v.shape[d];
  return n;
}

// Reads/writes any dtype as double: the slow, general path.
inline double load(const View& v, int64_t off) {
  switch (static_cast<DType>(v.dtype)) {
    case DType::Float32: return static_cast<const float*>(v.data)[off];
    case DType::Int64: return static_cast<double>(static_cast<const int64_t*>(v.data)[off]);
    case DType::Bool: return static_cast<const uint8_t*>(v.data)[off];
    case DType::BFloat16: return bf16_to_float(static_cast<const uint16_t*>(v.data)[off]);
  }
  return 0;
}

inline void store(const View& v, int64_t off, double x) {
  switch (static_cast<DType>(v.dtype)) {
    case DType::Float32: static_cast<float*>(v.data)[off] = static_cast<float>(x); break;
    case DType::Int64: static_cast<int64_t*>(v.data)[off] = static_cast<int64_t>(x); break;
    case DType::Bool: static_cast<uint8_t*>(v.data)[off] = x != 0; break;
    // Through float: a float32 value (what is converted in practice) is
    // exact in double, so this rounds once, float32 to bfloat16.
    case DType::BFloat16: static_cast<uint16_t*>(v.data)[off] = bf16_from_float(static_cast<float>(x)); break;
  }
}

}  // namespace attn::cpu
