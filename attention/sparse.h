// Sparse attention: each query sees a fixed subset of the earlier keys,
// chosen by position only, so that information can still flow between any
// two tokens in a few hops while most (query, key) pairs are skipped.
//
// Two standard patterns (p = offset + i is the query's position, j the
// key's; both are causal, j <= p, and use the window convention of
// attention/window.h: "L keys" counts the query itself):
//
// strided, `sparse:local=L,stride=S` (the "fixed" pattern of the Sparse
// Transformer, with one summary column per stride):
//     allowed(p, j) = j <= p  and  ( p - j < L            local: the last L keys
//                                    or j % S == S - 1 )  summary: the last key
//                                                         of every stride block
//   The summary columns gather their block; everyone after reads them, so
//   two hops connect any pair (when L >= S). Query p sees at most
//   L + p / S keys, about T * L + T^2 / (2S) pairs in all: with
//   L = S = sqrt(T) that is O(T sqrt(T)) instead of O(T^2).
//
// block-sparse, `blocksparse:block=B` (a local + global layout, as in
// BigBird/Longformer at block granularity): cut the positions into blocks
// of B; with qb = p / B and kb = j / B,
//     allowed(p, j) = j <= p  and  ( kb == qb        its own block, causally
//                                    or kb == qb - 1  the previous block
//                                    or kb == 0 )     the first block, a global
//                                                     "sink" every query reads
//   At most 3B keys per query: O(T * B) pairs.
//
// Two ways to run them. As masks (attention/pattern.h): exact and
// differentiable but O(T^2), it shows *what* is computed. As block lists
// (attention/block_sparsity.h) through the block-skipping flash kernel: the
// same numbers at the cost of the 64 x 64 blocks the pattern touches. The
// variants take the second on the CPU and the first elsewhere (and when the
// caller wants the weights).
//
// Note what the blocks make of the strided pattern: a summary column every
// S keys touches every key block when S <= 64, so without more work the
// kernel skips only the blocks past the diagonal; block-sparse patterns
// skip all but ~3 blocks per row.
#pragma once
#include "attention/block_sparsity.h"
#include "attention/kernel.h"

namespace attn {

// The patterns as bool masks [Tq, Tk] for queries at positions
// offset..offset+Tq-1: tests and lessons can print and count them (see
// pattern_density in attention/pattern.h).
Tensor strided_sparse_mask(int64_t tq, int64_t tk, int64_t offset, int64_t local, int64_t stride,
                           const Device& device = Device::cpu());
Tensor block_sparse_mask(int64_t tq, int64_t tk, int64_t offset, int64_t block,
                         const Device& device = Device::cpu());

// The blocks the kernels visit (blocks of `block` queries and keys), for
// tests and benchmarks to count and expand.
constexpr int64_t kSparseBlock = 64;
BlockSparsity strided_sparse_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t local,
                                    int64_t stride, int64_t block = kSparseBlock);
BlockSparsity block_sparse_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t pattern_block,
                                  int64_t block = kSparseBlock);

// The multi-head kernels of `sparse` and `blocksparse` (K/V cache allowed).
AttentionKernel strided_sparse_kernel(int64_t local, int64_t stride);
AttentionKernel block_sparse_kernel(int64_t block);

}  // namespace attn
