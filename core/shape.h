// Shapes, strides and the broadcasting rule.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attn {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& shape);
// Row-major strides: the last dimension moves fastest.
Shape contiguous_strides(const Shape& shape);
// "[2,3,4]", the form every error message uses.
std::string shape_str(const Shape& shape);

// NumPy/PyTorch broadcasting: align from the right; sizes must be equal or 1.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Turns a possibly negative dim into 0..ndim-1, or fails naming the op.
int normalize_dim(int64_t dim, int64_t ndim, const char* op);

}  // namespace attn
