// Mixed precision, as torch.autocast does it: inside an AutocastGuard for
// bfloat16, the model's matrix products (every Linear layer, flash
// attention and the tied LM head) take their operands rounded to bfloat16 and accumulate in float32,
// as bfloat16 tensor cores do. Everything else stays float32: the master
// weights and the optimizer's moments (a small update added to a bfloat16
// weight would round away), norms, softmax statistics, the loss.
//
// Linear layers (autograd/ops_matmul.cpp, linear()) read the guard
// themselves: their three products (forward, dx, dw) multiply bfloat16
// tensors, the output gradient rounded too, as PyTorch's bfloat16 backward
// does; on the GPU those are bfloat16 tensor-core products, on the CPU
// float32 ones over the widened (exact) values. The tied LM head, a
// matmul, takes its operands through autocast_operand below: a rounding op
// whose gradient passes straight through (the derivative of "the same
// number, rounded" is taken as 1), its product and gradients float32.
// Flash attention (attention/flash.cpp) reads the guard too: its products
// take bfloat16 operands (FlashProducts in core/backend.h), the softmax's
// statistics and the output stay float32.
#pragma once
#include "core/dtype.h"
#include "core/tensor.h"

namespace attn {

class AutocastGuard {
 public:
  explicit AutocastGuard(DType dtype);  // Float32 (off) or BFloat16
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType previous_;
};

// The dtype products round their operands to: Float32 = none.
DType autocast_dtype();

// x with every value rounded to the nearest bfloat16 (still float32).
// Differentiable: dL/dx = dL/dy.
Tensor round_to_bfloat16(const Tensor& x);

// An operand of a matmul (the LM head): round_to_bfloat16(x) under
// bfloat16 autocast, else x itself.
Tensor autocast_operand(const Tensor& x);

}  // namespace attn
