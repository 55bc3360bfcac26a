// Chapter 08: sliding-window attention.
//
// You implement the three functions below in sliding_window.cpp, with the
// differentiable ops of autograd/ops.h (arange, gt, logical_and, matmul,
// masked_fill, softmax, narrow, cat, ...). Built from ops, backward() works
// through your code for free.
//
// The window convention of this course (and of attention/window.h):
//   a query at position p sees the keys  max(0, p - W + 1) .. p,
//   that is W keys counting itself (fewer near the start of the sequence).
//   W = 1: only itself.  W >= T: plain causal attention.
//
// Positions. Keys 0..Tk-1 sit at positions 0..Tk-1. Queries sit at
// positions offset .. offset + Tq - 1. Without a KV cache offset = 0 and
// Tq = Tk; when decoding with a cache the queries are the newest tokens and
// Tk = offset + Tq. Every function here may assume Tk = offset + Tq, so
// every query sees at least its own key.
//
// Shapes: B batch, H heads, Tq queries, Tk keys, d the size of q and k, dv
// the size of v. k and v have the same number of heads as q.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson08 {

using attn::Tensor;

// The window as a bool mask [Tq, Tk]: keep[i, j] is true when the query at
// position p = offset + i may see key j, that is when p - window < j <= p.
// window >= 1.
Tensor window_mask(int64_t tq, int64_t tk, int64_t window, int64_t offset = 0);

// The readable way: the full [B, H, Tq, Tk] scores q k^T / sqrt(d), the
// window mask applied before the softmax, then weights @ v.
// q [B, H, Tq, d], k [B, H, Tk, d], v [B, H, Tk, dv] -> [B, H, Tq, dv].
// weights_out: when non-null, receives the weights [B, H, Tq, Tk].
// Time and memory O(Tq * Tk): the window saves nothing yet.
Tensor window_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v,
                               int64_t window, int64_t offset = 0, Tensor* weights_out = nullptr);

// The same result in O(T * W) time and memory: the queries are processed in
// chunks of `chunk` rows (the last chunk may be shorter). A chunk whose
// queries sit at positions first..last only needs the keys
//     max(0, first - window + 1) .. last
// (its band, at most chunk + window - 1 keys), so it forms scores of
// [B, H, rows, band] instead of [B, H, rows, Tk]. Inside the band the
// window mask still decides which key each query may see. The chunks'
// outputs are concatenated along the query dim.
// Never builds anything of size Tq x Tk. chunk >= 1.
Tensor window_attention_banded(const Tensor& q, const Tensor& k, const Tensor& v,
                               int64_t window, int64_t chunk, int64_t offset = 0);

}  // namespace lesson08
