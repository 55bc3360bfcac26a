#include "nn/layers.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

Tensor dropout(const Tensor& x, float p, bool training, DropoutSource& source) {
  check(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0) return x;
  return dropout(x, p, source.next(), source.first_sample);
}

Tensor dropout_add(const Tensor& residual, const Tensor& x, float p, bool training,
                   DropoutSource& source) {
  check(p >= 0 && p < 1, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0) return add(residual, x);
  return dropout_add(residual, x, p, source.next(), source.first_sample);
}

Embedding::Embedding(int64_t count, int64_t dim, Generator& gen, float init_std) {
  check(count > 0 && dim > 0, "Embedding: sizes must be positive, got ", count, " x ", dim);
  Tensor w = empty({count, dim});
  init_normal(w, init_std, gen);
  weight_ = &register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(*weight_, ids); }

LayerNorm::LayerNorm(int64_t dim, bool bias, float eps) : eps_(eps) {
  weight_ = &register_parameter("weight", ones({dim}));
  if (bias) bias_ = &register_parameter("bias", zeros({dim}));
}

Tensor LayerNorm::forward(const Tensor& x) const {
  return layer_norm(x, *weight_, bias_ ? *bias_ : Tensor(), eps_);
}

RMSNorm::RMSNorm(int64_t dim, float eps) : eps_(eps) {
  weight_ = &register_parameter("weight", ones({dim}));
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, *weight_, eps_); }

BatchNorm1d::BatchNorm1d(int64_t channels, float momentum, float eps)
    : momentum_(momentum), eps_(eps) {
  weight_ = &register_parameter("weight", ones({channels}));
  bias_ = &register_parameter("bias", zeros({channels}));
  running_mean_ = &register_buffer("running_mean", zeros({channels}));
  running_var_ = &register_buffer("running_var", ones({channels}));
}

Tensor BatchNorm1d::forward(const Tensor& x) {
  check(x.dim() >= 2 && x.shape().back() == weight_->shape()[0], "BatchNorm1d: input of shape ",
        shape_str(x.shape()), " does not end in ", weight_->shape()[0], " channels");
  // Statistics over every dim but the channel dim.
  std::vector<int64_t> dims;
  for (int d = 0; d < x.dim() - 1; ++d) dims.push_back(d);
  Tensor m, v;
  if (training()) {
    m = mean(x, dims);
    v = var(x, dims, /*correction=*/0);
    NoGradGuard no_grad;
    int64_t n = x.numel() / x.shape().back();
    // Running variance uses the unbiased estimate, as PyTorch does.
    const Tensor unbiased = n > 1 ? mul(v.detach(), static_cast<float>(n) / (n - 1)) : v.detach();
    *running_mean_ = add(mul(*running_mean_, 1 - momentum_), mul(m.detach(), momentum_));
    *running_var_ = add(mul(*running_var_, 1 - momentum_), mul(unbiased, momentum_));
  } else {
    m = *running_mean_;
    v = *running_var_;
  }
  return add(mul(div(sub(x, m), sqrt(add(v, eps_))), *weight_), *bias_);
}

Norm::Norm(const std::string& kind, int64_t dim, bool bias, float eps)
    : rms_(kind == "rmsnorm"), eps_(eps) {
  check(kind == "layernorm" || kind == "rmsnorm", "norm: must be layernorm or rmsnorm, got '",
        kind, "'");
  weight_ = &register_parameter("weight", ones({dim}));
  if (!rms_ && bias) bias_ = &register_parameter("bias", zeros({dim}));
}

Tensor Norm::forward(const Tensor& x) const {
  // layer_norm takes an undefined bias as "no shift" (as LayerNorm does).
  return rms_ ? rms_norm(x, *weight_, eps_)
              : layer_norm(x, *weight_, bias_ ? *bias_ : Tensor(), eps_);
}

Dropout::Dropout(float p, DropoutSource& source) : p_(p), source_(&source) {
  check(p >= 0 && p < 1, "Dropout: p must be in [0, 1), got ", p);
}

namespace {
float residual_std(int64_t layers) { return 0.02f / std::sqrt(2.0f * static_cast<float>(layers)); }
}  // namespace

MLP::MLP(int64_t embd, int64_t layers, bool bias, Generator& gen) {
  fc_ = register_module("fc", std::make_shared<Linear>(embd, 4 * embd, bias, gen));
  proj_ = register_module("proj",
                          std::make_shared<Linear>(4 * embd, embd, bias, gen, residual_std(layers)));
}

Tensor MLP::forward(const Tensor& x) const {
  // fc and GELU as one op: GELU runs in the product's epilogue.
  const Tensor h = linear(x, fc_->weight(), fc_->bias() ? *fc_->bias() : Tensor(),
                          LinearActivation::Gelu);
  return proj_->forward(h);
}

SwiGLU::SwiGLU(int64_t embd, int64_t layers, bool bias, Generator& gen) {
  const int64_t hidden = (8 * embd / 3 + 7) / 8 * 8;
  w1_ = register_module("w1", std::make_shared<Linear>(embd, hidden, bias, gen));
  w3_ = register_module("w3", std::make_shared<Linear>(embd, hidden, bias, gen));
  w2_ = register_module("w2",
                        std::make_shared<Linear>(hidden, embd, bias, gen, residual_std(layers)));
}

Tensor SwiGLU::forward(const Tensor& x) const {
  return w2_->forward(mul(silu(w1_->forward(x)), w3_->forward(x)));
}

}  // namespace attn
