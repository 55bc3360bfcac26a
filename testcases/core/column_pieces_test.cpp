// split_columns (core/column_pieces.h): how the CUDA block-sparse backward
// shares a long column of query tiles among several CUDA blocks. Checked
// against the plain rule: every entry in exactly one piece, in order, each
// piece within one key block and at most max(min_piece, ceil(average))
// entries long, every key block present (an empty one as one empty piece).
#include <gtest/gtest.h>

#include <vector>

#include "core/column_pieces.h"

namespace {

using namespace attn;

void expect_tiles_columns(const std::vector<int64_t>& col_begin, int64_t min_piece, int64_t most) {
  const auto key_blocks = static_cast<int64_t>(col_begin.size()) - 1;
  const std::vector<ColumnPiece> pieces = split_columns(col_begin.data(), key_blocks, min_piece);
  int64_t next_entry = col_begin[0], kb = 0;
  std::vector<int> pieces_of(key_blocks, 0);
  for (const ColumnPiece& p : pieces) {
    ASSERT_GE(p.key_block, kb) << "key blocks in order";
    kb = p.key_block;
    ASSERT_LT(kb, key_blocks);
    ++pieces_of[kb];
    EXPECT_EQ(p.begin, next_entry) << "pieces follow one another, none skipped or repeated";
    EXPECT_GE(p.begin, col_begin[kb]);
    EXPECT_LE(p.end, col_begin[kb + 1]) << "a piece stays inside its key block's column";
    EXPECT_LE(p.end - p.begin, most);
    EXPECT_TRUE(p.end > p.begin || col_begin[kb] == col_begin[kb + 1]) << "only empty columns give empty pieces";
    next_entry = p.end;
  }
  EXPECT_EQ(next_entry, col_begin[key_blocks]) << "every entry covered";
  for (int64_t b = 0; b < key_blocks; ++b) {
    const int64_t len = col_begin[b + 1] - col_begin[b];
    EXPECT_EQ(pieces_of[b], len == 0 ? 1 : (len + most - 1) / most) << "key block " << b;
  }
}

TEST(ColumnPieces, ALongColumnIsSharedOut) {
  // A global first key block read by all 16 query blocks, then short columns:
  // 16 + 15 * 2 = 46 entries over 16 key blocks, an average of 2.9 -> 4.
  std::vector<int64_t> col_begin = {0, 16};
  for (int i = 0; i < 15; ++i) col_begin.push_back(col_begin.back() + 2);
  expect_tiles_columns(col_begin, 4, 4);
  EXPECT_EQ(split_columns(col_begin.data(), 16).size(), 4u + 15u);
}

TEST(ColumnPieces, TheAverageSetsThePieceWhenItIsLong) {
  // Columns of 10, 30, 2: an average of 14 entries per piece.
  const std::vector<int64_t> col_begin = {5, 15, 45, 47};
  expect_tiles_columns(col_begin, 4, 14);
  const std::vector<ColumnPiece> p = split_columns(col_begin.data(), 3);
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[1].begin, 15);
  EXPECT_EQ(p[1].end, 29);
  EXPECT_EQ(p[3].end, 45);
}

TEST(ColumnPieces, EmptyColumnsAndNoColumns) {
  const std::vector<int64_t> col_begin = {0, 0, 3, 3};
  expect_tiles_columns(col_begin, 4, 4);
  EXPECT_EQ(split_columns(col_begin.data(), 3).size(), 3u);
  const int64_t none[] = {0};
  EXPECT_TRUE(split_columns(none, 0).empty());
}

}  // namespace
