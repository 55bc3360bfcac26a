// Chapter 03: normalisation layers and the transformer block.
//
// You implement the functions below in norms_blocks.cpp with the autograd
// ops (mean, sub, square, sqrt, rsqrt, div, mul, add, ...). Do not call the
// library's fused attn::layer_norm / attn::rms_norm: the point is to write
// them.
#pragma once
#include <functional>

#include "core/tensor.h"

namespace lesson03 {

using attn::Tensor;

// LayerNorm over the last dim (the C features of one token):
//   mu  = mean(x)                        over the last dim
//   var = mean((x - mu)^2)               biased: divide by C, not C - 1
//   y   = (x - mu) / sqrt(var + eps) * weight + bias
// x [..., C]; weight [C] and bias [C] may be undefined Tensors (then no
// scale / no shift). Returns [..., C].
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);

// RMSNorm over the last dim: no centring, no bias.
//   y = x / sqrt(mean(x^2) + eps) * weight
// x [..., C]; weight [C] or undefined. Returns [..., C].
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-5f);

// BatchNorm's training-mode normalisation, without the affine part:
// statistics per channel (the last dim), over EVERY other dim. For x
// [B, T, C], channel c is normalised with the mean and biased variance of
// x[:, :, c] over all B * T positions.
//   y = (x - mean) / sqrt(var + eps)
// Returns the shape of x. (The suites use it to show why transformers do
// not use BatchNorm.)
Tensor batch_norm(const Tensor& x, float eps = 1e-5f);

// A sublayer: any function [B, T, C] -> [B, T, C] (attention, MLP, a norm).
using Sublayer = std::function<Tensor(const Tensor&)>;

// Pre-norm residual (GPT-2, Llama):   x + f(norm(x))
Tensor pre_norm_residual(const Tensor& x, const Sublayer& norm, const Sublayer& f);

// Post-norm residual (the original Transformer):   norm(x + f(x))
Tensor post_norm_residual(const Tensor& x, const Sublayer& norm, const Sublayer& f);

// One transformer block: an attention sublayer, then an MLP sublayer, each
// wrapped in its residual, pre-norm or post-norm:
//   pre:   h = x + attn(norm1(x));     out = h + mlp(norm2(h))
//   post:  h = norm1(x + attn(x));     out = norm2(h + mlp(h))
Tensor block_forward(const Tensor& x, const Sublayer& norm1, const Sublayer& attn,
                     const Sublayer& norm2, const Sublayer& mlp, bool pre_norm);

}  // namespace lesson03
