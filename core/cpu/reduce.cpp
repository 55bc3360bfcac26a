// Reductions on the CPU: for each index of the kept (outer) dims, walk the
// reduced (inner) dims. Sums accumulate in double so long rows stay accurate.
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

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

}  // namespace

void CpuBackend::reduce(ReduceOp op, const View& out, const View& in, int outer_dims) {
  const int inner_dims = in.ndim - outer_dims;
  int64_t outer = 1;
  for (int d = 0; d < outer_dims; ++d) outer *= in.shape[d];
  const float* p = static_cast<const float*>(in.data);

  if (op == ReduceOp::Sum && outer_dims > 0 && outer_is_inner_block(in, outer_dims, outer)) {
    std::vector<double> acc(outer, 0.0);
    strided_for_each<1>(inner_dims, in.shape + outer_dims, {in.strides + outer_dims},
                        [&](const auto& off) {
                          const float* row = p + off[0];
                          for (int64_t j = 0; j < outer; ++j) acc[j] += row[j];
                        });
    float* o = static_cast<float*>(out.data);
    for (int64_t j = 0; j < outer; ++j) o[j] = static_cast<float>(acc[j]);
    return;
  }

  int64_t j = 0;  // position in the contiguous output
  strided_for_each<1>(outer_dims, in.shape, {in.strides}, [&](const auto& base) {
    double acc = op == ReduceOp::Sum ? 0.0
                 : op == ReduceOp::Max || op == ReduceOp::ArgMax
                     ? -std::numeric_limits<double>::infinity()
                     : std::numeric_limits<double>::infinity();
    int64_t best = 0, k = 0;
    bool seen_nan = false;
    strided_for_each<1>(inner_dims, in.shape + outer_dims, {in.strides + outer_dims},
                        [&](const auto& off) {
                          const double x = p[base[0] + off[0]];
                          if (op == ReduceOp::Sum) {
                            acc += x;
                          } else if (!seen_nan) {
                            // NaN wins, as in PyTorch: a NaN must not hide.
                            const bool better = std::isnan(x) ||
                                                (op == ReduceOp::Max || op == ReduceOp::ArgMax
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
      static_cast<int64_t*>(out.data)[j++] = best;
    else
      static_cast<float*>(out.data)[j++] = static_cast<float>(acc);
  });
}

}  // namespace attn
