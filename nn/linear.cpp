#include "nn/linear.h"

#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

void init_normal(Tensor& t, float std, Generator& gen) {
  const Tensor values = randn(t.shape(), gen, t.device());
  backend_for(t.device()).unary(UnaryOp::MulScalar, t.view_desc(), values.view_desc(), std);
}

Linear::Linear(int64_t in, int64_t out, bool bias, Generator& gen, float init_std)
    : in_(in), out_(out) {
  check(in > 0 && out > 0, "Linear: sizes must be positive, got in=", in, " out=", out);
  Tensor w = empty({out, in});
  init_normal(w, init_std, gen);
  weight_ = &register_parameter("weight", w);
  if (bias) bias_ = &register_parameter("bias", zeros({out}));
}

Tensor Linear::forward(const Tensor& x) const {
  check(x.dim() >= 1 && x.shape().back() == in_, "Linear: input of shape ", shape_str(x.shape()),
        " does not end in in_features=", in_);
  // One product with the bias added in its epilogue (autograd/ops_matmul.cpp;
  // under bfloat16 autocast, a product of bfloat16 operands).
  return linear(x, *weight_, bias_ ? *bias_ : Tensor());
}

}  // namespace attn
