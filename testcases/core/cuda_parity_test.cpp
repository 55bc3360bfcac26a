// CUDA parity: every kernel of core/backend.h runs on CPU tensors and on
// .to(Device::cuda()) copies of them, and outputs and gradients must agree
// (~1e-5 relative; matrix products a little looser). Most ops go through the
// public API (autograd/ops.h); adamw, whose op lives above core, is driven
// through the Backend directly (flash attention: flash_cuda_test.cpp).
// Also: the CUDA allocator's counters, out-of-memory and bad-index errors.
//
// Without a usable GPU (or in a build without CUDA) every test skips, saying
// why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif

namespace {

using namespace attn;

const Device kCuda = Device::cuda(0);
const Device kCpu = Device::cpu();

std::string cuda_reason() {
  try {
    backend_for(kCuda);
    return "cuda_available() is false";
  } catch (const Error& e) {
    return e.what();
  }
}

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda_reason()

Tensor gpu(const Tensor& t) { return t.to(kCuda); }

Tensor rnd(const Shape& s, uint64_t seed, float lo = -2, float hi = 2) {
  Generator g(seed);
  Tensor t = rand(s, g);
  return add(mul(t, hi - lo), lo);
}

Tensor normal(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g);
}

// Compares a CPU result with a CUDA result: same shape and dtype; floats
// within atol + rtol * |expected| (NaN matches NaN, inf matches inf),
// integers and bools exactly.
::testing::AssertionResult close(const Tensor& cpu, const Tensor& cuda, double rtol = 1e-5,
                                 double atol = 1e-6) {
  if (!cpu.defined() || !cuda.defined())
    return ::testing::AssertionFailure() << "undefined tensor (cpu " << cpu.defined() << ", cuda "
                                         << cuda.defined() << ")";
  if (!cuda.device().is_cuda())
    return ::testing::AssertionFailure() << "result is on " << cuda.device().str()
                                         << ", expected cuda";
  if (cpu.shape() != cuda.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(cuda.shape()) << " vs CPU "
                                         << shape_str(cpu.shape());
  if (cpu.dtype() != cuda.dtype())
    return ::testing::AssertionFailure() << "dtype " << dtype_name(cuda.dtype()) << " vs CPU "
                                         << dtype_name(cpu.dtype());
  if (cpu.dtype() != DType::Float32) {
    const auto a = cpu.to_int_vector(), b = cuda.to_int_vector();
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i])
        return ::testing::AssertionFailure()
               << "element " << i << ": cuda " << b[i] << " vs CPU " << a[i];
    return ::testing::AssertionSuccess();
  }
  const auto a = cpu.to_vector(), b = cuda.to_vector();
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (std::isnan(x) || std::isnan(y)) {
      if (std::isnan(x) && std::isnan(y)) continue;
      return ::testing::AssertionFailure() << "element " << i << ": cuda " << y << " vs CPU " << x;
    }
    if (std::isinf(x) || std::isinf(y)) {
      if (x == y) continue;
      return ::testing::AssertionFailure() << "element " << i << ": cuda " << y << " vs CPU " << x;
    }
    const double excess = std::fabs(x - y) - (atol + rtol * std::fabs(x));
    if (excess > worst) worst = excess, worst_i = i;
  }
  if (worst > 0)
    return ::testing::AssertionFailure()
           << "element " << worst_i << " of " << a.size() << ": cuda " << b[worst_i] << " vs CPU "
           << a[worst_i] << " (diff " << std::fabs(a[worst_i] - b[worst_i]) << ", rtol " << rtol
           << ", atol " << atol << ")";
  return ::testing::AssertionSuccess();
}

// Runs fn on CPU inputs and on CUDA copies; compares the outputs.
void same_forward(const std::string& what, const std::vector<Tensor>& inputs,
                  const std::function<Tensor(const std::vector<Tensor>&)>& fn, double rtol = 1e-5,
                  double atol = 1e-6) {
  std::vector<Tensor> on_gpu;
  for (const Tensor& t : inputs) on_gpu.push_back(gpu(t));
  EXPECT_TRUE(close(fn(inputs), fn(on_gpu), rtol, atol)) << what;
}

// Runs fn forward and backward on both devices (loss = sum(out * r) with a
// fixed random r) and compares the outputs and every input's gradient.
void same_gradients(const std::string& what, const std::vector<Tensor>& inputs,
                    const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                    double rtol = 1e-5, double atol = 1e-5) {
  std::vector<Tensor> c, g;
  for (const Tensor& t : inputs) {
    Tensor a = t.clone();
    Tensor b = gpu(t);
    if (t.dtype() == DType::Float32) {
      a.set_requires_grad(true);
      b.set_requires_grad(true);
    }
    c.push_back(a);
    g.push_back(b);
  }
  const Tensor out_c = fn(c), out_g = fn(g);
  ASSERT_TRUE(close(out_c, out_g, rtol, atol)) << what << " (forward)";
  const Tensor r = normal(out_c.shape(), 99);
  sum(mul(out_c, r)).backward();
  sum(mul(out_g, gpu(r))).backward();
  for (size_t i = 0; i < c.size(); ++i) {
    if (!c[i].requires_grad()) continue;
    EXPECT_TRUE(close(c[i].grad(), g[i].grad(), rtol, atol)) << what << ": gradient of input " << i;
  }
}

// ---------------------------------------------------------------------------

TEST(CudaParity, NoDeviceMessage) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  try {
    zeros({2}, DType::Float32, kCuda);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
#ifdef ATTNLAB_WITH_CUDA
    EXPECT_NE(msg.find("device cuda:0: no CUDA device is available (cudaGetDeviceCount: "),
              std::string::npos)
        << msg;
#else
    EXPECT_NE(msg.find("attnlab was built without CUDA"), std::string::npos) << msg;
#endif
  }
}

TEST(CudaParity, CopiesRoundTripEveryDtype) {
  REQUIRE_CUDA();
  const Tensor f = rnd({3, 5}, 1);
  const Tensor i = from_ints({5, -3, 0, 1LL << 40, 7, 9}, {2, 3});
  const Tensor b = from_bools({true, false, false, true}, {4});
  for (const Tensor& t : {f, i, b}) {
    const Tensor back = gpu(t).to(kCpu);
    EXPECT_EQ(back.device(), kCpu);
    EXPECT_TRUE(close(t, gpu(t))) << dtype_name(t.dtype());
    EXPECT_EQ(back.to_int_vector(), t.to_int_vector());
  }
  // Empty and 0-d tensors.
  EXPECT_EQ(gpu(zeros({0, 4})).shape(), (Shape{0, 4}));
  EXPECT_FLOAT_EQ(gpu(full({}, 2.5)).item(), 2.5f);
}

TEST(CudaParity, FillAndConvert) {
  REQUIRE_CUDA();
  for (DType t : {DType::Float32, DType::Int64, DType::Bool}) {
    EXPECT_TRUE(close(full({4, 3}, 3.75, t, kCpu), full({4, 3}, 3.75, t, kCuda))) << dtype_name(t);
    EXPECT_TRUE(close(zeros({7}, t, kCpu), zeros({7}, t, kCuda)));
    EXPECT_TRUE(close(ones({2, 2, 2}, t, kCpu), ones({2, 2, 2}, t, kCuda)));
  }
  // Conversions, also of strided views (a permute and a stepped slice).
  const Tensor x = rnd({4, 5, 6}, 2, -5, 5);
  const auto on = [](const Tensor& base, int which) {
    switch (which) {
      case 0: return base;
      case 1: return permute(base, {2, 0, 1});
      case 2: return slice(base, 2, 1, 6, 2);
      default: return expand(slice(base, 0, 0, 1), {3, 5, 6});
    }
  };
  for (int w = 0; w < 4; ++w) {
    for (DType from : {DType::Float32, DType::Int64, DType::Bool}) {
      const Tensor base_c = x.to(from), base_g = gpu(x).to(from);
      EXPECT_TRUE(close(base_c, base_g)) << "convert to " << dtype_name(from);
      for (DType to : {DType::Float32, DType::Int64, DType::Bool}) {
        EXPECT_TRUE(close(on(base_c, w).to(to), on(base_g, w).to(to)))
            << "view " << w << " " << dtype_name(from) << " -> " << dtype_name(to);
        EXPECT_TRUE(close(on(base_c, w).to(to).contiguous(), on(base_g, w).to(to).contiguous()));
      }
      EXPECT_TRUE(close(on(base_c, w).contiguous(), on(base_g, w).contiguous()))
          << "contiguous copy of view " << w << " " << dtype_name(from);
    }
  }
  // fill through the backend on a strided (transposed) view.
  Tensor c = zeros({5, 7}), g = zeros({5, 7}, DType::Float32, kCuda);
  backend_for(kCpu).fill(transpose(slice(c, 1, 0, 7, 3), 0, 1).view_desc(), -1.5);
  backend_for(kCuda).fill(transpose(slice(g, 1, 0, 7, 3), 0, 1).view_desc(), -1.5);
  EXPECT_TRUE(close(c, g));
}

// Every unary op of the Backend, on contiguous, transposed, broadcast and
// stepped views.
TEST(CudaParity, EveryUnaryKernel) {
  REQUIRE_CUDA();
  const UnaryOp ops[] = {UnaryOp::Neg,     UnaryOp::Exp,        UnaryOp::Log,
                         UnaryOp::Sqrt,    UnaryOp::Rsqrt,      UnaryOp::Abs,
                         UnaryOp::Sign,    UnaryOp::Relu,       UnaryOp::Step,
                         UnaryOp::Sigmoid, UnaryOp::Tanh,       UnaryOp::Gelu,
                         UnaryOp::GeluGrad, UnaryOp::Silu,      UnaryOp::SiluGrad,
                         UnaryOp::Elu,     UnaryOp::EluGrad,    UnaryOp::Sin,
                         UnaryOp::Cos,     UnaryOp::Square,     UnaryOp::Reciprocal,
                         UnaryOp::AddScalar, UnaryOp::MulScalar, UnaryOp::PowScalar};
  for (UnaryOp op : ops) {
    const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt ||
                          op == UnaryOp::PowScalar || op == UnaryOp::Reciprocal;
    const Tensor base = positive ? rnd({37, 29}, 10, 0.1f, 3) : rnd({37, 29}, 10, -3, 3);
    const auto layouts = [](const Tensor& t, int w) {
      switch (w) {
        case 0: return t;
        case 1: return transpose(t, 0, 1);
        case 2: return expand(slice(t, 0, 0, 1), {5, 29});
        default: return slice(slice(t, 0, 1, 37, 3), 1, 0, 29, 2);
      }
    };
    for (int w = 0; w < 4; ++w) {
      const Tensor in_c = layouts(base, w), in_g = layouts(gpu(base), w);
      Tensor out_c = empty(in_c.shape()), out_g = empty(in_c.shape(), DType::Float32, kCuda);
      backend_for(kCpu).unary(op, out_c.view_desc(), in_c.view_desc(), 1.7f);
      backend_for(kCuda).unary(op, out_g.view_desc(), in_g.view_desc(), 1.7f);
      EXPECT_TRUE(close(out_c, out_g, 2e-6, 1e-6)) << "unary op " << static_cast<int>(op)
                                                   << " layout " << w;
    }
  }
  // LogicalNot reads any dtype.
  const Tensor x = from_vector({0, 1.5f, -2, 0, 0, 3}, {2, 3});
  for (DType t : {DType::Float32, DType::Int64, DType::Bool})
    EXPECT_TRUE(close(logical_not(transpose(x.to(t), 0, 1)), logical_not(transpose(gpu(x).to(t), 0, 1))));
}

TEST(CudaParity, ElementwiseOpsThroughTheApi) {
  REQUIRE_CUDA();
  const Tensor a = rnd({3, 1, 5}, 20), b = rnd({4, 1}, 21), p = rnd({2, 6}, 22, 0.2f, 2);
  using V = std::vector<Tensor>;
  same_forward("add", {a, b}, [](const V& v) { return add(v[0], v[1]); });
  same_forward("sub", {a, b}, [](const V& v) { return sub(v[0], v[1]); });
  same_forward("mul", {a, b}, [](const V& v) { return mul(v[0], v[1]); });
  same_forward("div", {a, b}, [](const V& v) { return div(v[0], add(abs(v[1]), 0.5f)); });
  same_forward("maximum", {a, b}, [](const V& v) { return maximum(v[0], v[1]); });
  same_forward("minimum", {a, b}, [](const V& v) { return minimum(v[0], v[1]); });
  same_forward("scalar ops", {a}, [](const V& v) { return 2.5f - v[0] * 3.0f + 1.0f; });
  same_forward("pow", {p}, [](const V& v) { return pow(v[0], 2.5f); });
  same_forward("exp log", {p}, [](const V& v) { return log(exp(v[0]) + sqrt(v[0])); });
  same_forward("activations", {a}, [](const V& v) {
    return relu(v[0]) + sigmoid(v[0]) + tanh(v[0]) + gelu(v[0]) + silu(v[0]) + elu(v[0]) +
           sin(v[0]) + cos(v[0]) + square(v[0]) + neg(v[0]);
  });
  same_forward("rsqrt", {p}, [](const V& v) { return rsqrt(v[0]); });
  // Binary Pow (no public op): through the backend, broadcasting.
  {
    const Tensor x = rnd({4, 6}, 23, 0.1f, 2), y = rnd({6}, 24, -2, 2);
    Tensor oc = empty({4, 6}), og = empty({4, 6}, DType::Float32, kCuda);
    backend_for(kCpu).binary(BinaryOp::Pow, oc.view_desc(), x.view_desc(), y.view_desc({4, 6}));
    backend_for(kCuda).binary(BinaryOp::Pow, og.view_desc(), gpu(x).view_desc(),
                              gpu(y).view_desc({4, 6}));
    EXPECT_TRUE(close(oc, og, 2e-6)) << "binary pow";
  }
  // Max/Min with a NaN on either side give NaN on both devices.
  {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const Tensor x = from_vector({nan, 1, 2, nan}, {4}), y = from_vector({1, nan, 2, nan}, {4});
    same_forward("maximum nan", {x, y}, [](const V& v) { return maximum(v[0], v[1]); });
    same_forward("minimum nan", {x, y}, [](const V& v) { return minimum(v[0], v[1]); });
  }
  // Comparisons on floats, int64 and bools, broadcasting; logic.
  const Tensor fi = from_vector({1, 2, 3, 2, 1, 0}, {2, 3}), fj = from_vector({2, 2, 1}, {3});
  for (DType t : {DType::Float32, DType::Int64}) {
    const Tensor x = fi.to(t), y = fj.to(t);
    same_forward("gt", {x, y}, [](const V& v) { return gt(v[0], v[1]); });
    same_forward("ge", {x, y}, [](const V& v) { return ge(v[0], v[1]); });
    same_forward("lt", {x, y}, [](const V& v) { return lt(v[0], v[1]); });
    same_forward("le", {x, y}, [](const V& v) { return le(v[0], v[1]); });
    same_forward("eq", {x, y}, [](const V& v) { return eq(v[0], v[1]); });
    same_forward("ne", {x, y}, [](const V& v) { return ne(v[0], v[1]); });
    same_forward("eq scalar", {x}, [](const V& v) { return eq(v[0], 2.0); });
  }
  // int64 ids above 2^53 compare exactly (not through double).
  const Tensor big_ids = from_ints({(int64_t{1} << 53) + 1, 5}, {2}),
               big_ids2 = from_ints({int64_t{1} << 53, 5}, {2});
  same_forward("eq int64 > 2^53", {big_ids, big_ids2}, [](const V& v) { return eq(v[0], v[1]); });
  same_forward("gt int64 > 2^53", {big_ids, big_ids2}, [](const V& v) { return gt(v[0], v[1]); });
  const Tensor m1 = from_bools({true, false, true, false}, {2, 2}), m2 = from_bools({true, false}, {2});
  same_forward("and", {m1, m2}, [](const V& v) { return logical_and(v[0], v[1]); });
  same_forward("or", {m1, m2}, [](const V& v) { return logical_or(transpose(v[0], 0, 1), v[1]); });
  // Big enough for many blocks, through a permuted view.
  const Tensor big = rnd({64, 128, 96}, 25);
  same_forward("big permuted", {big}, [](const V& v) { return mul(permute(v[0], {2, 0, 1}), 3.0f) + 1.0f; });
}

// The 16-byte paths (elementwise.cu's to_vec4) and their fallbacks: a head
// transpose made contiguous, a bias broadcast over rows, a dense add, and the
// same on views whose start or strides break 16-byte alignment.
TEST(CudaParity, SixteenByteElementwisePaths) {
  REQUIRE_CUDA();
  const Tensor x = normal({2, 5, 3, 8}, 31), bias = normal({8}, 32), y = normal({2, 5, 3, 8}, 33);
  auto all = [](const std::vector<Tensor>& in) {
    const Tensor heads = contiguous(transpose(in[0], 1, 2));        // vec4 copy
    const Tensor biased = add(reshape(in[0], {30, 8}), in[1]);     // vec4 strided binary
    const Tensor dense = gelu(add(in[0], in[2]));                   // vec4 dense binary, unary
    const Tensor shifted = contiguous(slice(in[0], 3, 1, 7));       // misaligned start
    const Tensor odd = add(slice(in[0], 3, 0, 6), slice(in[2], 3, 2, 8));  // rows of 6
    return cat({reshape(heads, {-1}), reshape(biased, {-1}), reshape(dense, {-1}),
                reshape(shifted, {-1}), reshape(odd, {-1})}, 0);
  };
  same_gradients("vec4 and scalar elementwise paths", {x, bias, y}, all);
}

TEST(CudaParity, WhereMaskedFillTriangles) {
  REQUIRE_CUDA();
  using V = std::vector<Tensor>;
  const Tensor x = rnd({3, 4, 5}, 30), y = rnd({4, 1}, 31);
  const Tensor cond = gt(rnd({1, 5}, 32), 0.0);
  same_forward("where", {cond, x, y}, [](const V& v) { return where(v[0], v[1], v[2]); });
  same_forward("masked_fill", {x, cond},
               [](const V& v) { return masked_fill(v[0], v[1], -1e9f); });
  same_forward("tril", {x}, [](const V& v) { return tril(v[0]); });
  same_forward("triu", {x}, [](const V& v) { return triu(v[0], 1); });
  same_gradients("where backward", {x, y},
                 [cond](const V& v) { return where(cond.to(v[0].device()), v[0], v[1]); });
  same_gradients("tril backward", {x}, [](const V& v) { return tril(v[0], -1); });
}

TEST(CudaParity, Reductions) {
  REQUIRE_CUDA();
  using V = std::vector<Tensor>;
  // Shapes chosen to reach each kernel layout: warp rows, block rows split
  // across blocks, columns with and without splits, tiny rows, 0-d.
  const Tensor a = normal({1000, 1000}, 40);   // one long row (all dims)
  const Tensor b = normal({5000, 3}, 41);      // columns
  const Tensor c = normal({3, 50000}, 42);     // few long rows
  const Tensor d = normal({1000, 50}, 43);     // many short rows
  const Tensor e = normal({1000, 8}, 44);      // tiny rows
  const Tensor f = normal({6, 7, 8}, 45);
  same_forward("sum all 1M", {a}, [](const V& v) { return sum(v[0]); });
  same_forward("sum dim0 [5000,3]", {b}, [](const V& v) { return sum(v[0], {0}); });
  same_forward("sum dim1 [3,50000]", {c}, [](const V& v) { return sum(v[0], {1}); });
  same_forward("sum dim1 [1000,50]", {d}, [](const V& v) { return sum(v[0], {1}); });
  same_forward("sum dim0 [1000,50]", {d}, [](const V& v) { return sum(v[0], {0}); });
  same_forward("sum dim1 [1000,8]", {e}, [](const V& v) { return sum(v[0], {1}, true); });
  same_forward("sum dims 0,2", {f}, [](const V& v) { return sum(v[0], {0, 2}); });
  same_forward("sum of permute", {f}, [](const V& v) { return sum(permute(v[0], {2, 0, 1}), {1}); });
  same_forward("sum of transpose", {a}, [](const V& v) { return sum(transpose(v[0], 0, 1), {1}); });
  same_forward("sum 0-d", {full({}, 3.0)}, [](const V& v) { return sum(v[0]); });
  // Sums down dense matrices (bias gradients) take their own kernel: 16-byte
  // rows, rows that are not, a start that is not 16-byte aligned, few rows.
  same_forward("sum dim0 [20000,384]", {normal({20000, 384}, 46)},
               [](const V& v) { return sum(v[0], {0}); });
  same_forward("sum dim0 [300,130]", {normal({300, 130}, 47)},
               [](const V& v) { return sum(v[0], {0}); });
  same_forward("sum dim0 misaligned [257,96]", {normal({1 + 257 * 96}, 48)},
               [](const V& v) { return sum(reshape(narrow(v[0], 0, 1, 257 * 96), {257, 96}), {0}); });
  same_forward("sum dim0 [3,64]", {normal({3, 64}, 49)}, [](const V& v) { return sum(v[0], {0}); });
  same_forward("sum over empty dim", {zeros({4, 0})}, [](const V& v) { return sum(v[0], {1}); });
  same_forward("mean", {f}, [](const V& v) { return mean(v[0], {1}); });
  same_forward("var", {f}, [](const V& v) { return var(v[0], {2}); });
  for (const Tensor& t : {a, b, c, d, e}) {
    same_forward("max all", {t}, [](const V& v) { return max(v[0]); });
    same_forward("max dim1", {t}, [](const V& v) { return max(v[0], 1); });
    same_forward("min dim0", {t}, [](const V& v) { return min(v[0], 0); });
    same_forward("argmax dim1", {t}, [](const V& v) { return argmax(v[0], 1); });
    same_forward("argmax dim0", {t}, [](const V& v) { return argmax(v[0], 0); });
  }
  same_forward("argmax of permute", {f}, [](const V& v) { return argmax(permute(v[0], {1, 2, 0}), 2); });
  // Ties go to the first index; NaN wins (the first NaN); rows of -inf.
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const Tensor special = from_vector({1, 5, 5, 2,  nan, 3, nan, 9,  -inf, -inf, -inf, -inf,
                                      4, 4, 4, 4,  2, 9, 1, nan,   -1, -3, -3, -2},
                                     {6, 4});
  same_forward("argmax special", {special}, [](const V& v) { return argmax(v[0], 1); });
  same_forward("max special", {special}, [](const V& v) { return max(v[0], 1); });
  same_forward("min special", {special}, [](const V& v) { return min(v[0], 1); });
  same_forward("argmax special dim0", {special}, [](const V& v) { return argmax(v[0], 0); });
  // Long rows with ties and a NaN far in (crossing split boundaries).
  {
    std::vector<float> row(300000, 1.0f);
    row[123456] = 7, row[250001] = 7, row[299999] = 7;
    Tensor t = from_vector(row, {3, 100000});
    same_forward("argmax long ties", {t}, [](const V& v) { return argmax(v[0], 1); });
    same_forward("argmax all long ties", {t}, [](const V& v) { return argmax(reshape(v[0], {-1}), 0); });
    row[200000] = nan, row[280000] = nan;
    t = from_vector(row, {300000});
    same_forward("argmax long nan", {t}, [](const V& v) { return argmax(v[0], 0); });
    same_forward("max long nan", {t}, [](const V& v) { return max(v[0]); });
  }
  // ArgMin (used by min's backward) and empty reductions through the backend.
  {
    const Tensor s = transpose(special, 0, 1), sg = transpose(gpu(special), 0, 1);
    for (ReduceOp op : {ReduceOp::ArgMin, ReduceOp::ArgMax}) {
      Tensor oc = empty({4, 1}, DType::Int64), og = empty({4, 1}, DType::Int64, kCuda);
      backend_for(kCpu).reduce(op, oc.view_desc(), s.view_desc(), 1);
      backend_for(kCuda).reduce(op, og.view_desc(), sg.view_desc(), 1);
      EXPECT_TRUE(close(oc, og)) << "arg reduce " << static_cast<int>(op);
    }
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::ArgMax}) {
      const DType t = op == ReduceOp::ArgMax ? DType::Int64 : DType::Float32;
      Tensor oc = empty({3}, t), og = empty({3}, t, kCuda);
      const Tensor ec = zeros({3, 0}), eg = zeros({3, 0}, DType::Float32, kCuda);
      backend_for(kCpu).reduce(op, oc.view_desc(), ec.view_desc(), 1);
      backend_for(kCuda).reduce(op, og.view_desc(), eg.view_desc(), 1);
      EXPECT_TRUE(close(oc, og)) << "empty reduce " << static_cast<int>(op);
    }
  }
  same_gradients("sum/mean/max/min backward", {f}, [](const V& v) {
    return sum(v[0], {0}) + mean(v[0], {0}) + max(v[0], 0) * 2.0f + min(v[0], 0);
  });
}

TEST(CudaParity, Matmul) {
  REQUIRE_CUDA();
  using V = std::vector<Tensor>;
  const auto mm = [](const V& v) { return matmul(v[0], v[1]); };
  struct Case {
    const char* what;
    Shape a, b;
  };
  const Case cases[] = {
      {"2-D", {64, 48}, {48, 80}},
      {"batched", {3, 17, 33}, {3, 33, 9}},
      {"broadcast batch (pointer arrays)", {2, 1, 5, 6}, {3, 6, 7}},
      {"broadcast matrix", {4, 10, 32}, {32, 16}},
      {"vector @ matrix", {6}, {6, 4}},
      {"matrix @ vector", {5, 6}, {6}},
      {"large", {256, 512}, {512, 384}},
  };
  for (const Case& c : cases) {
    const int64_t k = c.b.size() == 1 ? c.b[0] : c.b[c.b.size() - 2];
    const double atol = 2e-6 * std::sqrt(static_cast<double>(k)) * 4;
    same_forward(c.what, {normal(c.a, 50), normal(c.b, 51)}, mm, 1e-4, atol);
  }
  // Transposed views go to cuBLAS as "transposed", no copy.
  const Tensor x = normal({7, 6}, 52), y = normal({5, 7}, 53), z = normal({2, 6, 3}, 54);
  same_forward("a^T b", {x, normal({7, 4}, 55)},
               [](const V& v) { return matmul(transpose(v[0], 0, 1), v[1]); }, 1e-4, 1e-5);
  same_forward("a b^T", {y, x}, [](const V& v) { return matmul(v[0], v[1]); }, 1e-4, 1e-5);
  same_forward("a b^T (view)", {normal({5, 6}, 56), x},
               [](const V& v) { return matmul(v[0], transpose(v[1], 0, 1)); }, 1e-4, 1e-5);
  same_forward("batched transposed", {z, normal({2, 4, 6}, 57)},
               [](const V& v) { return matmul(transpose(v[0], 1, 2), transpose(v[1], 1, 2)); },
               1e-4, 1e-5);
  same_forward("expanded batch (stride 0)", {normal({3, 4, 5}, 58), normal({5, 2}, 59)},
               [](const V& v) { return matmul(v[0], expand(v[1], {3, 5, 2})); }, 1e-4, 1e-5);
  same_forward("empty k", {zeros({3, 0}), zeros({0, 4})}, mm);
  same_gradients("matmul backward", {normal({2, 3, 5, 6}, 60), normal({3, 6, 4}, 61)}, mm, 1e-4, 1e-4);
  same_gradients("transposed matmul backward", {normal({6, 5}, 62), normal({4, 6}, 63)},
                 [](const V& v) { return matmul(transpose(v[0], 0, 1), transpose(v[1], 0, 1)); },
                 1e-4, 1e-4);
#ifdef ATTNLAB_WITH_CUDA
  // TF32: off by default; on, results stay within TF32's ~1e-3.
  EXPECT_FALSE(cuda_tf32());
  set_cuda_tf32(true);
  same_forward("large, TF32", {normal({256, 512}, 50), normal({512, 384}, 51)}, mm, 1e-2, 5e-2);
  set_cuda_tf32(false);
  same_forward("large, TF32 off again", {normal({256, 512}, 50), normal({512, 384}, 51)}, mm, 1e-4,
               2e-4);
#endif
}

TEST(CudaParity, SoftmaxAndLogSoftmax) {
  REQUIRE_CUDA();
  using V = std::vector<Tensor>;
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = normal({50, 37}, 70);
  // Row 3 fully masked (-inf everywhere: uniform row), row 4 partly.
  std::vector<float> vals = x.to_vector();
  for (int c = 0; c < 37; ++c) vals[3 * 37 + c] = -inf;
  for (int c = 0; c < 37; c += 2) vals[4 * 37 + c] = -inf;
  vals[5 * 37 + 1] = 100;  // would overflow exp without the max shift
  x = from_vector(vals, {50, 37});
  same_forward("softmax last", {x}, [](const V& v) { return softmax(v[0], -1); });
  same_forward("log_softmax last", {x}, [](const V& v) { return log_softmax(v[0], -1); });
  same_forward("softmax dim0", {normal({50, 37}, 71)}, [](const V& v) { return softmax(v[0], 0); });
  const Tensor wide = mul(normal({4, 3000}, 72), 5.0f);  // a block per row
  same_forward("softmax wide", {wide}, [](const V& v) { return softmax(v[0], 1); });
  same_forward("log_softmax wide", {wide}, [](const V& v) { return log_softmax(v[0], 1); });
  same_gradients("softmax backward", {normal({9, 37}, 73)}, [](const V& v) { return softmax(v[0], -1); });
  same_gradients("log_softmax backward", {normal({9, 37}, 74)},
                 [](const V& v) { return log_softmax(v[0], 0); });
  same_gradients("wide softmax backward", {normal({3, 2500}, 75)},
                 [](const V& v) { return softmax(v[0], 1) + log_softmax(v[0], 1); });
}

TEST(CudaParity, IndexSelectEmbeddingCumsum) {
  REQUIRE_CUDA();
  using V = std::vector<Tensor>;
  const Tensor table = normal({10, 6}, 80);
  const Tensor idx = from_ints({3, 0, 9, 3, 3, 7, 1}, {7});
  same_gradients("index_select dim0", {table},
                 [idx](const V& v) { return index_select(v[0], 0, idx.to(v[0].device())); });
  same_gradients("index_select dim1", {table},
                 [](const V& v) { return index_select(v[0], 1, from_ints({5, 5, 0, 2}, {4}, v[0].device())); });
  const Tensor ids = from_ints({1, 4, 4, 0, 19, 4, 2, 2, 1, 0, 3, 3, 3, 3, 18}, {3, 5});
  same_gradients("embedding", {normal({20, 8}, 81)},
                 [ids](const V& v) { return embedding(v[0], ids.to(v[0].device())); });
  // A big embedding table: many repeated rows added atomically.
  std::vector<int64_t> many(4096);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int64_t>((i * 7919) % 50);
  const Tensor many_ids = from_ints(many, {4096});
  same_gradients("embedding many repeats", {normal({50, 64}, 82)},
                 [many_ids](const V& v) { return embedding(v[0], many_ids.to(v[0].device())); },
                 1e-5, 1e-4);
  same_gradients("cumsum dim1", {normal({7, 100}, 83)}, [](const V& v) { return cumsum(v[0], 1); });
  same_gradients("cumsum dim0", {normal({50, 3}, 84)}, [](const V& v) { return cumsum(v[0], 0); });
  same_gradients("cumsum long rows", {normal({2, 3000}, 85)}, [](const V& v) { return cumsum(v[0], -1); },
                 1e-5, 1e-4);
}

TEST(CudaParity, BadIndexSameMessageAsCpu) {
  REQUIRE_CUDA();
  const Tensor table = normal({10, 4}, 90);
  const Tensor idx = from_ints({1, 2, 9, 10, 3, -1}, {6});
  std::string cpu_msg, gpu_msg;
  try {
    index_select(table, 0, idx);
  } catch (const Error& e) {
    cpu_msg = e.what();
  }
  try {
    index_select(gpu(table), 0, gpu(idx));
  } catch (const Error& e) {
    gpu_msg = e.what();
  }
  EXPECT_FALSE(cpu_msg.empty());
  EXPECT_EQ(gpu_msg, cpu_msg);
  EXPECT_NE(gpu_msg.find("at position 3"), std::string::npos) << gpu_msg;
  // The device is fine afterwards.
  EXPECT_TRUE(close(index_select(table, 0, from_ints({2}, {1})),
                    index_select(gpu(table), 0, from_ints({2}, {1}, kCuda))));
  // Cross-entropy names the first bad target row on both devices.
  const Tensor logits = normal({5, 7}, 91);
  const Tensor targets = from_ints({0, 6, 7, -2, 1}, {5});
  std::string c2, g2;
  try {
    cross_entropy(logits, targets);
  } catch (const Error& e) {
    c2 = e.what();
  }
  try {
    cross_entropy(gpu(logits), gpu(targets));
  } catch (const Error& e) {
    g2 = e.what();
  }
  EXPECT_FALSE(c2.empty());
  EXPECT_EQ(g2, c2);
}

TEST(CudaParity, LayerNormRmsNormCrossEntropy) {
  REQUIRE_CUDA();
  using V = std::vector<Tensor>;
  struct Size {
    int64_t rows, cols;
  };
  // One-pass backward (up to 512 columns: 4, 8, 12 and 16 per lane), the
  // warp-per-row and block-per-row two-pass paths, and edge sizes.
  for (Size s : {Size{33, 64}, Size{5, 3000}, Size{4096, 32}, Size{3, 7}, Size{700, 384},
                 Size{50, 200}, Size{20, 500}, Size{1, 512}, Size{9, 1000}}) {
    const std::string at = " [" + std::to_string(s.rows) + "," + std::to_string(s.cols) + "]";
    const Tensor x = add(mul(normal({s.rows, s.cols}, 100), 3.0f), 1.0f);
    const Tensor w = rnd({s.cols}, 101, 0.5f, 1.5f), b = normal({s.cols}, 102);
    same_gradients("layer_norm" + at, {x, w, b},
                   [](const V& v) { return layer_norm(v[0], v[1], v[2]); }, 1e-5, 1e-4);
    same_gradients("layer_norm no affine" + at, {x},
                   [](const V& v) { return layer_norm(v[0], Tensor(), Tensor()); }, 1e-5, 1e-4);
    same_gradients("rms_norm" + at, {x, w}, [](const V& v) { return rms_norm(v[0], v[1]); }, 1e-5,
                   1e-4);
    same_gradients("rms_norm no weight" + at, {x}, [](const V& v) { return rms_norm(v[0], Tensor()); },
                   1e-5, 1e-4);
  }
  for (Size s : {Size{40, 100}, Size{6, 5000}, Size{3, 1}}) {
    Generator g(103);
    std::vector<int64_t> t(s.rows);
    for (auto& v : t) v = static_cast<int64_t>(g.below(s.cols));
    const Tensor targets = from_ints(t, {s.rows});
    same_gradients("cross_entropy [" + std::to_string(s.rows) + "," + std::to_string(s.cols) + "]",
                   {mul(normal({s.rows, s.cols}, 104), 4.0f)},
                   [targets](const V& v) { return cross_entropy(v[0], targets.to(v[0].device())); });
  }
  // Leading dims are rows too.
  same_gradients("cross_entropy 3-D", {normal({2, 3, 11}, 105)}, [](const V& v) {
    return cross_entropy(v[0], from_ints({0, 10, 5, 5, 1, 2}, {2, 3}, v[0].device()));
  });
}

// A small model's step: embedding, linear layers, GELU, LayerNorm, a masked
// attention, cross-entropy; every parameter's gradient must agree.
TEST(CudaParity, CompositeGraphBackward) {
  REQUIRE_CUDA();
  const int64_t B = 2, T = 6, D = 16, Vocab = 11;
  const Tensor ids = from_ints({1, 4, 2, 0, 10, 3, 5, 5, 9, 8, 7, 1}, {B, T});
  const Tensor targets = from_ints({4, 2, 0, 10, 3, 5, 5, 9, 8, 7, 1, 6}, {B, T});
  const std::vector<Tensor> params = {normal({Vocab, D}, 110), mul(normal({D, D}, 111), 0.3f),
                                      normal({D}, 112), mul(normal({D, Vocab}, 113), 0.3f),
                                      rnd({D}, 114, 0.5f, 1.5f), normal({D}, 115)};
  const auto model = [&](const std::vector<Tensor>& p) {
    const Device dev = p[0].device();
    Tensor h = embedding(p[0], ids.to(dev));                     // [B, T, D]
    Tensor q = gelu(add(matmul(h, p[1]), p[2]));                 // [B, T, D]
    Tensor s = matmul(q, transpose(h, 1, 2)) / 4.0f;             // [B, T, T]
    const Tensor mask = eq(tril(ones({T, T}, DType::Float32, dev)), 0.0);
    Tensor a = matmul(softmax(masked_fill(s, mask, -1e9f), -1), h);
    Tensor y = layer_norm(a + h, p[4], p[5]);
    Tensor logits = matmul(y, p[3]);
    return reshape(cross_entropy(logits, targets.to(dev)) + mean(cumsum(logits, 1)) * 0.01f, {1});
  };
  same_gradients("composite", params, model, 1e-4, 1e-4);
}

// Forty tensors in one call (two launches of up to 32), of sizes from 0 to
// 10000 and each with its own weight decay: every one must match the CPU.
TEST(CudaParity, AdamWUpdatesEveryTensorOfOneCall) {
  REQUIRE_CUDA();
  const int count = 40;
  std::vector<Tensor> cpu, gpu_state;  // per tensor: param, grad, m, v
  std::vector<Backend::AdamWTensor> on_cpu, on_gpu;
  for (int k = 0; k < count; ++k) {
    const int64_t n = k == 3 ? 0 : (k * 997) % 10001 + 1;
    const float decay = k % 3 == 0 ? 0.0f : 0.1f;
    Tensor p = normal({n}, 120 + k), g = normal({n}, 220 + k), m = zeros({n}), v = zeros({n});
    Tensor pg = gpu(p), gg = gpu(g), mg = gpu(m), vg = gpu(v);
    on_cpu.push_back({p.data<float>(), g.data<float>(), m.data<float>(), v.data<float>(), n, decay});
    on_gpu.push_back({pg.data<float>(), gg.data<float>(), mg.data<float>(), vg.data<float>(), n, decay});
    for (const Tensor& t : {p, m, v}) cpu.push_back(t);
    for (const Tensor& t : {pg, mg, vg}) gpu_state.push_back(t);
    cpu.push_back(g), gpu_state.push_back(gg);  // kept alive with the others
  }
  for (int step = 1; step <= 3; ++step) {
    const Backend::AdamW h{1e-2f, 0.9f, 0.999f, 1e-8f, 1 - std::pow(0.9f, static_cast<float>(step)),
                           1 - std::pow(0.999f, static_cast<float>(step))};
    backend_for(kCpu).adamw(on_cpu.data(), count, h);
    backend_for(kCuda).adamw(on_gpu.data(), count, h);
  }
  const char* names[] = {"param", "m", "v"};
  for (int k = 0; k < count; ++k)
    for (int j = 0; j < 3; ++j)
      EXPECT_TRUE(close(cpu[4 * k + j], gpu_state[4 * k + j], 1e-5, 1e-6))
          << names[j] << " of tensor " << k << " (" << on_cpu[k].n << " elements)";
}

// More than 2^31 elements: the elementwise kernels switch to 64-bit index
// math and the reductions address past 2^31. (About 13 GB of GPU memory;
// compute-sanitizer runs leave this one out.)
TEST(CudaParity, LargeTensorsUse64BitIndexing) {
  REQUIRE_CUDA();
  const int64_t rows = 65536, cols = 32776;  // rows * cols > 2^31
  const Tensor a = reshape(arange(0, static_cast<double>(rows), 1, DType::Float32, kCuda), {rows, 1});
  const Tensor b = reshape(arange(0, static_cast<double>(cols), 1, DType::Float32, kCuda), {1, cols});
  Tensor by_row, by_col;
  {
    const Tensor mask = gt(a, b);  // bool [rows, cols]: broadcast compare, 64-bit indices
    ASSERT_GT(mask.numel(), int64_t{1} << 31);
    by_row = sum(mask.to(DType::Float32), {1});  // #{j : i > j} = min(i, cols)
    const Tensor t = transpose(mask, 0, 1).contiguous();  // strided 1-byte copy
    by_col = sum(t.to(DType::Float32), {0});
  }
  std::vector<float> expect(rows);
  for (int64_t i = 0; i < rows; ++i) expect[i] = static_cast<float>(std::min(i, cols));
  const Tensor e = from_vector(expect, {rows});
  EXPECT_TRUE(close(e, by_row, 0, 0));
  EXPECT_TRUE(close(e, by_col, 0, 0));
}

TEST(CudaParity, AllocatorCounters) {
  REQUIRE_CUDA();
#ifdef ATTNLAB_WITH_CUDA
  CachingAllocator& alloc = cuda_allocator(0);
  const MemoryStats before = alloc.stats();
  const std::size_t bytes = 1000 * 1000 * sizeof(float);
  const std::size_t rounded = CachingAllocator::round_size(bytes);
  {
    Tensor t = zeros({1000, 1000}, DType::Float32, kCuda);
    const MemoryStats during = alloc.stats();
    EXPECT_EQ(during.current, before.current + rounded);
    EXPECT_GE(during.peak, during.current);
    EXPECT_EQ(during.allocations, before.allocations + 1);
  }
  const MemoryStats after = alloc.stats();
  EXPECT_EQ(after.current, before.current);
  EXPECT_GE(after.cached, rounded);
  // The same size again comes from the cache, not from cudaMalloc.
  {
    Tensor t = ones({1000, 1000}, DType::Float32, kCuda);
    EXPECT_EQ(alloc.stats().system_allocations, after.system_allocations);
    EXPECT_FLOAT_EQ(sum(t).item(), 1e6f);
  }
  // CPU tensors do not touch the CUDA counters.
  const std::size_t cuda_now = alloc.stats().current;
  Tensor host = zeros({1000, 1000});
  EXPECT_EQ(alloc.stats().current, cuda_now);
  alloc.reset_peak();
  EXPECT_EQ(alloc.stats().peak, alloc.stats().current);
#endif
}

// Dropout draws the CPU's mask on the GPU, bit for bit (one Philox, core/
// philox.h), in the forward, the backward and fused with the residual add;
// rows of a length that is not a multiple of 4 and 64-bit sample offsets.
TEST(CudaParity, DropoutMatchesTheCpuBitForBit) {
  REQUIRE_CUDA();
  for (int64_t row_len : {1, 6, 1000, 98304}) {
    const Tensor x = normal({9, row_len}, 3), r = normal({9, row_len}, 4);
    const philox::Stream s{0x0123456789abcdefULL, 17};
    EXPECT_EQ(dropout(x, 0.2f, s, 5000000000LL).to_vector(),
              dropout(gpu(x), 0.2f, s, 5000000000LL).to_vector()) << row_len;
    EXPECT_EQ(dropout_add(r, x, 0.2f, s, 3).to_vector(),
              dropout_add(gpu(r), gpu(x), 0.2f, s, 3).to_vector()) << row_len;
    Tensor xc = x.clone().set_requires_grad(), xg = gpu(x).set_requires_grad();
    sum(mul(dropout(xc, 0.2f, s, 3), r)).backward();
    sum(mul(dropout(xg, 0.2f, s, 3), gpu(r))).backward();
    EXPECT_EQ(xc.grad().to_vector(), xg.grad().to_vector()) << row_len;
  }
}

TEST(CudaParity, OutOfMemoryIsAnError) {
  REQUIRE_CUDA();
  const int64_t elements = int64_t{1} << 48;  // 2^50 bytes = 1 PiB
  try {
    Tensor t = empty({elements}, DType::Float32, kCuda);
    FAIL() << "allocating 1 PiB on the GPU succeeded";
  } catch (const Error& e) {
    const std::string msg = e.what();
    std::cout << "[ message  ] " << msg << "\n";
    EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("asked for 1125899906842624 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bytes in use"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  }
  // The device still works.
  EXPECT_FLOAT_EQ(sum(ones({10}, DType::Float32, kCuda)).item(), 10.0f);
}

TEST(CudaParity, MixedDevicesAreAnError) {
  REQUIRE_CUDA();
  try {
    add(ones({2}), ones({2}, DType::Float32, kCuda));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cpu"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  }
}

}  // namespace
