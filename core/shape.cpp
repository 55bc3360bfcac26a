#include "core/shape.h"

#include "core/error.h"

namespace attn {

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t step = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = step;
    step *= shape[i];
  }
  return strides;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    // Walk from the right; a missing leading dim acts as size 1.
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, ": shapes ", shape_str(a), " and ", shape_str(b), " cannot be broadcast: size ", da,
           " != ", db, " at dim ", i);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

int normalize_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t lo = -std::max<int64_t>(ndim, 1), hi = std::max<int64_t>(ndim, 1) - 1;
  if (dim < lo || dim > hi)
    fail(op, ": dim ", dim, " is out of range for a tensor with ", ndim, " dims; expected ", lo,
         "..", hi);
  return static_cast<int>(dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim);
}

}  // namespace attn
