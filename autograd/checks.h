// Input checks shared by the ops: one wording for every op.
#pragma once
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace attn {

// The device all inputs share, or an error naming the two that differ.
inline Device common_device(const char* op, const std::vector<Tensor>& xs) {
  const Device d = xs.front().device();
  for (const Tensor& x : xs)
    check(x.device() == d, op, ": inputs are on different devices: ", d.str(), " and ",
          x.device().str(), "; move them with to() first");
  return d;
}

inline void require_float(const char* op, const Tensor& x, const char* what = "input") {
  check(x.dtype() == DType::Float32, op, ": ", what, " must be float32, got ",
        dtype_name(x.dtype()));
}

inline void require_defined(const char* op, const Tensor& x) {
  check(x.defined(), op, ": got an undefined tensor");
}

// Sums a broadcast gradient back down to `shape` (the backward of broadcasting).
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace attn
