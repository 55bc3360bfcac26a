// The small steps of chunkwise causal linear attention on the CPU (the
// products go through gemm; attention/linear_chunked.cpp puts it together).
// Each output element is computed by one loop in a fixed order, so the
// thread count never changes a bit.
#include <algorithm>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"

namespace attn {
using namespace cpu;

// The running sum goes down a column of blocks: element e of block s adds
// element e of the blocks before it. Threads split the elements of a block
// (never the steps), each keeping its own running sums in double. A piece
// takes at least kScanRun neighbouring elements, so each step reads and
// writes runs of 8 KiB that the prefetcher follows (runs of 256 bytes,
// 16 KiB apart, made the scan twice as slow once the states left the cache).
constexpr int64_t kScanRun = 2048;

void CpuBackend::chunk_scan(float* out, const float* in, int64_t groups, int64_t steps,
                            int64_t width, bool reverse) {
  const int64_t grain = std::max(kScanRun, rows_per_chunk(steps));
  parallel_for(groups * width, grain, [&](int64_t e0, int64_t e1) {
    std::vector<double> running(e1 - e0, 0.0);
    for (int64_t step = 0; step < steps; ++step) {
      const int64_t s = reverse ? steps - 1 - step : step;
      // Element e of group g sits at g * steps * width + s * width + e % width:
      // walk [e0, e1) one group's stretch at a time.
      for (int64_t e = e0; e < e1;) {
        const int64_t g = e / width, stretch_end = std::min(e1, (g + 1) * width);
        const int64_t at = g * (steps - 1) * width + s * width;  // + e
        for (; e < stretch_end; ++e) {
          const float here = in[at + e];  // read before writing: out may be in
          out[at + e] = static_cast<float>(running[e - e0]);
          running[e - e0] += here;
        }
      }
    }
  });
}

void CpuBackend::causal_mask(float* a, int64_t count, int64_t size) {
  parallel_for(count * size, rows_per_chunk(size), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t i = r % size;  // the query's place in its chunk
      float* row = a + r * size;
      for (int64_t j = i + 1; j < size; ++j) row[j] = 0.0f;
    }
  });
}

void CpuBackend::linear_attention_normalise(float* out, const float* u, int64_t rows, int64_t dv,
                                            float eps) {
  const int64_t width = dv + 1;
  parallel_for(rows, rows_per_chunk(width), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* num = u + r * width;
      const float den = num[dv] + eps;
      for (int64_t e = 0; e < dv; ++e) out[r * dv + e] = num[e] / den;
    }
  });
}

void CpuBackend::linear_attention_normalise_backward(float* du, const float* u, const float* dout,
                                                     int64_t rows, int64_t dv, float eps) {
  const int64_t width = dv + 1;
  parallel_for(rows, rows_per_chunk(width), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* num = u + r * width;
      const float* g = dout + r * dv;
      float* d = du + r * width;
      const double den = static_cast<double>(num[dv]) + eps;
      double dot = 0;  // sum_e dout_e num_e
      for (int64_t e = 0; e < dv; ++e) {
        d[e] = static_cast<float>(g[e] / den);
        dot += static_cast<double>(g[e]) * num[e];
      }
      d[dv] = static_cast<float>(-dot / (den * den));
    }
  });
}

}  // namespace attn
