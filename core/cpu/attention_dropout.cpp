// Attention dropout on a block of probabilities, on the CPU (the banded
// window path's; the dense path's whole matrix goes through dropout()).
// Each row of the block is one (b, h, query) row of the attention matrix,
// whose keys are consecutive elements of the sample: the row's decisions
// come from cpu::keep_bits (core/cpu/philox_groups.h), many Philox
// evaluations side by side. Rows go to the thread pool; every element's
// decision depends only on its own indices, so any cut gives the same result.
#include <vector>

#include "core/attention_dropout.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"
#include "core/cpu/philox_groups.h"

namespace attn {
using namespace cpu;

void CpuBackend::attention_dropout(float* out, const float* in, const ProbabilityBlock& blk,
                                   const AttentionDropoutArgs& a) {
  const float scale = attention_dropout::keep_scale(a);
  const int64_t rows = blk.batch * blk.heads * blk.rows;
  parallel_for(rows, rows_per_chunk(blk.cols), [&](int64_t r0, int64_t r1) {
    std::vector<uint32_t> bits((blk.cols + 31) / 32);
    for (int64_t r = r0; r < r1; ++r) {  // r = (b * heads + h) * rows + row
      const int64_t b = r / (blk.heads * blk.rows), h = r / blk.rows % blk.heads, i = r % blk.rows;
      const uint64_t e0 = attention_dropout::element(h, blk.row0 + i, blk.col0, blk.tq, blk.tk);
      keep_bits(a, b, e0, blk.cols, bits.data());
      const float* x = in + r * blk.cols;
      float* y = out + r * blk.cols;
      for (int64_t c = 0; c < blk.cols; ++c)
        y[c] = attention_dropout::bit(bits.data(), c) ? x[c] * scale : 0.0f;
    }
  });
}

}  // namespace attn
