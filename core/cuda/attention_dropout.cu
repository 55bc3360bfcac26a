// Attention dropout on a block of probabilities, on the GPU (the banded
// window path's; the dense path's whole matrix goes through dropout()).
// One thread per element, each asking philox::keep for its own decision
// through core/attention_dropout.h, so the GPU drops exactly what the CPU
// (and the flash kernels) drop. This path is rare on the GPU (flash covers
// windows there), so it favours plainness over sharing a Philox evaluation
// between four neighbours.
#include "core/attention_dropout.h"
#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

__global__ void attention_dropout_kernel(float* out, const float* in, ProbabilityBlock blk,
                                         AttentionDropoutArgs a, float scale, int64_t n) {
  // A grid-stride loop: blocks_for caps the grid.
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // t = ((b * heads + h) * rows + r) * cols + c
    const int64_t c = t % blk.cols, row = t / blk.cols;
    const int64_t r = row % blk.rows, h = row / blk.rows % blk.heads, b = row / (blk.rows * blk.heads);
    const uint64_t e = attention_dropout::element(a, h, blk.row0 + r, blk.col0 + c, blk.tq, blk.tk);
    out[t] = attention_dropout::keep(a, b, e) ? in[t] * scale : 0.0f;
  }
}

}  // namespace

void CudaBackend::attention_dropout(float* out, const float* in, const ProbabilityBlock& blk,
                                    const AttentionDropoutArgs& a) {
  const int64_t n = blk.batch * blk.heads * blk.rows * blk.cols;
  if (n == 0) return;
  activate();
  attention_dropout_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      out, in, blk, a, attention_dropout::keep_scale(a), n);
  ATTN_CUDA_LAUNCHED("attention_dropout_kernel");
}

}  // namespace attn
