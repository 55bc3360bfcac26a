// Row-wise softmax / log-softmax and cross-entropy on the GPU.
//
// One warp per row for rows of up to 1024 columns (8 rows per block), one
// 256-thread block per row beyond. Each row subtracts its max before exp
// (exp overflows float above 88); sums accumulate in double as on the CPU.
// A row of -inf (every position masked) gives a uniform row, like the CPU.
#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

// Row index and lane of this thread for a group size G (see the top).
template <int G>
__device__ __forceinline__ int64_t group_row() {
  return int64_t{blockIdx.x} * (blockDim.x / G) + threadIdx.x / G;
}

template <int G>
__global__ void softmax_kernel(bool log, float* out, const float* in, int64_t rows, int64_t cols) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const float* x = in + r * cols;
  float* y = out + r * cols;
  float mx = -INFINITY;
  for (int64_t c = lane; c < cols; c += G) mx = max_keep(mx, x[c]);
  mx = group_max<G>(mx);
  if (mx == -INFINITY) {  // all masked: treat as zero logits, a uniform row
    // (mx = 0 alone is not enough: every exp is then 0, the sum 0, and
    // 0 * (1/0) NaN). mx is the same on every lane, so the group leaves together.
    const float n = static_cast<float>(cols);
    for (int64_t c = lane; c < cols; c += G) y[c] = log ? -logf(n) : 1.0f / n;
    return;
  }
  double sum = 0;
  for (int64_t c = lane; c < cols; c += G) sum += exp(static_cast<double>(x[c] - mx));
  sum = group_sum<G>(sum);
  if (log) {
    const float lse = static_cast<float>(::log(sum));
    for (int64_t c = lane; c < cols; c += G) y[c] = x[c] - mx - lse;
  } else {
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t c = lane; c < cols; c += G) y[c] = expf(x[c] - mx) * inv;
  }
}

template <int G>
__global__ void softmax_backward_kernel(bool log, float* gx, const float* y, const float* gy,
                                        int64_t rows, int64_t cols) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const float* yr = y + r * cols;
  const float* gr = gy + r * cols;
  float* out = gx + r * cols;
  double dot = 0;
  if (log) {
    // y = x - lse(x):  dx = dy - softmax(x) * sum(dy)
    for (int64_t c = lane; c < cols; c += G) dot += gr[c];
    const float s = static_cast<float>(group_sum<G>(dot));
    for (int64_t c = lane; c < cols; c += G) out[c] = gr[c] - expf(yr[c]) * s;
  } else {
    // y = softmax(x):  dx = y * (dy - sum(dy * y))
    for (int64_t c = lane; c < cols; c += G) dot += static_cast<double>(gr[c]) * yr[c];
    const float s = static_cast<float>(group_sum<G>(dot));
    for (int64_t c = lane; c < cols; c += G) out[c] = yr[c] * (gr[c] - s);
  }
}

// loss = logsumexp(z) - z[target]. A row whose target is outside [0, cols)
// records its index in *bad (the smallest wins) and computes nothing.
template <int G>
__global__ void cross_entropy_kernel(float* loss, float* lse, const float* logits,
                                     const int64_t* targets, int64_t rows, int64_t cols,
                                     unsigned long long* bad) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const int64_t t = targets[r];
  if (t < 0 || t >= cols) {
    if (lane == 0) atomicMin(bad, static_cast<unsigned long long>(r));
    return;  // the whole group leaves together
  }
  const float* z = logits + r * cols;
  float mx = -INFINITY;
  for (int64_t c = lane; c < cols; c += G) mx = max_keep(mx, z[c]);
  mx = group_max<G>(mx);
  double sum = 0;
  for (int64_t c = lane; c < cols; c += G) sum += exp(static_cast<double>(z[c] - mx));
  sum = group_sum<G>(sum);
  if (lane == 0) {
    const float l = mx + static_cast<float>(::log(sum));
    lse[r] = l;
    loss[r] = l - z[t];
  }
}

__global__ void cross_entropy_backward_kernel(float* dz, const float* logits, const float* lse,
                                              const int64_t* targets, const float* dloss,
                                              int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    float d = expf(logits[i] - lse[r]) * dloss[r];
    if (c == targets[r]) d -= dloss[r];
    dz[i] = d;
  }
}

// Launches kernel<G> with a warp per row (short rows) or a block per row.
#define ATTN_ROW_LAUNCH(kernel, rows, cols, ...)                                        \
  do {                                                                                  \
    if ((cols) <= 1024) {                                                               \
      const int64_t per_block = kThreads / 32;                                          \
      kernel<32><<<static_cast<unsigned>(((rows) + per_block - 1) / per_block), kThreads>>>( \
          __VA_ARGS__);                                                                 \
    } else {                                                                            \
      kernel<kThreads><<<static_cast<unsigned>(rows), kThreads>>>(__VA_ARGS__);         \
    }                                                                                   \
    ATTN_CUDA_LAUNCHED(#kernel);                                                        \
  } while (0)

}  // namespace

void CudaBackend::softmax(bool log, float* out, const float* in, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  activate();
  ATTN_ROW_LAUNCH(softmax_kernel, rows, cols, log, out, in, rows, cols);
}

void CudaBackend::softmax_backward(bool log, float* gx, const float* y, const float* gy,
                                   int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  activate();
  ATTN_ROW_LAUNCH(softmax_backward_kernel, rows, cols, log, gx, y, gy, rows, cols);
}

int64_t CudaBackend::cross_entropy(float* loss, float* lse, const float* logits,
                                   const int64_t* targets, int64_t rows, int64_t cols) {
  if (rows <= 0) return -1;
  activate();
  unsigned long long* bad = flag_reset();
  ATTN_ROW_LAUNCH(cross_entropy_kernel, rows, cols, loss, lse, logits, targets, rows, cols, bad);
  return flag_read();
}

void CudaBackend::cross_entropy_backward(float* dz, const float* logits, const float* lse,
                                         const int64_t* targets, const float* dloss, int64_t rows,
                                         int64_t cols) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  activate();
  cross_entropy_backward_kernel<<<blocks_for(n), kThreads>>>(dz, logits, lse, targets, dloss, rows,
                                                             cols);
  ATTN_CUDA_LAUNCHED("cross_entropy_backward_kernel");
}

}  // namespace attn
