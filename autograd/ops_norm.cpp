// LayerNorm and RMSNorm as fused ops: the kernels (core/cpu/fused.cpp and
// the CUDA twins) do the whole row in one pass and save mean/rstd for the
// backward. Written with the basic ops, LayerNorm would make six
// intermediate tensors and a graph of eight nodes per call.
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

void check_affine(const char* op, const Tensor& p, const char* name, int64_t cols,
                  const Device& device) {
  if (!p.defined()) return;
  require_float(op, p, name);
  check(p.dim() == 1 && p.shape()[0] == cols, op, ": ", name, " has shape ", shape_str(p.shape()),
        ", expected [", cols, "] (the size of the last dim)");
  check(p.device() == device, op, ": inputs are on different devices: ", device.str(), " and ",
        p.device().str());
}

const float* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Tensor& weight, const Tensor& bias, float eps) {
  require_defined("layer_norm", x_in);
  require_float("layer_norm", x_in);
  check(x_in.dim() >= 1, "layer_norm: expected at least 1 dim, got a scalar");
  const int64_t cols = x_in.shape().back(), rows = cols == 0 ? 0 : x_in.numel() / cols;
  check_affine("layer_norm", weight, "weight", cols, x_in.device());
  check_affine("layer_norm", bias, "bias", cols, x_in.device());
  const Tensor x = x_in.detach().contiguous();
  const Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  const Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = empty(x.shape(), DType::Float32, x.device());
  Tensor mean = empty({rows}, DType::Float32, x.device());
  Tensor rstd = empty({rows}, DType::Float32, x.device());
  if (rows > 0)
    backend_for(x.device()).layer_norm(y.data<float>(), mean.data<float>(), rstd.data<float>(),
                                       x.data<float>(), ptr_or_null(w), ptr_or_null(b), rows,
                                       cols, eps);
  return record(y, "layer_norm", {x_in, weight, bias},
                [x, w, b, mean, rstd, rows, cols](const Tensor& g_in) {
    const Tensor g = g_in.contiguous();
    Tensor dx = empty(x.shape(), DType::Float32, x.device());
    Tensor dw = w.defined() ? empty({cols}, DType::Float32, x.device()) : Tensor();
    Tensor db = b.defined() ? empty({cols}, DType::Float32, x.device()) : Tensor();
    if (rows > 0)
      backend_for(x.device()).layer_norm_backward(
          dx.data<float>(), dw.defined() ? dw.data<float>() : nullptr,
          db.defined() ? db.data<float>() : nullptr, g.data<float>(), x.data<float>(),
          mean.data<float>(), rstd.data<float>(), ptr_or_null(w), rows, cols);
    else if (dw.defined() || db.defined()) {
      if (dw.defined()) dw = zeros({cols}, DType::Float32, x.device());
      if (db.defined()) db = zeros({cols}, DType::Float32, x.device());
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, float eps) {
  require_defined("rms_norm", x_in);
  require_float("rms_norm", x_in);
  check(x_in.dim() >= 1, "rms_norm: expected at least 1 dim, got a scalar");
  const int64_t cols = x_in.shape().back(), rows = cols == 0 ? 0 : x_in.numel() / cols;
  check_affine("rms_norm", weight, "weight", cols, x_in.device());
  const Tensor x = x_in.detach().contiguous();
  const Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor y = empty(x.shape(), DType::Float32, x.device());
  Tensor rstd = empty({rows}, DType::Float32, x.device());
  if (rows > 0)
    backend_for(x.device()).rms_norm(y.data<float>(), rstd.data<float>(), x.data<float>(),
                                     ptr_or_null(w), rows, cols, eps);
  return record(y, "rms_norm", {x_in, weight}, [x, w, rstd, rows, cols](const Tensor& g_in) {
    const Tensor g = g_in.contiguous();
    Tensor dx = empty(x.shape(), DType::Float32, x.device());
    Tensor dw = w.defined() ? zeros({cols}, DType::Float32, x.device()) : Tensor();
    if (rows > 0)
      backend_for(x.device()).rms_norm_backward(dx.data<float>(),
                                                dw.defined() ? dw.data<float>() : nullptr,
                                                g.data<float>(), x.data<float>(),
                                                rstd.data<float>(), ptr_or_null(w), rows, cols);
    return std::vector<Tensor>{dx, dw};
  });
}

}  // namespace attn
