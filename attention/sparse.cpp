// Strided and block-sparse attention patterns: see sparse.h.
//
// Each pattern is written twice, as `allows` (one pair, reads exactly as
// the rule in the header) and as `count` (how many keys of a range one
// query sees, in O(1): what compiling it to blocks needs). The masks are
// built from `allows` with two plain loops over (query, key); the tests
// hold the compiled blocks against them.
#include "attention/sparse.h"

#include <algorithm>
#include <vector>

#include "attention/block_sparsity.h"
#include "attention/flash.h"
#include "attention/pattern.h"
#include "core/error.h"

namespace attn {

namespace {

bool strided_allows(int64_t p, int64_t j, int64_t local, int64_t stride) {
  if (j > p) return false;  // causal first: nothing from the future
  const bool is_local = p - j < local;            // the last `local` keys, p itself included
  const bool is_summary = j % stride == stride - 1;  // the last key of each stride block
  return is_local || is_summary;
}

bool block_allows(int64_t p, int64_t j, int64_t block) {
  if (j > p) return false;  // also covers p < 0 (a query before any key)
  const int64_t qb = p / block, kb = j / block;
  return kb == qb || kb == qb - 1 || kb == 0;
}

// How many of [lo, hi) fall in [j0, j1).
int64_t overlap(int64_t lo, int64_t hi, int64_t j0, int64_t j1) {
  return std::max<int64_t>(0, std::min(hi, j1) - std::max(lo, j0));
}

// Keys of [j0, j1) that query p sees under the strided rule: the local ones
// in [p - L + 1, p], plus the summary keys (j % S == S - 1, floor(x / S) of
// them below x) between j0 and the local range.
int64_t strided_count(int64_t p, int64_t j0, int64_t j1, int64_t local, int64_t stride) {
  const int64_t hi = std::min(j1, p + 1);
  if (hi <= j0) return 0;
  const int64_t local_lo = std::clamp(p - local + 1, j0, hi);
  return (hi - local_lo) + (local_lo / stride - j0 / stride);
}

// Under the block rule query p sees [0, B) (the first block) and
// [(qb - 1) B, p] (its block and the one before), both cut at p.
int64_t block_count(int64_t p, int64_t j0, int64_t j1, int64_t block) {
  const int64_t first_hi = std::min(block, p + 1);
  const int64_t near_lo = std::max<int64_t>(0, (p / block - 1) * block);
  return overlap(0, first_hi, j0, j1) + overlap(near_lo, p + 1, j0, j1) -
         overlap(near_lo, first_hi, j0, j1);
}

PairRule strided_rule(int64_t local, int64_t stride) {
  return {[=](int64_t p, int64_t j0, int64_t j1) { return strided_count(p, j0, j1, local, stride); },
          [=](int64_t p, int64_t j) { return strided_allows(p, j, local, stride); }};
}

PairRule block_rule(int64_t block) {
  return {[=](int64_t p, int64_t j0, int64_t j1) { return block_count(p, j0, j1, block); },
          [=](int64_t p, int64_t j) { return block_allows(p, j, block); }};
}

// The kernel of a pattern: on the CPU the block-skipping flash kernel over
// the pattern's blocks (compiled once per shape), elsewhere, or when the
// caller wants the weights, attention through the mask.
AttentionKernel pattern_kernel(PairRule rule, std::function<Tensor(const AttentionCall&)> mask) {
  auto cache = std::make_shared<BlockSparsityCache>(kSparseBlock, std::move(rule));
  return [cache, mask](const AttentionCall& c) {
    if (!c.q.device().is_cpu() || c.want_weights) return attention_with_pattern(c, mask(c));
    FlashOptions o;
    o.offset = c.offset;
    o.alibi = c.alibi;
    o.scale = c.scale;
    o.dropout = c.dropout;
    o.blocks = cache->get(c.q.shape()[2], c.k.shape()[2], c.offset);
    return flash_attention(c.q, c.k, c.v, o);
  };
}

// keep[i, j] = allows(offset + i, j) for every query row i and key j.
template <typename Rule>
Tensor build_mask(int64_t tq, int64_t tk, int64_t offset, const Device& device, Rule allows) {
  std::vector<bool> keep(static_cast<size_t>(tq * tk));
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) keep[static_cast<size_t>(i * tk + j)] = allows(offset + i, j);
  return from_bools(keep, {tq, tk}, device);
}

void check_strided(int64_t local, int64_t stride) {
  check(local >= 1, "attention sparse: local must be >= 1, got ", local);
  check(stride >= 1, "attention sparse: stride must be >= 1, got ", stride);
}

void check_block(int64_t block) {
  check(block >= 1, "attention blocksparse: block must be >= 1, got ", block);
}

}  // namespace

Tensor strided_sparse_mask(int64_t tq, int64_t tk, int64_t offset, int64_t local, int64_t stride,
                           const Device& device) {
  check_strided(local, stride);
  return build_mask(tq, tk, offset, device, [=](int64_t p, int64_t j) {
    return strided_allows(p, j, local, stride);
  });
}

Tensor block_sparse_mask(int64_t tq, int64_t tk, int64_t offset, int64_t block,
                         const Device& device) {
  check_block(block);
  return build_mask(tq, tk, offset, device,
                    [=](int64_t p, int64_t j) { return block_allows(p, j, block); });
}

AttentionKernel strided_sparse_kernel(int64_t local, int64_t stride) {
  check_strided(local, stride);
  return pattern_kernel(strided_rule(local, stride), [=](const AttentionCall& c) {
    return strided_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, local, stride,
                               c.q.device());
  });
}

AttentionKernel block_sparse_kernel(int64_t block) {
  check_block(block);
  return pattern_kernel(block_rule(block), [=](const AttentionCall& c) {
    return block_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, block, c.q.device());
  });
}

BlockSparsity strided_sparse_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t local,
                                    int64_t stride, int64_t block) {
  check_strided(local, stride);
  return BlockSparsity(tq, tk, offset, block, strided_rule(local, stride));
}

BlockSparsity block_sparse_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t pattern_block,
                                  int64_t block) {
  check_block(pattern_block);
  return BlockSparsity(tq, tk, offset, block, block_rule(pattern_block));
}

}  // namespace attn
