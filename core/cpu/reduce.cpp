// Reductions on the CPU: for each index of the kept (outer) dims, walk the
// reduced (inner) dims. Sums accumulate in double so long rows stay accurate.
// Outputs (or, for sums down columns, chunks of rows) go to the thread pool.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/lanes.h"
#include "core/cpu/parallel.h"
#include "core/cpu/strided.h"
#include "core/cpu/vmath.h"

namespace attn {
using namespace cpu;

namespace {

// True when the kept dims are the innermost block of memory (stride 1 up to
// `outer` elements), e.g. summing a [N, C] gradient over N. Then whole rows
// can be added at once instead of striding through memory per output.
bool outer_is_inner_block(const View& in, int outer_dims, int64_t outer) {
  int64_t expected = 1;
  for (int d = outer_dims - 1; d >= 0; --d) {
    if (in.shape[d] != 1 && in.strides[d] != expected) return false;
    expected *= in.shape[d];
  }
  for (int d = outer_dims; d < in.ndim; ++d)
    if (in.shape[d] != 1 && in.strides[d] < outer) return false;
  return true;
}

// Element offset of the flat (row-major) index `flat` of a walk over shape.
int64_t offset_of(int64_t flat, int ndim, const int64_t* shape, const int64_t* strides) {
  int64_t off = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    off += (flat % shape[d]) * strides[d];
    flat /= shape[d];
  }
  return off;
}

ATTN_VECTOR_CLONES void add_row(double* acc, const float* row, int64_t n) {
  for (int64_t j = 0; j < n; ++j) acc[j] += row[j];
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const View& out, const View& in, int outer_dims) {
  const int inner_dims = in.ndim - outer_dims;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < outer_dims; ++d) outer *= in.shape[d];
  for (int d = outer_dims; d < in.ndim; ++d) inner *= in.shape[d];
  const int64_t* inner_shape = in.shape + outer_dims;
  const int64_t* inner_strides = in.strides + outer_dims;
  const float* p = static_cast<const float*>(in.data);

  if (op == ReduceOp::Sum && outer_dims > 0 && outer_is_inner_block(in, outer_dims, outer)) {
    // Whole rows of `outer` sums at a time (a bias gradient: [N, C] summed
    // over N). Each chunk of rows keeps its own partial sums; the chunks
    // are added in order, so the thread count never changes the result.
    const int64_t grain = rows_per_chunk(outer);
    const int64_t chunks = chunk_count(inner, grain);
    std::vector<double> partial(chunks * outer, 0.0);
    parallel_for(inner, grain, [&](int64_t k0, int64_t k1) {
      double* acc = partial.data() + (k0 / grain) * outer;
      for (int64_t k = k0; k < k1; ++k)
        add_row(acc, p + offset_of(k, inner_dims, inner_shape, inner_strides), outer);
    });
    float* o = static_cast<float*>(out.data);
    for (int64_t j = 0; j < outer; ++j) {
      double s = 0;
      for (int64_t c = 0; c < chunks; ++c) s += partial[c * outer + j];
      o[j] = static_cast<float>(s);
    }
    return;
  }

  // One output at a time, the outputs spread over the pool.
  // The reduced dims one dense run (a row): the vectorised sum.
  bool contiguous_rows = true;
  for (int64_t d = in.ndim - 1, expected = 1; d >= outer_dims; expected *= in.shape[d--])
    contiguous_rows &= in.shape[d] == 1 || in.strides[d] == expected;
  parallel_for(outer, rows_per_chunk(inner),
               [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t base = offset_of(j, outer_dims, in.shape, in.strides);
      if (op == ReduceOp::Sum && contiguous_rows) {
        static_cast<float*>(out.data)[j] = static_cast<float>(sum_of(p + base, inner));
        continue;
      }
      double acc = op == ReduceOp::Sum ? 0.0
                   : op == ReduceOp::Max || op == ReduceOp::ArgMax
                       ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
      int64_t best = 0, k = 0;
      bool seen_nan = false;
      strided_for_each<1>(inner_dims, inner_shape, {inner_strides}, [&](const auto& off) {
        const double x = p[base + off[0]];
        if (op == ReduceOp::Sum) {
          acc += x;
        } else if (!seen_nan) {
          // NaN wins, as in PyTorch: a NaN must not hide.
          const bool better = std::isnan(x) || (op == ReduceOp::Max || op == ReduceOp::ArgMax
                                                    ? x > acc
                                                    : x < acc);
          if (better || k == 0) {
            acc = x;
            best = k;
            seen_nan = std::isnan(x);
          }
        }
        ++k;
      });
      if (op == ReduceOp::ArgMax || op == ReduceOp::ArgMin)
        static_cast<int64_t*>(out.data)[j] = best;
      else
        static_cast<float*>(out.data)[j] = static_cast<float>(acc);
    }
  });
}

}  // namespace attn
