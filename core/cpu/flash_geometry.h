// Where flash attention's CPU kernel (flash_attention.cpp) is in the score
// matrix and in its operands: which keys each query may see (causal limit,
// sliding window), the tiles of the matrix and the rows that see them, and
// where one head's rows start in q, k, v. Index arithmetic only, kept apart
// from the kernel so that the kernel file reads as the schedule.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/backend.h"

namespace attn::cpu::flash {

// ---- which keys a query sees ----

// Half-open ranges [lo, hi) of keys or of query rows.
struct Span {
  int64_t lo, hi;
};

// The keys query i may see.
inline Span allowed_keys(const FlashArgs& a, int64_t i) {
  const int64_t pos = a.offset + i;
  const int64_t lo = a.window > 0 ? std::clamp<int64_t>(pos - a.window + 1, 0, a.tk) : 0;
  const int64_t hi = a.causal ? std::clamp<int64_t>(pos + 1, lo, a.tk) : a.tk;
  return {lo, hi};
}

// A rectangle of the score matrix: query rows [i0, i1) by keys [j0, j1).
struct Tile {
  int64_t i0, i1, j0, j1;
  int64_t rows() const { return i1 - i0; }
  int64_t cols() const { return j1 - j0; }
};

// Keys seen by at least one row of [i0, i1): from the first row's lo to the
// last row's hi, since both ends grow with the row.
inline Span block_keys(const FlashArgs& a, int64_t i0, int64_t i1) {
  return {allowed_keys(a, i0).lo, allowed_keys(a, i1 - 1).hi};
}

// The first row of [0, n) where `holds` is false, for a condition that holds
// on a prefix of the rows and fails on the rest (a binary search).
template <class Pred>
inline int64_t first_row_failing(int64_t n, Pred holds) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (holds(mid))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Query rows that see at least one key of [j0, j1): from the first row
// whose range ends after j0 to the first whose range starts at j1 or later.
inline Span block_rows(const FlashArgs& a, int64_t j0, int64_t j1) {
  const int64_t begin = first_row_failing(a.tq, [&](int64_t i) { return allowed_keys(a, i).hi <= j0; });
  const int64_t end = first_row_failing(a.tq, [&](int64_t i) { return allowed_keys(a, i).lo < j1; });
  return {begin, std::max(begin, end)};
}

// The keys of tile t that row i sees, counted from the tile's first key.
inline Span visible_in(const FlashArgs& a, int64_t i, const Tile& t) {
  const Span r = allowed_keys(a, i);
  const int64_t lo = std::clamp(r.lo - t.j0, int64_t{0}, t.cols());
  return {lo, std::clamp(r.hi - t.j0, lo, t.cols())};
}

// Every row of the tile sees every key of it: no mask needed.
inline bool fully_visible(const FlashArgs& a, const Tile& t) {
  return t.j0 >= allowed_keys(a, t.i1 - 1).lo && t.j1 <= allowed_keys(a, t.i0).hi;
}

// A tile to visit, with its pattern bits under a block list: one word per
// row of the tile, bit u for key j0 + u (null: every pair the span rule of
// allowed_keys admits), and where its keys stand when they were gathered
// (BlockList::key_position from j0, and the span of the whole matrix).
struct Visit {
  Tile t;
  const uint64_t* bits;
  const int64_t* positions = nullptr;
  int64_t span = 0;
};

// Row i sees at least one key of the tile.
inline bool row_sees_any(const FlashArgs& a, int64_t i, const Visit& v) {
  const Span seen = visible_in(a, i, v.t);
  return seen.lo < seen.hi && (!v.bits || v.bits[i - v.t.i0] != 0);
}

// ---- where a head lives ----

// Where head h of batch b starts in an operand of layout `at` (rows follow
// every at.row floats).
inline int64_t head_start(const FlashLayout& at, int64_t b, int64_t h) {
  return b * at.batch + h * at.head;
}

// The rows one query head works with: its own q (and out, dout, dq, which
// share q's layout) and the K/V head of its GQA group, read in place.
struct Head {
  int64_t b, h, q_at, k_at, v_at;  // offsets of the head's first rows
  float slope;                     // ALiBi slope, 0 without ALiBi
};

inline Head head_of(const FlashArgs& a, int64_t b, int64_t h) {
  const int64_t kvh = h / (a.heads / a.kv_heads);
  return {b, h, head_start(a.q_at, b, h), head_start(a.k_at, b, kvh), head_start(a.v_at, b, kvh),
          a.alibi ? a.alibi[h] : 0.0f};
}

}  // namespace attn::cpu::flash
