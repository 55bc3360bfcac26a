// A sparse attention pattern compiled to blocks, for the block-skipping
// flash kernel (BlockList in core/backend.h).
//
// A pattern says which (query, key) pairs may interact. Applied as a mask
// it costs what dense attention costs; cut into blocks of 64 x 64 pairs it
// costs what it keeps: a block the pattern never touches is skipped, a block
// it allows whole is computed without a mask, and only the blocks it cuts
// through ("partial") carry a bitmask, one 64-bit word per query row.
//
//     keys ->        block list of query block 2:
//   q  [x . . . ]      key block 0  partial  (bits: which pairs)
//   b  [. x . . ]      key block 2  full
//   2  [x . X . ]      (blocks 1 and 3: not visited at all)
//
// A pattern is given by two rules over absolute positions (p = offset + i
// for query row i, j for a key), both causal (nothing with j > p):
//   count(p, j0, j1)  how many keys of [j0, j1) query p may see,
//   allows(p, j)      whether it may see key j.
// Counting a row's keys in a block is O(1) for the patterns here, so
// compiling costs O(query blocks x key blocks x block) with no Tq x Tk
// mask ever built; a pattern's kernel compiles once per shape and keeps
// the result (BlockSparsityCache).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace attn {

struct PairRule {
  std::function<int64_t(int64_t p, int64_t j0, int64_t j1)> count;
  std::function<bool(int64_t p, int64_t j)> allows;
};

class BlockSparsity {
 public:
  // Compiles `rule` for queries at positions offset .. offset + tq - 1 and
  // keys 0 .. tk - 1 in blocks of `block` (1..64) rows and keys.
  BlockSparsity(int64_t tq, int64_t tk, int64_t offset, int64_t block, const PairRule& rule);

  // The kernel's view: pointers into this object, valid while it lives.
  BlockList list() const;

  int64_t tq() const { return tq_; }
  int64_t tk() const { return tk_; }
  int64_t offset() const { return offset_; }
  int64_t block() const { return block_; }
  int64_t entries() const { return static_cast<int64_t>(row_key_.size()); }
  int64_t partial_entries() const { return static_cast<int64_t>(masks_.size()) / block_; }

  // The allowed pairs expanded back to a [tq, tk] bool mask: what the
  // kernel computes, for tests to hold against the pattern's own mask.
  Tensor mask() const;

 private:
  int64_t tq_, tk_, offset_, block_, query_blocks_, key_blocks_;
  std::vector<int64_t> row_begin_, row_key_, row_mask_;  // by query block
  std::vector<int64_t> col_begin_, col_query_, col_mask_;  // the same entries by key block
  std::vector<uint64_t> masks_;                             // `block` words per partial entry
};

// The compiled patterns of one kernel, by shape: training calls the same
// (tq, tk, offset) every step and compiles once; a decoding loop (offset
// growing by one) keeps only the last few.
class BlockSparsityCache {
 public:
  BlockSparsityCache(int64_t block, PairRule rule) : block_(block), rule_(std::move(rule)) {}
  std::shared_ptr<const BlockSparsity> get(int64_t tq, int64_t tk, int64_t offset);

 private:
  static constexpr size_t kKept = 8;
  int64_t block_;
  PairRule rule_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<const BlockSparsity>> kept_;  // most recent last
};

// The keys of [j0, j1) within the causal limit of query p: the count of a
// pattern that allows every earlier key (and a building block of others).
int64_t causal_count(int64_t p, int64_t j0, int64_t j1);

}  // namespace attn
