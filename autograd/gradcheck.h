// Finite-difference gradient checking.
//
// For a function f of some float tensors, gradcheck compares the gradients
// backward() computes with central differences
//     dL/dx_i ~ (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)
// where L = sum(w * f(x)) with fixed random weights w (so every output
// element matters, with a different weight). L is accumulated in double to
// keep the float32 rounding out of the difference.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace attn {

struct GradcheckResult {
  bool ok = true;
  // The worst element: which input, which flat index, and both values.
  int input = -1;
  int64_t index = -1;
  double analytic = 0, numeric = 0, error = 0;
  std::string message;  // a readable report, empty when ok
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Inputs that are float32 and flagged requires_grad are checked; others are
// passed through untouched (indices, masks). The inputs are not modified.
GradcheckResult gradcheck(const GradFn& fn, const std::vector<Tensor>& inputs, double eps = 1e-2,
                          double atol = 1e-2, double rtol = 1e-2);

}  // namespace attn
