// Row gather / scatter-add (embedding lookup and its gradient) and cumsum
// on the GPU.
#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

#define GRID_STRIDE(i, n)                                                      \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

__global__ void check_indices_kernel(const int64_t* idx, int64_t n, int64_t limit,
                                     unsigned long long* bad) {
  GRID_STRIDE(i, n) {
    const int64_t k = idx[i];
    if (k < 0 || k >= limit) atomicMin(bad, static_cast<unsigned long long>(i));
  }
}

// out[i, c] = table[idx[i], c]; bad indices are skipped (the caller fails).
__global__ void gather_rows_kernel(float* out, const float* table, const int64_t* idx, int64_t n,
                                   int64_t row, int64_t table_rows) {
  GRID_STRIDE(e, n * row) {
    const int64_t i = e / row, c = e - i * row;
    const int64_t k = idx[i];
    if (k >= 0 && k < table_rows) out[e] = table[k * row + c];
  }
}

// table[idx[i], c] += src[i, c]; repeated indices all add (atomically).
__global__ void scatter_add_rows_kernel(float* table, const int64_t* idx, const float* src,
                                        int64_t n, int64_t row) {
  GRID_STRIDE(e, n * row) {
    const int64_t i = e / row, c = e - i * row;
    const int64_t k = idx[i];
    if (k >= 0) atomicAdd(table + k * row + c, src[e]);
  }
}

// A warp per row: 32 columns at a time, an inclusive warp scan in double,
// carrying the running total from chunk to chunk.
__global__ void cumsum_kernel(float* out, const float* in, int64_t rows, int64_t cols,
                              bool reverse) {
  const int64_t r = int64_t{blockIdx.x} * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  const float* x = in + r * cols;
  float* y = out + r * cols;
  double carry = 0;
  for (int64_t c0 = 0; c0 < cols; c0 += 32) {
    const int64_t c = c0 + lane;
    const int64_t k = reverse ? cols - 1 - c : c;
    double v = c < cols ? static_cast<double>(x[k]) : 0.0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const double t = __shfl_up_sync(0xffffffffu, v, o);
      if (lane >= o) v += t;
    }
    if (c < cols) y[k] = static_cast<float>(carry + v);
    carry += __shfl_sync(0xffffffffu, v, 31);
  }
}

}  // namespace

int64_t CudaBackend::gather_rows(float* out, const float* table, const int64_t* idx, int64_t n,
                                 int64_t row, int64_t table_rows) {
  if (n <= 0) return -1;
  activate();
  unsigned long long* bad = flag_reset();
  check_indices_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(idx, n, table_rows, bad);
  ATTN_CUDA_LAUNCHED("check_indices_kernel");
  if (row > 0) {
    gather_rows_kernel<<<blocks_for(n * row), kThreads, 0, stream()>>>(out, table, idx, n, row,
                                                                       table_rows);
    ATTN_CUDA_LAUNCHED("gather_rows_kernel");
  }
  return flag_read();
}

void CudaBackend::scatter_add_rows(float* table, const int64_t* idx, const float* src, int64_t n,
                                   int64_t row) {
  if (n <= 0 || row <= 0) return;
  activate();
  scatter_add_rows_kernel<<<blocks_for(n * row), kThreads, 0, stream()>>>(table, idx, src, n, row);
  ATTN_CUDA_LAUNCHED("scatter_add_rows_kernel");
}

void CudaBackend::cumsum(float* out, const float* in, int64_t rows, int64_t cols, bool reverse) {
  if (rows <= 0 || cols <= 0) return;
  activate();
  const int64_t per_block = kThreads / 32;
  cumsum_kernel<<<static_cast<unsigned>((rows + per_block - 1) / per_block), kThreads, 0,
                  stream()>>>(out, in, rows, cols, reverse);
  ATTN_CUDA_LAUNCHED("cumsum_kernel");
}

}  // namespace attn
