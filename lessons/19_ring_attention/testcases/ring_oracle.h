// What both suites of chapter 19 compare against, written independently of
// the code under test: attention of the whole sequence as plain loops in
// double precision, and the properties a split of the sequence must have.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ring_attention.h"

namespace ring_oracle {

// softmax(q k^T / sqrt(d)) v over the whole sequence, causal or not;
// q, k, v row-major [B, H, T, d].
inline std::vector<double> attention(const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v, int64_t BH, int64_t T, int64_t d,
                                     bool causal) {
  std::vector<double> out(static_cast<std::size_t>(BH * T * d), 0.0);
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t i = 0; i < T; ++i) {
      const int64_t last = causal ? i : T - 1;
      std::vector<double> s;
      double m = -INFINITY;
      for (int64_t j = 0; j <= last; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += double(q[(bh * T + i) * d + e]) * k[(bh * T + j) * d + e];
        s.push_back(dot / std::sqrt(double(d)));
        m = std::max(m, s.back());
      }
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - m));
      for (int64_t j = 0; j <= last; ++j)
        for (int64_t e = 0; e < d; ++e) out[(bh * T + i) * d + e] += s[j] / z * v[(bh * T + j) * d + e];
    }
  return out;
}

using ShardFn = std::function<lesson19::Shard(int64_t tokens, int rank, int ranks, lesson19::Split split)>;

inline std::string split_name(lesson19::Split s) {
  return s == lesson19::Split::Zigzag ? "zigzag" : "contiguous";
}

// Every position 0 .. tokens - 1 on exactly one rank, no chunk empty or out
// of range, rank lengths within 2 of each other (1 for contiguous).
inline ::testing::AssertionResult covers_every_token_once(const ShardFn& shard, int64_t tokens, int ranks,
                                                          lesson19::Split split) {
  const std::string what = "T=" + std::to_string(tokens) + " over " + std::to_string(ranks) + " ranks, " +
                           split_name(split);
  std::vector<int> owners(static_cast<std::size_t>(tokens), 0);
  int64_t shortest = tokens, longest = 0;
  for (int r = 0; r < ranks; ++r) {
    const lesson19::Shard s = shard(tokens, r, ranks, split);
    const std::size_t want_chunks = split == lesson19::Split::Zigzag ? 2 : 1;
    if (s.chunks.size() != want_chunks)
      return ::testing::AssertionFailure() << what << ": rank " << r << " holds " << s.chunks.size()
                                           << " chunks, expected " << want_chunks;
    int64_t held = 0;
    for (const lesson19::Chunk& c : s.chunks) {
      if (c.begin < 0 || c.end > tokens || c.begin >= c.end)
        return ::testing::AssertionFailure() << what << ": rank " << r << " holds the chunk [" << c.begin << ", "
                                             << c.end << "), expected a non-empty range inside [0, " << tokens
                                             << ")";
      for (int64_t t = c.begin; t < c.end; ++t) ++owners[static_cast<std::size_t>(t)];
      held += c.length();
    }
    shortest = std::min(shortest, held), longest = std::max(longest, held);
  }
  for (int64_t t = 0; t < tokens; ++t)
    if (owners[static_cast<std::size_t>(t)] != 1)
      return ::testing::AssertionFailure() << what << ": token " << t << " is held by "
                                           << owners[static_cast<std::size_t>(t)]
                                           << " ranks, expected exactly 1 (every token once, none left over)";
  const int64_t spread = split == lesson19::Split::Zigzag ? 2 : 1;
  if (longest - shortest > spread)
    return ::testing::AssertionFailure() << what << ": ranks hold from " << shortest << " to " << longest
                                         << " tokens; an even split differs by at most " << spread;
  return ::testing::AssertionSuccess();
}

// Causal work of each rank when every rank meets every block (the query x
// key chunk pairs that are not wholly in the future), counted by positions.
inline std::vector<int64_t> causal_pairs(const ShardFn& shard, int64_t tokens, int ranks, lesson19::Split split) {
  std::vector<int64_t> pairs;
  for (int r = 0; r < ranks; ++r) {
    int64_t n = 0;
    for (const lesson19::Chunk& qc : shard(tokens, r, ranks, split).chunks)
      for (int from = 0; from < ranks; ++from)
        for (const lesson19::Chunk& kc : shard(tokens, from, ranks, split).chunks)
          n += kc.begin <= qc.end - 1 ? 1 : 0;
    pairs.push_back(n);
  }
  return pairs;
}

}  // namespace ring_oracle
