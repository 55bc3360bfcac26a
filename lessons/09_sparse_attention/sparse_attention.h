// Chapter 09: sparse attention, two fixed patterns and attention through them.
//
// You implement, in sparse_attention.cpp: strided_mask, block_sparse_mask,
// attended_pairs, density and sparse_attention. Read
// lessons/09_sparse_attention/README.md first.
//
// A sparse pattern decides by position alone which (query, key) pairs may
// interact. It is a bool mask keep [Tq, Tk]: keep[i, j] is true when the
// query in row i may read key j. Both patterns of this chapter are causal
// (never a key after the query) and always contain the diagonal (every
// query reads itself).
//
// Positions. Keys 0..Tk-1 sit at positions 0..Tk-1; queries at positions
// p = offset + i for rows i = 0..Tq-1 (offset > 0 when decoding after a KV
// cache, chapter 05; then Tk = offset + Tq). Every rule below is written
// with p, the query's POSITION, not its row i.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace lesson09 {

using attn::Tensor;

// Local + strided (the Sparse Transformer's "fixed" pattern):
//     keep[i, j] = j <= p  and  ( p - j < local              the last `local` keys,
//                                                            the query itself included
//                                 or j % stride == stride - 1 )  a "summary" key: the
//                                                            last key of every block
//                                                            of `stride` positions
// Bool [Tq, Tk]. local >= 1 and stride >= 1, otherwise attn::Error.
Tensor strided_mask(int64_t tq, int64_t tk, int64_t local, int64_t stride, int64_t offset = 0);

// Block-sparse (local + global at block granularity, as in BigBird): cut the
// positions into blocks of `block`; with qb = p / block and kb = j / block,
//     keep[i, j] = j <= p  and  ( kb == qb         its own block (causally)
//                                 or kb == qb - 1  the block before
//                                 or kb == 0 )     the first block, which
//                                                  every query reads
// Bool [Tq, Tk]. block >= 1, otherwise attn::Error.
Tensor block_sparse_mask(int64_t tq, int64_t tk, int64_t block, int64_t offset = 0);

// How many (query, key) pairs the bool mask allows: the number of true
// entries. Count exactly, in integers. A mask that is not bool is an
// attn::Error.
int64_t attended_pairs(const Tensor& keep);

// The fraction of ALL Tq x Tk pairs the mask allows: attended_pairs / (Tq * Tk),
// in [0, 1] (0 for an empty mask). Plain causal attention over T tokens has
// density (T + 1) / (2T); a sparse pattern is worth it when it is far below.
double density(const Tensor& keep);

// Attention through a pattern:
//     scores = q k^T / sqrt(d),  -inf where keep is false,
//     weights = softmax(scores, -1),  out = weights v
// q [B, H, Tq, d], k [B, H, Tk, d], v [B, H, Tk, dv], keep bool [Tq, Tk]
// (the same pattern for every batch and head) -> [B, H, Tq, dv].
// A query row with no allowed key outputs zeros (not NaN) and has weights 0.
// keep of another shape is an attn::Error.
// weights_out: when non-null, receives the weights [B, H, Tq, Tk].
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& keep,
                        Tensor* weights_out = nullptr);

}  // namespace lesson09
