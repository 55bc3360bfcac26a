// Elementwise ops and their gradients.
//
// Broadcasting in the forward pass means summing in the backward pass: if b
// of shape [C] was added to every row of a [N, C], each element of b
// influenced N outputs, so its gradient is the sum of those N gradients.
// `sum_to` does exactly that.
#include "autograd/checks.h"
#include "autograd/ops.h"
#include "autograd/node.h"
#include "core/dispatch.h"

namespace attn {

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int lead = g.dim() - static_cast<int>(shape.size());
  std::vector<int64_t> dims;
  for (int i = 0; i < g.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)) dims.push_back(i);
  return reshape(sum(g, dims, /*keepdim=*/true), shape);
}

namespace {

Tensor binary_kernel(BinaryOp op, const char* name, const Tensor& a, const Tensor& b,
                     DType out_dtype) {
  require_defined(name, a);
  require_defined(name, b);
  const Device d = common_device(name, {a, b});
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, out_dtype, d);
  if (out.numel() > 0)
    backend_for(d).binary(op, out.view_desc(), a.view_desc(shape), b.view_desc(shape));
  return out;
}

Tensor arithmetic(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  require_defined(name, a);
  require_defined(name, b);
  check(a.dtype() == DType::Float32 && b.dtype() == DType::Float32, name,
        ": dtype mismatch: expected float32 inputs, got ", dtype_name(a.dtype()), " and ",
        dtype_name(b.dtype()));
  return binary_kernel(op, name, a, b, DType::Float32);
}

Tensor unary_kernel(UnaryOp op, const char* name, const Tensor& x, float scalar = 0) {
  require_defined(name, x);
  require_float(name, x);
  Tensor out = empty(x.shape(), DType::Float32, x.device());
  if (out.numel() > 0) backend_for(x.device()).unary(op, out.view_desc(), x.view_desc(), scalar);
  return out;
}

// f(x) whose derivative is a pointwise function of x: dx = g * f'(x).
Tensor unary_with_derivative(UnaryOp op, UnaryOp derivative, const char* name, const Tensor& x) {
  return record(unary_kernel(op, name, x), name, {x}, [x, derivative, name](const Tensor& g) {
    return std::vector<Tensor>{mul(g, unary_kernel(derivative, name, x))};
  });
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  // Only the shapes are kept: holding a and b would keep their memory alive
  // until backward, and a sum's gradient never needs their values. (The
  // kernel runs first: it checks that a and b are defined.)
  Tensor out = arithmetic(BinaryOp::Add, "add", a, b);
  return record(out, "add", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = arithmetic(BinaryOp::Sub, "sub", a, b);
  return record(out, "sub", {a, b}, [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return record(arithmetic(BinaryOp::Mul, "mul", a, b), "mul", {a, b}, [a, b](const Tensor& g) {
    // d(ab)/da = b, d(ab)/db = a
    return std::vector<Tensor>{a.requires_grad() ? sum_to(mul(g, b), a.shape()) : Tensor(),
                               b.requires_grad() ? sum_to(mul(g, a), b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  return record(arithmetic(BinaryOp::Div, "div", a, b), "div", {a, b}, [a, b](const Tensor& g) {
    // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
    return std::vector<Tensor>{
        a.requires_grad() ? sum_to(div(g, b), a.shape()) : Tensor(),
        b.requires_grad() ? sum_to(neg(div(mul(g, a), square(b))), b.shape()) : Tensor()};
  });
}

namespace {
// max/min send the gradient to whichever input won (a on ties).
Tensor pick(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  return record(arithmetic(op, name, a, b), name, {a, b}, [a, b, op](const Tensor& g) {
    const Tensor a_wins = op == BinaryOp::Max ? ge(a, b) : le(a, b);
    const Tensor zero = zeros({}, DType::Float32, g.device());
    return std::vector<Tensor>{sum_to(where(a_wins, g, zero), a.shape()),
                               sum_to(where(a_wins, zero, g), b.shape())};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return pick(BinaryOp::Max, "maximum", a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return pick(BinaryOp::Min, "minimum", a, b); }

Tensor add(const Tensor& a, float s) {
  return record(unary_kernel(UnaryOp::AddScalar, "add", a, s), "add_scalar", {a},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, float s) {
  return record(unary_kernel(UnaryOp::MulScalar, "mul", a, s), "mul_scalar", {a},
                [s](const Tensor& g) { return std::vector<Tensor>{mul(g, s)}; });
}

Tensor pow(const Tensor& a, float e) {
  return record(unary_kernel(UnaryOp::PowScalar, "pow", a, e), "pow", {a}, [a, e](const Tensor& g) {
    return std::vector<Tensor>{mul(g, mul(pow(a, e - 1), e))};
  });
}

Tensor neg(const Tensor& a) {
  return record(unary_kernel(UnaryOp::Neg, "neg", a), "neg", {a},
                [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& a) {
  Tensor y = unary_kernel(UnaryOp::Exp, "exp", a);
  // d exp(x) = exp(x): reuse the output instead of recomputing it.
  return record(y, "exp", {a}, [y = y.detach()](const Tensor& g) {
    return std::vector<Tensor>{mul(g, y)};
  });
}

Tensor log(const Tensor& a) {
  return record(unary_kernel(UnaryOp::Log, "log", a), "log", {a},
                [a](const Tensor& g) { return std::vector<Tensor>{div(g, a)}; });
}

Tensor sqrt(const Tensor& a) {
  Tensor y = unary_kernel(UnaryOp::Sqrt, "sqrt", a);
  return record(y, "sqrt", {a}, [y = y.detach()](const Tensor& g) {
    return std::vector<Tensor>{div(mul(g, 0.5f), y)};  // 1 / (2 sqrt(x))
  });
}

Tensor rsqrt(const Tensor& a) {
  Tensor y = unary_kernel(UnaryOp::Rsqrt, "rsqrt", a);
  return record(y, "rsqrt", {a}, [y = y.detach()](const Tensor& g) {
    return std::vector<Tensor>{mul(g, mul(pow(y, 3), -0.5f))};  // -x^(-3/2) / 2
  });
}

Tensor square(const Tensor& a) {
  return record(unary_kernel(UnaryOp::Square, "square", a), "square", {a},
                [a](const Tensor& g) { return std::vector<Tensor>{mul(g, mul(a, 2.0f))}; });
}

Tensor tanh(const Tensor& a) {
  Tensor y = unary_kernel(UnaryOp::Tanh, "tanh", a);
  return record(y, "tanh", {a}, [y = y.detach()](const Tensor& g) {
    return std::vector<Tensor>{mul(g, sub(ones({}, DType::Float32, y.device()), square(y)))};
  });
}

Tensor sigmoid(const Tensor& a) {
  Tensor y = unary_kernel(UnaryOp::Sigmoid, "sigmoid", a);
  return record(y, "sigmoid", {a}, [y = y.detach()](const Tensor& g) {
    return std::vector<Tensor>{mul(g, mul(y, add(neg(y), 1.0f)))};  // s (1 - s)
  });
}

Tensor abs(const Tensor& a) { return unary_with_derivative(UnaryOp::Abs, UnaryOp::Sign, "abs", a); }
Tensor relu(const Tensor& a) { return unary_with_derivative(UnaryOp::Relu, UnaryOp::Step, "relu", a); }
Tensor gelu(const Tensor& a) { return unary_with_derivative(UnaryOp::Gelu, UnaryOp::GeluGrad, "gelu", a); }
Tensor silu(const Tensor& a) { return unary_with_derivative(UnaryOp::Silu, UnaryOp::SiluGrad, "silu", a); }
Tensor elu(const Tensor& a) { return unary_with_derivative(UnaryOp::Elu, UnaryOp::EluGrad, "elu", a); }

Tensor sin(const Tensor& a) {
  return record(unary_kernel(UnaryOp::Sin, "sin", a), "sin", {a},
                [a](const Tensor& g) { return std::vector<Tensor>{mul(g, cos(a))}; });
}

Tensor cos(const Tensor& a) {
  return record(unary_kernel(UnaryOp::Cos, "cos", a), "cos", {a},
                [a](const Tensor& g) { return std::vector<Tensor>{neg(mul(g, sin(a)))}; });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator+(const Tensor& a, float s) { return add(a, s); }
Tensor operator+(float s, const Tensor& a) { return add(a, s); }
Tensor operator-(const Tensor& a, float s) { return add(a, -s); }
Tensor operator-(float s, const Tensor& a) { return add(neg(a), s); }
Tensor operator*(const Tensor& a, float s) { return mul(a, s); }
Tensor operator*(float s, const Tensor& a) { return mul(a, s); }
Tensor operator/(const Tensor& a, float s) { return mul(a, 1.0f / s); }

// ---- comparisons: bool results, no gradient ----

namespace {
Tensor compare(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  return binary_kernel(op, name, a, b, DType::Bool);
}
Tensor scalar_like(const Tensor& a, double s) { return full({}, s, a.dtype(), a.device()); }
}  // namespace

Tensor gt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ge, "ge", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Le, "le", a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Ne, "ne", a, b); }
Tensor gt(const Tensor& a, double s) { return gt(a, scalar_like(a, s)); }
Tensor lt(const Tensor& a, double s) { return lt(a, scalar_like(a, s)); }
Tensor eq(const Tensor& a, double s) { return eq(a, scalar_like(a, s)); }
Tensor ne(const Tensor& a, double s) { return ne(a, scalar_like(a, s)); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return compare(BinaryOp::And, "logical_and", a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return compare(BinaryOp::Or, "logical_or", a, b); }

Tensor logical_not(const Tensor& a) {
  require_defined("logical_not", a);
  Tensor out = empty(a.shape(), DType::Bool, a.device());
  if (out.numel() > 0)
    backend_for(a.device()).unary(UnaryOp::LogicalNot, out.view_desc(), a.view_desc(), 0);
  return out;
}

}  // namespace attn
