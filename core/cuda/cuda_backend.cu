// The CUDA backend: devices, memory, errors, streams and host copies. The
// kernels live beside this file, one file per job: gemm.cu (matrix
// products), elementwise.cu, reduce.cu, softmax.cu, index.cu, fused.cu,
// flash_attention.cu, linear_attention.cu; streams.cu is core/stream.h's
// CUDA half.
//
// Everything a thread asks of a device is queued on one stream
// (cuda::stream(): the device's compute stream unless a StreamGuard chose
// another), so kernels, cuBLAS calls and copies are ordered with each other;
// host results (copy_to_host, the "first bad index" of gather_rows /
// cross_entropy) wait for that stream only.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>

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

}  // namespace attn
