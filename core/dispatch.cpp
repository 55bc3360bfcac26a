#include "core/dispatch.h"

#include <string>

#include "core/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif

namespace attn {

#ifdef ATTNLAB_WITH_CUDA
Backend& cuda_backend(int index);  // core/cuda/cuda_backend.cu
bool cuda_device_present();        // false (no exception) without a GPU or driver
std::string cuda_unavailable_reason();
#endif

void Backend::flash_attention_forward(const FlashArgs&, const AttentionDropoutArgs*, FlashProducts) {
  fail("flash_attention: this device has no flash attention kernel yet");
}

void Backend::flash_attention_backward(const FlashArgs&, const float*, float*, float*, float*,
                                       const AttentionDropoutArgs*, FlashProducts) {
  fail("flash_attention: this device has no flash attention backward kernel yet");
}

void Backend::block_sparse_flash_forward(const FlashArgs&, const BlockList&,
                                         const AttentionDropoutArgs*) {
  fail("block_sparse_flash: this device has no block-sparse flash kernel yet");
}

void Backend::block_sparse_flash_backward(const FlashArgs&, const BlockList&, const float*, float*,
                                          float*, float*, const AttentionDropoutArgs*) {
  fail("block_sparse_flash: this device has no block-sparse flash backward kernel yet");
}

Backend& backend_for(const Device& device) {
  if (device.is_cpu()) return cpu_backend();
#ifdef ATTNLAB_WITH_CUDA
  // A CUDA build on a machine without a usable GPU says why.
  if (!cuda_device_present())
    fail("device ", device.str(), ": no CUDA device is available (", cuda_unavailable_reason(), ")");
  return cuda_backend(device.index);
#else
  fail("device ", device.str(), ": attnlab was built without CUDA; rebuild with -DATTNLAB_CUDA=ON");
#endif
}

bool cuda_available() {
#ifdef ATTNLAB_WITH_CUDA
  return cuda_device_present();
#else
  return false;
#endif
}

// Each helper goes through backend_for() first, so that a CPU-only build or
// a missing GPU fails with the same message as any other op on that device.
MemoryStats device_memory_stats(const Device& device) {
  if (device.is_cpu()) return cpu_allocator().stats();
  backend_for(device);
#ifdef ATTNLAB_WITH_CUDA
  return cuda_allocator(device.index).stats();
#else
  return {};  // not reached: backend_for() failed above
#endif
}

void reset_device_peak(const Device& device) {
  if (device.is_cpu()) return cpu_allocator().reset_peak();
  backend_for(device);
#ifdef ATTNLAB_WITH_CUDA
  cuda_allocator(device.index).reset_peak();
#endif
}

void device_synchronize(const Device& device) {
  if (device.is_cpu()) return;
  backend_for(device);
#ifdef ATTNLAB_WITH_CUDA
  cuda_synchronize(device.index);
#endif
}

}  // namespace attn
