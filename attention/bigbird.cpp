// BigBird-style attention, as a mask and as a block-sparse kernel: see bigbird.h.
//
// The kernel in a picture: the query block 3 (queries 12..15) with B = 4,
// W = 3, G = 2 and one random block:
//
//   keys ->  0 1 2 3   4 5 6 7   8 9 10 11   12 13 14 15
//            g g . .   r r r r   . .  b  b    b  b  b  b
//
// g: the globals; r: block 1, its only candidate (it must end before key
// 12 - W + 1 = 10); b: the band, from the first query's window (key 10) to
// the last query (15). Three slices of K and V, cut with narrow (views) and
// joined with cat: B x (G + R B + B + W - 1) scores at most, instead of B x T.
#include "attention/bigbird.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

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

// [begin, end) ranges of key positions, sorted and merged where they touch,
// so that no key is gathered twice (a key counted twice would get two
// shares of the softmax).
std::vector<std::pair<int64_t, int64_t>> merge_ranges(std::vector<std::pair<int64_t, int64_t>> ranges) {
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto& [begin, end] : ranges) {
    if (begin >= end) continue;
    if (!merged.empty() && begin <= merged.back().second)
      merged.back().second = std::max(merged.back().second, end);
    else
      merged.emplace_back(begin, end);
  }
  return merged;
}

// Output rows [s, s + rows) of the call: the queries of one block.
Tensor block_rows(const AttentionCall& c, const Tensor& k, const Tensor& v,
                  const BigBirdPattern& pat, int64_t s, int64_t rows) {
  const int64_t first = c.offset + s, last = first + rows - 1, qb = first / pat.block;
  const std::vector<int64_t> random = bigbird_random_blocks(pat, qb);
  // The keys any query of the block can read: globals, the band from the
  // first query's window to the last query, and the random blocks.
  std::vector<std::pair<int64_t, int64_t>> ranges = {
      {0, std::min(pat.global, last + 1)}, {std::max<int64_t>(0, first - pat.window + 1), last + 1}};
  for (int64_t kb : random) ranges.emplace_back(kb * pat.block, (kb + 1) * pat.block);
  std::vector<Tensor> ks, vs;
  std::vector<int64_t> positions;  // the key position of each gathered column
  for (const auto& [begin, end] : merge_ranges(ranges)) {
    ks.push_back(narrow(k, 2, begin, end - begin));
    vs.push_back(narrow(v, 2, begin, end - begin));
    for (int64_t j = begin; j < end; ++j) positions.push_back(j);
  }
  const int64_t cols = static_cast<int64_t>(positions.size());
  // Inside the gathered keys the rule still decides: the band holds keys
  // that only the later queries of the block may read.
  std::vector<bool> keep(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t col = 0; col < cols; ++col)
      keep[static_cast<size_t>(i * cols + col)] = bigbird_allows(pat, first + i, positions[col], random);
  const Tensor kg = ks.size() == 1 ? ks.front() : cat(ks, 2);
  const Tensor vg = vs.size() == 1 ? vs.front() : cat(vs, 2);
  // Scale q (rows x d) rather than the scores (rows x cols): a smaller tensor.
  Tensor scores = matmul(mul(narrow(c.q, 2, s, rows), c.scale), transpose(kg, -2, -1));
  scores = masked_fill(scores, logical_not(from_bools(keep, {rows, cols}, c.q.device())),
                       -std::numeric_limits<float>::infinity());
  // Every query reads its own key (W >= 1, Tk = offset + Tq): no empty row.
  return matmul(softmax(scores, -1), vg);
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

Tensor bigbird_attention(const AttentionCall& c, const BigBirdPattern& pat) {
  check_bigbird(pat);
  const int64_t heads = c.q.shape()[1], tq = c.q.shape()[2], tk = c.k.shape()[2];
  if (c.want_weights || c.q.device().is_cuda())
    return attention_with_pattern(c, bigbird_mask(pat, tq, tk, c.offset, c.q.device()));
  check(tq > 0 && tk == c.offset + tq, "attention bigbird: expected Tk = offset + Tq keys, got Tq = ", tq,
        ", Tk = ", tk, ", offset = ", c.offset);
  check(c.dropout.p == 0, "attention bigbird: the block-sparse kernel has no attention dropout");
  const Tensor k = repeat_kv(c.k, heads), v = repeat_kv(c.v, heads);
  std::vector<Tensor> out;
  // Chunks follow the blocks at absolute positions: after a cache the first
  // chunk is the rest of a block.
  for (int64_t s = 0; s < tq;) {
    const int64_t p = c.offset + s;
    const int64_t rows = std::min(tq - s, pat.block - p % pat.block);
    out.push_back(block_rows(c, k, v, pat, s, rows));
    s += rows;
  }
  return out.size() == 1 ? out.front() : cat(out, 2);
}

AttentionKernel bigbird_kernel(const BigBirdPattern& pattern) {
  check_bigbird(pattern);
  return [pattern](const AttentionCall& c) { return bigbird_attention(c, pattern); };
}

}  // namespace attn
