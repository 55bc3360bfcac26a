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

// kVec4: every sample's size is a multiple of four and the pointers are
// 16-byte aligned, so a thread's four elements move as one float4 load or
// store; a warp then reads 512 contiguous bytes per instruction instead of
// four strided 4-byte reads (dropout is a memory-bound pass, 26 a step at
// the recipe's shape). The products are __fmul_rn, which the compiler never
// merges with the add into an FMA: add + x * scale rounds twice, as on the
// CPU (core/cpu/dropout.cpp), so both give the same bits.
template <bool kVec4>
__global__ void dropout_kernel(float* out, const float* in, const float* add, int64_t groups,
                               int64_t groups_per_sample, DropoutArgs a, float scale) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= groups) return;
  const int64_t row = t / groups_per_sample, g = t % groups_per_sample;
  const philox::Words r =
      philox::group_at({a.seed, a.offset}, static_cast<uint64_t>(a.first_sample + row), g);
  const int64_t e0 = g * 4, base = row * a.sample_size;
  if constexpr (kVec4) {
    const float4 x = *reinterpret_cast<const float4*>(in + base + e0);
    float4 y = add ? *reinterpret_cast<const float4*>(add + base + e0) : make_float4(0, 0, 0, 0);
    y.x += philox::uniform(r.w[0]) >= a.p ? __fmul_rn(x.x, scale) : 0.0f;
    y.y += philox::uniform(r.w[1]) >= a.p ? __fmul_rn(x.y, scale) : 0.0f;
    y.z += philox::uniform(r.w[2]) >= a.p ? __fmul_rn(x.z, scale) : 0.0f;
    y.w += philox::uniform(r.w[3]) >= a.p ? __fmul_rn(x.w, scale) : 0.0f;
    *reinterpret_cast<float4*>(out + base + e0) = y;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (e0 + k >= a.sample_size) break;
      const int64_t i = base + e0 + k;
      const bool kept = philox::uniform(r.w[k]) >= a.p;
      out[i] = (add ? add[i] : 0.0f) + (kept ? __fmul_rn(in[i], scale) : 0.0f);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void CudaBackend::dropout(float* out, const float* in, const float* add, int64_t n,
                          const DropoutArgs& a) {
  if (n == 0) return;
  activate();
  const int64_t samples = n / a.sample_size;
  const int64_t groups_per_sample = (a.sample_size + 3) / 4;
  const int64_t groups = samples * groups_per_sample;
  const float scale = 1.0f / (1.0f - a.p);
  if (a.sample_size % 4 == 0 && aligned16(out) && aligned16(in) && (!add || aligned16(add)))
    dropout_kernel<true><<<blocks_for(groups), kThreads, 0, stream()>>>(
        out, in, add, groups, groups_per_sample, a, scale);
  else
    dropout_kernel<false><<<blocks_for(groups), kThreads, 0, stream()>>>(
        out, in, add, groups, groups_per_sample, a, scale);
  ATTN_CUDA_LAUNCHED("dropout_kernel");
}

}  // namespace attn
