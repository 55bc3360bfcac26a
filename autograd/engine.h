// Grad mode and the backward engine.
#pragma once
#include "core/tensor.h"

namespace attn {

// Is the graph being recorded? Off inside a NoGradGuard (evaluation,
// optimizer updates) and while backward runs.
bool grad_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Reverse-mode pass from `root` (see Tensor::backward).
void run_backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace attn
