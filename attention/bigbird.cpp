// BigBird-style attention, as a mask and as a block-sparse kernel: see bigbird.h.
//
// The kernel: the pattern compiled to 64 x 64 blocks (attention/block_sparsity.h)
// through the block-skipping flash kernel. Counting a query's keys in a
// range is three overlaps, because the window, the older globals and the
// random blocks never overlap one another (bigbird.h): a random block ends
// before the window of its block's first query and starts after the
// globals.
#include "attention/bigbird.h"

#include <algorithm>
#include <map>
#include <memory>

#include "attention/attention.h"
#include "attention/pattern.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "core/philox.h"

namespace attn {

namespace {

// Keys p - W + 1 .. p, the first G keys, or a key in one of the drawn blocks.
bool bigbird_allows(const BigBirdPattern& pat, int64_t p, int64_t j,
                    const std::vector<int64_t>& random_blocks) {
  if (j > p) return false;  // causal first: no rule below may reach the future
  const bool in_window = p - j < pat.window;
  const bool is_global = j < pat.global;
  const bool in_random = std::binary_search(random_blocks.begin(), random_blocks.end(), j / pat.block);
  return in_window || is_global || in_random;
}

// How many of [lo, hi) fall in [j0, j1).
int64_t overlap(int64_t lo, int64_t hi, int64_t j0, int64_t j1) {
  return std::max<int64_t>(0, std::min(hi, j1) - std::max(lo, j0));
}

}  // namespace

uint64_t bigbird_draw_below(uint64_t seed, int64_t query_block, int64_t draw, uint64_t n) {
  check(n >= 1, "bigbird_draw_below: n must be >= 1, got ", n);
  const philox::Words counter{{static_cast<uint32_t>(query_block),
                               static_cast<uint32_t>(static_cast<uint64_t>(query_block) >> 32),
                               static_cast<uint32_t>(draw), 0}};
  const philox::Words bits = philox::philox4x32_10(counter, static_cast<uint32_t>(seed),
                                                   static_cast<uint32_t>(seed >> 32));
  // 64 random bits modulo n: the bias is below n / 2^64, nothing at any length.
  return ((static_cast<uint64_t>(bits.w[1]) << 32) | bits.w[0]) % n;
}

void check_bigbird(const BigBirdPattern& pat) {
  check(pat.window >= 1, "attention bigbird: window must be >= 1 (keys p - W + 1 .. p, the query itself included), got ", pat.window);
  check(pat.global >= 0, "attention bigbird: global must be >= 0 (the first G positions), got ", pat.global);
  check(pat.random >= 0, "attention bigbird: random must be >= 0 (key blocks per query block), got ", pat.random);
  check(pat.block >= 1, "attention bigbird: block must be >= 1 (tokens per block), got ", pat.block);
}

int64_t bigbird_candidates(const BigBirdPattern& pat, int64_t query_block) {
  // Keys before `reach` lie outside the window of every query of the block.
  const int64_t reach = query_block * pat.block - pat.window + 1;
  if (reach <= 0) return 0;
  const int64_t first_after_globals = (pat.global + pat.block - 1) / pat.block;  // ceil(G / B)
  return std::max<int64_t>(0, reach / pat.block - first_after_globals);
}

std::vector<int64_t> bigbird_random_blocks(const BigBirdPattern& pat, int64_t query_block) {
  check_bigbird(pat);
  const int64_t n = bigbird_candidates(pat, query_block);
  const int64_t count = std::min(pat.random, n);
  const int64_t first = (pat.global + pat.block - 1) / pat.block;
  // Partial Fisher-Yates over the candidate slots 0..n-1: draw r swaps a
  // uniform slot of r..n-1 into slot r, so slots 0..r hold r + 1 distinct
  // candidates, every subset equally likely. Only the swapped slots are
  // stored (an untouched slot holds its own index): O(R), not O(n).
  std::map<int64_t, int64_t> swapped;
  auto at = [&](int64_t slot) {
    const auto it = swapped.find(slot);
    return it == swapped.end() ? slot : it->second;
  };
  std::vector<int64_t> blocks;
  for (int64_t r = 0; r < count; ++r) {
    const int64_t pick = r + static_cast<int64_t>(bigbird_draw_below(pat.seed, query_block, r, static_cast<uint64_t>(n - r)));
    const int64_t chosen = at(pick);
    swapped[pick] = at(r);
    swapped[r] = chosen;
    blocks.push_back(first + chosen);
  }
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}

Tensor bigbird_mask(const BigBirdPattern& pat, int64_t tq, int64_t tk, int64_t offset,
                    const Device& device) {
  check_bigbird(pat);
  std::vector<bool> keep(static_cast<size_t>(tq * tk));
  std::vector<int64_t> random;
  int64_t drawn_for = -1;  // the query block `random` belongs to
  for (int64_t i = 0; i < tq; ++i) {
    const int64_t p = offset + i, qb = p / pat.block;
    if (qb != drawn_for) random = bigbird_random_blocks(pat, qb), drawn_for = qb;
    for (int64_t j = 0; j < tk; ++j) keep[static_cast<size_t>(i * tk + j)] = bigbird_allows(pat, p, j, random);
  }
  return from_bools(keep, {tq, tk}, device);
}

int64_t bigbird_pair_count(const BigBirdPattern& pat, int64_t t) {
  check_bigbird(pat);
  int64_t pairs = 0;
  for (int64_t p = 0; p < t; ++p) {
    const int64_t window = std::min(pat.window, p + 1);
    const int64_t older_globals = std::max<int64_t>(0, std::min(pat.global, p - pat.window + 1));
    const int64_t random = pat.block * std::min(pat.random, bigbird_candidates(pat, p / pat.block));
    pairs += window + older_globals + random;
  }
  return pairs;
}

BlockSparsity bigbird_blocks(const BigBirdPattern& pat, int64_t tq, int64_t tk, int64_t offset,
                             int64_t block) {
  check_bigbird(pat);
  // The random blocks of every query block the call touches, drawn once.
  const int64_t first_qb = offset / pat.block;
  auto drawn = std::make_shared<std::vector<std::vector<int64_t>>>();
  for (int64_t qb = first_qb; qb <= (offset + std::max<int64_t>(tq, 1) - 1) / pat.block; ++qb)
    drawn->push_back(bigbird_random_blocks(pat, qb));
  auto random_of = [drawn, first_qb, b = pat.block](int64_t p) -> const std::vector<int64_t>& {
    return (*drawn)[static_cast<size_t>(p / b - first_qb)];
  };
  PairRule rule;
  rule.count = [pat, random_of](int64_t p, int64_t j0, int64_t j1) {
    const int64_t hi = std::min(j1, p + 1);  // causal
    const int64_t window_lo = std::max<int64_t>(0, p - pat.window + 1);
    int64_t n = overlap(window_lo, p + 1, j0, hi) + overlap(0, std::min(pat.global, window_lo), j0, hi);
    for (int64_t kb : random_of(p)) n += overlap(kb * pat.block, (kb + 1) * pat.block, j0, hi);
    return n;
  };
  rule.allows = [pat, random_of](int64_t p, int64_t j) { return bigbird_allows(pat, p, j, random_of(p)); };
  return BlockSparsity(tq, tk, offset, block, rule);
}

AttentionKernel bigbird_kernel(const BigBirdPattern& pattern) {
  check_bigbird(pattern);
  const AttentionKernel blocked = pattern_kernel(
      [pattern](int64_t tq, int64_t tk, int64_t offset) {
        return bigbird_blocks(pattern, tq, tk, offset, kSparseBlock);
      },
      [pattern](const AttentionCall& c) {
        return bigbird_mask(pattern, c.q.shape()[2], c.k.shape()[2], c.offset, c.q.device());
      });
  return [pattern, blocked](const AttentionCall& c) {
    const int64_t tq = c.q.shape()[2], tk = c.k.shape()[2];
    check(tq > 0 && tk == c.offset + tq, "attention bigbird: expected Tk = offset + Tq keys, got Tq = ",
          tq, ", Tk = ", tk, ", offset = ", c.offset);
    return blocked(c);
  };
}

Tensor bigbird_attention(const AttentionCall& c, const BigBirdPattern& pat) {
  return bigbird_kernel(pat)(c);
}

}  // namespace attn
