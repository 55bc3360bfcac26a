// Chapter 06: rotary position embeddings (RoPE), with NTK-aware scaling.
//
// You implement, in rope.cpp: ntk_base, rope_tables, apply_rope and
// rope_attention.
//
// The convention of this course (and of attention/positions.h) is the
// HALF-SPLIT pairing: for a head of d features (d even), feature i is paired
// with feature i + d/2, for i = 0 .. d/2 - 1. Pair i turns with the
// frequency
//     f_i = b^(-2i / d)            (b = the base, 10000 by default)
// so at position p it is rotated by the angle p * f_i. Column i of the
// tables belongs to pair (i, i + d/2). (Pairing neighbours (2i, 2i + 1)
// instead is another convention, Meta's original Llama code; mixed with
// these tables it is simply wrong.)
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson06 {

using attn::Tensor;

struct RopeTables {
  Tensor cos, sin;  // [T, d/2]: row t for position offset + t, column i for pair i
};

// NTK-aware scaling: the base that stretches RoPE's slowest pair by
// `scale` while leaving the fastest one alone:
//     b' = base * scale^(d / (d - 2))
// scale = 1 gives back base. scale < 1, base <= 1, or a head_dim that is
// odd or < 2 throw attn::Error. (For d = 2 there is a single pair, turning at f_0 = 1
// whatever the base: return base * scale^2, as the library does.)
double ntk_base(double base, double scale, int64_t head_dim);

// cos and sin of the angles (offset + t) * f_i for t = 0 .. positions - 1 and
// i = 0 .. d/2 - 1, with f_i = b^(-2i/d) and b = ntk_base(base, ntk_scale, d).
// Compute the angles in double and round to float at the end: positions
// reach tens of thousands, and a float angle of 50000 is off by ~0.002 rad.
// An odd head_dim throws attn::Error.
RopeTables rope_tables(int64_t positions, int64_t head_dim, int64_t offset = 0,
                       double base = 10000.0, double ntk_scale = 1.0);

// x [..., T, d] rotated pair by pair with the tables' T rows:
//     y[i]       = x[i] cos - x[i + d/2] sin
//     y[i + d/2] = x[i] sin + x[i + d/2] cos        (cos, sin of row t, column i)
// Returns a new tensor of the same shape; tables that do not fit (rows != T
// or columns != d/2) throw attn::Error.
Tensor apply_rope(const Tensor& x, const RopeTables& tables);

// Causal attention with RoPE:
//   q [B, H, Tq, d] at positions offset .. offset + Tq - 1
//   k [B, Hkv, Tk, d] at positions 0 .. Tk - 1        (Tk = offset + Tq)
//   v [B, Hkv, Tk, dv], NOT rotated: positions steer where to look, not what
//   is read.
// Rotate q and k, then grouped causal attention as in chapter 04 (query
// head h reads K/V head h / (H / Hkv), key j visible when j <= offset + i,
// scale 1/sqrt(d)). Returns [B, H, Tq, dv]; weights_out gets [B, H, Tq, Tk].
Tensor rope_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset = 0,
                      double base = 10000.0, double ntk_scale = 1.0, Tensor* weights_out = nullptr);

}  // namespace lesson06
