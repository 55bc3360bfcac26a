// Settings and introspection of the CUDA backend that host code may use.
//
// Plain C++17 (no CUDA headers): tests, the trainer and benchmarks include
// it. Everything here exists only in builds with ATTNLAB_WITH_CUDA defined;
// guard calls with `#ifdef ATTNLAB_WITH_CUDA`.
#pragma once
#include <string>

#include "core/allocator.h"

namespace attn {

// TF32 tensor cores for float32 matrix products: faster on Ampere and
// Hopper, with ~1e-3 relative error instead of float32's ~1e-6. Off by
// default, so that GPU results match the CPU's closely. (Flash attention's
// kernels multiply in 3xTF32, float32's accuracy, either way.)
void set_cuda_tf32(bool on);
bool cuda_tf32();

// The caching allocator of CUDA device `index` (its counters measure GPU
// memory the way cpu_allocator() measures host memory). Fails like
// backend_for(Device::cuda(index)) when there is no such device.
CachingAllocator& cuda_allocator(int index = 0);

// Why no CUDA device can be used ("" when one can), e.g.
// "cudaGetDeviceCount: no CUDA-capable device is detected".
std::string cuda_unavailable_reason();

// Waits until every kernel queued on the device has finished (for timing).
void cuda_synchronize(int index = 0);

}  // namespace attn
