// The small steps of chunkwise causal linear attention on the GPU (the
// products go through cuBLAS; attention/linear_chunked.cpp puts it
// together). Each is one launch; core/cpu/linear_attention.cpp has the same
// math as plain loops.
#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

#define GRID_STRIDE(i, n)                                                      \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

// A thread per element of a block (neighbouring threads read neighbouring
// floats), walking its run of blocks in order with a running sum in double.
// It reads kAhead steps before writing them, so that many loads are in
// flight instead of one at a time (safe when out == in: each place is read
// before it is written).
constexpr int kAhead = 8;

__global__ void chunk_scan_kernel(float* out, const float* in, int64_t groups, int64_t steps,
                                  int64_t width, bool reverse) {
  GRID_STRIDE(e, groups * width) {
    const int64_t g = e / width;
    const float* x = in + g * steps * width + (e - g * width);
    float* y = out + g * steps * width + (e - g * width);
    double running = 0;
    for (int64_t s0 = 0; s0 < steps; s0 += kAhead) {
      float here[kAhead];
#pragma unroll
      for (int u = 0; u < kAhead; ++u) {
        const int64_t step = s0 + u;
        here[u] = step < steps ? x[(reverse ? steps - 1 - step : step) * width] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kAhead; ++u) {
        const int64_t step = s0 + u;
        if (step < steps) y[(reverse ? steps - 1 - step : step) * width] = static_cast<float>(running);
        running += here[u];
      }
    }
  }
}

__global__ void causal_mask_kernel(float* a, int64_t count, int64_t size) {
  GRID_STRIDE(e, count * size * size) {
    const int64_t j = e % size, i = (e / size) % size;
    if (j > i) a[e] = 0.0f;
  }
}

__global__ void normalise_kernel(float* out, const float* u, int64_t rows, int64_t dv, float eps) {
  GRID_STRIDE(e, rows * dv) {
    const int64_t r = e / dv;
    const float* num = u + r * (dv + 1);
    out[e] = num[e - r * dv] / (num[dv] + eps);
  }
}

// A warp per row: the lanes share the row's dot product sum_e dout_e u_e.
__global__ void normalise_backward_kernel(float* du, const float* u, const float* dout,
                                          int64_t rows, int64_t dv, float eps) {
  const int64_t r = int64_t{blockIdx.x} * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  const float* num = u + r * (dv + 1);
  const float* g = dout + r * dv;
  float* d = du + r * (dv + 1);
  const double den = static_cast<double>(num[dv]) + eps;
  double dot = 0;
  for (int64_t e = lane; e < dv; e += 32) {
    d[e] = static_cast<float>(g[e] / den);
    dot += static_cast<double>(g[e]) * num[e];
  }
  dot = warp_sum(dot);
  if (lane == 0) d[dv] = static_cast<float>(-dot / (den * den));
}

}  // namespace

void CudaBackend::chunk_scan(float* out, const float* in, int64_t groups, int64_t steps,
                             int64_t width, bool reverse) {
  if (groups <= 0 || steps <= 0 || width <= 0) return;
  activate();
  chunk_scan_kernel<<<blocks_for(groups * width), kThreads, 0, stream()>>>(out, in, groups, steps,
                                                                           width, reverse);
  ATTN_CUDA_LAUNCHED("chunk_scan_kernel");
}

void CudaBackend::causal_mask(float* a, int64_t count, int64_t size) {
  if (count <= 0 || size <= 1) return;
  activate();
  causal_mask_kernel<<<blocks_for(count * size * size), kThreads, 0, stream()>>>(a, count, size);
  ATTN_CUDA_LAUNCHED("causal_mask_kernel");
}

void CudaBackend::linear_attention_normalise(float* out, const float* u, int64_t rows,
                                             int64_t dv, float eps) {
  if (rows <= 0 || dv <= 0) return;
  activate();
  normalise_kernel<<<blocks_for(rows * dv), kThreads, 0, stream()>>>(out, u, rows, dv, eps);
  ATTN_CUDA_LAUNCHED("normalise_kernel");
}

void CudaBackend::linear_attention_normalise_backward(float* du, const float* u,
                                                      const float* dout, int64_t rows,
                                                      int64_t dv, float eps) {
  if (rows <= 0) return;
  activate();
  const int64_t per_block = kThreads / 32;
  normalise_backward_kernel<<<static_cast<unsigned>((rows + per_block - 1) / per_block), kThreads,
                              0, stream()>>>(du, u, dout, rows, dv, eps);
  ATTN_CUDA_LAUNCHED("normalise_backward_kernel");
}

}  // namespace attn
