// The CUDA backend: devices, memory, errors, host copies and matrix products
// (cuBLAS). The other kernels live beside this file, one file per job:
// elementwise.cu, reduce.cu, softmax.cu, index.cu, fused.cu,
// flash_attention.cu.
//
// Everything a thread asks of a device is queued on one stream
// (cuda::stream(): the device's compute stream unless a StreamGuard chose
// another), so kernels, cuBLAS calls and copies are ordered with each other;
// host results (copy_to_host, the "first bad index" of gather_rows /
// cross_entropy) wait for that stream only.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "core/cuda/cublas_library.h"
#include "core/cuda/cuda_internal.cuh"
#include "core/cuda/cuda_settings.h"

namespace attn {

namespace cuda {

void check_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  fail("CUDA error in ", what, ": ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
}

namespace {
const char* cublas_status_text(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}
}  // namespace

void check_cublas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("cuBLAS error in ", what, ": ", cublas_status_text(status), " (", static_cast<int>(status),
       ")");
}

}  // namespace cuda

// ---- which devices exist ----

namespace {

struct DeviceCount {
  int count = 0;
  std::string reason;  // why none can be used, or ""
};

const DeviceCount& device_count() {
  // Never destroyed: tensors freed after main() still ask for their backend.
  static const DeviceCount* info = [] {
    auto* c = new DeviceCount;
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear it: not having a GPU is no error of ours
      c->reason = str("cudaGetDeviceCount: ", cudaGetErrorString(err));
    } else if (n == 0) {
      c->reason = "cudaGetDeviceCount: 0 devices";
    } else {
      c->count = n;
    }
    return c;
  }();
  return *info;
}

constexpr int kMaxDevices = 64;
std::atomic<CudaBackend*> g_backends[kMaxDevices];  // one per device, made on first use

// At exit, before the CUDA runtime tears itself down (its own exit hook was
// registered earlier, so it runs later): give the cached blocks and the flag
// word back, so that leak checkers (compute-sanitizer --leak-check full) see
// only memory still held by live tensors.
void release_at_exit() {
  for (auto& slot : g_backends)
    if (CudaBackend* be = slot.load()) be->release_cached();
}

// The cuBLAS handles need their own hook. Exit hooks run in the reverse
// order of registration, and libcublas registers its own teardown when it
// is opened (cublas_library.h: on the first product, long after
// release_at_exit was registered). A hook registered before the dlopen runs
// after that teardown, and destroying a handle then frees memory cuBLAS has
// already freed ("double free or corruption", exit status 134). So this
// hook is registered right after the library is opened, and runs first.
void release_blas_at_exit() {
  for (auto& slot : g_backends)
    if (CudaBackend* be = slot.load()) be->release_blas();
}

void hook_blas_release() {
  static const bool hooked = std::atexit(release_blas_at_exit) == 0;
  (void)hooked;
}

std::atomic<bool> g_tf32{false};

// The device this thread last made current through a backend (saves a
// cudaSetDevice per op), and the stream its work goes to.
thread_local int t_current_device = -1;
thread_local cudaStream_t t_stream = nullptr;
// The stream a StreamGuard chose on this thread, and for which device
// (-1: none; see set_chosen_stream).
thread_local cudaStream_t t_chosen = nullptr;
thread_local int t_chosen_device = -1;

}  // namespace

bool cuda_device_present() { return device_count().count > 0; }

std::string cuda_unavailable_reason() { return device_count().reason; }

Backend& cuda_backend(int index) {
  const DeviceCount& dc = device_count();
  if (dc.count == 0) fail("device cuda:", index, ": no CUDA device is available (", dc.reason, ")");
  check(index >= 0 && index < dc.count && index < kMaxDevices, "device cuda:", index, ": only ",
        dc.count, " CUDA device(s) available (cuda:0 to cuda:", dc.count - 1, ")");
  CudaBackend* be = g_backends[index].load(std::memory_order_acquire);
  if (be) return *be;
  static std::mutex* mutex = new std::mutex;  // never destroyed, like the backends
  std::lock_guard<std::mutex> lock(*mutex);
  be = g_backends[index].load(std::memory_order_acquire);
  if (!be) {
    static const bool hooked = std::atexit(release_at_exit) == 0;
    (void)hooked;
    be = new CudaBackend(index);
    g_backends[index].store(be, std::memory_order_release);
  }
  return *be;
}

CachingAllocator& cuda_allocator(int index) {
  return static_cast<CudaBackend&>(cuda_backend(index)).allocator();
}

void cuda_synchronize(int index) {
  static_cast<CudaBackend&>(cuda_backend(index)).activate();
  ATTN_CUDA_CHECK(cudaDeviceSynchronize());
}

namespace cuda {

cudaStream_t stream() { return t_stream; }

cudaStream_t chosen_stream(int device) { return t_chosen_device == device ? t_chosen : nullptr; }

void set_chosen_stream(int device, cudaStream_t s) {
  t_chosen = s;
  t_chosen_device = s ? device : -1;
  t_current_device = -1;  // the next activate() sets t_stream again
}

}  // namespace cuda

void set_cuda_tf32(bool on) { g_tf32.store(on); }
bool cuda_tf32() { return g_tf32.load(); }

// ---- the backend object ----

CudaBackend::CudaBackend(int device) : device_(device) {
  activate();
  ATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
  ATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
  t_current_device = -1;  // activate() again, now that the stream exists
  activate();
  const int dev = device_;
  // Blocks are reused across streams only after the events of the streams
  // that used them have passed (core/allocator.h).
  StreamEvents events;
  events.record = [](StreamId s) -> void* {
    cudaEvent_t e = nullptr;
    ATTN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    ATTN_CUDA_CHECK(cudaEventRecord(e, reinterpret_cast<cudaStream_t>(s)));
    return e;
  };
  events.passed = [](void* e) {
    const cudaError_t err = cudaEventQuery(static_cast<cudaEvent_t>(e));
    if (err == cudaErrorNotReady) return false;
    cuda::check_cuda(err, "cudaEventQuery");
    return true;
  };
  events.destroy = [](void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); };
  allocator_ = new CachingAllocator(
      [dev](std::size_t n) -> void* {
        int current = -1;
        cudaGetDevice(&current);
        if (current != dev) ATTN_CUDA_CHECK(cudaSetDevice(dev));
        void* p = nullptr;
        const cudaError_t err = cudaMalloc(&p, n);
        if (err == cudaErrorMemoryAllocation) {
          cudaGetLastError();  // not sticky: clear it and let the caller report
          return nullptr;
        }
        cuda::check_cuda(err, "cudaMalloc");
        return p;
      },
      [](void* p) { cudaFree(p); }, std::move(events));
}

CudaBackend::~CudaBackend() = default;  // never called: see cuda_backend()

void CudaBackend::release_cached() {
  // Runs at exit: report nothing, throw nothing.
  t_current_device = -1;  // whatever happens below, activate() sets it again
  if (cudaSetDevice(device_) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  cudaDeviceSynchronize();  // every stream's events pass: no block is left waiting
  allocator_->empty_cache();
  if (flag_) cudaFree(flag_);
  flag_ = nullptr;
  cudaGetLastError();
}

void CudaBackend::release_blas() {
  // Runs at exit, while libcublas is still whole: report nothing, throw nothing.
  t_current_device = -1;
  if (cudaSetDevice(device_) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  // The handles exist only if cuBLAS was loaded to make them.
  if (blas_) cuda::cublas_library().cublasDestroy(blas_);
  blas_ = nullptr;
  if (blas_lt_) cuda::cublas_library().cublasLtDestroy(blas_lt_);
  blas_lt_ = nullptr;
  cudaGetLastError();
}

void CudaBackend::activate() {
  if (t_current_device != device_) {
    ATTN_CUDA_CHECK(cudaSetDevice(device_));
    t_current_device = device_;
    t_stream = t_chosen_device == device_ ? t_chosen : compute_;
  }
}

cublasHandle_t CudaBackend::blas() {
  if (!blas_) {
    const cuda::CublasLibrary& lib = cuda::cublas_library();
    hook_blas_release();  // after the library is open: see release_blas_at_exit
    ATTN_CUBLAS_CHECK(lib.cublasCreate(&blas_));
  }
  ATTN_CUBLAS_CHECK(cuda::cublas_library().cublasSetStream(blas_, cuda::stream()));
  return blas_;
}

cublasLtHandle_t CudaBackend::blas_lt() {
  if (!blas_lt_) {
    const cuda::CublasLibrary& lib = cuda::cublas_library();
    hook_blas_release();
    ATTN_CUBLAS_CHECK(lib.cublasLtCreate(&blas_lt_));
  }
  return blas_lt_;
}

void* CudaBackend::allocate(std::size_t bytes) {
  activate();
  try {
    return allocator_->allocate(bytes, reinterpret_cast<StreamId>(cuda::stream()));
  } catch (const std::bad_alloc&) {
    const MemoryStats s = allocator_->stats();
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) cudaGetLastError();
    throw OutOfMemory(out_of_memory_message("cuda:" + std::to_string(device_), bytes, s) +
                      str("; the GPU has ", free_bytes, " of ", total_bytes, " bytes free"));
  }
}

void CudaBackend::deallocate(void* ptr, std::size_t bytes) { allocator_->deallocate(ptr, bytes); }

void CudaBackend::record_stream(void* ptr, std::uintptr_t stream) {
  allocator_->record_use(ptr, stream);
}

void CudaBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  activate();
  // From pageable memory: the source is staged before the call returns.
  ATTN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda::stream()));
}

void CudaBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  activate();
  ATTN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda::stream()));
  ATTN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()));
}

unsigned long long* CudaBackend::flag_reset() {
  activate();
  // One word for the backend's lifetime (outside the counted tensor memory).
  if (!flag_) ATTN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&flag_), sizeof(*flag_)));
  ATTN_CUDA_CHECK(cudaMemsetAsync(flag_, 0xff, sizeof(*flag_), cuda::stream()));
  return flag_;
}

int64_t CudaBackend::flag_read() {
  unsigned long long v = 0;
  copy_to_host(&v, flag_, sizeof(v));
  return v == ~0ull ? -1 : static_cast<int64_t>(v);
}

// ---- matrix products ----
//
// cuBLAS is column-major. A row-major M x N matrix C with leading dimension
// N is, read column-major, the N x M matrix C^T; so C = op(A) op(B) is
// computed as C^T = op(B)^T op(A)^T, i.e. cuBLAS gets B first, then A, with
// the same trans flags and leading dimensions, and m and n swapped.

namespace {

__global__ void scale_kernel(float* c, int64_t n, float beta) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    c[i] = beta == 0.0f ? 0.0f : beta * c[i];
}

bool arithmetic(const int64_t* off, int64_t n, int64_t& step) {
  step = n > 1 ? off[1] - off[0] : 0;
  for (int64_t i = 2; i < n; ++i)
    if (off[i] - off[i - 1] != step) return false;
  return true;
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.batch <= 0 || g.m <= 0 || g.n <= 0) return;
  activate();
  const bool epilogue = g.bias || g.gelu_aux;
  check(!epilogue || g.batch == 1, "gemm: a bias or GELU epilogue needs batch 1, got ", g.batch);
  const bool bf16 = g.a_bf16 || g.b_bf16;
  check(!bf16 || (g.a_bf16 && g.b_bf16 && g.batch == 1), "gemm: bfloat16 operands come in pairs, batch 1");
  if ((epilogue || bf16) && g.k > 0 && gemm_lt(g)) return;
  if (bf16 && g.k > 0)
    gemm_bf16(g);
  else
    gemm_blas(g);
  if (epilogue) gemm_epilogue_passes(g);
}

// bfloat16 operands where cuBLASLt has no kernel for the layout: cuBLAS's
// mixed-type product, float32 sums and output.
void CudaBackend::gemm_bf16(const GemmArgs& g) {
  cublasHandle_t h = blas();
  const cuda::CublasLibrary& lib = cuda::cublas_library();
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = static_cast<int>(g.n), n = static_cast<int>(g.m), k = static_cast<int>(g.k);
  ATTN_CUBLAS_CHECK(lib.cublasGemmEx(h, op_b, op_a, m, n, k, &g.alpha, g.b_bf16 + g.b_offsets[0], CUDA_R_16BF,
                                     static_cast<int>(g.ldb), g.a_bf16 + g.a_offsets[0], CUDA_R_16BF,
                                     static_cast<int>(g.lda), &g.beta, g.c, CUDA_R_32F, m,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::gemm_blas(const GemmArgs& g) {
  if (g.k <= 0) {  // an empty sum: C = beta * C
    const int64_t n = g.batch * g.m * g.n;
    scale_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::stream()>>>(g.c, n, g.beta);
    ATTN_CUDA_LAUNCHED("scale_kernel");
    return;
  }
  cublasHandle_t h = blas();
  const cuda::CublasLibrary& lib = cuda::cublas_library();
  ATTN_CUBLAS_CHECK(lib.cublasSetMathMode(h, cuda_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH
                                                         : CUBLAS_DEFAULT_MATH));
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = static_cast<int>(g.n), n = static_cast<int>(g.m), k = static_cast<int>(g.k);
  const int ldb = static_cast<int>(g.ldb), lda = static_cast<int>(g.lda), ldc = m;
  const float alpha = g.alpha, beta = g.beta;
  const int64_t c_step = g.m * g.n;
  constexpr int64_t kChunk = 65535;  // batches per cuBLAS call

  if (g.batch == 1) {
    ATTN_CUBLAS_CHECK(lib.cublasSgemm(h, op_b, op_a, m, n, k, &alpha, g.b + g.b_offsets[0],
                                      ldb, g.a + g.a_offsets[0], lda, &beta, g.c, ldc));
    return;
  }
  int64_t sa = 0, sb = 0;
  if (arithmetic(g.a_offsets, g.batch, sa) && arithmetic(g.b_offsets, g.batch, sb)) {
    for (int64_t b0 = 0; b0 < g.batch; b0 += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, g.batch - b0));
      ATTN_CUBLAS_CHECK(lib.cublasSgemmStridedBatched(
          h, op_b, op_a, m, n, k, &alpha, g.b + g.b_offsets[0] + b0 * sb, ldb, sb,
          g.a + g.a_offsets[0] + b0 * sa, lda, sa, &beta, g.c + b0 * c_step, ldc, c_step, count));
    }
    return;
  }
  // Irregular batch offsets (e.g. a broadcast batch dim in the middle): one
  // pointer per batch entry, copied to the device.
  std::vector<const float*> ptrs(3 * g.batch);
  for (int64_t b = 0; b < g.batch; ++b) {
    ptrs[b] = g.b + g.b_offsets[b];
    ptrs[g.batch + b] = g.a + g.a_offsets[b];
    ptrs[2 * g.batch + b] = g.c + b * c_step;
  }
  Buffer dev(this, ptrs.size() * sizeof(float*));
  copy_from_host(dev.ptr, ptrs.data(), ptrs.size() * sizeof(float*));
  const float* const* dptrs = dev.as<const float*>();
  for (int64_t b0 = 0; b0 < g.batch; b0 += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, g.batch - b0));
    ATTN_CUBLAS_CHECK(lib.cublasSgemmBatched(h, op_b, op_a, m, n, k, &alpha, dptrs + b0, ldb,
                                             dptrs + g.batch + b0, lda, &beta,
                                             const_cast<float* const*>(dptrs + 2 * g.batch + b0),
                                             ldc, count));
  }
}

// ---- the epilogue: a Linear layer's bias and GELU ----
//
// cuBLASLt adds the bias to each output tile while it is still in
// registers: the product's result is written once instead of being read back
// and rewritten by a bias-add pass. With GELU the product (plus bias) is
// written to the pre-activation buffer the backward needs, and one GELU pass
// reads it and writes the output. (cuBLASLt's own GELU_AUX epilogue ran as a
// separate kernel on these fp32/tf32 products, at 110 us against our 64 us
// pass for the MLP's [16384, 1536].)

namespace {

constexpr std::size_t kLtWorkspace = std::size_t{4} << 20;

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// A product's m x n row-major output (or a buffer of that shape) as a View.
View output_view(const GemmArgs& g, float* data) {
  View v;
  v.data = data;
  v.dtype = static_cast<int>(DType::Float32);
  v.ndim = 2;
  v.shape[0] = g.m, v.shape[1] = g.n;
  v.strides[0] = g.n, v.strides[1] = 1;
  return v;
}

// The descriptors of one cuBLASLt call, destroyed on every path out.
struct LtCall {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtCall() {
    const cuda::CublasLibrary& lib = cuda::cublas_library();
    if (pref) lib.cublasLtMatmulPreferenceDestroy(pref);
    if (c) lib.cublasLtMatrixLayoutDestroy(c);
    if (b) lib.cublasLtMatrixLayoutDestroy(b);
    if (a) lib.cublasLtMatrixLayoutDestroy(a);
    if (op) lib.cublasLtMatmulDescDestroy(op);
  }
};

template <class T>
void set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& value) {
  ATTN_CUBLAS_CHECK(
      cuda::cublas_library().cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
}

}  // namespace

bool CudaBackend::gemm_lt(const GemmArgs& g) {
  // Column-major as in gemm_blas: D (n x m here) = op(B) op(A), so cuBLASLt's
  // "A" is our B and its "B" our A. Its kernels load 16 bytes at a time:
  // other alignments take the plain path.
  // bfloat16 operands: 2-byte elements (16 bytes = 8 of them), float32 sums.
  const bool bf16 = g.a_bf16 != nullptr;
  const void* lt_a = bf16 ? static_cast<const void*>(g.b_bf16 + g.b_offsets[0]) : g.b + g.b_offsets[0];
  const void* lt_b = bf16 ? static_cast<const void*>(g.a_bf16 + g.a_offsets[0]) : g.a + g.a_offsets[0];
  const int64_t per16 = bf16 ? 8 : 4;
  const cudaDataType_t ab_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  if (!aligned16(lt_a) || !aligned16(lt_b) || !aligned16(g.c) || g.lda % per16 || g.ldb % per16 ||
      g.n % 4 || (g.bias && !aligned16(g.bias)) ||
      (g.gelu_aux && !aligned16(g.gelu_aux)))
    return false;
  const cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const uint64_t m = g.n, n = g.m, k = g.k;
  const cuda::CublasLibrary& lib = cuda::cublas_library();
  LtCall call;
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmulDescCreate(
      &call.op, cuda_tf32() && !bf16 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  set_attr(call.op, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set_attr(call.op, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  set_attr(call.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
           g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
  if (g.bias) set_attr(call.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
  float* d = g.gelu_aux ? g.gelu_aux : g.c;  // with GELU, the product goes to the pre-activation
  const bool ta = op_a == CUBLAS_OP_T, tb = op_b == CUBLAS_OP_T;
  ATTN_CUBLAS_CHECK(
      lib.cublasLtMatrixLayoutCreate(&call.a, ab_type, ta ? k : m, ta ? m : k, g.ldb));
  ATTN_CUBLAS_CHECK(
      lib.cublasLtMatrixLayoutCreate(&call.b, ab_type, tb ? n : k, tb ? k : n, g.lda));
  ATTN_CUBLAS_CHECK(lib.cublasLtMatrixLayoutCreate(&call.c, CUDA_R_32F, m, n, m));
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmulPreferenceCreate(&call.pref));
  const uint64_t workspace = kLtWorkspace;
  const uint32_t align = 16;
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmulPreferenceSetAttribute(
      call.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
  for (const auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    ATTN_CUBLAS_CHECK(
        lib.cublasLtMatmulPreferenceSetAttribute(call.pref, attr, &align, sizeof(align)));
  cublasLtMatmulHeuristicResult_t best = {};
  int found = 0;
  if (lib.cublasLtMatmulAlgoGetHeuristic(blas_lt(), call.op, call.a, call.b, call.c, call.c,
                                         call.pref, 1, &best, &found) != CUBLAS_STATUS_SUCCESS ||
      found == 0)
    return false;
  Buffer ws(this, std::max<std::size_t>(best.workspaceSize, 16));
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmul(blas_lt(), call.op, &g.alpha, lt_a, call.a, lt_b, call.b,
                                       &g.beta, g.c, call.c, d, call.c, &best.algo, ws.ptr,
                                       best.workspaceSize, cuda::stream()));
  if (g.gelu_aux) unary(UnaryOp::Gelu, output_view(g, g.c), output_view(g, g.gelu_aux), 0.0f);
  return true;
}

void CudaBackend::gemm_epilogue_passes(const GemmArgs& g) {
  const View c = output_view(g, g.c);
  if (g.bias) {
    View bias = c;  // each row reads the same n values
    bias.data = const_cast<float*>(g.bias);
    bias.strides[0] = 0;
    binary(BinaryOp::Add, c, c, bias);
  }
  if (g.gelu_aux) {
    const View aux = output_view(g, g.gelu_aux);
    copy(aux, c);
    unary(UnaryOp::Gelu, c, aux, 0.0f);
  }
}

}  // namespace attn
