// Chapter 11: flash attention, written by hand.
//
// This chapter is different from the others: you do not compose autograd
// ops. You write the forward pass as plain loops over float arrays, the way
// a GPU kernel is written, and the glue below turns it into a
// differentiable op whose backward recomputes the attention weights from
// the logsumexp you return.
//
// Exact attention (no approximation), causal or not:
//   s_ij = q_i . k_j / sqrt(d)            for the keys j query i may see
//   out_i = sum_j softmax_j(s_ij) v_j
//   lse_i = log sum_j exp(s_ij)           (the log of the softmax denominator)
// computed tile by tile over the keys with the online softmax, so that only
// one small tile of scores exists at a time and no Tq x Tk matrix is ever
// stored. Read the README for the algorithm.
//
// Shapes: q [B, H, Tq, d], k and v [B, H, Tk, d] (v has the same size d as
// q and k here). float32 on the CPU.
// Causal: query i sits at position offset + i and sees keys j <= offset + i.
// Without a cache offset = 0 and Tq = Tk; with one, Tk = offset + Tq.
// Not causal: every query sees every key (offset is ignored).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/tensor.h"

namespace lesson11 {

using attn::Tensor;

// The running softmax statistics of one query row.
struct RowStats {
  float m = -INFINITY;  // the largest score seen so far
  float l = 0;          // sum of exp(score - m) over all scores seen so far
};

// Folds `n` new scores (one key tile) into `stats`:
//   m_new = max(m, max_j scores[j])
//   l     = l * exp(m - m_new) + sum_j exp(scores[j] - m_new)
//   m     = m_new
// and returns alpha = exp(m_old - m_new), the factor by which the caller
// must rescale everything it accumulated with the old max (its running
// sum of p * v). On the first tile m_old = -inf, so alpha = 0. A score of
// -inf (a masked key) adds nothing. If m_new is still -inf (no finite
// score seen yet), nothing changes and alpha = 1.
// At the end of the row, log(l) + m is the logsumexp of every score.
float online_softmax_update(RowStats& stats, const float* scores, int64_t n);

struct FlashResult {
  Tensor out;  // [B, H, Tq, d]
  Tensor lse;  // [B, H, Tq]: m + log(l) per row; -inf for a row with no key
};

// The tiled forward. For every (batch, head) and every query row (or tile
// of query rows), walk over the keys the row may see in tiles of `tile`
// keys: compute the tile's scores, fold them in with online_softmax_update,
// rescale the running output accumulator by alpha and add
// sum_j exp(s_ij - m) v_j. At the end out = acc / l and lse = m + log l.
// A row with no allowed key (only possible with a negative offset) gets
// out = 0 and lse = -inf.
// Memory: the outputs plus O(tile * d) scratch; never anything of size
// Tq x Tk (the suite measures both the allocator and the heap).
// q, k, v must not need gradients here (the glue passes detached tensors);
// read them through contiguous() and data<float>(), and fill new tensors
// made with attn::empty.
FlashResult flash_forward(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                          int64_t tile, int64_t offset = 0);

// Given (glue in flash_attention.cpp): flash_forward as a differentiable op.
// Its backward is the recomputing one of attnlab's flash kernel
// (core/cpu/flash_attention.cpp): it rebuilds every weight as
// exp(s_ij - lse_i) from q, k and YOUR lse, so a wrong lse gives wrong
// gradients. q, k, v [B, H, T*, d] -> out [B, H, Tq, d].
// q, k, v may live on either device (all three on the same one): on a GPU
// the glue hands flash_forward CPU copies and moves out and the gradients
// back to the GPU, so flash_forward itself only ever sees CPU tensors.
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                       int64_t tile, int64_t offset = 0);

}  // namespace lesson11
