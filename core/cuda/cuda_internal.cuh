// Shared by the CUDA sources only: the CudaBackend class, error checks,
// launch helpers and the strided-view index math that runs on the device.
//
// Compiled as CUDA C++17: it may include core/backend.h, core/allocator.h,
// core/error.h and core/dtype.h, never the Tensor class.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "core/allocator.h"
#include "core/backend.h"
#include "core/bfloat16.h"
#include "core/dtype.h"
#include "core/error.h"

namespace attn {
namespace cuda {

// Every CUDA or cuBLAS failure becomes an attn::Error naming the call.
void check_cuda(cudaError_t err, const char* what);
void check_cublas(cublasStatus_t status, const char* what);

// The stream this thread queues work on, on the device the last
// CudaBackend::activate() made current: that device's compute stream, or
// the stream a StreamGuard (core/stream.h) chose. Every kernel, copy and
// product goes there, so work on one device is ordered as the calls were.
cudaStream_t stream();
// The stream a StreamGuard chose on this thread for `device` (null: none),
// and choosing one (null: back to the compute stream).
cudaStream_t chosen_stream(int device);
void set_chosen_stream(int device, cudaStream_t s);

}  // namespace cuda

#define ATTN_CUDA_CHECK(call) ::attn::cuda::check_cuda((call), #call)
#define ATTN_CUBLAS_CHECK(call) ::attn::cuda::check_cublas((call), #call)
// After a kernel launch: a bad configuration is reported at once; faults
// inside the kernel surface at the next synchronising call.
#define ATTN_CUDA_LAUNCHED(name) ::attn::cuda::check_cuda(cudaGetLastError(), name " (kernel launch)")

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* src, std::size_t bytes) override;
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override;
  void fill(const View& out, double value) override;
  void copy(const View& out, const View& in) override;

  void unary(UnaryOp op, const View& out, const View& in, float scalar) override;
  void binary(BinaryOp op, const View& out, const View& a, const View& b) override;
  void where(const View& out, const View& cond, const View& a, const View& b) override;
  void reduce(ReduceOp op, const View& out, const View& in, int outer_dims) override;
  void gemm(const GemmArgs& args) override;
  void softmax(bool log, float* out, const float* in, int64_t rows, int64_t cols) override;
  void softmax_backward(bool log, float* grad_in, const float* y, const float* grad_out,
                        int64_t rows, int64_t cols) override;
  void causal_softmax(float* y, const float* x, int64_t rows, int64_t heads, int64_t tq,
                      int64_t tk, int64_t offset, float scale, const float* alibi,
                      const AttentionDropoutArgs* dropout, float* dropped) override;
  void causal_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                               int64_t heads, int64_t tq, int64_t tk, int64_t offset, float scale,
                               const AttentionDropoutArgs* dropout) override;
  int64_t gather_rows(float* out, const float* table, const int64_t* idx, int64_t n,
                      int64_t row_size, int64_t table_rows) override;
  void scatter_add_rows(float* table, const int64_t* idx, const float* src, int64_t n,
                        int64_t row_size) override;
  void cumsum(float* out, const float* in, int64_t rows, int64_t cols, bool reverse) override;
  void chunk_scan(float* out, const float* in, int64_t groups, int64_t steps, int64_t width,
                  bool reverse) override;
  void causal_mask(float* a, int64_t count, int64_t size) override;
  void linear_attention_normalise(float* out, const float* u, int64_t rows, int64_t dv,
                                  float eps) override;
  void linear_attention_normalise_backward(float* du, const float* u, const float* dout,
                                           int64_t rows, int64_t dv, float eps) override;
  void dropout(float* out, const float* in, const float* add, int64_t n,
               const DropoutArgs& args) override;

  void layer_norm(float* y, float* mean, float* rstd, const float* x, const float* w,
                  const float* b, int64_t rows, int64_t cols, float eps) override;
  void layer_norm_backward(float* dx, float* dw, float* db, const float* dy, const float* x,
                           const float* mean, const float* rstd, const float* w, int64_t rows,
                           int64_t cols) override;
  void rms_norm(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                int64_t cols, float eps) override;
  void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                         const float* rstd, const float* w, int64_t rows, int64_t cols) override;
  int64_t cross_entropy(float* loss, float* lse, const float* logits, const int64_t* targets,
                        int64_t rows, int64_t cols) override;
  void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                              const int64_t* targets, const float* dloss, int64_t rows,
                              int64_t cols) override;
  void adamw(const AdamWTensor* tensors, int count, const AdamW& h) override;
  void attention_dropout(float* out, const float* in, const ProbabilityBlock& block,
                         const AttentionDropoutArgs& args) override;
  void flash_attention_forward(const FlashArgs& args, const AttentionDropoutArgs* dropout = nullptr,
                               FlashProducts products = FlashProducts::Float32) override;
  void flash_attention_backward(const FlashArgs& args, const float* dout, float* dq, float* dk,
                                float* dv, const AttentionDropoutArgs* dropout = nullptr,
                                FlashProducts products = FlashProducts::Float32) override;
  void block_sparse_flash_forward(const FlashArgs& args, const BlockList& blocks,
                                  const AttentionDropoutArgs* dropout = nullptr) override;
  void block_sparse_flash_backward(const FlashArgs& args, const BlockList& blocks,
                                   const float* dout, float* dq, float* dk, float* dv,
                                   const AttentionDropoutArgs* dropout = nullptr) override;

  void record_stream(void* ptr, std::uintptr_t stream) override;

  CachingAllocator& allocator() { return *allocator_; }
  int device() const { return device_; }
  int sm_count() const { return sm_count_; }
  // The device's own stream: non-blocking, so it never waits for work that
  // other code queues on the legacy default stream, nor that work for it.
  cudaStream_t compute_stream() const { return compute_; }
  // Makes this backend's device current on the calling thread, and its
  // stream (cuda::stream()) this thread's.
  void activate();
  // Gives cached blocks and the flag word back to CUDA
  // (at exit; the backend stays usable and re-creates them on demand).
  void release_cached();
  void release_blas();  // the cuBLAS handles, at exit (cuda_backend.cu says when)

  // A device buffer from the caching allocator, given back when it goes out
  // of scope (queued kernels are safe: the block is reused only by work
  // queued behind them on the same stream; see core/allocator.h).
  struct Buffer {
    CudaBackend* owner = nullptr;
    void* ptr = nullptr;
    std::size_t bytes = 0;
    Buffer(CudaBackend* o, std::size_t n) : owner(o), ptr(o->allocate(n)), bytes(n) {}
    ~Buffer() { owner->deallocate(ptr, bytes); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    template <class T>
    T* as() const { return static_cast<T*>(ptr); }
  };

  // A device word for "first bad position" checks: reset() sets it to "none"
  // (all bits set); kernels atomicMin into it; read() copies it back
  // (synchronising) and returns -1 for "none".
  unsigned long long* flag_reset();
  int64_t flag_read();

 private:
  cublasHandle_t blas();
  cublasLtHandle_t blas_lt();
  // gemm's parts (cuda_backend.cu): the product through cuBLAS (float32
  // operands, or bfloat16 ones); the product with its epilogue, or with
  // bfloat16 operands, through cuBLASLt (false when cuBLASLt has no kernel
  // for the layout); the epilogue as separate passes.
  void gemm_blas(const GemmArgs& args);
  void gemm_bf16(const GemmArgs& args);
  bool gemm_lt(const GemmArgs& args);
  void gemm_epilogue_passes(const GemmArgs& args);

  int device_;
  int sm_count_ = 0;
  cudaStream_t compute_ = nullptr;  // never destroyed, like the backend
  CachingAllocator* allocator_ = nullptr;  // never destroyed (tensors may outlive main)
  cublasHandle_t blas_ = nullptr;
  cublasLtHandle_t blas_lt_ = nullptr;
  unsigned long long* flag_ = nullptr;
};

namespace cuda {

constexpr int kThreads = 256;

// out[j] = the sum over s of part[s * n + j], added in the order of s, so
// every run gives the same bits: the second pass of the column sums
// (reduce.cu) and of the norms' parameter gradients (fused.cu).
void sum_partials(float* out, const double* part, int64_t splits, int64_t n);

// Launches kernel<G> with a warp per row (rows of at most 1024 columns) or
// a block per row, on the thread's stream: the row kernels of softmax.cu
// and fused.cu.
#define ATTN_ROW_LAUNCH(kernel, rows, cols, ...)                                             \
  do {                                                                                       \
    if ((cols) <= 1024) {                                                                    \
      const int64_t per_block = ::attn::cuda::kThreads / 32;                                 \
      kernel<32><<<static_cast<unsigned>(((rows) + per_block - 1) / per_block),              \
                   ::attn::cuda::kThreads, 0, ::attn::cuda::stream()>>>(__VA_ARGS__);        \
    } else {                                                                                 \
      kernel<::attn::cuda::kThreads><<<static_cast<unsigned>(rows), ::attn::cuda::kThreads,  \
                                       0, ::attn::cuda::stream()>>>(__VA_ARGS__);            \
    }                                                                                        \
    ATTN_CUDA_LAUNCHED(#kernel);                                                             \
  } while (0)

inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > (int64_t{1} << 20)) b = int64_t{1} << 20;  // grid-stride loops cover the rest
  return static_cast<unsigned>(b);
}

inline int64_t numel_of(const View& v) {
  int64_t n = 1;
  for (int d = 0; d < v.ndim; ++d) n *= v.shape[d];
  return n;
}

// Simplifies N views that share one shape (the first view's): drops size-1
// dims and merges neighbouring dims that are contiguous with each other in
// every view. Offsets of each linear index are unchanged; views end with
// ndim >= 1.
template <int N>
void collapse(View* (&vs)[N]) {
  const int ndim = vs[0]->ndim;
  int64_t shape[kMaxDims];
  int64_t strides[N][kMaxDims];
  int out = 0;  // dims collected, innermost first
  for (int d = ndim - 1; d >= 0; --d) {
    const int64_t s = vs[0]->shape[d];
    if (s == 1) continue;
    if (out > 0) {
      bool merge = true;
      for (int k = 0; k < N; ++k)
        merge = merge && vs[k]->strides[d] == strides[k][out - 1] * shape[out - 1];
      if (merge) {
        shape[out - 1] *= s;
        continue;
      }
    }
    shape[out] = s;
    for (int k = 0; k < N; ++k) strides[k][out] = vs[k]->strides[d];
    ++out;
  }
  if (out == 0) {
    shape[0] = 1;
    for (int k = 0; k < N; ++k) strides[k][0] = 1;
    out = 1;
  }
  for (int k = 0; k < N; ++k) {
    vs[k]->ndim = out;
    for (int d = 0; d < out; ++d) {
      vs[k]->shape[d] = shape[out - 1 - d];
      vs[k]->strides[d] = strides[k][out - 1 - d];
    }
    for (int d = out; d < kMaxDims; ++d) vs[k]->shape[d] = vs[k]->strides[d] = 0;
  }
}

// After collapse: one dense run of memory.
inline bool dense_after_collapse(const View& v) { return v.ndim == 1 && v.strides[0] == 1; }

template <int N>
struct Views {
  View v[N];
};

// Element offsets of linear index i in each of N views sharing v[0]'s shape.
// I is the type the index math runs in (32-bit when the numbers fit).
template <class I, int N>
__device__ __forceinline__ void view_offsets(const Views<N>& vs, int64_t linear, int64_t (&off)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
  I i = static_cast<I>(linear);
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < vs.v[0].ndim) {
      const I s = static_cast<I>(vs.v[0].shape[d]);
      const I q = i / s;
      const I r = i - q * s;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(r) * vs.v[k].strides[d];
      i = q;
    }
  }
}

// Offset of linear index i in one view (its own shape).
__device__ __forceinline__ int64_t view_offset(const View& v, int64_t i) {
  if (v.ndim == 0) return 0;
  if (v.ndim == 1) return i * v.strides[0];
  int64_t off = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < v.ndim) {
      const int64_t s = v.shape[d];
      const int64_t q = i / s;
      off += (i - q * s) * v.strides[d];
      i = q;
    }
  }
  return off;
}

__device__ __forceinline__ double load_any(const View& v, int64_t off) {
  switch (v.dtype) {
    case static_cast<int>(DType::Float32): return static_cast<const float*>(v.data)[off];
    case static_cast<int>(DType::Int64):
      return static_cast<double>(static_cast<const int64_t*>(v.data)[off]);
    case static_cast<int>(DType::BFloat16): return bf16_to_float(static_cast<const uint16_t*>(v.data)[off]);
    default: return static_cast<const uint8_t*>(v.data)[off];
  }
}

__device__ __forceinline__ void store_any(const View& v, int64_t off, double x) {
  switch (v.dtype) {
    case static_cast<int>(DType::Float32): static_cast<float*>(v.data)[off] = static_cast<float>(x); break;
    case static_cast<int>(DType::Int64): static_cast<int64_t*>(v.data)[off] = static_cast<int64_t>(x); break;
    case static_cast<int>(DType::BFloat16):
      static_cast<uint16_t*>(v.data)[off] = bf16_from_float(static_cast<float>(x));
      break;
    default: static_cast<uint8_t*>(v.data)[off] = x != 0; break;
  }
}

// ---- warp and group reductions (a group is 32 threads or a whole block) ----

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// max that ignores NaN the way std::max(acc, x) does when acc starts at -inf.
__device__ __forceinline__ float max_keep(float acc, float x) { return acc < x ? x : acc; }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max_keep(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a group of G threads (G = 32: the warp; G > 32: the whole block,
// which must then be exactly G threads). Every thread gets the result.
template <int G>
__device__ __forceinline__ double group_sum(double v) {
  v = warp_sum(v);
  if constexpr (G == 32) {
    return v;
  } else {
    __shared__ double part[G / 32];
    __syncthreads();  // earlier readers of part[] are done
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    double t = 0;
#pragma unroll
    for (int w = 0; w < G / 32; ++w) t += part[w];
    return t;
  }
}

template <int G>
__device__ __forceinline__ float group_max(float v) {
  v = warp_max(v);
  if constexpr (G == 32) {
    return v;
  } else {
    __shared__ float part[G / 32];
    __syncthreads();
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    float t = part[0];
#pragma unroll
    for (int w = 1; w < G / 32; ++w) t = max_keep(t, part[w]);
    return t;
  }
}

}  // namespace cuda
}  // namespace attn
