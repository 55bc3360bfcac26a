// BigBird-style attention for a causal decoder: a sliding window, a few
// global tokens and a few random key blocks per query block.
//
// p = offset + i is the query's position, j the key's; blocks are cut at
// absolute positions, qb = p / B for the query, kb = j / B for a key:
//     allowed(p, j) = j <= p  and  ( p - j < W            window: the last W keys, p included
//                                    or j < G             global: the first G positions
//                                    or kb in R(qb) )     random: blocks drawn for qb
// R(qb) holds min(R, n(qb)) distinct blocks drawn from the candidates
//     kb >= ceil(G / B)  and  (kb + 1) B <= qb B - W + 1,
// the whole blocks after the globals that lie before the window of the
// block's first query. A candidate is past every query of the block, so a
// random block never reads the future, and it overlaps neither the window
// nor the globals, so each random block adds exactly B keys to every query
// of its block. The draw depends on (seed, qb) alone (a counter-based
// generator, like dropout): the same position gets the same pattern in a
// long prefill, a short one, or one token at a time after a KV cache.
//
// Global rows: in BigBird a global token also reads everything. In a
// causal model that means "its whole past", and since the globals are the
// first G positions, every key before a global query is itself global:
// the rule above already gives it.
//
// Pairs for a sequence of T tokens (queries 0..T-1):
//     sum over p of  min(W, p + 1) + max(0, min(G, p - W + 1)) + B min(R, n(p / B))
// with n(qb) = max(0, floor((qb B - W + 1) / B) - ceil(G / B)); for T much
// larger than W, G and R B that is about T (W + G + R B).
#pragma once
#include <cstdint>
#include <vector>

#include "attention/block_sparsity.h"
#include "attention/kernel.h"

namespace attn {

struct BigBirdPattern {
  int64_t window = 1;  // W >= 1: keys p - W + 1 .. p
  int64_t global = 0;  // G >= 0: positions 0 .. G - 1, read by every later query
  int64_t random = 0;  // R >= 0: random key blocks per query block
  int64_t block = 16;  // B >= 1: tokens per block (queries and random keys)
  uint64_t seed = 0;
};

// Refuses W < 1, G < 0, R < 0 or B < 1, naming the option and the value.
void check_bigbird(const BigBirdPattern& pattern);

// A uniform integer in [0, n) for draw number `draw` of query block
// `query_block`: Philox keyed by the seed, counting over (block, draw), so
// any draw is computed on its own, in any order.
uint64_t bigbird_draw_below(uint64_t seed, int64_t query_block, int64_t draw, uint64_t n);

// How many candidate blocks query block qb may draw from: n(qb) above.
int64_t bigbird_candidates(const BigBirdPattern& pattern, int64_t query_block);

// R(qb): the random key blocks of query block qb, ascending. The first
// candidate is c0 = ceil(G / B); a partial Fisher-Yates shuffle of the
// slots 0..n-1 picks them: draw r swaps slot r with slot
// r + bigbird_draw_below(seed, qb, r, n - r), and the first min(R, n) slots,
// plus c0, are the blocks.
std::vector<int64_t> bigbird_random_blocks(const BigBirdPattern& pattern, int64_t query_block);

// The pattern as a bool mask [Tq, Tk] for queries at offset..offset+Tq-1.
Tensor bigbird_mask(const BigBirdPattern& pattern, int64_t tq, int64_t tk, int64_t offset,
                    const Device& device = Device::cpu());

// The closed-form pair count of T queries over T keys (no mask is built).
int64_t bigbird_pair_count(const BigBirdPattern& pattern, int64_t t);

// The pattern compiled to blocks of `block` queries and keys, the random
// blocks of each query block drawn once (for tests to expand and count).
BlockSparsity bigbird_blocks(const BigBirdPattern& pattern, int64_t tq, int64_t tk, int64_t offset,
                             int64_t block = kSparseBlock);

// Block-sparse attention: on the CPU, the block-skipping flash kernel over
// bigbird_blocks (a query block of 64 visits the key blocks holding its
// globals, its window band and its random blocks): O(T (W + G + R B))
// time, never a Tq x Tk matrix. When the call wants the weights, and on a
// GPU, it runs the mask. Needs Tk = offset + Tq (every query has its own
// key). This compiles the blocks on every call; bigbird_kernel keeps them.
Tensor bigbird_attention(const AttentionCall& call, const BigBirdPattern& pattern);

// The multi-head kernel of the `bigbird` variant.
AttentionKernel bigbird_kernel(const BigBirdPattern& pattern);

}  // namespace attn
