// Our matmul against calling OpenBLAS sgemm directly on the same data.
//
// Both sides run single-threaded by default (set OPENBLAS_NUM_THREADS to
// change that) so the ratio measures our overhead, not thread scheduling.
// Prints a table: size, ours (ms), raw sgemm (ms), ratio = raw / ours
// (1.00 means no overhead; the target is >= 0.95 from 512 up).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/engine.h"
#include "autograd/ops.h"

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
  return 0;
}
