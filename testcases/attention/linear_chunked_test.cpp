// The one-op chunkwise causal linear attention (attention/linear_chunked.h),
// which linear_attention_causal_features runs: forward and gradients against
// plain double-precision loops (any feature width, GQA, ragged and tiny
// chunks), gradcheck, agreement with the op-by-op chunk loop it replaced,
// one graph node however many chunks, the same bits at 1 and 2 threads,
// bad inputs, and CUDA parity in fp32 and TF32 (which skips without a GPU,
// saying why).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "attention/linear.h"
#include "attention/linear_chunked.h"
#include "autograd/engine.h"
#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/threads.h"
#include "testcases/error_of.h"
#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cuda_settings.h"
#endif

using namespace attn;

namespace {

constexpr double kEps = 1e-6;

struct Case {
  int64_t B, H, Hkv, T, m, dv, chunk;
  std::string name() const {
    return "B" + std::to_string(B) + " H" + std::to_string(H) + " Hkv" + std::to_string(Hkv) +
           " T" + std::to_string(T) + " m" + std::to_string(m) + " dv" + std::to_string(dv) +
           " chunk" + std::to_string(chunk);
  }
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name(); }

// Positive features (as phi gives) in [0.1, 1.1), values in [-1, 1).
struct Inputs {
  Tensor fq, fk, v, w;  // w weighs the output into the loss sum(out * w)
};
Inputs inputs(const Case& c, uint64_t seed) {
  Generator g(seed);
  Inputs in;
  in.fq = add(rand({c.B, c.H, c.T, c.m}, g), 0.1f);
  in.fk = add(rand({c.B, c.Hkv, c.T, c.m}, g), 0.1f);
  in.v = add(mul(rand({c.B, c.Hkv, c.T, c.dv}, g), 2.0f), -1.0f);
  in.w = randn({c.B, c.H, c.T, c.dv}, g);
  return in;
}

// The definition, in double, O(T^2): with s_ij = fq_i . fk_j over j <= i,
//   out_i = N_i / D_i,  N_i = sum_j s_ij v_j,  D_i = sum_j s_ij + eps
// and, for the loss L = sum(out * w), its gradients by the chain rule:
//   dN_i = w_i / D_i,  dD_i = -(w_i . out_i) / D_i,  ds_ij = dN_i . v_j + dD_i
//   dfq_i += ds_ij fk_j,  dfk_j += ds_ij fq_i,  dv_j += s_ij dN_i
struct Oracle {
  std::vector<double> out, dfq, dfk, dv;
};
Oracle oracle(const Case& c, const Inputs& in) {
  const auto q = in.fq.to_vector(), k = in.fk.to_vector(), v = in.v.to_vector(), w = in.w.to_vector();
  Oracle o;
  o.out.assign(q.size() / c.m * c.dv, 0.0);
  o.dfq.assign(q.size(), 0.0), o.dfk.assign(k.size(), 0.0), o.dv.assign(v.size(), 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.H; ++h) {
      const int64_t kv = h / (c.H / c.Hkv);
      auto Q = [&](int64_t i) { return ((b * c.H + h) * c.T + i) * c.m; };
      auto K = [&](int64_t j) { return ((b * c.Hkv + kv) * c.T + j) * c.m; };
      auto V = [&](int64_t j) { return ((b * c.Hkv + kv) * c.T + j) * c.dv; };
      auto O = [&](int64_t i) { return ((b * c.H + h) * c.T + i) * c.dv; };
      for (int64_t i = 0; i < c.T; ++i) {
        std::vector<double> s(i + 1, 0.0), num(c.dv, 0.0);
        double den = kEps;
        for (int64_t j = 0; j <= i; ++j) {
          for (int64_t e = 0; e < c.m; ++e) s[j] += double(q[Q(i) + e]) * k[K(j) + e];
          den += s[j];
          for (int64_t e = 0; e < c.dv; ++e) num[e] += s[j] * v[V(j) + e];
        }
        std::vector<double> dnum(c.dv);
        double dden = 0;
        for (int64_t e = 0; e < c.dv; ++e) {
          o.out[O(i) + e] = num[e] / den;
          dnum[e] = w[O(i) + e] / den;
          dden -= w[O(i) + e] * num[e] / den / den;
        }
        for (int64_t j = 0; j <= i; ++j) {
          double ds = dden;
          for (int64_t e = 0; e < c.dv; ++e) {
            ds += dnum[e] * v[V(j) + e];
            o.dv[V(j) + e] += s[j] * dnum[e];
          }
          for (int64_t e = 0; e < c.m; ++e) {
            o.dfq[Q(i) + e] += ds * k[K(j) + e];
            o.dfk[K(j) + e] += ds * q[Q(i) + e];
          }
        }
      }
    }
  return o;
}

// Every element within tol * (1 + |want|).
::testing::AssertionResult near(const std::vector<float>& got, const std::vector<double>& want,
                                double tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << got.size() << " elements, expected " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::fabs(got[i] - want[i]) <= tol * (1 + std::fabs(want[i]))))
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", expected "
                                           << want[i] << " (tolerance " << tol << " relative)";
  return ::testing::AssertionSuccess();
}

struct Result {
  std::vector<float> out, dfq, dfk, dv;
};
Result run(const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& f,
           const Inputs& in, const Device& device = Device::cpu()) {
  // Fresh leaves each run (clone: on the CPU, to() may hand back the input itself).
  Tensor fq = in.fq.clone().to(device).set_requires_grad();
  Tensor fk = in.fk.clone().to(device).set_requires_grad();
  Tensor v = in.v.clone().to(device).set_requires_grad();
  const Tensor out = f(fq, fk, v);
  sum(mul(out, in.w.to(device))).backward();
  return {out.to_vector(), fq.grad().to_vector(), fk.grad().to_vector(), v.grad().to_vector()};
}

Tensor chunked(const Tensor& fq, const Tensor& fk, const Tensor& v, int64_t chunk) {
  return linear_attention_causal_features(fq, fk, v, chunk, static_cast<float>(kEps));
}

// The op-by-op chunk loop the library ran before (chapter 10's algorithm):
// a dozen autograd ops per chunk, the state carried by the host loop.
Tensor op_by_op(const Tensor& fq, const Tensor& fk_kv, const Tensor& v_kv, int64_t chunk) {
  const int64_t B = fq.shape()[0], H = fq.shape()[1], T = fq.shape()[2], m = fq.shape()[3];
  const Tensor fk = repeat_kv(fk_kv, H), v = repeat_kv(v_kv, H);
  Tensor state = zeros({B, H, m, v.shape()[3]});
  Tensor norm = zeros({B, H, m, 1});
  std::vector<Tensor> out;
  for (int64_t s = 0; s < T; s += chunk) {
    const int64_t n = std::min(chunk, T - s);
    const Tensor qc = narrow(fq, 2, s, n), kc = narrow(fk, 2, s, n), vc = narrow(v, 2, s, n);
    const Tensor a = tril(matmul(qc, transpose(kc, -2, -1)));
    const Tensor num = add(matmul(qc, state), matmul(a, vc));
    const Tensor den = add(matmul(qc, norm), sum(a, {-1}, true));
    out.push_back(div(num, add(den, static_cast<float>(kEps))));
    state = add(state, matmul(transpose(kc, -2, -1), vc));
    norm = add(norm, transpose(sum(kc, {2}, true), -2, -1));
  }
  return cat(out, 2);
}

}  // namespace

class LinearChunkedOracle : public ::testing::TestWithParam<Case> {};

// fp32 against double: the products sum at most T terms of size ~m, and a
// whole chunk (up to 64 rows) goes through one float product.
TEST_P(LinearChunkedOracle, ForwardAndGradientsMatchDoubleLoops) {
  const Case c = GetParam();
  const Inputs in = inputs(c, 7 * c.T + c.chunk);
  const Oracle want = oracle(c, in);
  const Result got = run([&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return chunked(q, k, v, c.chunk);
  }, in);
  EXPECT_TRUE(near(got.out, want.out, 2e-5)) << c.name() << ": output";
  EXPECT_TRUE(near(got.dfq, want.dfq, 1e-4)) << c.name() << ": gradient of phi(q)";
  EXPECT_TRUE(near(got.dfk, want.dfk, 1e-4)) << c.name() << ": gradient of phi(k)";
  EXPECT_TRUE(near(got.dv, want.dv, 1e-4)) << c.name() << ": gradient of v";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LinearChunkedOracle,
    ::testing::Values(Case{2, 2, 2, 40, 8, 8, 8},    // m == d, whole chunks
                      Case{1, 2, 2, 37, 12, 5, 8},   // m != d_v, a ragged last chunk
                      Case{2, 4, 2, 29, 6, 7, 4},    // GQA, ragged
                      Case{1, 3, 1, 21, 5, 4, 6},    // MQA, odd heads
                      Case{1, 2, 1, 11, 4, 3, 64},   // T < chunk: one chunk of T
                      Case{2, 2, 2, 1, 3, 2, 64},    // T == 1
                      Case{1, 4, 2, 9, 3, 4, 1},     // chunks of one: a pure recurrence
                      Case{1, 2, 2, 64, 17, 9, 64}));  // chunk == T

TEST(LinearChunked, Gradcheck) {
  // GQA, m != d_v, a ragged last chunk: every term of the backward.
  const Case c{1, 4, 2, 7, 3, 2, 3};
  const Inputs in = inputs(c, 11);
  Tensor fq = in.fq.clone().set_requires_grad(), fk = in.fk.clone().set_requires_grad(),
         v = in.v.clone().set_requires_grad();
  const GradcheckResult r = gradcheck(
      [](const auto& x) { return chunked(x[0], x[1], x[2], 3); }, {fq, fk, v});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(LinearChunked, MatchesTheOpByOpChunkLoop) {
  // Same chunks, same algorithm, other order of float additions: outputs
  // within 1e-5, gradients within 5e-5 of each other (relative to 1 + |x|).
  const Case c{2, 4, 2, 200, 16, 8, 64};
  const Inputs in = inputs(c, 12);
  const Result fused = run([&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return chunked(q, k, v, c.chunk);
  }, in);
  const Result loop = run([&](const Tensor& q, const Tensor& k, const Tensor& v) {
    return op_by_op(q, k, v, c.chunk);
  }, in);
  auto as_double = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
  EXPECT_TRUE(near(fused.out, as_double(loop.out), 1e-5)) << "output";
  EXPECT_TRUE(near(fused.dfq, as_double(loop.dfq), 5e-5)) << "gradient of phi(q)";
  EXPECT_TRUE(near(fused.dfk, as_double(loop.dfk), 5e-5)) << "gradient of phi(k)";
  EXPECT_TRUE(near(fused.dv, as_double(loop.dv), 5e-5)) << "gradient of v";
}

TEST(LinearChunked, SameBitsAtOneAndTwoThreads) {
  // Enough chunks and heads that the products and the scan split over threads.
  const Case c{2, 4, 2, 1000, 32, 32, 64};
  const Inputs in = inputs(c, 13);
  auto at = [&](int threads) {
    const int before = num_threads();
    set_num_threads(threads);
    const Result r = run([&](const Tensor& q, const Tensor& k, const Tensor& v) {
      return chunked(q, k, v, c.chunk);
    }, in);
    set_num_threads(before);
    return r;
  };
  const Result one = at(1), two = at(2);
  EXPECT_EQ(one.out, two.out);
  EXPECT_EQ(one.dfq, two.dfq);
  EXPECT_EQ(one.dfk, two.dfk);
  EXPECT_EQ(one.dv, two.dv);
}

TEST(LinearChunked, OneGraphNodeForEveryChunk) {
  // 300 positions in chunks of 8 are 38 chunks: still one node, whose
  // inputs are the three leaves themselves (no per-chunk ops in between).
  const Inputs in = inputs(Case{1, 2, 1, 300, 4, 4, 8}, 17);
  Tensor fq = in.fq.clone().set_requires_grad(), fk = in.fk.clone().set_requires_grad(),
         v = in.v.clone().set_requires_grad();
  const Tensor out = chunked(fq, fk, v, 8);
  const std::shared_ptr<Node>& node = out.impl()->grad_fn;
  ASSERT_TRUE(node);
  EXPECT_EQ(node->name, "linear_attention_causal");
  ASSERT_EQ(node->inputs.size(), 3u);
  for (const Edge& e : node->inputs) {
    EXPECT_FALSE(e.producer) << "an op sits between the leaves and the node";
    EXPECT_TRUE(e.leaf);
  }
}

TEST(LinearChunked, ReadsStridedInputsWhereTheyAre) {
  // q, k, v as the projections give them ([B, T, H, d] seen as [B, H, T, d])
  // equal their contiguous copies.
  Generator g(14);
  const Tensor fq = transpose(add(rand({2, 19, 4, 6}, g), 0.1f), 1, 2);
  const Tensor fk = transpose(add(rand({2, 19, 2, 6}, g), 0.1f), 1, 2);
  const Tensor v = transpose(randn({2, 19, 2, 5}, g), 1, 2);
  EXPECT_EQ(chunked(fq, fk, v, 8).to_vector(),
            chunked(fq.contiguous(), fk.contiguous(), v.contiguous(), 8).to_vector());
}

TEST(LinearChunked, BadInputsNameTheOpAndTheValue) {
  const Tensor q = ones({1, 4, 6, 3}), k = ones({1, 2, 6, 3}), v = ones({1, 2, 6, 5});
  auto expect_error = [](const std::function<void()>& f, const std::string& want) {
    const std::string got = error_of(f);
    EXPECT_NE(got.find(want), std::string::npos) << "got: " << got;
  };
  expect_error([&] { chunked(q, k, v, 0); }, "linear_attention_causal: chunk must be >= 1, got 0");
  expect_error([&] { chunked(q, k, v, -3); }, "linear_attention_causal: chunk must be >= 1, got -3");
  expect_error([&] { chunked(q, ones({1, 2, 6, 4}), v, 4); },
               "linear_attention_causal: phi(q) [1,4,6,3], phi(k) [1,2,6,4] and v [1,2,6,5] disagree");
  expect_error([&] { chunked(q, ones({1, 3, 6, 3}), ones({1, 3, 6, 5}), 4); },
               "linear_attention_causal: 3 K/V heads do not divide 4 query heads");
  // Non-causal use (a K/V cache, or keys from elsewhere): causal needs Tk == Tq.
  expect_error([&] { chunked(q, ones({1, 2, 9, 3}), ones({1, 2, 9, 5}), 4); },
               "linear_attention_causal: causal linear attention needs as many keys as queries, "
               "got 9 keys for 6 queries");
  expect_error([&] { chunked(ones({1, 4, 3}), k, v, 4); },
               "linear_attention_causal: expected phi(q) [B, H, T, m], phi(k) [B, Hkv, T, m] and "
               "v [B, Hkv, T, d_v], got [1,4,3]");
  expect_error([&] { chunked(ones({1, 4, 0, 3}), ones({1, 2, 0, 3}), ones({1, 2, 0, 5}), 4); },
               "linear_attention_causal: no positions");
  expect_error([&] { linear_attention_chunked(q, k, v, 0, 1e-6f, "performer"); },
               "performer: chunk must be >= 1, got 0");
}

// ---- CUDA parity: the same host code over cuBLAS and the kernels of
// core/cuda/linear_attention.cu ----

namespace {

std::string cuda_reason() {
  try {
    backend_for(Device::cuda(0));
    return "cuda_available() is false";
  } catch (const Error& e) {
    return e.what();
  }
}

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda_reason()

}  // namespace

TEST(LinearChunkedCudaParity, OutputAndGradientsMatchTheCpu) {
  REQUIRE_CUDA();
  // fp32 products on both sides, summed in other orders: 1e-5 relative
  // for the output, 5e-5 for the gradients (as MatchesTheOpByOpChunkLoop).
  for (const Case& c : {Case{2, 4, 2, 200, 16, 8, 64}, Case{1, 2, 2, 37, 12, 5, 8},
                        Case{1, 3, 1, 21, 5, 4, 6}, Case{2, 2, 2, 1, 3, 2, 64},
                        Case{1, 4, 4, 1024, 64, 64, 64}}) {
    const Inputs in = inputs(c, 15);
    auto f = [&](const Tensor& q, const Tensor& k, const Tensor& v) { return chunked(q, k, v, c.chunk); };
    const Result cpu = run(f, in), gpu = run(f, in, Device::cuda(0));
    auto as_double = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
    EXPECT_TRUE(near(gpu.out, as_double(cpu.out), 1e-5)) << c.name() << ": output";
    EXPECT_TRUE(near(gpu.dfq, as_double(cpu.dfq), 5e-5)) << c.name() << ": gradient of phi(q)";
    EXPECT_TRUE(near(gpu.dfk, as_double(cpu.dfk), 5e-5)) << c.name() << ": gradient of phi(k)";
    EXPECT_TRUE(near(gpu.dv, as_double(cpu.dv), 5e-5)) << c.name() << ": gradient of v";
  }
}

TEST(LinearChunkedCudaParity, Tf32StaysNearTheCpu) {
  REQUIRE_CUDA();
#ifdef ATTNLAB_WITH_CUDA
  // TF32 keeps 10 bits of mantissa in the products' inputs: ~1e-3 relative
  // per product, so 5e-3 for the output and 2e-2 for the gradients (which
  // subtract nearly equal terms).
  const Case c{1, 4, 2, 512, 64, 64, 64};
  const Inputs in = inputs(c, 16);
  auto f = [&](const Tensor& q, const Tensor& k, const Tensor& v) { return chunked(q, k, v, c.chunk); };
  const Result cpu = run(f, in);
  set_cuda_tf32(true);
  const Result gpu = run(f, in, Device::cuda(0));
  set_cuda_tf32(false);
  auto as_double = [](const std::vector<float>& x) { return std::vector<double>(x.begin(), x.end()); };
  EXPECT_TRUE(near(gpu.out, as_double(cpu.out), 5e-3)) << "output";
  EXPECT_TRUE(near(gpu.dfq, as_double(cpu.dfq), 2e-2)) << "gradient of phi(q)";
  EXPECT_TRUE(near(gpu.dfk, as_double(cpu.dfk), 2e-2)) << "gradient of phi(k)";
  EXPECT_TRUE(near(gpu.dv, as_double(cpu.dv), 2e-2)) << "gradient of v";
#endif
}
