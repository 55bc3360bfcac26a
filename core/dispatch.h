// The single place that maps a device to its kernel implementation.
#pragma once
#include "core/backend.h"
#include "core/device.h"

namespace attn {

// Fails with "attnlab was built without CUDA; ..." when asked for a device
// this build cannot serve.
Backend& backend_for(const Device& device);
bool cuda_available();

}  // namespace attn
