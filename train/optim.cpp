#include "train/optim.h"

#include <cmath>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p->zero_grad();
}

namespace {

void load_named(const std::vector<std::pair<std::string, Tensor>>& state, const std::string& key,
                Tensor& into) {
  for (const auto& [name, t] : state) {
    if (name != key) continue;
    check(t.shape() == into.shape(), "optimizer state: '", key, "' has shape ",
          shape_str(t.shape()), ", expected ", shape_str(into.shape()));
    backend_for(into.device()).copy(into.view_desc(), t.to(into.device()).view_desc());
    return;
  }
  fail("optimizer state: '", key, "' is missing");
}

}  // namespace

AdamW::AdamW(NamedParams params, float lr, float beta1, float beta2, float eps, float weight_decay)
    : Optimizer(std::move(params), lr), beta1_(beta1), beta2_(beta2), eps_(eps),
      weight_decay_(weight_decay) {
  // The bias correction divides by 1 - beta^t: beta = 1 divides by zero.
  check(beta1 >= 0 && beta1 < 1, "AdamW: beta1 must be in [0, 1), got ", beta1);
  check(beta2 >= 0 && beta2 < 1, "AdamW: beta2 must be in [0, 1), got ", beta2);
  for (auto& [name, p] : params_) {
    m_.push_back(zeros(p->shape(), DType::Float32, p->device()));
    v_.push_back(zeros(p->shape(), DType::Float32, p->device()));
  }
}

void AdamW::step() {
  ++t_;
  Backend::AdamW h{};
  h.lr = lr_;
  h.beta1 = beta1_;
  h.beta2 = beta2_;
  h.eps = eps_;
  h.bias_correction1 = 1.0f - std::pow(beta1_, static_cast<float>(t_));
  h.bias_correction2 = 1.0f - std::pow(beta2_, static_cast<float>(t_));
  // Every parameter with a gradient in one backend call per device (one,
  // in practice): the GPU updates them in a few launches.
  std::vector<Tensor> grads;  // keeps contiguous copies alive through the call
  std::vector<Backend::AdamWTensor> batch;
  Device device = Device::cpu();
  auto flush = [&] {
    if (!batch.empty()) backend_for(device).adamw(batch.data(), static_cast<int>(batch.size()), h);
    batch.clear();
    grads.clear();
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = *params_[i].second;
    if (!p.grad().defined()) continue;
    if (!batch.empty() && p.device() != device) flush();
    device = p.device();
    grads.push_back(p.grad().contiguous());
    // Decay the matrices only: gains and biases keep their scale.
    batch.push_back({p.data<float>(), grads.back().data<float>(), m_[i].data<float>(),
                     v_[i].data<float>(), p.numel(), p.dim() >= 2 ? weight_decay_ : 0.0f});
  }
  flush();
}

std::vector<std::pair<std::string, Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("adamw.t", from_ints({t_}, {1}));
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("adamw.m." + params_[i].first, m_[i]);
    out.emplace_back("adamw.v." + params_[i].first, v_[i]);
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  Tensor t = zeros({1}, DType::Int64);
  load_named(state, "adamw.t", t);
  t_ = t.to_int_vector()[0];
  for (size_t i = 0; i < params_.size(); ++i) {
    load_named(state, "adamw.m." + params_[i].first, m_[i]);
    load_named(state, "adamw.v." + params_[i].first, v_[i]);
  }
}

SGD::SGD(NamedParams params, float lr, float momentum)
    : Optimizer(std::move(params), lr), momentum_(momentum) {
  for (auto& [name, p] : params_) velocity_.push_back(zeros(p->shape(), DType::Float32, p->device()));
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = *params_[i].second;
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    Backend& be = backend_for(p.device());
    const Tensor v = add(mul(velocity_[i], momentum_), g);
    be.copy(velocity_[i].view_desc(), v.view_desc());
    const Tensor updated = sub(p.detach(), mul(v, lr_));
    be.copy(p.view_desc(), updated.view_desc());
  }
}

std::vector<std::pair<std::string, Tensor>> SGD::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i)
    out.emplace_back("sgd.velocity." + params_[i].first, velocity_[i]);
  return out;
}

void SGD::load_state(const std::vector<std::pair<std::string, Tensor>>& state) {
  for (size_t i = 0; i < params_.size(); ++i)
    load_named(state, "sgd.velocity." + params_[i].first, velocity_[i]);
}

float lr_at(int64_t step, float base_lr, int64_t warmup, int64_t total, float min_lr) {
  if (warmup > 0 && step < warmup)
    return base_lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
  if (step >= total) return min_lr;
  const double progress =
      static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(total - warmup, 1));
  const double cosine = 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  return static_cast<float>(min_lr + (base_lr - min_lr) * cosine);
}

float clip_grad_norm(const std::vector<Tensor*>& params, float max_norm) {
  NoGradGuard no_grad;
  double total = 0;
  for (Tensor* p : params)
    if (p->grad().defined()) total += sum(square(p->grad())).item();
  const float norm = static_cast<float>(std::sqrt(total));
  if (norm > max_norm && norm > 0) {
    const float scale = max_norm / (norm + 1e-6f);
    for (Tensor* p : params) {
      const Tensor g = p->grad();
      if (g.defined())
        backend_for(g.device()).unary(UnaryOp::MulScalar, g.view_desc(), g.view_desc(), scale);
    }
  }
  return norm;
}

}  // namespace attn
