// Our matmul against calling OpenBLAS sgemm directly on the same data.
//
// Ours runs on attnlab's thread setting (ATTNLAB_THREADS, default the
// physical cores), the raw sgemm on one OpenBLAS thread. Prints a table:
// size, ours (ms), raw sgemm (ms), ratio = raw / ours. With ATTNLAB_THREADS=1
// the ratio is our overhead alone (1.00: none; the target is >= 0.95 from
// 512 up).
//
// Then the floor of a training step: the Linear layers' products of one S2
// step (6 layers, embd 384, 2048 tokens; forward, dX and dW of each), which
// is what any implementation with OpenBLAS-speed products must spend, timed
// three ways: ours, raw sgemm on one thread, and raw sgemm on OpenBLAS's own
// threads (as many as ours). The last shares its packed operands between
// threads, which our shape-fixed cut (core/cpu/matmul.cpp) gives up to keep
// results independent of the thread count.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/threads.h"

using namespace attn;

namespace {

double best_ms(const std::function<void()>& f, int reps) {
  f();  // warm up caches and the allocator
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return best;
}

void row(const char* label, double ours, double raw) {
  std::printf("%-28s %10.3f %10.3f %8.3f\n", label, ours, raw, raw / ours);
}

// One S2 step's Linear products: y = x w^T, dx = dy w, dw = dy^T x for
// every layer's qkv, projection and MLP weights, and the LM head.
void step_products(Generator& gen) {
  const int64_t tokens = 2048, c = 384;
  struct Weight { int64_t in, out; };
  std::vector<Weight> weights;
  for (int l = 0; l < 6; ++l)
    for (const Weight w : {Weight{c, 3 * c}, Weight{c, c}, Weight{c, 4 * c}, Weight{4 * c, c}})
      weights.push_back(w);
  weights.push_back({c, 65});
  double gflop = 0;
  for (const Weight& w : weights) gflop += 3 * 2.0 * tokens * w.in * w.out / 1e9;
  // Ours on contiguous operands of each weight's shape (as the model has
  // them); the raw calls read the same sizes out of larger buffers.
  struct Operands { Tensor x, dy, w; };
  std::vector<Operands> operands;
  for (const Weight& w : weights)
    operands.push_back({randn({tokens, w.in}, gen), randn({tokens, w.out}, gen),
                        randn({w.out, w.in}, gen)});
  auto ours = [&] {
    for (const Operands& o : operands) {
      matmul(o.x, transpose(o.w, 0, 1));
      matmul(o.dy, o.w);
      matmul(transpose(o.dy, 0, 1), o.x);
    }
  };
  const Tensor x = randn({tokens, 4 * c}, gen), dy = randn({tokens, 4 * c}, gen),
               wt = randn({4 * c, 4 * c}, gen);
  std::vector<float> out(static_cast<size_t>(4 * c) * std::max<int64_t>(tokens, 4 * c));
  const float* xp = x.data<float>();
  const float* dyp = dy.data<float>();
  const float* wp = wt.data<float>();
  const int ld = static_cast<int>(4 * c), n = static_cast<int>(tokens);
  auto raw = [&] {
    for (const Weight& w : weights) {
      const int in = static_cast<int>(w.in), o = static_cast<int>(w.out);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, o, in, 1.0f, xp, ld, wp, ld, 0.0f,
                  out.data(), o);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, o, 1.0f, dyp, ld, wp, ld,
                  0.0f, out.data(), in);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, o, in, n, 1.0f, dyp, ld, xp, ld, 0.0f,
                  out.data(), in);
    }
  };
  const int threads = num_threads();
  const double t_ours = best_ms(ours, 3);
  const double t_raw1 = best_ms(raw, 3);
  openblas_set_num_threads(threads);
  const double t_raw = best_ms(raw, 3);
  openblas_set_num_threads(1);  // back to the setting core/threads.h keeps
  std::printf("\nS2 step's Linear products, %.1f GFLOP (best of 3)\n", gflop);
  std::printf("  ours, %d thread(s)              %8.1f ms  %6.1f GFLOP/s\n", threads, t_ours,
              gflop / t_ours * 1e3);
  std::printf("  sgemm, 1 OpenBLAS thread        %8.1f ms  %6.1f GFLOP/s\n", t_raw1,
              gflop / t_raw1 * 1e3);
  std::printf("  sgemm, %d OpenBLAS thread(s)     %8.1f ms  %6.1f GFLOP/s\n", threads, t_raw,
              gflop / t_raw * 1e3);
}

}  // namespace

int main() {
  NoGradGuard no_grad;
  Generator gen(0);
  std::printf("%-28s %10s %10s %8s\n", "shape", "ours ms", "sgemm ms", "ratio");
  for (int n : {64, 128, 256, 512, 1024}) {
    const Tensor a = randn({n, n}, gen), b = randn({n, n}, gen);
    std::vector<float> c(static_cast<size_t>(n) * n);
    const int reps = n <= 256 ? 50 : 10;
    const double ours = best_ms([&] { matmul(a, b); }, reps);
    const double raw = best_ms([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n,
                  b.data<float>(), n, 0.0f, c.data(), n);
    }, reps);
    char label[64];
    std::snprintf(label, sizeof label, "%dx%d @ %dx%d", n, n, n, n);
    row(label, ours, raw);
  }
  // Attention scores: q [BH, T, d] @ k^T [BH, d, T], k^T as a transposed view.
  for (int t : {256, 512}) {
    const int bh = 24, d = 64;
    const Tensor q = randn({bh, t, d}, gen), k = randn({bh, t, d}, gen);
    std::vector<float> s(static_cast<size_t>(bh) * t * t);
    const double ours = best_ms([&] { matmul(q, transpose(k, 1, 2)); }, 10);
    const double raw = best_ms([&] {
      for (int i = 0; i < bh; ++i)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, d, 1.0f,
                    q.data<float>() + static_cast<size_t>(i) * t * d, d,
                    k.data<float>() + static_cast<size_t>(i) * t * d, d, 0.0f,
                    s.data() + static_cast<size_t>(i) * t * t, t);
    }, 10);
    char label[64];
    std::snprintf(label, sizeof label, "[%d,%d,%d] @ [%d,%d,%d]^T", bh, t, d, bh, t, d);
    row(label, ours, raw);
  }
  step_products(gen);
  return 0;
}
