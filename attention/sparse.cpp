// Strided and block-sparse attention patterns: see sparse.h.
//
// The masks are built on the host with two plain loops over (query, key):
// the rule reads exactly as it is written in the header, and building a
// [Tq, Tk] bool mask costs nothing next to the attention it drives.
#include "attention/sparse.h"

#include <vector>

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
  return [=](const AttentionCall& c) {
    return attention_with_pattern(c, strided_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset,
                                                         local, stride, c.q.device()));
  };
}

AttentionKernel block_sparse_kernel(int64_t block) {
  check_block(block);
  return [=](const AttentionCall& c) {
    return attention_with_pattern(
        c, block_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, block, c.q.device()));
  };
}

}  // namespace attn
