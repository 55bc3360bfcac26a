// Row gather / scatter-add (embedding lookup and its gradient) and cumsum.
#include <algorithm>
#include <cstring>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"

namespace attn {
using namespace cpu;

int64_t CpuBackend::gather_rows(float* out, const float* table, const int64_t* idx, int64_t n,
                                int64_t row, int64_t table_rows) {
  for (int64_t i = 0; i < n; ++i)
    if (idx[i] < 0 || idx[i] >= table_rows) return i;
  parallel_for(n, rows_per_chunk(row), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(out + i * row, table + idx[i] * row, row * sizeof(float));
  });
  return -1;
}

void CpuBackend::scatter_add_rows(float* table, const int64_t* idx, const float* src, int64_t n,
                                  int64_t row) {
  // The same index may appear many times (a token repeated in a batch):
  // every occurrence adds its gradient. Two threads must never add into
  // the same table row, and the additions into one element must come in
  // the same order however many threads there are: so the threads split
  // the columns, and each walks every i in order.
  constexpr int64_t kCols = 64;
  parallel_for(row, kCols, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; ++i) {
      float* dst = table + idx[i] * row;
      const float* s = src + i * row;
      for (int64_t c = c0; c < c1; ++c) dst[c] += s[c];
    }
  });
}

void CpuBackend::cumsum(float* out, const float* in, int64_t rows, int64_t cols, bool reverse) {
  for (int64_t r = 0; r < rows; ++r) {
    double acc = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t k = r * cols + (reverse ? cols - 1 - c : c);
      acc += in[k];
      out[k] = static_cast<float>(acc);
    }
  }
}

}  // namespace attn
