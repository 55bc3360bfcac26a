// linear (y = act(x @ w^T + b) in one op, the bias and GELU in the matrix
// product's epilogue) against a double-precision loop oracle, forward and
// every gradient; gradcheck; the error messages; CPU/GPU parity on shapes
// that take cuBLASLt's fused epilogue and on ones that fall back to
// separate passes (skips without a device).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ag_test_util.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace {

using namespace attn;
using agtest::GradOk;

struct Case {
  Shape x;  // [..., in]
  int64_t out;
  bool bias, gelu;
};

std::string name(const Case& c) {
  return "x " + shape_str(c.x) + " out " + std::to_string(c.out) + (c.bias ? " bias" : "") +
         (c.gelu ? " gelu" : "");
}

double gelu(double z) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * z * (1.0 + std::tanh(k * (z + 0.044715 * z * z * z)));
}
double gelu_grad(double z) {
  const double k = std::sqrt(2.0 / M_PI);
  const double t = std::tanh(k * (z + 0.044715 * z * z * z));
  return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * z * z);
}

struct Want {
  std::vector<double> y, dx, dw, db;
};

// From the definition, row by row: z = x w^T + b, y = act(z); for the
// upstream gradient g, dz = g act'(z), dx = dz w, dw = dz^T x, db = sum dz.
Want oracle(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
            const std::vector<float>& b, const std::vector<float>& g) {
  const int64_t in = c.x.back(), rows = numel(c.x) / in;
  Want r;
  r.y.assign(rows * c.out, 0), r.dx.assign(rows * in, 0), r.dw.assign(c.out * in, 0);
  r.db.assign(c.out, 0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < c.out; ++o) {
      double z = c.bias ? b[o] : 0.0;
      for (int64_t k = 0; k < in; ++k) z += double(x[i * in + k]) * w[o * in + k];
      r.y[i * c.out + o] = c.gelu ? gelu(z) : z;
      const double dz = g[i * c.out + o] * (c.gelu ? gelu_grad(z) : 1.0);
      for (int64_t k = 0; k < in; ++k) {
        r.dx[i * in + k] += dz * w[o * in + k];
        r.dw[o * in + k] += dz * x[i * in + k];
      }
      r.db[o] += dz;
    }
  return r;
}

// Largest |got - want| relative to max |want|.
double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0, scale = 1e-12;
  for (size_t i = 0; i < got.size(); ++i) {
    e = std::max(e, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return e / scale;
}

const std::vector<Case> kCases = {
    {{4, 3}, 5, true, false},      // a plain Linear layer
    {{4, 3}, 5, false, false},     // no bias
    {{2, 3, 6}, 4, true, true},    // fc + GELU, leading dims flattened
    {{3, 6}, 4, false, true},      // GELU without a bias
    {{7}, 3, true, true},          // one vector in, one vector out
    {{0, 4}, 3, true, true},       // no rows: empty output, zero weight gradients
};

TEST(Linear, ForwardAndBackwardMatchTheLoopOracle) {
  for (const Case& c : kCases) {
    const int64_t in = c.x.back();
    const Tensor x = agtest::normal(c.x, 1 + in, 1.5f);
    const Tensor w = agtest::normal({c.out, in}, 2 + in, 0.7f);
    const Tensor b = c.bias ? agtest::normal({c.out}, 3 + in) : Tensor();
    Shape ys = c.x;
    ys.back() = c.out;
    const Tensor g = agtest::normal(ys, 4 + in).detach();
    const Want want = oracle(c, x.to_vector(), w.to_vector(),
                             c.bias ? b.to_vector() : std::vector<float>{}, g.to_vector());
    const Tensor y = linear(x, w, b, c.gelu ? LinearActivation::Gelu : LinearActivation::None);
    EXPECT_EQ(y.shape(), ys) << name(c);
    y.backward(g);
    EXPECT_LT(rel_err(y.to_vector(), want.y), 1e-6) << name(c);
    EXPECT_LT(rel_err(x.grad().to_vector(), want.dx), 1e-6) << name(c);
    EXPECT_LT(rel_err(w.grad().to_vector(), want.dw), 1e-6) << name(c);
    if (c.bias) {
      EXPECT_LT(rel_err(b.grad().to_vector(), want.db), 1e-6) << name(c);
    }
  }
}

TEST(Linear, EqualsMatmulAddGelu) {
  // The unfused composition it replaces, on a transposed (strided) input.
  const Tensor x = agtest::normal({5, 4}, 9);
  const Tensor w = agtest::normal({6, 5}, 10);
  const Tensor b = agtest::normal({6}, 11);
  const Tensor xt = transpose(x, 0, 1);
  const Tensor want = gelu(add(matmul(xt, transpose(w, 0, 1)), b));
  const Tensor got = linear(xt, w, b, LinearActivation::Gelu);
  const std::vector<float> u = got.to_vector(), v = want.to_vector();
  for (size_t i = 0; i < u.size(); ++i) EXPECT_NEAR(u[i], v[i], 1e-6f) << i;
}

TEST(Linear, Gradcheck) {
  for (const Case& c : kCases) {
    if (numel(c.x) == 0) continue;
    const int64_t in = c.x.back();
    const Tensor x = agtest::normal(c.x, 21 + in);
    const Tensor w = agtest::normal({c.out, in}, 22 + in, 0.5f);
    std::vector<Tensor> inputs = {x, w};
    if (c.bias) inputs.push_back(agtest::normal({c.out}, 23 + in));
    const LinearActivation act = c.gelu ? LinearActivation::Gelu : LinearActivation::None;
    EXPECT_TRUE(GradOk([&](const std::vector<Tensor>& v) {
      return linear(v[0], v[1], v.size() > 2 ? v[2] : Tensor(), act);
    }, inputs)) << name(c);
  }
}

TEST(Linear, ErrorsSayWhatIsWrong) {
  const Tensor x = agtest::normal({2, 3}, 1);
  const Tensor w = agtest::normal({4, 3}, 2);
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message([&] { linear(x, agtest::normal({4, 2}, 3), Tensor()); })
                .find("does not end in in_features=2"),
            std::string::npos);
  EXPECT_NE(message([&] { linear(x, w, agtest::normal({3}, 4)); }).find("bias must have shape [4]"),
            std::string::npos);
  EXPECT_NE(message([&] { linear(x, agtest::normal({12}, 5), Tensor()); })
                .find("weight must be [out, in]"),
            std::string::npos);
}

// ---- the GPU (cuBLASLt epilogue, or its fallback passes) against the CPU ----

TEST(LinearGpu, MatchesCpuForwardAndBackward) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: linear parity needs one";
  std::vector<Case> cases = kCases;
  cases.push_back({{2, 64, 32}, 128, true, true});   // aligned: cuBLASLt GELU_AUX_BIAS
  cases.push_back({{2, 64, 32}, 128, true, false});  // aligned: cuBLASLt BIAS
  cases.push_back({{64, 32}, 128, false, true});     // aligned: cuBLASLt GELU_AUX
  cases.push_back({{33, 17}, 37, true, true});       // odd sizes: the separate passes
  for (const Case& c : cases) {
    const int64_t in = c.x.back();
    const Tensor x = agtest::normal(c.x, 31 + in);
    const Tensor w = agtest::normal({c.out, in}, 32 + in, 0.5f);
    const Tensor b = c.bias ? agtest::normal({c.out}, 33 + in) : Tensor();
    Shape ys = c.x;
    ys.back() = c.out;
    const Tensor g = agtest::normal(ys, 34 + in).detach();
    const Device cuda = Device::cuda(0);
    const Tensor xg = x.detach().to(cuda).set_requires_grad();
    const Tensor wg = w.detach().to(cuda).set_requires_grad();
    const Tensor bg = c.bias ? b.detach().to(cuda).set_requires_grad() : Tensor();
    const LinearActivation act = c.gelu ? LinearActivation::Gelu : LinearActivation::None;
    const Tensor y = linear(x, w, b, act), yg = linear(xg, wg, bg, act);
    y.backward(g);
    yg.backward(g.to(cuda));
    const auto err = [](const Tensor& cpu, const Tensor& gpu) {
      const std::vector<float> u = cpu.to_vector(), v = gpu.to(Device::cpu()).to_vector();
      std::vector<double> ud(u.begin(), u.end());
      return rel_err(v, ud);
    };
    EXPECT_LT(err(y, yg), 1e-5) << name(c);
    EXPECT_LT(err(x.grad(), xg.grad()), 1e-5) << name(c);
    EXPECT_LT(err(w.grad(), wg.grad()), 1e-5) << name(c);
    if (c.bias) {
      EXPECT_LT(err(b.grad(), bg.grad()), 1e-5) << name(c);
    }
  }
}

TEST(LinearGpu, MisalignedInputTakesTheFallback) {
  // Rows starting 4 bytes into a buffer: cuBLASLt's 16-byte loads cannot
  // read them, so the product runs through cuBLAS and the epilogue as passes.
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: linear parity needs one";
  const Tensor flat = agtest::normal({1 + 16 * 32}, 41).detach();
  const Tensor x = reshape(slice(flat, 0, 1, 1 + 16 * 32), {16, 32});
  const Tensor w = agtest::normal({64, 32}, 42).detach();
  const Tensor b = agtest::normal({64}, 43).detach();
  const Device cuda = Device::cuda(0);
  const Tensor xg = reshape(slice(flat.to(cuda), 0, 1, 1 + 16 * 32), {16, 32});
  const Tensor y = linear(x, w, b, LinearActivation::Gelu);
  const Tensor yg = linear(xg, w.to(cuda), b.to(cuda), LinearActivation::Gelu);
  const std::vector<float> u = y.to_vector(), v = yg.to(Device::cpu()).to_vector();
  for (size_t i = 0; i < u.size(); ++i) EXPECT_NEAR(u[i], v[i], 1e-5f) << i;
}

}  // namespace
