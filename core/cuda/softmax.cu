// Row-wise softmax / log-softmax, the causal softmax of attention scores
// and cross-entropy on the GPU.
//
// One warp per row for rows of up to 1024 columns (8 rows per block), one
// 256-thread block per row beyond. Each row subtracts its max before exp
// (exp overflows float above 88); sums accumulate in double as on the CPU.
// A row of -inf (every position masked) gives a uniform row, like the CPU.
#include "core/attention_dropout.h"
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

// Causal softmax (core/backend.h), a warp per row. Keys past the causal
// limit are never read, only written as zeros: for square attention that
// halves the bytes read. The second and third passes re-read the row from L1
// (a row of 256 keys is 1 KiB), so DRAM sees each score once.
__device__ __forceinline__ int64_t causal_keys(int64_t i, int64_t offset, int64_t tk) {
  const int64_t n = offset + i + 1;
  return n < 0 ? 0 : (n > tk ? tk : n);
}

// With attention dropout (kDrop), the last pass also writes the dropped
// weights: the lanes then walk the row's keys in Philox groups of four
// consecutive elements (lane l takes groups g0 + l, g0 + l + 32, ...), so
// one evaluation serves four keys, and the keys past the causal limit,
// whose weights are 0 either way, draw nothing.
struct RowDropout {
  philox::Stream stream;
  uint64_t sample, e0;  // the row's sample and the element of its key 0
  float p, keep_scale;
};

__device__ __forceinline__ RowDropout row_dropout(const AttentionDropoutArgs& d, int64_t r, int64_t heads,
                                                  int64_t tq, int64_t tk) {
  const int64_t i = r % tq, h = r / tq % heads, b = r / tq / heads;
  return {{d.seed, d.offset}, static_cast<uint64_t>(d.first_sample + b),
          attention_dropout::element(d, h, i, 0, tq, tk), d.p, attention_dropout::keep_scale(d)};
}

// Calls f(j, z) for this lane's keys j < n of the row, z = the key's
// dropout multiplier (keep_scale or 0).
template <typename F>
__device__ __forceinline__ void for_lane_keys(const RowDropout& rd, int64_t n, int lane, F f) {
  if (n <= 0) return;
  const uint64_t first = rd.e0 >> 2, last = (rd.e0 + static_cast<uint64_t>(n) - 1) >> 2;
  for (uint64_t g = first + lane; g <= last; g += 32) {
    const philox::Words w = philox::group_at(rd.stream, rd.sample, g);
#pragma unroll
    for (int m = 0; m < 4; ++m) {
      const int64_t j = static_cast<int64_t>(4 * g + m - rd.e0);
      if (j >= 0 && j < n) f(j, philox::uniform(w.w[m]) >= rd.p ? rd.keep_scale : 0.0f);
    }
  }
}

template <bool kDrop>
__global__ void causal_softmax_kernel(float* y, const float* x, int64_t rows, int64_t heads,
                                      int64_t tq, int64_t tk, int64_t offset, float scale,
                                      const float* alibi, AttentionDropoutArgs drop, float* dropped) {
  const int64_t r = group_row<32>();
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t i = r % tq, pos = offset + i, n = causal_keys(i, offset, tk);
  const float slope = alibi ? alibi[(r / tq) % heads] : 0.0f;
  const float* xr = x + r * tk;
  float* yr = y + r * tk;
  float mx = -INFINITY;
  for (int64_t j = lane; j < n; j += 32)
    mx = max_keep(mx, scale * xr[j] - slope * static_cast<float>(pos - j));
  mx = warp_max(mx);
  double sum = 0;
  for (int64_t j = lane; j < n; j += 32)
    sum += expf(scale * xr[j] - slope * static_cast<float>(pos - j) - mx);
  sum = warp_sum(sum);
  const float inv = n > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
  if constexpr (kDrop) {
    float* dr = dropped + r * tk;
    for_lane_keys(row_dropout(drop, r, heads, tq, tk), n, lane, [&](int64_t j, float z) {
      const float w = expf(scale * xr[j] - slope * static_cast<float>(pos - j) - mx) * inv;
      yr[j] = w;
      dr[j] = w * z;
    });
    for (int64_t j = n + lane; j < tk; j += 32) yr[j] = dr[j] = 0.0f;
  } else {
    for (int64_t j = lane; j < tk; j += 32)
      yr[j] = j < n ? expf(scale * xr[j] - slope * static_cast<float>(pos - j) - mx) * inv : 0.0f;
  }
}

// With dropout, dy is the gradient of the dropped weights: the first pass
// turns it into g = dy * Z, kept in dx, while it sums g * y; after a
// __syncwarp (lanes read back what other lanes wrote) the second finishes
// the softmax backward.
template <bool kDrop>
__global__ void causal_softmax_backward_kernel(float* dx, const float* y, const float* dy,
                                               int64_t rows, int64_t heads, int64_t tq, int64_t tk,
                                               int64_t offset, float scale, AttentionDropoutArgs drop) {
  const int64_t r = group_row<32>();
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  const int64_t n = causal_keys(r % tq, offset, tk);
  const float* yr = y + r * tk;
  const float* gr = dy + r * tk;
  float* out = dx + r * tk;
  double dot = 0;
  if constexpr (kDrop) {
    for_lane_keys(row_dropout(drop, r, heads, tq, tk), n, lane, [&](int64_t j, float z) {
      out[j] = gr[j] * z;
      dot += static_cast<double>(out[j]) * yr[j];
    });
    const float d = static_cast<float>(warp_sum(dot));
    __syncwarp();
    for (int64_t j = lane; j < tk; j += 32) out[j] = j < n ? scale * yr[j] * (out[j] - d) : 0.0f;
  } else {
    for (int64_t j = lane; j < n; j += 32) dot += static_cast<double>(gr[j]) * yr[j];
    const float d = static_cast<float>(warp_sum(dot));
    for (int64_t j = lane; j < tk; j += 32) out[j] = j < n ? scale * yr[j] * (gr[j] - d) : 0.0f;
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

void CudaBackend::causal_softmax(float* y, const float* x, int64_t rows, int64_t heads,
                                 int64_t tq, int64_t tk, int64_t offset, float scale,
                                 const float* alibi, const AttentionDropoutArgs* dropout, float* dropped) {
  if (rows <= 0 || tk <= 0) return;
  activate();
  Buffer slopes(this, alibi ? heads * sizeof(float) : 1);
  if (alibi) copy_from_host(slopes.ptr, alibi, heads * sizeof(float));
  const unsigned blocks = static_cast<unsigned>((rows + kThreads / 32 - 1) / (kThreads / 32));
  const float* s = alibi ? slopes.as<float>() : nullptr;
  if (dropout)
    causal_softmax_kernel<true><<<blocks, kThreads, 0, stream()>>>(
        y, x, rows, heads, tq, tk, offset, scale, s, *dropout, dropped);
  else
    causal_softmax_kernel<false><<<blocks, kThreads, 0, stream()>>>(y, x, rows, heads, tq, tk,
                                                                    offset, scale, s, {}, nullptr);
  ATTN_CUDA_LAUNCHED("causal_softmax_kernel");
}

void CudaBackend::causal_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                                          int64_t heads, int64_t tq, int64_t tk, int64_t offset,
                                          float scale, const AttentionDropoutArgs* dropout) {
  if (rows <= 0 || tk <= 0) return;
  activate();
  const unsigned blocks = static_cast<unsigned>((rows + kThreads / 32 - 1) / (kThreads / 32));
  if (dropout)
    causal_softmax_backward_kernel<true><<<blocks, kThreads, 0, stream()>>>(
        dx, y, dy, rows, heads, tq, tk, offset, scale, *dropout);
  else
    causal_softmax_backward_kernel<false>
        <<<blocks, kThreads, 0, stream()>>>(dx, y, dy, rows, heads, tq, tk, offset, scale, {});
  ATTN_CUDA_LAUNCHED("causal_softmax_backward_kernel");
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
  cross_entropy_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dz, logits, lse, targets,
                                                                          dloss, rows, cols);
  ATTN_CUDA_LAUNCHED("cross_entropy_backward_kernel");
}

}  // namespace attn
