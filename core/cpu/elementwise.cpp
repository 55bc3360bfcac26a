// Elementwise kernels on the CPU. The op is chosen once, outside the loop,
// and handed to a generic strided walker as a lambda.
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/strided.h"

namespace attn {
using namespace cpu;

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;

// GELU, tanh form (as in GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline float gelu(float x) {
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}
inline float gelu_grad(float x) {
  const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
  const float t = std::tanh(u);
  const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

template <class F>
void map_unary(const View& out, const View& in, F f) {
  float* o = static_cast<float*>(out.data);
  const float* i = static_cast<const float*>(in.data);
  if (is_dense(out) && is_dense(in)) {
    for (int64_t k = 0, n = view_numel(out); k < n; ++k) o[k] = f(i[k]);
    return;
  }
  strided_for_each<2>(out.ndim, out.shape, {out.strides, in.strides},
                      [&](const auto& off) { o[off[0]] = f(i[off[1]]); });
}

template <class F>
void map_binary(const View& out, const View& a, const View& b, F f) {
  float* o = static_cast<float*>(out.data);
  const float* pa = static_cast<const float*>(a.data);
  const float* pb = static_cast<const float*>(b.data);
  if (is_dense(out) && is_dense(a) && is_dense(b)) {
    for (int64_t k = 0, n = view_numel(out); k < n; ++k) o[k] = f(pa[k], pb[k]);
    return;
  }
  strided_for_each<3>(out.ndim, out.shape, {out.strides, a.strides, b.strides},
                      [&](const auto& off) { o[off[0]] = f(pa[off[1]], pb[off[2]]); });
}

// Comparisons and logic write bools and may read any dtype: the general path.
// Two int64 inputs are compared as int64: through double, ids above 2^53
// would round and compare equal when they are not.
template <class F>
void map_to_bool(const View& out, const View& a, const View& b, F f) {
  uint8_t* o = static_cast<uint8_t*>(out.data);
  const int i64 = static_cast<int>(DType::Int64);
  if (a.dtype == i64 && b.dtype == i64) {
    const int64_t* pa = static_cast<const int64_t*>(a.data);
    const int64_t* pb = static_cast<const int64_t*>(b.data);
    strided_for_each<3>(out.ndim, out.shape, {out.strides, a.strides, b.strides},
                        [&](const auto& off) { o[off[0]] = f(pa[off[1]], pb[off[2]]); });
    return;
  }
  strided_for_each<3>(out.ndim, out.shape, {out.strides, a.strides, b.strides},
                      [&](const auto& off) { o[off[0]] = f(load(a, off[1]), load(b, off[2])); });
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const View& out, const View& in, float s) {
  switch (op) {
    case UnaryOp::Neg: return map_unary(out, in, [](float x) { return -x; });
    case UnaryOp::Exp: return map_unary(out, in, [](float x) { return std::exp(x); });
    case UnaryOp::Log: return map_unary(out, in, [](float x) { return std::log(x); });
    case UnaryOp::Sqrt: return map_unary(out, in, [](float x) { return std::sqrt(x); });
    case UnaryOp::Rsqrt: return map_unary(out, in, [](float x) { return 1.0f / std::sqrt(x); });
    case UnaryOp::Abs: return map_unary(out, in, [](float x) { return std::fabs(x); });
    case UnaryOp::Sign:
      return map_unary(out, in, [](float x) { return static_cast<float>((x > 0) - (x < 0)); });
    case UnaryOp::Relu: return map_unary(out, in, [](float x) { return x > 0 ? x : 0.0f; });
    case UnaryOp::Step: return map_unary(out, in, [](float x) { return x > 0 ? 1.0f : 0.0f; });
    case UnaryOp::Sigmoid: return map_unary(out, in, sigmoid);
    case UnaryOp::Tanh: return map_unary(out, in, [](float x) { return std::tanh(x); });
    case UnaryOp::Gelu: return map_unary(out, in, gelu);
    case UnaryOp::GeluGrad: return map_unary(out, in, gelu_grad);
    case UnaryOp::Silu: return map_unary(out, in, [](float x) { return x * sigmoid(x); });
    case UnaryOp::SiluGrad:
      return map_unary(out, in, [](float x) {
        const float sg = sigmoid(x);
        return sg * (1.0f + x * (1.0f - sg));
      });
    case UnaryOp::Elu: return map_unary(out, in, [](float x) { return x > 0 ? x : std::expm1(x); });
    case UnaryOp::EluGrad: return map_unary(out, in, [](float x) { return x > 0 ? 1.0f : std::exp(x); });
    case UnaryOp::Sin: return map_unary(out, in, [](float x) { return std::sin(x); });
    case UnaryOp::Cos: return map_unary(out, in, [](float x) { return std::cos(x); });
    case UnaryOp::Square: return map_unary(out, in, [](float x) { return x * x; });
    case UnaryOp::Reciprocal: return map_unary(out, in, [](float x) { return 1.0f / x; });
    case UnaryOp::AddScalar: return map_unary(out, in, [s](float x) { return x + s; });
    case UnaryOp::MulScalar: return map_unary(out, in, [s](float x) { return x * s; });
    case UnaryOp::PowScalar: return map_unary(out, in, [s](float x) { return std::pow(x, s); });
    case UnaryOp::LogicalNot: {
      uint8_t* o = static_cast<uint8_t*>(out.data);
      strided_for_each<2>(out.ndim, out.shape, {out.strides, in.strides},
                          [&](const auto& off) { o[off[0]] = load(in, off[1]) == 0; });
      return;
    }
  }
}

void CpuBackend::binary(BinaryOp op, const View& out, const View& a, const View& b) {
  switch (op) {
    case BinaryOp::Add: return map_binary(out, a, b, [](float x, float y) { return x + y; });
    case BinaryOp::Sub: return map_binary(out, a, b, [](float x, float y) { return x - y; });
    case BinaryOp::Mul: return map_binary(out, a, b, [](float x, float y) { return x * y; });
    case BinaryOp::Div: return map_binary(out, a, b, [](float x, float y) { return x / y; });
    // A NaN on either side wins (as torch.maximum): a NaN is never quietly dropped.
    case BinaryOp::Max: return map_binary(out, a, b, [](float x, float y) { return x >= y || x != x ? x : y; });
    case BinaryOp::Min: return map_binary(out, a, b, [](float x, float y) { return x <= y || x != x ? x : y; });
    case BinaryOp::Pow: return map_binary(out, a, b, [](float x, float y) { return std::pow(x, y); });
    case BinaryOp::GeluBackward:
      return map_binary(out, a, b, [](float g, float x) { return g * gelu_grad(x); });
    case BinaryOp::Gt: return map_to_bool(out, a, b, [](auto x, auto y) { return x > y; });
    case BinaryOp::Ge: return map_to_bool(out, a, b, [](auto x, auto y) { return x >= y; });
    case BinaryOp::Lt: return map_to_bool(out, a, b, [](auto x, auto y) { return x < y; });
    case BinaryOp::Le: return map_to_bool(out, a, b, [](auto x, auto y) { return x <= y; });
    case BinaryOp::Eq: return map_to_bool(out, a, b, [](auto x, auto y) { return x == y; });
    case BinaryOp::Ne: return map_to_bool(out, a, b, [](auto x, auto y) { return x != y; });
    case BinaryOp::And: return map_to_bool(out, a, b, [](auto x, auto y) { return x != 0 && y != 0; });
    case BinaryOp::Or: return map_to_bool(out, a, b, [](auto x, auto y) { return x != 0 || y != 0; });
  }
}

void CpuBackend::where(const View& out, const View& cond, const View& a, const View& b) {
  float* o = static_cast<float*>(out.data);
  const uint8_t* c = static_cast<const uint8_t*>(cond.data);
  const float* pa = static_cast<const float*>(a.data);
  const float* pb = static_cast<const float*>(b.data);
  std::array<const int64_t*, 4> strides = {out.strides, cond.strides, a.strides, b.strides};
  strided_for_each<4>(out.ndim, out.shape, strides, [&](const auto& off) {
    o[off[0]] = c[off[1]] ? pa[off[2]] : pb[off[3]];
  });
}

}  // namespace attn
