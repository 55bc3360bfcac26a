// Attention dropout on a block of probabilities, on the CPU (the banded
// window path's; the dense path's whole matrix goes through dropout()).
// Each row of the block is one (b, h, query) row of the attention matrix,
// whose keys are consecutive elements of the sample: the row's decisions
// come from cpu::keep_scales (core/cpu/philox_groups.h), many Philox
// evaluations side by side, as multipliers (1 / (1 - p) or 0). Rows go to the thread pool; every element's
// decision depends only on its own indices, so any cut gives the same result.
#include <vector>

#include "core/attention_dropout.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"
#include "core/cpu/philox_groups.h"
#include "core/cpu/vmath.h"

namespace attn {
using namespace cpu;

namespace {

ATTN_VECTOR_CLONES void scale_row(float* y, const float* x, const float* z, int64_t n) {
  for (int64_t c = 0; c < n; ++c) y[c] = x[c] * z[c];
}

}  // namespace

void CpuBackend::attention_dropout(float* out, const float* in, const ProbabilityBlock& blk,
                                   const AttentionDropoutArgs& a) {
  const int64_t rows = blk.batch * blk.heads * blk.rows;
  parallel_for(rows, rows_per_chunk(blk.cols), [&](int64_t r0, int64_t r1) {
    std::vector<float> z(static_cast<size_t>(blk.cols));
    for (int64_t r = r0; r < r1; ++r) {  // r = (b * heads + h) * rows + row
      const int64_t b = r / (blk.heads * blk.rows), h = r / blk.rows % blk.heads, i = r % blk.rows;
      const uint64_t e0 = attention_dropout::element(a, h, blk.row0 + i, blk.col0, blk.tq, blk.tk);
      keep_scales(a, b, e0, blk.cols, z.data());
      scale_row(out + r * blk.cols, in + r * blk.cols, z.data(), blk.cols);
    }
  });
}

}  // namespace attn
