// Chapter 15: random and global attention, BigBird style.
//
// You implement, in bigbird_attention.cpp: random_blocks, bigbird_mask,
// pair_count and bigbird_attention. Read lessons/15_bigbird/README.md first.
//
// Positions. Keys 0..Tk-1 sit at positions 0..Tk-1; queries at positions
// p = offset + i for rows i = 0..Tq-1 (offset > 0 after a KV cache, then
// Tk = offset + Tq). Blocks are cut at absolute positions: the query at p
// is in query block qb = p / block, key j in key block kb = j / block.
//
// The pattern (W = window, G = global, R = random, B = block):
//     keep(p, j) = j <= p  and  ( p - j < W          the last W keys, p itself included
//                                 or j < G           the global tokens 0..G-1
//                                 or kb in R(qb) )   the random blocks of p's block
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lesson15 {

using attn::Tensor;

struct Pattern {
  int64_t window = 1;  // W >= 1
  int64_t global = 0;  // G >= 0
  int64_t random = 0;  // R >= 0
  int64_t block = 16;  // B >= 1
  uint64_t seed = 0;
};

// GIVEN (bigbird_attention_glue.cpp): a uniform integer in [0, n) for draw
// number `draw` of query block `query_block`, from a counter-based
// generator keyed by `seed`. It has no state: the same arguments always
// give the same number, in any order, on any thread. n >= 1.
uint64_t random_below(uint64_t seed, int64_t query_block, int64_t draw, uint64_t n);

// R(qb): the random key blocks of query block qb, ascending.
// Candidates are the whole key blocks after the globals that end before the
// window of the block's first query (position qb * B):
//     c0 = ceil(G / B) <= kb   and   (kb + 1) * B <= qb * B - W + 1
// so a random block is in the past of every query of the block and shares
// no key with the window or the globals. With n candidates c0 .. c0+n-1
// (n = 0 when there are none), keep min(R, n) of them, drawn by a partial
// Fisher-Yates shuffle of the slots s[t] = t, t = 0..n-1:
//     for r = 0 .. min(R, n) - 1:  swap s[r] and s[r + random_below(seed, qb, r, n - r)]
// and the blocks are c0 + s[0], ..., c0 + s[min(R, n) - 1], sorted.
// A bad pattern (W < 1, G < 0, R < 0, B < 1) is an attn::Error.
std::vector<int64_t> random_blocks(const Pattern& pattern, int64_t query_block);

// The pattern as a bool mask [Tq, Tk]. Bad pattern: attn::Error.
Tensor bigbird_mask(const Pattern& pattern, int64_t tq, int64_t tk, int64_t offset = 0);

// The number of allowed pairs for T queries over T keys (offset 0), from the
// formula in the README, WITHOUT building a mask: query p reads
//     min(W, p + 1) + max(0, min(G, p - W + 1)) + B * min(R, n(p / B))
// keys. Bad pattern: attn::Error.
int64_t pair_count(const Pattern& pattern, int64_t t);

// Attention through the pattern, block by block, never forming a Tq x Tk
// matrix: for each query block, gather only the keys the block can read
// (the globals, the band from its first query's window to its last query,
// its random blocks) as slices of k and v, each key once; score those,
// mask with the rule, softmax, multiply by the gathered v. Concatenate the
// blocks' outputs. The first block after a cache may be partial.
// q [B, H, Tq, d], k [B, H, Tk, d], v [B, H, Tk, dv], Tk = offset + Tq
// -> [B, H, Tq, dv]. scores = q k^T / sqrt(d). Bad pattern: attn::Error.
Tensor bigbird_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Pattern& pattern,
                         int64_t offset = 0);

}  // namespace lesson15
