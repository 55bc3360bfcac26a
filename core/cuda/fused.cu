// Fused layers on the GPU: LayerNorm, RMSNorm (forward and backward) and
// AdamW. The math is core/cpu/fused.cpp's, with the same double-precision
// row statistics. AdamW takes a whole model's parameters in one call, up to
// 32 tensors per launch.
//
// Row work uses a warp per row (rows of up to 1024 columns) or a block per
// row. The weight/bias gradients are sums down the columns: each block sums
// one slice of the rows into a partial and sum_partials adds the slices in
// order (deterministic). Rows of up to 512 columns (a model's LayerNorms)
// do the whole backward in one pass (norm_backward_kernel); wider ones read
// x and dy once for dx and once more for the parameter gradients.
#include <algorithm>

#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

template <int G>
__device__ __forceinline__ int64_t group_row() {
  return int64_t{blockIdx.x} * (blockDim.x / G) + threadIdx.x / G;
}

template <int G>
__global__ void layer_norm_kernel(float* y, float* mean, float* rstd, const float* x,
                                  const float* w, const float* b, int64_t rows, int64_t cols,
                                  float eps) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const float* xr = x + r * cols;
  double sum = 0;
  for (int64_t c = lane; c < cols; c += G) sum += xr[c];
  const double mu = group_sum<G>(sum) / cols;
  double sq = 0;
  for (int64_t c = lane; c < cols; c += G) {
    const double d = xr[c] - mu;
    sq += d * d;
  }
  sq = group_sum<G>(sq);
  const float rs = static_cast<float>(1.0 / sqrt(sq / cols + eps));
  const float m = static_cast<float>(mu);
  if (lane == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
  float* yr = y + r * cols;
  for (int64_t c = lane; c < cols; c += G) {
    const float xhat = (xr[c] - m) * rs;
    yr[c] = xhat * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
  }
}

// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * w.
template <int G>
__global__ void layer_norm_dx_kernel(float* dx, const float* dy, const float* x, const float* mean,
                                     const float* rstd, const float* w, int64_t rows,
                                     int64_t cols) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const float* xr = x + r * cols;
  const float* gr = dy + r * cols;
  const float m = mean[r], rs = rstd[r];
  double s1 = 0, s2 = 0;
  for (int64_t c = lane; c < cols; c += G) {
    const double xhat = (xr[c] - m) * rs;
    const double dxhat = gr[c] * (w ? w[c] : 1.0f);
    s1 += dxhat;
    s2 += dxhat * xhat;
  }
  const double mean_dxhat = group_sum<G>(s1) / cols;
  const double mean_dxhat_xhat = group_sum<G>(s2) / cols;
  for (int64_t c = lane; c < cols; c += G) {
    const double xhat = (xr[c] - m) * rs;
    const double dxhat = gr[c] * (w ? w[c] : 1.0f);
    dx[r * cols + c] = static_cast<float>(rs * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat));
  }
}

// RMSNorm: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps).
template <int G>
__global__ void rms_norm_kernel(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                                int64_t cols, float eps) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const float* xr = x + r * cols;
  double sq = 0;
  for (int64_t c = lane; c < cols; c += G) sq += static_cast<double>(xr[c]) * xr[c];
  sq = group_sum<G>(sq);
  const float rs = static_cast<float>(1.0 / sqrt(sq / cols + eps));
  if (lane == 0) rstd[r] = rs;
  for (int64_t c = lane; c < cols; c += G) y[r * cols + c] = xr[c] * rs * (w ? w[c] : 1.0f);
}

// dx = rstd * (dxhat - xhat * mean(dxhat * xhat)), xhat = x * rstd.
template <int G>
__global__ void rms_norm_dx_kernel(float* dx, const float* dy, const float* x, const float* rstd,
                                   const float* w, int64_t rows, int64_t cols) {
  const int64_t r = group_row<G>();
  if (r >= rows) return;
  const int lane = threadIdx.x % G;
  const float* xr = x + r * cols;
  const float* gr = dy + r * cols;
  const float rs = rstd[r];
  double s = 0;
  for (int64_t c = lane; c < cols; c += G) {
    const double xhat = static_cast<double>(xr[c]) * rs;
    s += gr[c] * (w ? w[c] : 1.0f) * xhat;
  }
  const double mean_dxhat_xhat = group_sum<G>(s) / cols;
  for (int64_t c = lane; c < cols; c += G) {
    const double xhat = static_cast<double>(xr[c]) * rs;
    const double dxhat = gr[c] * (w ? w[c] : 1.0f);
    dx[r * cols + c] = static_cast<float>(rs * (dxhat - xhat * mean_dxhat_xhat));
  }
}

// Column sums for the parameter gradients, over rows [slice*chunk, ...):
//   dw[c] += dy * xhat (xhat as LayerNorm, or x * rstd when mean is null),
//   db[c] += dy (LayerNorm with a bias).
constexpr int kColTile = 32, kRowLanes = 8;

__global__ void norm_param_grad_kernel(double* part_w, double* part_b, const float* dy,
                                       const float* x, const float* mean, const float* rstd,
                                       int64_t rows, int64_t cols, int64_t chunk) {
  const int64_t c = int64_t{blockIdx.x} * kColTile + threadIdx.x;
  const int64_t begin = int64_t{blockIdx.y} * chunk;
  const int64_t end = min(rows, begin + chunk);
  double sw = 0, sb = 0;
  if (c < cols) {
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowLanes) {
      const float g = dy[r * cols + c];
      const double xhat = mean ? static_cast<double>((x[r * cols + c] - mean[r]) * rstd[r])
                               : static_cast<double>(x[r * cols + c]) * rstd[r];
      sw += g * xhat;
      sb += g;
    }
  }
  __shared__ double tw[kRowLanes][kColTile], tb[kRowLanes][kColTile];
  tw[threadIdx.y][threadIdx.x] = sw;
  tb[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double w = 0, b = 0;
    for (int k = 0; k < kRowLanes; ++k) {
      w += tw[k][threadIdx.x];
      b += tb[k][threadIdx.x];
    }
    if (part_w) part_w[int64_t{blockIdx.y} * cols + c] = w;
    if (part_b) part_b[int64_t{blockIdx.y} * cols + c] = b;
  }
}

void param_grads(CudaBackend& be, float* dw, float* db, const float* dy, const float* x,
                 const float* mean, const float* rstd, int64_t rows, int64_t cols) {
  if (!dw && !db) return;
  const int64_t col_blocks = (cols + kColTile - 1) / kColTile;
  const int64_t want = std::max<int64_t>(1, int64_t{be.sm_count()} * 4 / col_blocks);
  int64_t slices = std::min<int64_t>({want, (rows + kRowLanes - 1) / kRowLanes, 1024});
  slices = std::max<int64_t>(slices, 1);
  const int64_t chunk = (rows + slices - 1) / slices;
  slices = std::max<int64_t>(1, (rows + chunk - 1) / chunk);
  CudaBackend::Buffer pw(&be, dw ? slices * cols * sizeof(double) : 1);
  CudaBackend::Buffer pb(&be, db ? slices * cols * sizeof(double) : 1);
  norm_param_grad_kernel<<<dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(slices)),
                           dim3(kColTile, kRowLanes), 0, stream()>>>(
      dw ? pw.as<double>() : nullptr, db ? pb.as<double>() : nullptr, dy, x, mean, rstd, rows, cols,
      chunk);
  ATTN_CUDA_LAUNCHED("norm_param_grad_kernel");
  if (dw) sum_partials(dw, pw.as<double>(), slices, cols);
  if (db) sum_partials(db, pb.as<double>(), slices, cols);
}

// ---- the whole backward of rows of up to 512 columns, in one pass ----
//
// The kernels above read x and dy twice: once for dx, once more for the
// parameter gradients. Here warp k of block b takes rows b * chunk + k,
// + 8, ...; a lane keeps CPL of the row's columns (lane, lane + 32, ...) in
// registers and adds them into its dw and db sums as it goes, so one read
// of x and dy gives dx, dw and db. The warps' sums meet in shared memory in
// warp order, one double per column per block, and sum_partials adds the
// blocks in order: deterministic, like the two-pass path.
// mean == null: RMSNorm (xhat = x * rstd, no mean term, no db).
template <int CPL>
__global__ void norm_backward_kernel(float* __restrict__ dx, double* part_w, double* part_b,
                                     const float* __restrict__ dy, const float* __restrict__ x,
                                     const float* mean, const float* rstd, const float* w,
                                     int64_t rows, int cols, int64_t chunk) {
  extern __shared__ double block_sums[];  // [2][cols]: dw, db
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t begin = int64_t{blockIdx.x} * chunk;
  const int64_t end = min(rows, begin + chunk);
  float wv[CPL], sum_w[CPL], sum_b[CPL];
#pragma unroll
  for (int i = 0; i < CPL; ++i) {
    const int c = lane + 32 * i;
    wv[i] = w && c < cols ? w[c] : 1.0f;
    sum_w[i] = sum_b[i] = 0.0f;
  }
  for (int64_t r = begin + warp; r < end; r += kWarps) {
    const float m = mean ? mean[r] : 0.0f, rs = rstd[r];
    float xhat[CPL], dxhat[CPL];
    double s1 = 0, s2 = 0;
#pragma unroll
    for (int i = 0; i < CPL; ++i) {
      const int c = lane + 32 * i;
      const float xv = c < cols ? x[r * cols + c] : 0.0f;
      const float g = c < cols ? dy[r * cols + c] : 0.0f;
      xhat[i] = mean ? (xv - m) * rs : xv * rs;
      dxhat[i] = g * wv[i];
      s1 += dxhat[i];
      s2 += static_cast<double>(dxhat[i]) * xhat[i];
      sum_w[i] += g * xhat[i];
      sum_b[i] += g;
    }
    const double mean_dxhat = mean ? warp_sum(s1) / cols : 0.0;
    const double mean_dxhat_xhat = warp_sum(s2) / cols;
#pragma unroll
    for (int i = 0; i < CPL; ++i) {
      const int c = lane + 32 * i;
      if (c < cols)
        dx[r * cols + c] =
            static_cast<float>(rs * (dxhat[i] - mean_dxhat - xhat[i] * mean_dxhat_xhat));
    }
  }
  for (int k = 0; k < kWarps; ++k) {
    if (warp == k) {
#pragma unroll
      for (int i = 0; i < CPL; ++i) {
        const int c = lane + 32 * i;
        if (c >= cols) continue;
        block_sums[c] = (k == 0 ? 0.0 : block_sums[c]) + sum_w[i];
        block_sums[cols + c] = (k == 0 ? 0.0 : block_sums[cols + c]) + sum_b[i];
      }
    }
    __syncthreads();
  }
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    if (part_w) part_w[int64_t{blockIdx.x} * cols + c] = block_sums[c];
    if (part_b) part_b[int64_t{blockIdx.x} * cols + c] = block_sums[cols + c];
  }
}

constexpr int64_t kOnePassCols = 512;

// dx, dw and db with norm_backward_kernel (cols <= kOnePassCols).
void norm_backward_one_pass(CudaBackend& be, float* dx, float* dw, float* db, const float* dy,
                            const float* x, const float* mean, const float* rstd, const float* w,
                            int64_t rows, int64_t cols) {
  // Two blocks per SM (as many as the registers allow), at least a row per
  // warp. (Four, with two rows in flight per warp, measured slower.)
  const int64_t warps = kThreads / 32;
  const int64_t blocks = std::clamp<int64_t>((rows + warps - 1) / warps, 1, 2 * be.sm_count());
  const int64_t chunk = (rows + blocks - 1) / blocks;
  CudaBackend::Buffer pw(&be, dw ? blocks * cols * sizeof(double) : 1);
  CudaBackend::Buffer pb(&be, db ? blocks * cols * sizeof(double) : 1);
  const std::size_t shared = 2 * cols * sizeof(double);
  const int c = static_cast<int>(cols);
  double* part_w = dw ? pw.as<double>() : nullptr;
  double* part_b = db ? pb.as<double>() : nullptr;
  auto run = [&](auto kernel) {
    kernel<<<static_cast<unsigned>(blocks), kThreads, shared, stream()>>>(
        dx, part_w, part_b, dy, x, mean, rstd, w, rows, c, chunk);
    ATTN_CUDA_LAUNCHED("norm_backward_kernel");
  };
  // Columns a lane holds: the smallest bucket that fits (384, a GPT width,
  // gets its own, so no registers idle there).
  if (cols <= 128) run(norm_backward_kernel<4>);
  else if (cols <= 256) run(norm_backward_kernel<8>);
  else if (cols <= 384) run(norm_backward_kernel<12>);
  else run(norm_backward_kernel<16>);
  if (dw) sum_partials(dw, part_w, blocks, cols);
  if (db) sum_partials(db, part_b, blocks, cols);
}

// Up to kAdamWBatch tensors per launch, passed by value as the kernel's
// argument (1.5 KB, within the 4 KB a launch may carry): row y of the grid
// updates tensor y. A model's ~100 small updates become a few launches.
constexpr int kAdamWBatch = 32;
struct AdamWBatch {
  Backend::AdamWTensor t[kAdamWBatch];
};

__global__ void adamw_kernel(AdamWBatch batch, Backend::AdamW h) {
  const Backend::AdamWTensor& t = batch.t[blockIdx.y];
  float* p = t.param;
  float* m = t.m;
  float* v = t.v;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < t.n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float gi = t.grad[i];
    const float mi = h.beta1 * m[i] + (1 - h.beta1) * gi;
    const float vi = h.beta2 * v[i] + (1 - h.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi / h.bias_correction1;
    const float v_hat = vi / h.bias_correction2;
    p[i] -= h.lr * (m_hat / (sqrtf(v_hat) + h.eps) + t.weight_decay * p[i]);
  }
}

}  // namespace

void CudaBackend::layer_norm(float* y, float* mean, float* rstd, const float* x, const float* w,
                             const float* b, int64_t rows, int64_t cols, float eps) {
  if (rows <= 0) return;
  activate();
  ATTN_ROW_LAUNCH(layer_norm_kernel, rows, cols, y, mean, rstd, x, w, b, rows, cols, eps);
}

void CudaBackend::layer_norm_backward(float* dx, float* dw, float* db, const float* dy,
                                      const float* x, const float* mean, const float* rstd,
                                      const float* w, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  activate();
  if (rows <= 0) {  // no rows: the parameter gradients are zero
    if (dw) ATTN_CUDA_CHECK(cudaMemsetAsync(dw, 0, cols * sizeof(float), stream()));
    if (db) ATTN_CUDA_CHECK(cudaMemsetAsync(db, 0, cols * sizeof(float), stream()));
    return;
  }
  if (cols <= kOnePassCols)
    return norm_backward_one_pass(*this, dx, dw, db, dy, x, mean, rstd, w, rows, cols);
  ATTN_ROW_LAUNCH(layer_norm_dx_kernel, rows, cols, dx, dy, x, mean, rstd, w, rows, cols);
  param_grads(*this, dw, db, dy, x, mean, rstd, rows, cols);
}

void CudaBackend::rms_norm(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                           int64_t cols, float eps) {
  if (rows <= 0) return;
  activate();
  ATTN_ROW_LAUNCH(rms_norm_kernel, rows, cols, y, rstd, x, w, rows, cols, eps);
}

void CudaBackend::rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                                    const float* rstd, const float* w, int64_t rows,
                                    int64_t cols) {
  if (cols <= 0) return;
  activate();
  if (rows <= 0) {
    if (dw) ATTN_CUDA_CHECK(cudaMemsetAsync(dw, 0, cols * sizeof(float), stream()));
    return;
  }
  if (cols <= kOnePassCols)
    return norm_backward_one_pass(*this, dx, dw, nullptr, dy, x, nullptr, rstd, w, rows, cols);
  ATTN_ROW_LAUNCH(rms_norm_dx_kernel, rows, cols, dx, dy, x, rstd, w, rows, cols);
  param_grads(*this, dw, nullptr, dy, x, nullptr, rstd, rows, cols);
}

void CudaBackend::adamw(const AdamWTensor* tensors, int count, const AdamW& h) {
  activate();
  for (int first = 0; first < count; first += kAdamWBatch) {
    AdamWBatch batch{};
    const int k = std::min(kAdamWBatch, count - first);
    int64_t most = 0;
    for (int i = 0; i < k; ++i) {
      batch.t[i] = tensors[first + i];
      most = std::max(most, batch.t[i].n);
    }
    if (most == 0) continue;
    // Blocks enough for the largest tensor, at most ~4 per SM and row (the
    // loop strides over the rest); smaller tensors' extra blocks exit at once.
    const unsigned x = std::min(blocks_for(most), 512u);
    adamw_kernel<<<dim3(x, static_cast<unsigned>(k)), kThreads, 0, stream()>>>(batch, h);
    ATTN_CUDA_LAUNCHED("adamw_kernel");
  }
}

}  // namespace attn
