// Dropout on the GPU, from Philox (core/philox.h, the same code as the
// CPU's): each thread hashes once for an aligned group of four elements of
// one sample and writes those four, so the GPU draws exactly the CPU's mask.
// The backward runs this kernel on the gradient (the mask regenerated, never
// stored); with `add`, the residual add that follows dropout is the same pass.
#include "core/cuda/cuda_internal.cuh"
#include "core/philox.h"

namespace attn {
using namespace cuda;

namespace {

__global__ void dropout_kernel(float* out, const float* in, const float* add, int64_t groups,
                               int64_t groups_per_sample, DropoutArgs a, float scale) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= groups) return;
  const int64_t row = t / groups_per_sample, g = t % groups_per_sample;
  const philox::Words r =
      philox::group_at({a.seed, a.offset}, static_cast<uint64_t>(a.first_sample + row), g);
  const int64_t e0 = g * 4, base = row * a.sample_size;
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (e0 + k >= a.sample_size) break;
    const int64_t i = base + e0 + k;
    const bool kept = philox::uniform(r.w[k]) >= a.p;
    out[i] = (add ? add[i] : 0.0f) + (kept ? in[i] * scale : 0.0f);
  }
}

}  // namespace

void CudaBackend::dropout(float* out, const float* in, const float* add, int64_t n,
                          const DropoutArgs& a) {
  if (n == 0) return;
  activate();
  const int64_t samples = n / a.sample_size;
  const int64_t groups_per_sample = (a.sample_size + 3) / 4;
  const int64_t groups = samples * groups_per_sample;
  dropout_kernel<<<blocks_for(groups), kThreads>>>(out, in, add, groups, groups_per_sample, a,
                                                   1.0f / (1.0f - a.p));
  ATTN_CUDA_LAUNCHED("dropout_kernel");
}

}  // namespace attn
