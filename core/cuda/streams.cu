// The CUDA half of core/stream.h. A stream is a cudaStream_t, passed around
// as a number; every stream made here is non-blocking, like the compute
// streams, so none waits for the legacy default stream unless asked to.
#include <cstdint>
#include <functional>
#include <memory>

#include "core/cuda/cuda_internal.cuh"

namespace attn {

Backend& cuda_backend(int index);  // cuda_backend.cu

namespace {

CudaBackend& backend(int device) {
  auto& be = static_cast<CudaBackend&>(cuda_backend(device));
  be.activate();
  return be;
}

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

// An event after the work queued on `on` so far; `waiter`'s later work waits
// for it. (An event destroyed while a stream waits on it is released once
// the wait is over.)
void order_after(cudaStream_t waiter, cudaStream_t on) {
  cudaEvent_t e = nullptr;
  ATTN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  ATTN_CUDA_CHECK(cudaEventRecord(e, on));
  ATTN_CUDA_CHECK(cudaStreamWaitEvent(waiter, e, 0));
  ATTN_CUDA_CHECK(cudaEventDestroy(e));
}

}  // namespace

std::uintptr_t cuda_stream_create(int device) {
  backend(device);
  cudaStream_t s = nullptr;
  ATTN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return reinterpret_cast<std::uintptr_t>(s);
}

void cuda_stream_destroy(int device, std::uintptr_t stream) {
  // From a destructor: report nothing, throw nothing. The work queued on it
  // finishes first (cudaStreamDestroy does not wait; memory it used may
  // still be waiting on its events).
  if (cudaSetDevice(device) != cudaSuccess || cudaStreamSynchronize(as_stream(stream)) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  cudaStreamDestroy(as_stream(stream));
  cudaGetLastError();
}

std::uintptr_t cuda_stream_current(int device) {
  backend(device);
  return reinterpret_cast<std::uintptr_t>(cuda::stream());
}

std::uintptr_t cuda_stream_choose(int device, std::uintptr_t stream) {
  const cudaStream_t before = cuda::chosen_stream(device);
  cuda::set_chosen_stream(device, as_stream(stream));
  return reinterpret_cast<std::uintptr_t>(before);
}

void cuda_stream_wait(int device, std::uintptr_t waiter, std::uintptr_t on) {
  backend(device);
  order_after(as_stream(waiter), as_stream(on));
}

void cuda_stream_synchronize(int device, std::uintptr_t stream) {
  backend(device);
  ATTN_CUDA_CHECK(cudaStreamSynchronize(as_stream(stream)));
}

void cuda_stream_then_on_host(int device, std::uintptr_t stream, std::function<void()> fn) {
  backend(device);
  auto* owned = new std::function<void()>(std::move(fn));
  auto call = [](void* data) {
    std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(data));
    (*f)();
  };
  const cudaError_t err = cudaLaunchHostFunc(as_stream(stream), call, owned);
  if (err != cudaSuccess) delete owned;
  ATTN_CUDA_CHECK(err);
}

void cuda_call_on_default_stream(int device, const std::function<void()>& fn) {
  backend(device);
  const cudaStream_t mine = cuda::stream();
  order_after(cudaStreamLegacy, mine);
  fn();
  backend(device);  // fn may have made another device current
  order_after(mine, cudaStreamLegacy);
}

}  // namespace attn
