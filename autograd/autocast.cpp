// Mixed precision: see autocast.h.
#include "autograd/autocast.h"

#include "autograd/checks.h"
#include "autograd/node.h"
#include "core/error.h"

namespace attn {

namespace {
DType current = DType::Float32;
}  // namespace

AutocastGuard::AutocastGuard(DType dtype) : previous_(current) {
  check(dtype == DType::Float32 || dtype == DType::BFloat16, "autocast: ", dtype_name(dtype),
        " is not a precision for products; expected float32 or bfloat16");
  current = dtype;
}

AutocastGuard::~AutocastGuard() { current = previous_; }

DType autocast_dtype() { return current; }

Tensor round_to_bfloat16(const Tensor& x) {
  require_defined("round_to_bfloat16", x);
  require_float("round_to_bfloat16", x, "x");
  // Down to bfloat16 and back: the second conversion is exact.
  const Tensor out = x.to(DType::BFloat16).to(DType::Float32);
  return record(out, "round_to_bfloat16", {x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor autocast_operand(const Tensor& x) {
  return current == DType::BFloat16 ? round_to_bfloat16(x) : x;
}

}  // namespace attn
