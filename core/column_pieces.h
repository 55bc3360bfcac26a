// How the CUDA block-sparse backward shares out its work (used by
// core/cuda/flash_attention.cu; plain C++ so that it is tested on any
// machine).
//
// The backward gives a CUDA block one key block and walks the query tiles
// listed for it (BlockList's col_* arrays): its column. Patterns have a few
// columns that every query block lists (blocksparse's and BigBird's global
// first block, the gathered summary keys of strided attention): T / 64
// tiles where the other columns have a handful, so the block holding one
// finishes last and the whole backward waits for it. Cutting each column
// into pieces of at most about the average column's length lets several
// CUDA blocks share a long column, each summing its part of dK and dV into
// the same rows (atomic adds onto zeros).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace attn {

// Entries [begin, end) of key block `key_block`'s column.
struct ColumnPiece {
  int64_t key_block = 0, begin = 0, end = 0;
};

// The columns of col_begin ([key_blocks + 1] offsets) in pieces of at most
// max(min_piece, ceil(entries / key_blocks)) entries, key blocks in order,
// each column's pieces in order; an empty column is one empty piece (its
// block still writes its zero gradients).
inline std::vector<ColumnPiece> split_columns(const int64_t* col_begin, int64_t key_blocks,
                                              int64_t min_piece = 4) {
  std::vector<ColumnPiece> pieces;
  if (key_blocks <= 0) return pieces;
  const int64_t entries = col_begin[key_blocks] - col_begin[0];
  const int64_t most = std::max(min_piece, (entries + key_blocks - 1) / key_blocks);
  for (int64_t kb = 0; kb < key_blocks; ++kb) {
    int64_t at = col_begin[kb];
    do {
      const int64_t end = std::min(col_begin[kb + 1], at + most);
      pieces.push_back({kb, at, end});
      at = end;
    } while (at < col_begin[kb + 1]);
  }
  return pieces;
}

}  // namespace attn
