// Mixed precision, as torch.autocast does it: inside an AutocastGuard for
// bfloat16, the model's matrix products (every Linear layer and the tied LM
// head) take their operands rounded to bfloat16 and accumulate in float32,
// as bfloat16 tensor cores do. Everything else stays float32: the master
// weights and the optimizer's moments (a small update added to a bfloat16
// weight would round away), norms, softmax, attention scores, the loss.
//
// The rounding is an op of its own (round_to_bfloat16) whose gradient passes
// straight through: the derivative of "the same number, rounded" is taken
// as 1, and the gradients stay float32. On the CPU the rounded operands are
// float32 tensors holding bfloat16 values, so the products are the library's
// float32 ones: the numbers of bfloat16 training, not its speed.
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

// An operand of a product: round_to_bfloat16(x) under bfloat16 autocast,
// else x itself.
Tensor autocast_operand(const Tensor& x);

}  // namespace attn
