// Elementwise kernels on the CPU. The op is chosen once, outside the loop,
// and handed to a generic walker as a lambda; the walker splits the
// elements (or rows of a strided view) over the thread pool and runs a
// loop along each piece that the compiler vectorises (core/cpu/vmath.h).
#include <cmath>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"
#include "core/cpu/strided.h"
#include "core/cpu/vmath.h"

namespace attn {
using namespace cpu;

namespace {

// One contiguous run of elements, or a strided one. The stride-1 case is
// its own loop: that is the one the compiler can vectorise.
template <class F>
ATTN_VECTOR_CLONES void unary_run(float* o, int64_t so, const float* i, int64_t si, int64_t n, F f) {
  if (so == 1 && si == 1) {
    for (int64_t k = 0; k < n; ++k) o[k] = f(i[k]);
    return;
  }
  for (int64_t k = 0; k < n; ++k) o[k * so] = f(i[k * si]);
}

// b broadcast along the run (stride 0: a bias, a scalar) is common enough
// to get its own vectorised loop, as is a broadcast a.
template <class F>
ATTN_VECTOR_CLONES void binary_run(float* o, int64_t so, const float* a, int64_t sa, const float* b,
                                   int64_t sb, int64_t n, F f) {
  if (so == 1 && sa == 1 && sb == 1) {
    for (int64_t k = 0; k < n; ++k) o[k] = f(a[k], b[k]);
  } else if (so == 1 && sa == 1 && sb == 0) {
    const float y = *b;
    for (int64_t k = 0; k < n; ++k) o[k] = f(a[k], y);
  } else if (so == 1 && sa == 0 && sb == 1) {
    const float x = *a;
    for (int64_t k = 0; k < n; ++k) o[k] = f(x, b[k]);
  } else {
    for (int64_t k = 0; k < n; ++k) o[k * so] = f(a[k * sa], b[k * sb]);
  }
}

template <class F>
void map_unary(const View& out, const View& in, F f) {
  float* o = static_cast<float*>(out.data);
  const float* i = static_cast<const float*>(in.data);
  if (is_dense(out) && is_dense(in)) {
    parallel_for(view_numel(out), kElementGrain,
                 [&](int64_t b, int64_t e) { unary_run(o + b, 1, i + b, 1, e - b, f); });
    return;
  }
  const int last = out.ndim - 1;
  const int64_t rows = row_count(out.ndim, out.shape);
  parallel_for(rows, rows_per_chunk(out.shape[last]), [&](int64_t rb, int64_t re) {
    for_each_row<2>(out.ndim, out.shape, {out.strides, in.strides}, rb, re,
                    [&](const auto& off, int64_t n) {
                      unary_run(o + off[0], out.strides[last], i + off[1], in.strides[last], n, f);
                    });
  });
}

template <class F>
void map_binary(const View& out, const View& a, const View& b, F f) {
  float* o = static_cast<float*>(out.data);
  const float* pa = static_cast<const float*>(a.data);
  const float* pb = static_cast<const float*>(b.data);
  if (is_dense(out) && is_dense(a) && is_dense(b)) {
    parallel_for(view_numel(out), kElementGrain, [&](int64_t s, int64_t e) {
      binary_run(o + s, 1, pa + s, 1, pb + s, 1, e - s, f);
    });
    return;
  }
  const int last = out.ndim - 1;
  const int64_t rows = row_count(out.ndim, out.shape);
  parallel_for(rows, rows_per_chunk(out.shape[last]), [&](int64_t rb, int64_t re) {
    for_each_row<3>(out.ndim, out.shape, {out.strides, a.strides, b.strides}, rb, re,
                    [&](const auto& off, int64_t n) {
                      binary_run(o + off[0], out.strides[last], pa + off[1], a.strides[last],
                                 pb + off[2], b.strides[last], n, f);
                    });
  });
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
    case UnaryOp::Exp: return map_unary(out, in, [](float x) { return vmath::exp(x); });
    case UnaryOp::Log: return map_unary(out, in, [](float x) { return std::log(x); });
    case UnaryOp::Sqrt: return map_unary(out, in, [](float x) { return std::sqrt(x); });
    case UnaryOp::Rsqrt: return map_unary(out, in, [](float x) { return 1.0f / std::sqrt(x); });
    case UnaryOp::Abs: return map_unary(out, in, [](float x) { return std::fabs(x); });
    case UnaryOp::Sign:
      return map_unary(out, in, [](float x) { return static_cast<float>((x > 0) - (x < 0)); });
    case UnaryOp::Relu: return map_unary(out, in, [](float x) { return x > 0 ? x : 0.0f; });
    case UnaryOp::Step: return map_unary(out, in, [](float x) { return x > 0 ? 1.0f : 0.0f; });
    case UnaryOp::Sigmoid: return map_unary(out, in, [](float x) { return vmath::sigmoid(x); });
    case UnaryOp::Tanh: return map_unary(out, in, [](float x) { return vmath::tanh(x); });
    case UnaryOp::Gelu: return map_unary(out, in, [](float x) { return vmath::gelu(x); });
    case UnaryOp::GeluGrad: return map_unary(out, in, [](float x) { return vmath::gelu_grad(x); });
    case UnaryOp::Silu: return map_unary(out, in, [](float x) { return x * vmath::sigmoid(x); });
    case UnaryOp::SiluGrad:
      return map_unary(out, in, [](float x) {
        const float sg = vmath::sigmoid(x);
        return sg * (1.0f + x * (1.0f - sg));
      });
    case UnaryOp::Elu: return map_unary(out, in, [](float x) { return x > 0 ? x : vmath::expm1(x); });
    case UnaryOp::EluGrad: return map_unary(out, in, [](float x) { return x > 0 ? 1.0f : vmath::exp(x); });
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
      return map_binary(out, a, b, [](float g, float x) { return g * vmath::gelu_grad(x); });
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
