// Gradients compose through a small network: the engine's result for
//   loss = mean((tanh(x @ W1 + b1) @ W2 + b2 - t)^2)
// is compared with a backward pass derived by hand and written with plain
// loops in double precision (no library op is used for the oracle).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ag_test_util.h"
#include "autograd/ops.h"

using namespace attn;
using agtest::AllClose;
using agtest::normal;
using agtest::values;

namespace {

struct Reference {
  double loss = 0;
  std::vector<double> dx, dw1, db1, dw2, db2;
};

// x [N,I], w1 [I,H], b1 [H], w2 [H,O], b2 [O], t [N,O], row-major.
Reference reference_mlp(int N, int I, int H, int O, const std::vector<double>& x,
                        const std::vector<double>& w1, const std::vector<double>& b1,
                        const std::vector<double>& w2, const std::vector<double>& b2,
                        const std::vector<double>& t) {
  Reference r;
  // Forward: z = x W1 + b1, h = tanh z, y = h W2 + b2.
  std::vector<double> h(N * H), y(N * O);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < H; ++j) {
      double z = b1[j];
      for (int i = 0; i < I; ++i) z += x[n * I + i] * w1[i * H + j];
      h[n * H + j] = std::tanh(z);
    }
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < O; ++o) {
      double v = b2[o];
      for (int j = 0; j < H; ++j) v += h[n * H + j] * w2[j * O + o];
      y[n * O + o] = v;
    }
  // loss = (1 / (N O)) sum (y - t)^2, so dL/dy = 2 (y - t) / (N O).
  std::vector<double> dy(N * O);
  for (int k = 0; k < N * O; ++k) {
    const double e = y[k] - t[k];
    r.loss += e * e / (N * O);
    dy[k] = 2 * e / (N * O);
  }
  // y = h W2 + b2: dW2 = h^T dy, db2 = column sums of dy, dh = dy W2^T.
  r.dw2.assign(H * O, 0);
  r.db2.assign(O, 0);
  std::vector<double> dh(N * H, 0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < O; ++o) {
      r.db2[o] += dy[n * O + o];
      for (int j = 0; j < H; ++j) {
        r.dw2[j * O + o] += h[n * H + j] * dy[n * O + o];
        dh[n * H + j] += dy[n * O + o] * w2[j * O + o];
      }
    }
  // h = tanh z: dz = dh (1 - h^2).
  std::vector<double> dz(N * H);
  for (int k = 0; k < N * H; ++k) dz[k] = dh[k] * (1 - h[k] * h[k]);
  // z = x W1 + b1: dW1 = x^T dz, db1 = column sums of dz, dx = dz W1^T.
  r.dw1.assign(I * H, 0);
  r.db1.assign(H, 0);
  r.dx.assign(N * I, 0);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < H; ++j) {
      r.db1[j] += dz[n * H + j];
      for (int i = 0; i < I; ++i) {
        r.dw1[i * H + j] += x[n * I + i] * dz[n * H + j];
        r.dx[n * I + i] += dz[n * H + j] * w1[i * H + j];
      }
    }
  return r;
}

}  // namespace

TEST(MlpGradients, MatchHandDerivedDoubleBackward) {
  const int N = 4, I = 3, H = 5, O = 2;
  Tensor x = normal({N, I}, 1);
  Tensor w1 = normal({I, H}, 2, 0.7f), b1 = normal({H}, 3, 0.3f);
  Tensor w2 = normal({H, O}, 4, 0.7f), b2 = normal({O}, 5, 0.3f);
  const Tensor t = normal({N, O}, 6).detach();

  const Tensor pred = matmul(tanh(matmul(x, w1) + b1), w2) + b2;
  const Tensor loss = mean(square(pred - t));
  loss.backward();

  const Reference ref = reference_mlp(N, I, H, O, values(x), values(w1), values(b1), values(w2),
                                      values(b2), values(t));
  // float32 forward and backward against double: a few ulps of the sums.
  const double tol = 1e-5;
  EXPECT_NEAR(loss.item(), ref.loss, tol * (1 + ref.loss));
  EXPECT_TRUE(AllClose(x.grad(), ref.dx, tol)) << "dx";
  EXPECT_TRUE(AllClose(w1.grad(), ref.dw1, tol)) << "dW1";
  EXPECT_TRUE(AllClose(b1.grad(), ref.db1, tol)) << "db1";
  EXPECT_TRUE(AllClose(w2.grad(), ref.dw2, tol)) << "dW2";
  EXPECT_TRUE(AllClose(b2.grad(), ref.db2, tol)) << "db2";
  EXPECT_FALSE(t.grad().defined());
}

TEST(MlpGradients, BatchedInputThroughTheFusedGemmPathMatchesToo) {
  // x of shape [2, 3, I] @ W1 [I, H] takes matmul's one-big-GEMM path; the
  // reference sees it as 6 rows.
  const int B = 2, S = 3, I = 4, H = 3, O = 2, N = B * S;
  Tensor x = normal({B, S, I}, 11);
  Tensor w1 = normal({I, H}, 12, 0.7f), b1 = normal({H}, 13, 0.3f);
  Tensor w2 = normal({H, O}, 14, 0.7f), b2 = normal({O}, 15, 0.3f);
  const Tensor t = normal({B, S, O}, 16).detach();

  const Tensor loss = mean(square(matmul(tanh(matmul(x, w1) + b1), w2) + b2 - t));
  loss.backward();

  const Reference ref = reference_mlp(N, I, H, O, values(x), values(w1), values(b1), values(w2),
                                      values(b2), values(t));
  const double tol = 1e-5;
  EXPECT_NEAR(loss.item(), ref.loss, tol * (1 + ref.loss));
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().shape(), Shape({B, S, I}));
  EXPECT_TRUE(AllClose(x.grad(), ref.dx, tol)) << "dx";
  EXPECT_TRUE(AllClose(w1.grad(), ref.dw1, tol)) << "dW1";
  EXPECT_TRUE(AllClose(b1.grad(), ref.db1, tol)) << "db1";
  EXPECT_TRUE(AllClose(w2.grad(), ref.dw2, tol)) << "dW2";
  EXPECT_TRUE(AllClose(b2.grad(), ref.db2, tol)) << "db2";
}
