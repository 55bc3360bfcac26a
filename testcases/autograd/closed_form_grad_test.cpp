// Gradients against closed forms derived by hand and evaluated in double.
//
// gradcheck only checks that backward agrees with the forward; an op whose
// forward and backward are wrong in the same way (var dividing by n instead
// of n - 1), or a backward off by less than gradcheck's 1% tolerance, slips
// through it. These tests pin the values: each backpropagates a fixed
// non-uniform output gradient W and compares with the formula.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "ag_test_util.h"
#include "autograd/ops.h"

using namespace attn;
using agtest::AllClose;
using agtest::away_from_zero;
using agtest::normal;
using agtest::uniform;
using agtest::values;

namespace {

// A fixed output gradient in [-1, 1), not uniform, so that misplaced or
// transposed gradients show.
Tensor weights(const Shape& s, uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(numel(s));
  for (float& x : v) x = g.uniform() * 2 - 1;
  return from_vector(v, s);
}

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> f, df;
  Tensor x;
};

constexpr double kSqrt2OverPi = 0.7978845608028654;

double sigmoid_d(double x) { return 1 / (1 + std::exp(-x)); }
double gelu_d(double x) {
  return 0.5 * x * (1 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
}
double gelu_grad_d(double x) {
  const double u = kSqrt2OverPi * (x + 0.044715 * x * x * x);
  const double du = kSqrt2OverPi * (1 + 3 * 0.044715 * x * x);
  const double t = std::tanh(u);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
}

}  // namespace

TEST(ClosedFormGrad, UnaryOps) {
  const Tensor any = normal({12}, 1, 1.5f);
  const Tensor pos = uniform({12}, 2, 0.3f, 3.0f);
  const Tensor nonzero = away_from_zero({12}, 3, 0.05f, 2.0f);
  const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; },
       [](double) { return -1.0; }, any},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); },
       [](double x) { return std::exp(x); }, any},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); },
       [](double x) { return 1 / x; }, pos},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); },
       [](double x) { return 0.5 / std::sqrt(x); }, pos},
      {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double x) { return 1 / std::sqrt(x); },
       [](double x) { return -0.5 * std::pow(x, -1.5); }, pos},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); },
       [](double x) { return x > 0 ? 1.0 : -1.0; }, nonzero},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; },
       [](double x) { return 2 * x; }, any},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; },
       [](double x) { return x > 0 ? 1.0 : 0.0; }, nonzero},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, sigmoid_d,
       [](double x) { return sigmoid_d(x) * (1 - sigmoid_d(x)); }, any},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); },
       [](double x) { return 1 - std::tanh(x) * std::tanh(x); }, any},
      {"gelu", [](const Tensor& x) { return gelu(x); }, gelu_d, gelu_grad_d, any},
      {"silu", [](const Tensor& x) { return silu(x); }, [](double x) { return x * sigmoid_d(x); },
       [](double x) { return sigmoid_d(x) * (1 + x * (1 - sigmoid_d(x))); }, any},
      {"elu", [](const Tensor& x) { return elu(x); },
       [](double x) { return x > 0 ? x : std::expm1(x); },
       [](double x) { return x > 0 ? 1.0 : std::exp(x); }, nonzero},
      {"sin", [](const Tensor& x) { return sin(x); }, [](double x) { return std::sin(x); },
       [](double x) { return std::cos(x); }, any},
      {"cos", [](const Tensor& x) { return cos(x); }, [](double x) { return std::cos(x); },
       [](double x) { return -std::sin(x); }, any},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0f); },
       [](double x) { return x * x * x; }, [](double x) { return 3 * x * x; }, any},
      {"pow -1.5", [](const Tensor& x) { return pow(x, -1.5f); },
       [](double x) { return std::pow(x, -1.5); }, [](double x) { return -1.5 * std::pow(x, -2.5); },
       pos},
      {"add 2", [](const Tensor& x) { return add(x, 2.0f); }, [](double x) { return x + 2; },
       [](double) { return 1.0; }, any},
      {"mul -3", [](const Tensor& x) { return mul(x, -3.0f); }, [](double x) { return -3 * x; },
       [](double) { return -3.0; }, any},
      {"1 - x", [](const Tensor& x) { return 1.0f - x; }, [](double x) { return 1 - x; },
       [](double) { return -1.0; }, any},
      {"x / 4", [](const Tensor& x) { return x / 4.0f; }, [](double x) { return x / 4; },
       [](double) { return 0.25; }, any},
  };
  const Tensor w = weights({12}, 99);
  const std::vector<double> wv = values(w);
  for (const UnaryCase& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = c.x.detach().clone().set_requires_grad();
    const Tensor y = c.op(x);
    y.backward(w);
    std::vector<double> want_y, want_g;
    const std::vector<double> xv = values(x);
    for (size_t i = 0; i < xv.size(); ++i) {
      want_y.push_back(c.f(xv[i]));
      want_g.push_back(wv[i] * c.df(xv[i]));
    }
    // float32 kernels against double: a few ulps, scaled by the value.
    EXPECT_TRUE(AllClose(y, want_y, 1e-5)) << "forward";
    EXPECT_TRUE(AllClose(x.grad(), want_g, 1e-5)) << "gradient";
  }
}

TEST(ClosedFormGrad, DivWithBroadcasting) {
  // y[i,j] = a[i,j] / b[j]: da = W / b, db[j] = -sum_i W[i,j] a[i,j] / b[j]^2.
  Tensor a = normal({3, 4}, 4), b = away_from_zero({4}, 5, 0.5f, 2.0f);
  const Tensor w = weights({3, 4}, 6);
  div(a, b).backward(w);
  const auto av = values(a), bv = values(b), wv = values(w);
  std::vector<double> da(12), db(4, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      da[i * 4 + j] = wv[i * 4 + j] / bv[j];
      db[j] -= wv[i * 4 + j] * av[i * 4 + j] / (bv[j] * bv[j]);
    }
  EXPECT_TRUE(AllClose(a.grad(), da, 1e-5));
  EXPECT_TRUE(AllClose(b.grad(), db, 1e-5));
}

TEST(ClosedFormGrad, MulWithBothSidesBroadcast) {
  // [3,1] * [1,4]: da[i] = sum_j W[i,j] b[j], db[j] = sum_i W[i,j] a[i].
  Tensor a = normal({3, 1}, 7), b = normal({1, 4}, 8);
  const Tensor w = weights({3, 4}, 9);
  mul(a, b).backward(w);
  const auto av = values(a), bv = values(b), wv = values(w);
  std::vector<double> da(3, 0.0), db(4, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      da[i] += wv[i * 4 + j] * bv[j];
      db[j] += wv[i * 4 + j] * av[i];
    }
  EXPECT_TRUE(AllClose(a.grad(), da, 1e-5));
  EXPECT_TRUE(AllClose(b.grad(), db, 1e-5));
}

TEST(ClosedFormGrad, VarBothCorrections) {
  // var_i = sum_j (x_ij - m_i)^2 / (n - c), d var_i / d x_ij = 2 (x_ij - m_i) / (n - c)
  // (the mean's own dependence on x drops out because sum_j (x_ij - m_i) = 0).
  const int R = 3, n = 5;
  for (int64_t c : {0, 1}) {
    SCOPED_TRACE("correction " + std::to_string(c));
    Tensor x = normal({R, n}, 10 + c, 1.0f, 2.0f);
    const Tensor w = weights({R}, 12);
    const Tensor v = var(x, {1}, c);
    v.backward(w);
    const auto xv = values(x), wv = values(w);
    std::vector<double> want_v(R), want_g(R * n);
    for (int i = 0; i < R; ++i) {
      double m = 0, ss = 0;
      for (int j = 0; j < n; ++j) m += xv[i * n + j];
      m /= n;
      for (int j = 0; j < n; ++j) ss += (xv[i * n + j] - m) * (xv[i * n + j] - m);
      want_v[i] = ss / (n - c);
      for (int j = 0; j < n; ++j) want_g[i * n + j] = wv[i] * 2 * (xv[i * n + j] - m) / (n - c);
    }
    EXPECT_TRUE(AllClose(v, want_v, 1e-5)) << "forward";
    EXPECT_TRUE(AllClose(x.grad(), want_g, 1e-4)) << "gradient";
  }
}

TEST(ClosedFormGrad, MeanOverDims) {
  Tensor x = normal({2, 3, 4}, 13);
  const Tensor w = weights({3}, 14);
  mean(x, {0, 2}).backward(w);  // each x[a,j,b] gets W[j] / 8
  std::vector<double> want;
  const auto wv = values(w);
  for (int a = 0; a < 2; ++a)
    for (int j = 0; j < 3; ++j)
      for (int b = 0; b < 4; ++b) want.push_back(wv[j] / 8);
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-6));
}

TEST(ClosedFormGrad, MaxMinOverADimGoToTheWinner) {
  Tensor x = agtest::distinct({3, 4}, 15);
  const Tensor w = weights({3}, 16);
  max(x, 1).backward(w);
  const auto xv = values(x), wv = values(w);
  std::vector<double> want(12, 0.0);
  for (int i = 0; i < 3; ++i) {
    int best = 0;
    for (int j = 1; j < 4; ++j)
      if (xv[i * 4 + j] > xv[i * 4 + best]) best = j;
    want[i * 4 + best] = wv[i];
  }
  EXPECT_TRUE(AllClose(x.grad(), want, 0));
  x.zero_grad();
  min(x, 0).backward(weights({4}, 17));
  const auto w2 = values(weights({4}, 17));
  std::vector<double> want2(12, 0.0);
  for (int j = 0; j < 4; ++j) {
    int best = 0;
    for (int i = 1; i < 3; ++i)
      if (xv[i * 4 + j] < xv[best * 4 + j]) best = i;
    want2[best * 4 + j] = w2[j];
  }
  EXPECT_TRUE(AllClose(x.grad(), want2, 0));
}

TEST(ClosedFormGrad, TiesSendTheWholeGradientToOnePlace) {
  // Documented: max/min over a dim pick the first position on ties, and
  // maximum/minimum pick `a`. Either way the gradient is not duplicated.
  Tensor x = from_vector({1, 3, 3, 2}, {4}).set_requires_grad();
  max(x, 0).backward(from_vector({1}, {}));
  EXPECT_TRUE(AllClose(x.grad(), {0, 1, 0, 0}, 0));

  Tensor a = from_vector({1, 2, 5}, {3}).set_requires_grad();
  Tensor b = from_vector({1, 0, 5}, {3}).set_requires_grad();
  maximum(a, b).backward(from_vector({1, 1, 1}, {3}));
  EXPECT_TRUE(AllClose(a.grad(), {1, 1, 1}, 0));
  EXPECT_TRUE(AllClose(b.grad(), {0, 0, 0}, 0));
  a.zero_grad();
  b.zero_grad();
  minimum(a, b).backward(from_vector({1, 1, 1}, {3}));
  EXPECT_TRUE(AllClose(a.grad(), {1, 0, 1}, 0));
  EXPECT_TRUE(AllClose(b.grad(), {0, 1, 0}, 0));
}

TEST(ClosedFormGrad, SoftmaxAndLogSoftmaxOverAMiddleDim) {
  // Over dim 1 of [2, 3, 2]: for each (a, c) the column y_k = softmax(x_k).
  // softmax:     dx_k = y_k (W_k - sum_j W_j y_j)
  // log_softmax: dx_k = W_k - y_k sum_j W_j
  for (bool log : {false, true}) {
    SCOPED_TRACE(log ? "log_softmax" : "softmax");
    Tensor x = normal({2, 3, 2}, 18, 1.5f);
    const Tensor w = weights({2, 3, 2}, 19);
    const Tensor out = log ? log_softmax(x, 1) : softmax(x, 1);
    out.backward(w);
    const auto xv = values(x), wv = values(w);
    std::vector<double> want_y(12), want_g(12);
    auto at = [](int a, int k, int c) { return a * 6 + k * 2 + c; };
    for (int a = 0; a < 2; ++a)
      for (int c = 0; c < 2; ++c) {
        double z = 0, mx = -1e300;
        for (int k = 0; k < 3; ++k) mx = std::max(mx, xv[at(a, k, c)]);
        for (int k = 0; k < 3; ++k) z += std::exp(xv[at(a, k, c)] - mx);
        double wy = 0, ws = 0;
        std::vector<double> y(3);
        for (int k = 0; k < 3; ++k) {
          y[k] = std::exp(xv[at(a, k, c)] - mx) / z;
          wy += wv[at(a, k, c)] * y[k];
          ws += wv[at(a, k, c)];
        }
        for (int k = 0; k < 3; ++k) {
          const int i = at(a, k, c);
          want_y[i] = log ? std::log(y[k]) : y[k];
          want_g[i] = log ? wv[i] - y[k] * ws : y[k] * (wv[i] - wy);
        }
      }
    EXPECT_TRUE(AllClose(out, want_y, 1e-5)) << "forward";
    EXPECT_TRUE(AllClose(x.grad(), want_g, 1e-5)) << "gradient";
  }
}

TEST(ClosedFormGrad, CumsumIsAReverseCumsumBackward) {
  Tensor x = normal({3, 4}, 20);
  const Tensor w = weights({3, 4}, 21);
  const auto wv = values(w);
  cumsum(x, 1).backward(w);  // dx[i,j] = sum_{k>=j} W[i,k]
  std::vector<double> want(12, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = j; k < 4; ++k) want[i * 4 + j] += wv[i * 4 + k];
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-6));
  x.zero_grad();
  cumsum(x, 0).backward(w);  // dx[i,j] = sum_{k>=i} W[k,j]
  std::fill(want.begin(), want.end(), 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = i; k < 3; ++k) want[i * 4 + j] += wv[k * 4 + j];
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-6));
}

TEST(ClosedFormGrad, TrilTriuMaskTheGradient) {
  Tensor x = normal({3, 4}, 22);
  const Tensor w = weights({3, 4}, 23);
  const auto wv = values(w);
  for (int64_t k : {-1, 0, 1}) {
    for (bool lower : {true, false}) {
      SCOPED_TRACE(std::string(lower ? "tril " : "triu ") + std::to_string(k));
      x.zero_grad();
      (lower ? tril(x, k) : triu(x, k)).backward(w);
      std::vector<double> want(12);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 4; ++j) {
          const bool keep = lower ? j - i <= k : j - i >= k;
          want[i * 4 + j] = keep ? wv[i * 4 + j] : 0.0;
        }
      EXPECT_TRUE(AllClose(x.grad(), want, 0));
    }
  }
}

TEST(ClosedFormGrad, MaskedFillBlocksTheGradient) {
  Tensor x = normal({2, 3}, 24);
  const Tensor mask = from_bools({true, false, true}, {3});
  const Tensor w = weights({2, 3}, 25);
  masked_fill(x, mask, -5.0f).backward(w);
  const auto wv = values(w);
  EXPECT_TRUE(AllClose(x.grad(), {0, wv[1], 0, 0, wv[4], 0}, 0));
}

TEST(ClosedFormGrad, SliceWithStepPlacesTheGradient) {
  Tensor x = normal({2, 7}, 26);
  const Tensor w = weights({2, 3}, 27);
  slice(x, 1, 1, 7, 2).backward(w);  // columns 1, 3, 5
  const auto wv = values(w);
  std::vector<double> want(14, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) want[i * 7 + 1 + 2 * j] = wv[i * 3 + j];
  EXPECT_TRUE(AllClose(x.grad(), want, 0));
}

TEST(ClosedFormGrad, RepeatInterleaveSumsTheRepeats) {
  Tensor x = normal({2, 3}, 28);
  const Tensor w = weights({2, 6}, 29);
  repeat_interleave(x, 2, 1).backward(w);  // x[i,j] -> columns 2j and 2j+1
  const auto wv = values(w);
  std::vector<double> want(6);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) want[i * 3 + j] = wv[i * 6 + 2 * j] + wv[i * 6 + 2 * j + 1];
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-6));
}

TEST(ClosedFormGrad, BatchedMatmulWithBroadcastBatch) {
  // A [2,1,3,4] @ B [3,4,2] -> C [2,3,3,2].
  // dA[p,0] = sum_q G[p,q] B[q]^T,  dB[q] = sum_p A[p,0]^T G[p,q].
  const int P = 2, Q = 3, M = 3, K = 4, N = 2;
  Tensor a = normal({P, 1, M, K}, 30), b = normal({Q, K, N}, 31);
  const Tensor g = weights({P, Q, M, N}, 32);
  matmul(a, b).backward(g);
  const auto av = values(a), bv = values(b), gv = values(g);
  std::vector<double> da(P * M * K, 0.0), db(Q * K * N, 0.0);
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < Q; ++q)
      for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
          const double gg = gv[((p * Q + q) * M + m) * N + n];
          for (int k = 0; k < K; ++k) {
            da[(p * M + m) * K + k] += gg * bv[(q * K + k) * N + n];
            db[(q * K + k) * N + n] += av[(p * M + m) * K + k] * gg;
          }
        }
  EXPECT_TRUE(AllClose(a.grad(), da, 1e-5));
  EXPECT_TRUE(AllClose(b.grad(), db, 1e-5));
}

TEST(ClosedFormGrad, MatmulWithTransposedViewInputs) {
  // C = A^T B^T with A [K,M], B [N,K] given as views: dA = B^T G^T, dB = G^T A^T.
  const int M = 3, K = 4, N = 2;
  Tensor a = normal({K, M}, 33), b = normal({N, K}, 34);
  const Tensor g = weights({M, N}, 35);
  matmul(transpose(a, 0, 1), transpose(b, 0, 1)).backward(g);
  const auto av = values(a), bv = values(b), gv = values(g);
  std::vector<double> da(K * M, 0.0), db(N * K, 0.0);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) {
        // C[m,n] = sum_k A[k,m] B[n,k]
        da[k * M + m] += gv[m * N + n] * bv[n * K + k];
        db[n * K + k] += gv[m * N + n] * av[k * M + m];
      }
  EXPECT_TRUE(AllClose(a.grad(), da, 1e-5));
  EXPECT_TRUE(AllClose(b.grad(), db, 1e-5));
}
