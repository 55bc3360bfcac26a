// Optimizers, the learning-rate schedule and gradient clipping.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace attn {

using NamedParams = std::vector<std::pair<std::string, Tensor*>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Applies one update from the parameters' .grad() (skipping those without).
  virtual void step() = 0;
  void zero_grad();
  void set_lr(float lr) { lr_ = lr; }
  float lr() const { return lr_; }
  // Everything needed to resume exactly, by name ("adamw.m.blocks.0.attn.wq.weight").
  virtual std::vector<std::pair<std::string, Tensor>> state() const = 0;
  virtual void load_state(const std::vector<std::pair<std::string, Tensor>>& state) = 0;

 protected:
  explicit Optimizer(NamedParams params, float lr) : params_(std::move(params)), lr_(lr) {}
  NamedParams params_;
  float lr_;
};

// AdamW with decoupled weight decay, applied to matrices only: decaying
// biases and norm gains towards zero only hurts, so 1-D parameters are
// exempt (as in GPT-2 and nanoGPT).
class AdamW : public Optimizer {
 public:
  AdamW(NamedParams params, float lr, float beta1 = 0.9f, float beta2 = 0.95f, float eps = 1e-8f,
        float weight_decay = 0.1f);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;
  int64_t steps_taken() const { return t_; }

 private:
  float beta1_, beta2_, eps_, weight_decay_;
  int64_t t_ = 0;
  std::vector<Tensor> m_, v_;
};

// SGD with (heavy-ball) momentum: v = mu v + g;  p -= lr v.
class SGD : public Optimizer {
 public:
  SGD(NamedParams params, float lr, float momentum = 0.9f);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  void load_state(const std::vector<std::pair<std::string, Tensor>>& state) override;

 private:
  float momentum_;
  std::vector<Tensor> velocity_;
};

// Linear warmup from 0 to base_lr over `warmup` steps, then cosine decay to
// min_lr at `total` steps. Warmup keeps the first, large and noisy updates
// (Adam's variance estimate is still empty) from wrecking the init.
float lr_at(int64_t step, float base_lr, int64_t warmup, int64_t total, float min_lr);

// Scales all gradients so their global L2 norm is at most max_norm; returns
// the norm before clipping.
float clip_grad_norm(const std::vector<Tensor*>& params, float max_norm);

}  // namespace attn
