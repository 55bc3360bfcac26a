// Fused layers on the CPU: LayerNorm, RMSNorm, cross-entropy and AdamW.
// Each forward saves the per-row statistics its backward needs, so the
// backward never recomputes a mean or a logsumexp.
#include <cmath>
#include <vector>

#include "core/cpu/cpu_backend.h"

namespace attn {

// ---- LayerNorm ----
// xhat = (x - mean) * rstd,  y = xhat * w + b.
// With dxhat = dy * w, the gradient through the normalisation is
//   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
// because shifting x by a constant, or scaling it, leaves xhat unchanged.

void CpuBackend::layer_norm(float* y, float* mean, float* rstd, const float* x, const float* w,
                            const float* b, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double sum = 0, sq = 0;
    for (int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mu = sum / cols;
    for (int64_t c = 0; c < cols; ++c) sq += (xr[c] - mu) * (xr[c] - mu);
    const float rs = static_cast<float>(1.0 / std::sqrt(sq / cols + eps));
    mean[r] = static_cast<float>(mu);
    rstd[r] = rs;
    float* yr = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const float xhat = (xr[c] - mean[r]) * rs;
      yr[c] = xhat * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
    }
  }
}

void CpuBackend::layer_norm_backward(float* dx, float* dw, float* db, const float* dy,
                                     const float* x, const float* mean, const float* rstd,
                                     const float* w, int64_t rows, int64_t cols) {
  std::vector<double> dw_acc(dw ? cols : 0, 0.0), db_acc(db ? cols : 0, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    double mean_dxhat = 0, mean_dxhat_xhat = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mean[r]) * rstd[r];
      const double dxhat = gr[c] * (w ? w[c] : 1.0f);
      mean_dxhat += dxhat;
      mean_dxhat_xhat += dxhat * xhat;
      if (dw) dw_acc[c] += gr[c] * xhat;
      if (db) db_acc[c] += gr[c];
    }
    mean_dxhat /= cols;
    mean_dxhat_xhat /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = (xr[c] - mean[r]) * rstd[r];
      const double dxhat = gr[c] * (w ? w[c] : 1.0f);
      dx[r * cols + c] = static_cast<float>(rstd[r] * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat));
    }
  }
  for (int64_t c = 0; dw && c < cols; ++c) dw[c] = static_cast<float>(dw_acc[c]);
  for (int64_t c = 0; db && c < cols; ++c) db[c] = static_cast<float>(db_acc[c]);
}

// ---- RMSNorm ----
// y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps): no mean subtraction,
// no bias. dx = rstd * (dxhat - xhat * mean(dxhat * xhat)), xhat = x * rstd.

void CpuBackend::rms_norm(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                          int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double sq = 0;
    for (int64_t c = 0; c < cols; ++c) sq += static_cast<double>(xr[c]) * xr[c];
    const float rs = static_cast<float>(1.0 / std::sqrt(sq / cols + eps));
    rstd[r] = rs;
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * rs * (w ? w[c] : 1.0f);
  }
}

void CpuBackend::rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                                   const float* rstd, const float* w, int64_t rows,
                                   int64_t cols) {
  std::vector<double> dw_acc(dw ? cols : 0, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    double mean_dxhat_xhat = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = static_cast<double>(xr[c]) * rstd[r];
      mean_dxhat_xhat += gr[c] * (w ? w[c] : 1.0f) * xhat;
      if (dw) dw_acc[c] += gr[c] * xhat;
    }
    mean_dxhat_xhat /= cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double xhat = static_cast<double>(xr[c]) * rstd[r];
      const double dxhat = gr[c] * (w ? w[c] : 1.0f);
      dx[r * cols + c] = static_cast<float>(rstd[r] * (dxhat - xhat * mean_dxhat_xhat));
    }
  }
  for (int64_t c = 0; dw && c < cols; ++c) dw[c] = static_cast<float>(dw_acc[c]);
}

// ---- cross-entropy ----
// loss = logsumexp(z) - z[target]; d loss / dz = softmax(z) - onehot(target).

int64_t CpuBackend::cross_entropy(float* loss, float* lse, const float* logits,
                                  const int64_t* targets, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    if (targets[r] < 0 || targets[r] >= cols) return r;
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits + r * cols;
    float mx = z[0];
    for (int64_t c = 1; c < cols; ++c) mx = std::max(mx, z[c]);
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += std::exp(static_cast<double>(z[c] - mx));
    lse[r] = mx + static_cast<float>(std::log(sum));
    loss[r] = lse[r] - z[targets[r]];
  }
  return -1;
}

void CpuBackend::cross_entropy_backward(float* dz, const float* logits, const float* lse,
                                        const int64_t* targets, const float* dloss, int64_t rows,
                                        int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = logits + r * cols;
    float* d = dz + r * cols;
    for (int64_t c = 0; c < cols; ++c) d[c] = std::exp(z[c] - lse[r]) * dloss[r];
    d[targets[r]] -= dloss[r];
  }
}

// ---- AdamW ----
// m, v: running averages of g and g^2; the update divides the bias-corrected
// m by sqrt of the bias-corrected v. Weight decay shrinks the parameter
// directly ("decoupled"), instead of being added to the gradient.

void CpuBackend::adamw(const AdamWTensor* tensors, int count, const AdamW& h) {
  for (int k = 0; k < count; ++k) {
    const auto [p, g, m, v, n, weight_decay] = tensors[k];
    for (int64_t i = 0; i < n; ++i) {
      m[i] = h.beta1 * m[i] + (1 - h.beta1) * g[i];
      v[i] = h.beta2 * v[i] + (1 - h.beta2) * g[i] * g[i];
      const float m_hat = m[i] / h.bias_correction1;
      const float v_hat = v[i] / h.bias_correction2;
      p[i] -= h.lr * (m_hat / (std::sqrt(v_hat) + h.eps) + weight_decay * p[i]);
    }
  }
}

}  // namespace attn
