// Cross-entropy as one fused op. The kernel computes each row's logsumexp
// once (max-subtracted, so large logits are safe) and the backward reuses it:
//   loss_r = lse(z_r) - z_r[t_r],   d loss_r / d z_r = softmax(z_r) - onehot(t_r).
// Never materialising log_softmax saves a [rows, vocab] tensor per step.
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in) {
  require_defined("cross_entropy", logits_in);
  require_defined("cross_entropy", targets_in);
  require_float("cross_entropy", logits_in, "logits");
  common_device("cross_entropy", {logits_in, targets_in});
  check(targets_in.dtype() == DType::Int64, "cross_entropy: targets must be int64, got ",
        dtype_name(targets_in.dtype()));
  check(logits_in.dim() >= 1 &&
            Shape(logits_in.shape().begin(), logits_in.shape().end() - 1) == targets_in.shape(),
        "cross_entropy: logits of shape ", shape_str(logits_in.shape()),
        " need targets of shape [...] matching all but the last dim; got targets ",
        shape_str(targets_in.shape()));
  const int64_t cols = logits_in.shape().back(), rows = targets_in.numel();
  check(rows > 0 && cols > 0, "cross_entropy: need at least one row and one class, got logits ",
        shape_str(logits_in.shape()));
  const Tensor logits = logits_in.detach().contiguous();
  const Tensor targets = targets_in.contiguous();
  Tensor losses = empty({rows}, DType::Float32, logits.device());
  Tensor lse = empty({rows}, DType::Float32, logits.device());
  Backend& be = backend_for(logits.device());
  const int64_t bad = be.cross_entropy(losses.data<float>(), lse.data<float>(),
                                       logits.data<float>(), targets.data<int64_t>(), rows, cols);
  if (bad >= 0)
    fail("cross_entropy: target ", targets.to_int_vector()[bad], " at position ", bad,
         " is out of range for ", cols, " classes");
  const Tensor loss = mul(sum(losses), 1.0f / static_cast<float>(rows));
  // The mean's gradient g/rows reaches every row; the kernel does the rest.
  Tensor out = record(loss.detach(), "cross_entropy", {logits_in},
                      [logits, targets, lse, rows, cols](const Tensor& g) {
    const Tensor dloss = expand(reshape(mul(g, 1.0f / static_cast<float>(rows)), {1}), {rows}).contiguous();
    Tensor dz = empty(logits.shape(), DType::Float32, logits.device());
    backend_for(logits.device()).cross_entropy_backward(dz.data<float>(), logits.data<float>(),
                                                        lse.data<float>(), targets.data<int64_t>(),
                                                        dloss.data<float>(), rows, cols);
    return std::vector<Tensor>{dz};
  });
  return out;
}

}  // namespace attn
