// The small layers a transformer is made of.
#pragma once
#include <string>

#include "core/philox.h"
#include "nn/linear.h"

namespace attn {

// Where a model's dropout gets its random numbers: one Philox stream (seed,
// offset) whose offset moves on by one for every dropout call in training,
// and the data-order index of the batch's first sample, which the trainer
// sets before each step. A checkpoint saves seed and offset: a resumed run
// draws the masks an unbroken one would.
struct DropoutSource {
  uint64_t seed = 0, offset = 0;
  int64_t first_sample = 0;
  philox::Stream next() { return {seed, offset++}; }
};

// Inverted dropout: in training, zero each element with probability p and
// scale the survivors by 1/(1-p), so evaluation needs no rescaling (and
// draws nothing). Rows along dim 0 are the batch's samples.
Tensor dropout(const Tensor& x, float p, bool training, DropoutSource& source);
// residual + dropout(x), fused into one pass.
Tensor dropout_add(const Tensor& residual, const Tensor& x, float p, bool training,
                   DropoutSource& source);

class Embedding : public Module {
 public:
  Embedding(int64_t count, int64_t dim, Generator& gen, float init_std = 0.02f);
  Tensor forward(const Tensor& ids) const;  // int64 [...] -> [..., dim]
  Tensor& weight() { return *weight_; }

 private:
  Tensor* weight_;
};

// Normalises each vector over its last dim, then scales (and shifts).
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, bool bias = true, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor* weight_;
  Tensor* bias_ = nullptr;
  float eps_;
};

// LayerNorm without the mean subtraction and bias: x / rms(x) * w.
class RMSNorm : public Module {
 public:
  explicit RMSNorm(int64_t dim, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor* weight_;
  float eps_;
};

// BatchNorm over [N, C] or [B, T, C]: normalises each channel with the
// statistics of the whole batch (not of each token), and keeps running
// averages for evaluation. In a language model this couples the examples of
// a batch and leaks across time steps: the lesson on norms shows why
// transformers use LayerNorm/RMSNorm instead.
class BatchNorm1d : public Module {
 public:
  explicit BatchNorm1d(int64_t channels, float momentum = 0.1f, float eps = 1e-5f);
  Tensor forward(const Tensor& x);

 private:
  Tensor* weight_;
  Tensor* bias_;
  Tensor* running_mean_;
  Tensor* running_var_;
  float momentum_, eps_;
};

// LayerNorm or RMSNorm, chosen by name ("layernorm" | "rmsnorm"): what a
// transformer block is configured with. `bias` = false drops LayerNorm's
// shift, as nanoGPT's bias=False does (the model's --bias switches the
// linear layers and the norms together); RMSNorm never has one.
class Norm : public Module {
 public:
  Norm(const std::string& kind, int64_t dim, bool bias = true, float eps = 1e-5f);
  Tensor forward(const Tensor& x) const;

 private:
  bool rms_;
  Tensor* weight_;
  Tensor* bias_ = nullptr;
  float eps_;
};

class Dropout : public Module {
 public:
  Dropout(float p, DropoutSource& source);
  Tensor forward(const Tensor& x) { return dropout(x, p_, training(), *source_); }

 private:
  float p_;
  DropoutSource* source_;
};

// The position-wise feed-forward part of a block.
class FeedForward : public Module {
 public:
  virtual Tensor forward(const Tensor& x) const = 0;
};

// Linear(C, 4C) -> GELU -> Linear(4C, C).
class MLP : public FeedForward {
 public:
  MLP(int64_t embd, int64_t layers, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) const override;

 private:
  std::shared_ptr<Linear> fc_, proj_;
};

// SwiGLU feed-forward: (silu(x W1) * (x W3)) W2, with hidden width 8C/3
// (rounded up to a multiple of 8) so its parameter count matches the MLP's.
class SwiGLU : public FeedForward {
 public:
  SwiGLU(int64_t embd, int64_t layers, bool bias, Generator& gen);
  Tensor forward(const Tensor& x) const override;

 private:
  std::shared_ptr<Linear> w1_, w3_, w2_;
};

}  // namespace attn
