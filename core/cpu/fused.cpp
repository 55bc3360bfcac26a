// Fused layers on the CPU: LayerNorm, RMSNorm, cross-entropy and AdamW.
// Each forward saves the per-row statistics its backward needs, so the
// backward never recomputes a mean or a logsumexp.
//
// Rows are independent and go to the thread pool in chunks. The weight and
// bias gradients sum over rows: each chunk of rows keeps its own partial
// sums, and the chunks are added in order at the end, so the result is the
// same on any number of threads.
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/lanes.h"
#include "core/cpu/parallel.h"
#include "core/cpu/vmath.h"

namespace attn {
using namespace cpu;

// ---- LayerNorm ----
// xhat = (x - mean) * rstd,  y = xhat * w + b.
// With dxhat = dy * w, the gradient through the normalisation is
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
// because shifting x by a constant, or scaling it, leaves xhat unchanged.

namespace {

constexpr int64_t kRowGrain = 32;  // rows per chunk of work

// Partial sums over rows, one row of `cols` doubles per chunk, added in chunk
// order into out (floats) at the end.
struct ChunkSums {
  ChunkSums(int64_t chunks, int64_t cols) : cols(cols), sums(chunks * cols, 0.0) {}
  double* chunk(int64_t c) { return sums.data() + c * cols; }
  void write(float* out) const {
    if (!out) return;
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (size_t c = 0; c < sums.size() / cols; ++c) s += sums[c * cols + j];
      out[j] = static_cast<float>(s);
    }
  }
  int64_t cols;
  std::vector<double> sums;
};

ATTN_VECTOR_CLONES void layer_norm_rows(float* y, float* mean, float* rstd, const float* x,
                                        const float* w, const float* b, int64_t r0, int64_t r1,
                                        int64_t cols, float eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * cols;
    const double mu = sum_of(xr, cols) / cols;
    const float rs = static_cast<float>(1.0 / std::sqrt(sq_dev_of(xr, mu, cols) / cols + eps));
    const float m = static_cast<float>(mu);
    mean[r] = m;
    rstd[r] = rs;
    float* yr = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float xhat = (xr[c] - m) * rs;
      yr[c] = xhat * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
  }
}

// One chunk of rows of the LayerNorm (centre = true) or RMSNorm backward;
// dw and db (double, per chunk) may be null.
ATTN_VECTOR_CLONES void norm_backward_rows(bool centre, float* dx, double* dw, double* db,
                                           const float* dy, const float* x, const float* mean,
                                           const float* rstd, const float* w, int64_t r0,
                                           int64_t r1, int64_t cols, float* scratch) {
  float* xhat = scratch;
  float* dxhat = scratch + cols;
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    const float m = centre ? mean[r] : 0.0f, rs = rstd[r];
    for (int64_t c = 0; c < cols; ++c) {
      xhat[c] = (xr[c] - m) * rs;
      dxhat[c] = gr[c] * (w ? w[c] : 1.0f);
    }
    const float mean_dxhat = centre ? static_cast<float>(sum_of(dxhat, cols) / cols) : 0.0f;
    const float mean_dxhat_xhat = static_cast<float>(dot_of(dxhat, xhat, cols) / cols);
    float* dxr = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c)
      dxr[c] = rs * (dxhat[c] - mean_dxhat - xhat[c] * mean_dxhat_xhat);
    if (dw)
      for (int64_t c = 0; c < cols; ++c) dw[c] += static_cast<double>(gr[c]) * xhat[c];
    if (db)
      for (int64_t c = 0; c < cols; ++c) db[c] += gr[c];
  }
}

void norm_backward(bool centre, float* dx, float* dw, float* db, const float* dy, const float* x,
                   const float* mean, const float* rstd, const float* w, int64_t rows,
                   int64_t cols) {
  const int64_t chunks = chunk_count(rows, kRowGrain);
  ChunkSums dw_sums(dw ? chunks : 0, cols), db_sums(db ? chunks : 0, cols);
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    std::vector<float> scratch(2 * cols);
    const int64_t c = r0 / kRowGrain;
    norm_backward_rows(centre, dx, dw ? dw_sums.chunk(c) : nullptr, db ? db_sums.chunk(c) : nullptr,
                       dy, x, mean, rstd, w, r0, r1, cols, scratch.data());
  });
  dw_sums.write(dw);
  db_sums.write(db);
}

}  // namespace

void CpuBackend::layer_norm(float* y, float* mean, float* rstd, const float* x, const float* w,
                            const float* b, int64_t rows, int64_t cols, float eps) {
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    layer_norm_rows(y, mean, rstd, x, w, b, r0, r1, cols, eps);
  });
}

void CpuBackend::layer_norm_backward(float* dx, float* dw, float* db, const float* dy,
                                     const float* x, const float* mean, const float* rstd,
                                     const float* w, int64_t rows, int64_t cols) {
  norm_backward(true, dx, dw, db, dy, x, mean, rstd, w, rows, cols);
}

// ---- RMSNorm ----
// y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps): no mean subtraction,
// no bias. dx = rstd * (dxhat - xhat * mean(dxhat * xhat)), xhat = x * rstd.

namespace {
ATTN_VECTOR_CLONES void rms_norm_rows(float* y, float* rstd, const float* x, const float* w,
                                      int64_t r0, int64_t r1, int64_t cols, float eps) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + r * cols;
    const float rs = static_cast<float>(1.0 / std::sqrt(dot_of(xr, xr, cols) / cols + eps));
    rstd[r] = rs;
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * rs * (w ? w[c] : 1.0f);
  }
}
}  // namespace

void CpuBackend::rms_norm(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                          int64_t cols, float eps) {
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    rms_norm_rows(y, rstd, x, w, r0, r1, cols, eps);
  });
}

void CpuBackend::rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                                   const float* rstd, const float* w, int64_t rows,
                                   int64_t cols) {
  norm_backward(false, dx, dw, nullptr, dy, x, nullptr, rstd, w, rows, cols);
}

namespace {
ATTN_VECTOR_CLONES void cross_entropy_rows(float* loss, float* lse, const float* logits,
                                           const int64_t* targets, int64_t r0, int64_t r1,
                                           int64_t cols) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* z = logits + r * cols;
    const float mx = max_of(z, cols);
    lse[r] = mx + static_cast<float>(std::log(sum_exp_of(z, mx, cols)));
    loss[r] = lse[r] - z[targets[r]];
  }
}

ATTN_VECTOR_CLONES void cross_entropy_backward_rows(float* dz, const float* logits,
                                                    const float* lse, const int64_t* targets,
                                                    const float* dloss, int64_t r0, int64_t r1,
                                                    int64_t cols) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* z = logits + r * cols;
    float* d = dz + r * cols;
    const float l = lse[r], g = dloss[r];
    for (int64_t c = 0; c < cols; ++c) d[c] = vmath::exp(z[c] - l) * g;
    d[targets[r]] -= g;
  }
}

ATTN_VECTOR_CLONES void adamw_range(float* p, const float* g, float* m, float* v, int64_t n,
                                    float weight_decay, const Backend::AdamW& h) {
  for (int64_t i = 0; i < n; ++i) {
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
    const float m_hat = m[i] / h.bias_correction1;
    const float v_hat = v[i] / h.bias_correction2;
    p[i] -= h.lr * (m_hat / (std::sqrt(v_hat) + h.eps) + weight_decay * p[i]);
  }
}
}  // namespace

// ---- cross-entropy ----
// loss = logsumexp(z) - z[target]; d loss / dz = softmax(z) - onehot(target).

int64_t CpuBackend::cross_entropy(float* loss, float* lse, const float* logits,
                                  const int64_t* targets, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    if (targets[r] < 0 || targets[r] >= cols) return r;
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    cross_entropy_rows(loss, lse, logits, targets, r0, r1, cols);
  });
  return -1;
}

void CpuBackend::cross_entropy_backward(float* dz, const float* logits, const float* lse,
                                        const int64_t* targets, const float* dloss, int64_t rows,
                                        int64_t cols) {
  parallel_for(rows, kRowGrain, [&](int64_t r0, int64_t r1) {
    cross_entropy_backward_rows(dz, logits, lse, targets, dloss, r0, r1, cols);
  });
}

// ---- AdamW ----
// m, v: running averages of g and g^2; the update divides the bias-corrected
// m by sqrt of the bias-corrected v. Weight decay shrinks the parameter
// directly ("decoupled"), instead of being added to the gradient.

void CpuBackend::adamw(const AdamWTensor* tensors, int count, const AdamW& h) {
  for (int k = 0; k < count; ++k) {
    const AdamWTensor& t = tensors[k];
    parallel_for(t.n, kElementGrain, [&](int64_t b, int64_t e) {
      adamw_range(t.param + b, t.grad + b, t.m + b, t.v + b, e - b, t.weight_decay, h);
    });
  }
}

}  // namespace attn
