// Dropout as an op: each element kept with probability 1 - p and scaled by
// 1 / (1 - p) (so the expected value is unchanged), the rest set to 0.
//
// The keep decisions come from Philox (core/philox.h), keyed by the stream
// (seed, offset), the sample (the row's index in the data order) and the
// element within the sample: the backward asks the same kernel for the
// same mask and applies it to the gradient (dL/dx = dL/dy * mask / (1 - p)),
// so no mask is ever stored.
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

DropoutArgs args_for(const Tensor& x, float p, const philox::Stream& stream, int64_t first_sample) {
  DropoutArgs a;
  a.seed = stream.seed;
  a.offset = stream.offset;
  a.first_sample = first_sample;
  a.sample_size = x.dim() == 0 || x.shape()[0] == 0 ? 1 : x.numel() / x.shape()[0];
  a.p = p;
  return a;
}

// y = residual + dropout(x) (no residual when it is undefined).
Tensor dropout_op(const char* name, const Tensor& residual, const Tensor& x_in, float p,
                  const philox::Stream& stream, int64_t first_sample) {
  require_defined(name, x_in);
  require_float(name, x_in, "x");
  check(p >= 0 && p < 1, name, ": p must be in [0, 1), got ", p);
  check(first_sample >= 0, name, ": first_sample must be >= 0, got ", first_sample);
  if (residual.defined()) {
    require_float(name, residual, "residual");
    common_device(name, {residual, x_in});
    check(residual.shape() == x_in.shape(), name, ": residual ", shape_str(residual.shape()),
          " and x ", shape_str(x_in.shape()), " must have the same shape");
  }
  const Tensor x = x_in.detach().contiguous();
  const Tensor r = residual.defined() ? residual.detach().contiguous() : Tensor();
  const DropoutArgs a = args_for(x, p, stream, first_sample);
  Tensor y = empty(x.shape(), DType::Float32, x.device());
  backend_for(x.device()).dropout(y.data<float>(), x.data<float>(), r.defined() ? r.data<float>() : nullptr,
                                  x.numel(), a);
  const bool with_residual = residual.defined();
  std::vector<Tensor> inputs = with_residual ? std::vector<Tensor>{residual, x_in} : std::vector<Tensor>{x_in};
  return record(y, name, inputs, [a, with_residual](const Tensor& g_in) {
    const Tensor g = g_in.contiguous();
    Tensor dx = empty(g.shape(), DType::Float32, g.device());
    backend_for(g.device()).dropout(dx.data<float>(), g.data<float>(), nullptr, g.numel(), a);
    return with_residual ? std::vector<Tensor>{g, dx} : std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor dropout(const Tensor& x, float p, const philox::Stream& stream, int64_t first_sample) {
  return dropout_op("dropout", Tensor(), x, p, stream, first_sample);
}

Tensor dropout_add(const Tensor& residual, const Tensor& x, float p, const philox::Stream& stream,
                   int64_t first_sample) {
  require_defined("dropout_add", residual);
  return dropout_op("dropout_add", residual, x, p, stream, first_sample);
}

}  // namespace attn
