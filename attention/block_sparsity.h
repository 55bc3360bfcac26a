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
// A pattern is given by two rules over the query's position (p = offset + i
// for query row i) and the key's index j in the call:
//   count(p, j0, j1)  how many keys of [j0, j1) query p may see,
//   allows(p, j)      whether it may see key j.
// Keys are usually the sequence itself (index = position, and a causal
// rule sees nothing past p, so compiling stops there); a kernel may also
// gather keys (strided attention's summary keys copied beside the sequence)
// and give each its position.
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

// The block the kernels' lists use: 64 queries by 64 keys, the CPU flash
// kernel's tile.
constexpr int64_t kSparseBlock = 64;

struct PairRule {
  std::function<int64_t(int64_t p, int64_t j0, int64_t j1)> count;
  std::function<bool(int64_t p, int64_t j)> allows;
  bool keys_in_order = true;  // key j stands at position j, and none past p is allowed
};

class BlockSparsity {
 public:
  // Compiles `rule` for queries at positions offset .. offset + tq - 1 and
  // keys 0 .. tk - 1 in blocks of `block` (1..64) rows and keys. Gathered
  // keys: key j stands at key_position[j] of a sequence of key_span keys
  // (empty: at j, of tk).
  BlockSparsity(int64_t tq, int64_t tk, int64_t offset, int64_t block, const PairRule& rule,
                std::vector<int64_t> key_position = {}, int64_t key_span = 0);

  // The kernel's view: pointers into this object, valid while it lives.
  BlockList list() const;

  int64_t tq() const { return tq_; }
  int64_t tk() const { return tk_; }
  int64_t offset() const { return offset_; }
  int64_t block() const { return block_; }
  int64_t entries() const { return static_cast<int64_t>(row_key_.size()); }
  int64_t partial_entries() const { return static_cast<int64_t>(masks_.size()) / block_; }

  // The allowed pairs expanded back to a [tq, key span] bool mask over
  // positions: what the kernel computes, for tests to hold against the
  // pattern's own mask.
  Tensor mask() const;

 private:
  int64_t tq_, tk_, offset_, block_, query_blocks_, key_blocks_;
  std::vector<int64_t> key_position_;  // empty: key j at position j
  int64_t key_span_;
  std::vector<int64_t> row_begin_, row_key_, row_mask_;  // by query block
  std::vector<int64_t> col_begin_, col_query_, col_mask_;  // the same entries by key block
  std::vector<uint64_t> masks_;                             // `block` words per partial entry
};

// The compiled patterns of one kernel, by shape: training calls the same
// (tq, tk, offset) every step and compiles once; a decoding loop (offset
// growing by one) keeps only the last few.
class BlockSparsityCache {
 public:
  using Compile = std::function<BlockSparsity(int64_t tq, int64_t tk, int64_t offset)>;
  explicit BlockSparsityCache(Compile compile) : compile_(std::move(compile)) {}
  std::shared_ptr<const BlockSparsity> get(int64_t tq, int64_t tk, int64_t offset);

 private:
  static constexpr size_t kKept = 8;
  struct Kept {
    int64_t tq, tk, offset;
    std::shared_ptr<const BlockSparsity> blocks;
  };
  Compile compile_;
  std::mutex mutex_;
  std::vector<Kept> kept_;  // most recent last
};

// The keys of [j0, j1) within the causal limit of query p: the count of a
// pattern that allows every earlier key (and a building block of others).
int64_t causal_count(int64_t p, int64_t j0, int64_t j1);

}  // namespace attn
