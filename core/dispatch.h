// The single place that maps a device to its kernel implementation.
#pragma once
#include "core/allocator.h"
#include "core/backend.h"
#include "core/device.h"

namespace attn {

// Fails with "attnlab was built without CUDA; ..." when asked for a device
// this build cannot serve.
Backend& backend_for(const Device& device);
bool cuda_available();

// Memory counters of the allocator that serves `device`: cpu_allocator() for
// the CPU, the GPU's own caching allocator for cuda:n. Code that measures
// memory (the trainer, benchmarks) asks here, so it measures the device the
// tensors actually live on.
MemoryStats device_memory_stats(const Device& device);
void reset_device_peak(const Device& device);

// Waits until every kernel queued on `device` has finished (a no-op on the
// CPU, whose kernels finish before they return). Call it before reading a
// clock: GPU launches return at once, long before the work is done.
void device_synchronize(const Device& device);

}  // namespace attn
