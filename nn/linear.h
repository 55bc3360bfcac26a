// Linear layer y = x @ W^T + b, and the initialisers the models use.
#pragma once
#include "nn/module.h"

namespace attn {

// Fills t (in place) with N(0, std^2) from `gen`.
void init_normal(Tensor& t, float std, Generator& gen);

class Linear : public Module {
 public:
  // weight [out, in] (PyTorch's layout), bias [out] when `bias`.
  Linear(int64_t in_features, int64_t out_features, bool bias, Generator& gen,
         float init_std = 0.02f);
  Tensor forward(const Tensor& x) const;
  Tensor& weight() { return *weight_; }
  Tensor* bias() { return bias_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Tensor* weight_;
  Tensor* bias_ = nullptr;
};

}  // namespace attn
