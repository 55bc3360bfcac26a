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
#include "attention/pattern.h"
#include "autograd/ops.h"
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

// Strided attention with its summary keys gathered. Left in place, a
// summary column every S keys touches every key block once S <= 64, and
// the blocks would skip nothing below the diagonal. So the kernel runs over
//   K' = [ K (the tk keys) ; K_sum (keys S-1, 2S-1, ...: tk / S of them) ]
// and query p reads two runs of it: its band, K[p - L + 1 .. p], and the
// summary keys older than the band, K_sum[0 .. far(p)), where summary s
// (at position sS + S - 1) is older when sS + S - 1 <= p - L. The summary
// keys inside the band are read there, once. About (L + p / S) / 64 blocks
// a row instead of p / 64.
struct Strided {
  int64_t local, stride, tk;
  // Summary keys gathered: none when the band already covers every key.
  int64_t summaries() const { return local >= tk ? 0 : tk / stride; }
  int64_t far(int64_t p) const {
    return std::min(summaries(), std::max<int64_t>(0, p - local + 1) / stride);
  }
  int64_t count(int64_t p, int64_t j0, int64_t j1) const {
    return overlap(p - local + 1, p + 1, j0, std::min(j1, tk)) + overlap(tk, tk + far(p), j0, j1);
  }
  bool allows(int64_t p, int64_t j) const {
    return j < tk ? j <= p && p - j < local : j - tk < far(p);
  }
  std::vector<int64_t> positions() const {
    std::vector<int64_t> at(static_cast<size_t>(tk + summaries()));
    for (int64_t j = 0; j < tk; ++j) at[static_cast<size_t>(j)] = j;
    for (int64_t s = 0; s < summaries(); ++s) at[static_cast<size_t>(tk + s)] = s * stride + stride - 1;
    return at;
  }
};

// Under the block rule query p sees [0, B) (the first block) and
// [(qb - 1) B, p] (its block and the one before), both cut at p.
int64_t block_count(int64_t p, int64_t j0, int64_t j1, int64_t block) {
  const int64_t first_hi = std::min(block, p + 1);
  const int64_t near_lo = std::max<int64_t>(0, (p / block - 1) * block);
  return overlap(0, first_hi, j0, j1) + overlap(near_lo, p + 1, j0, j1) -
         overlap(near_lo, first_hi, j0, j1);
}

BlockSparsity strided_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t local, int64_t stride,
                             int64_t block) {
  const Strided st{local, stride, tk};
  const PairRule rule{[st](int64_t p, int64_t j0, int64_t j1) { return st.count(p, j0, j1); },
                      [st](int64_t p, int64_t j) { return st.allows(p, j); }, false};
  return BlockSparsity(tq, tk + st.summaries(), offset, block, rule, st.positions(), tk);
}

PairRule block_rule(int64_t block) {
  return {[=](int64_t p, int64_t j0, int64_t j1) { return block_count(p, j0, j1, block); },
          [=](int64_t p, int64_t j) { return block_allows(p, j, block); }};
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
  return pattern_kernel(
      [=](int64_t tq, int64_t tk, int64_t offset) {
        return strided_blocks(tq, tk, offset, local, stride, kSparseBlock);
      },
      [=](const AttentionCall& c) {
        return strided_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, local, stride,
                                   c.q.device());
      },
      [=](const Tensor& kv) {  // K' = [K ; K_sum], the summary keys a strided slice
        const int64_t tk = kv.shape()[2];
        if (Strided{local, stride, tk}.summaries() == 0) return kv;
        return cat({kv, slice(kv, 2, stride - 1, tk, stride)}, 2);
      });
}

AttentionKernel block_sparse_kernel(int64_t block) {
  check_block(block);
  const PairRule rule = block_rule(block);
  return pattern_kernel(
      [=](int64_t tq, int64_t tk, int64_t offset) {
        return BlockSparsity(tq, tk, offset, kSparseBlock, rule);
      },
      [=](const AttentionCall& c) {
        return block_sparse_mask(c.q.shape()[2], c.k.shape()[2], c.offset, block, c.q.device());
      });
}

BlockSparsity strided_sparse_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t local,
                                    int64_t stride, int64_t block) {
  check_strided(local, stride);
  return strided_blocks(tq, tk, offset, local, stride, block);
}

BlockSparsity block_sparse_blocks(int64_t tq, int64_t tk, int64_t offset, int64_t pattern_block,
                                  int64_t block) {
  check_block(pattern_block);
  return BlockSparsity(tq, tk, offset, block, block_rule(pattern_block));
}

}  // namespace attn
