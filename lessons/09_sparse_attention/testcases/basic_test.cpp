// Chapter 09, basic suite: both patterns drawn by hand (the README's
// pictures), their limits (stride 1 and block >= T are causal attention),
// queries after a cache, the pair counts and densities of the README, the
// worked attention example, and the mistakes everybody meets: a local
// window one token too wide, summary keys from the future, blocks off by
// one, a missing diagonal and a density over the wrong total.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "lesson_test.h"
#include "sparse_attention.h"

using namespace attn;
using lesson_test::close;
using lesson_test::rejects;
using lesson_test::values;

namespace {

Tensor rnd(const Shape& s, uint64_t seed) { return lesson_test::random_tensor(s, seed); }

// A mask drawn as rows of 'x' (allowed) and '.' (not), one string per query.
std::vector<std::string> picture(const Tensor& keep) {
  const int64_t tq = keep.shape()[0], tk = keep.shape()[1];
  const std::vector<int64_t> f = keep.to_int_vector();
  std::vector<std::string> rows;
  for (int64_t i = 0; i < tq; ++i) {
    std::string r;
    for (int64_t j = 0; j < tk; ++j) r += f[i * tk + j] ? 'x' : '.';
    rows.push_back(r);
  }
  return rows;
}

// Compares a mask with a drawing; a failure shows both pictures and names
// the first wrong (query, key) pair.
::testing::AssertionResult mask_is(const std::string& what, const Tensor& keep,
                                   const std::vector<std::string>& want, int64_t offset = 0) {
  const Shape shape{static_cast<int64_t>(want.size()), static_cast<int64_t>(want[0].size())};
  if (!keep.defined()) return ::testing::AssertionFailure() << what << ": undefined Tensor";
  if (keep.dtype() != DType::Bool)
    return ::testing::AssertionFailure() << what << ": expected a bool mask, got "
                                         << dtype_name(keep.dtype());
  if (keep.shape() != shape)
    return ::testing::AssertionFailure() << what << ": expected shape " << shape_str(shape)
                                         << " ([Tq, Tk]), got " << shape_str(keep.shape());
  const std::vector<std::string> got = picture(keep);
  if (got == want) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os << what << " differs (x = allowed, . = masked)\n  expected        got\n";
  for (std::size_t i = 0; i < want.size(); ++i) os << "  " << want[i] << "    " << got[i] << "\n";
  for (std::size_t i = 0; i < want.size(); ++i)
    for (std::size_t j = 0; j < want[i].size(); ++j)
      if (want[i][j] != got[i][j]) {
        os << "first difference: query row " << i << " (position " << offset + int64_t(i) << "), key "
           << j << ": expected " << (want[i][j] == 'x' ? "allowed" : "masked") << ", got "
           << (got[i][j] == 'x' ? "allowed" : "masked");
        return ::testing::AssertionFailure() << os.str();
      }
  return ::testing::AssertionFailure() << os.str();
}

// The causal mask drawn by hand: row i allows keys 0..offset+i.
std::vector<std::string> causal(int64_t tq, int64_t tk, int64_t offset = 0) {
  std::vector<std::string> rows;
  for (int64_t i = 0; i < tq; ++i) {
    std::string r;
    for (int64_t j = 0; j < tk; ++j) r += j <= offset + i ? 'x' : '.';
    rows.push_back(r);
  }
  return rows;
}

Tensor mask_from(const std::vector<std::string>& rows) {
  std::vector<bool> f;
  for (const auto& r : rows)
    for (char c : r) f.push_back(c == 'x');
  return from_bools(f, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

// The README's pictures.
const std::vector<std::string> kStrided_8_L2_S3 = {
    "x.......",  //
    "xx......",  //
    ".xx.....",  //
    "..xx....",  //
    "..xxx...",  // key 2: the summary of block 0..2
    "..x.xx..",  //
    "..x..xx.",  // key 5: the summary of block 3..5
    "..x..xxx"};
const std::vector<std::string> kBlock_12_B3 = {
    "x...........",  //
    "xx..........",  //
    "xxx.........",  //
    "xxxx........",  // block 1 reads blocks 0 and 1
    "xxxxx.......",  //
    "xxxxxx......",  //
    "xxxxxxx.....",  // block 2 reads blocks 0 (first), 1 (previous), 2
    "xxxxxxxx....",  //
    "xxxxxxxxx...",  //
    "xxx...xxxx..",  // block 3 reads blocks 0, 2, 3: block 1 is skipped
    "xxx...xxxxx.",  //
    "xxx...xxxxxx"};

}  // namespace

// ---------------------------------------------------------- strided pattern

TEST(StridedMask, ReadmePicture) {
  EXPECT_TRUE(mask_is("strided_mask(T = 8, local = 2, stride = 3)", lesson09::strided_mask(8, 8, 2, 3),
                      kStrided_8_L2_S3));
}

TEST(StridedMask, StrideOneIsCausalAttention) {
  // Every key is the last of its block of 1: all earlier keys are summaries.
  EXPECT_TRUE(mask_is("strided_mask(T = 6, local = 1, stride = 1)", lesson09::strided_mask(6, 6, 1, 1),
                      causal(6, 6)));
}

TEST(StridedMask, StrideLongerThanTheSequenceIsASlidingWindow) {
  // No summary key exists before position stride - 1 = 9: only the window.
  EXPECT_TRUE(mask_is("strided_mask(T = 6, local = 3, stride = 10)", lesson09::strided_mask(6, 6, 3, 10),
                      {"x.....", "xx....", "xxx...", ".xxx..", "..xxx.", "...xxx"}));
}

TEST(StridedMask, QueriesAfterACacheAreTheLastRows) {
  // Rows 5..7 of the README picture, as 3 queries at positions 5, 6, 7.
  EXPECT_TRUE(mask_is("strided_mask(Tq = 3, Tk = 8, local = 2, stride = 3, offset = 5)",
                      lesson09::strided_mask(3, 8, 2, 3, 5),
                      {kStrided_8_L2_S3[5], kStrided_8_L2_S3[6], kStrided_8_L2_S3[7]}, 5))
      << "row i is the query at position offset + i: use the position in every rule";
}

// ------------------------------------------------------------ block pattern

TEST(BlockMask, ReadmePicture) {
  EXPECT_TRUE(mask_is("block_sparse_mask(T = 12, block = 3)", lesson09::block_sparse_mask(12, 12, 3),
                      kBlock_12_B3));
}

TEST(BlockMask, OneBlockLongerThanTheSequenceIsCausalAttention) {
  EXPECT_TRUE(mask_is("block_sparse_mask(T = 5, block = 8)", lesson09::block_sparse_mask(5, 5, 8),
                      causal(5, 5)));
}

TEST(BlockMask, BlocksOfOneToken) {
  // block = 1: the query itself, the token before it and token 0.
  EXPECT_TRUE(mask_is("block_sparse_mask(T = 6, block = 1)", lesson09::block_sparse_mask(6, 6, 1),
                      {"x.....", "xx....", "xxx...", "x.xx..", "x..xx.", "x...xx"}));
}

TEST(BlockMask, QueriesAfterACacheAreTheLastRows) {
  EXPECT_TRUE(mask_is("block_sparse_mask(Tq = 2, Tk = 12, block = 3, offset = 10)",
                      lesson09::block_sparse_mask(2, 12, 3, 10), {kBlock_12_B3[10], kBlock_12_B3[11]},
                      10))
      << "the query in row 0 sits at position 10, in block 10 / 3 = 3";
}

// ------------------------------------------------------------------ counts

TEST(Counting, ReadmeNumbers) {
  EXPECT_EQ(lesson09::attended_pairs(mask_from(kStrided_8_L2_S3)), 20);
  EXPECT_EQ(lesson09::attended_pairs(mask_from(kBlock_12_B3)), 69);
  EXPECT_EQ(lesson09::attended_pairs(mask_from(causal(8, 8))), 36) << "T (T + 1) / 2 for T = 8";
  EXPECT_DOUBLE_EQ(lesson09::density(mask_from(kStrided_8_L2_S3)), 20.0 / 64);
  EXPECT_DOUBLE_EQ(lesson09::density(mask_from(kBlock_12_B3)), 69.0 / 144);
  EXPECT_DOUBLE_EQ(lesson09::density(mask_from(causal(8, 8))), 9.0 / 16) << "(T + 1) / (2T)";
}

TEST(Counting, NotABoolMaskIsAnError) {
  EXPECT_TRUE(rejects("attended_pairs(a float tensor)", [] { lesson09::attended_pairs(ones({3, 3})); },
                      "a float tensor is not a pattern; check keep.dtype() == DType::Bool"));
}

// --------------------------------------------------------------- attention

TEST(SparseAttention, ReadmeWorkedExample) {
  // d = 1, q = 1 everywhere, so the scores are the keys; v = the key's
  // position, so each output is the average position the query read.
  const Tensor q = ones({1, 1, 8, 1}), k = from_vector({1, 0, 2, 0, 1, 1, 0, 1}, {1, 1, 8, 1}),
               v = from_vector({0, 1, 2, 3, 4, 5, 6, 7}, {1, 1, 8, 1});
  Tensor w;
  const Tensor out = lesson09::sparse_attention(q, k, v, mask_from(kStrided_8_L2_S3), &w);
  ASSERT_TRUE(w.defined()) << "fill *weights_out with the weights when it is non-null";
  EXPECT_TRUE(close("weights of query 7 (keys 2, 5, 6, 7)", contiguous(narrow(reshape(w, {8, 8}), 0, 7, 1)),
                    {0, 0, 0.5344466, 0, 0, 0.1966119, 0.0723295, 0.1966119}, {1, 8}));
  EXPECT_TRUE(close("out", out, {0, 0.2689414, 1.8807971, 2.1192029, 2.5794875, 3.0597078, 3.0943077, 3.8622134},
                    {1, 1, 8, 1}));
}

TEST(SparseAttention, TheCausalPatternIsPlainCausalAttention) {
  const Tensor q = rnd({2, 3, 5, 4}, 1), k = rnd({2, 3, 5, 4}, 2), v = rnd({2, 3, 5, 2}, 3);
  const Tensor s = mul(matmul(q, transpose(k, -2, -1)), 0.5f);
  const Tensor want = matmul(softmax(masked_fill(s, eq(tril(ones({5, 5})), 0.0), -INFINITY), -1), v);
  EXPECT_TRUE(close("sparse_attention with the causal mask", lesson09::sparse_attention(q, k, v, mask_from(causal(5, 5))),
                    want))
      << "scores are q k^T / sqrt(d) (here d = 4: halved), masked with -inf before the softmax";
}

TEST(SparseAttention, MaskedKeysDoNotMatter) {
  // Row 7 of the strided pattern reads keys 2, 5, 6, 7 only.
  const Tensor q = rnd({1, 2, 8, 3}, 4), k = rnd({1, 2, 8, 3}, 5), v = rnd({1, 2, 8, 3}, 6);
  const Tensor other = from_bools({1, 1, 0, 1, 1, 0, 0, 0}, {1, 1, 8, 1});  // keys 0, 1, 3, 4
  const Tensor k2 = where(other, rnd({1, 2, 8, 3}, 7), k), v2 = where(other, rnd({1, 2, 8, 3}, 8), v);
  const Tensor keep = mask_from(kStrided_8_L2_S3);
  EXPECT_TRUE(close("query 7 after changing keys 0, 1, 3, 4", contiguous(narrow(lesson09::sparse_attention(q, k2, v2, keep), 2, 7, 1)),
                    contiguous(narrow(lesson09::sparse_attention(q, k, v, keep), 2, 7, 1))))
      << "query 7 must read only the keys its pattern allows";
}

// ---------------------------------------------------------------- mistakes

TEST(Mistakes, LocalWindowOneTokenTooWide) {
  // local = 2 counts the query itself: keys p - 1 and p. "p - j <= local"
  // lets in p - 2 as well.
  const Tensor keep = lesson09::strided_mask(6, 6, 2, 100);
  const std::vector<std::string> got = picture(keep), want = {"x.....", "xx....", ".xx...", "..xx..", "...xx.", "....xx"};
  EXPECT_TRUE(mask_is("strided_mask(T = 6, local = 2, stride = 100)", keep, want))
      << (got.size() == 6 && got[2] == "xxx..."
              ? "query 2 reads 3 keys with local = 2: the window counts the query itself, so the "
                "rule is p - j < local (keys p - local + 1 .. p), not p - j <= local"
              : "");
}

TEST(Mistakes, StridePatternIncludesFutureTokens) {
  // Key 5 is a summary (5 % 3 == 2) but lies in the future of queries 0..4.
  const Tensor keep = lesson09::strided_mask(8, 8, 2, 3);
  const std::vector<int64_t> f = keep.to_int_vector();
  ASSERT_EQ(f.size(), 64u);
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = i + 1; j < 8; ++j)
      ASSERT_EQ(f[i * 8 + j], 0) << "query " << i << " may read key " << j << ", which comes after it"
                                 << (j % 3 == 2 ? " (a summary key: j % stride == stride - 1). The "
                                                  "summary rule must be combined with j <= p: "
                                                  "causal AND (local OR summary)"
                                                : "");
}

TEST(Mistakes, SummaryIsNotTheLastKeyOfItsStrideBlock) {
  // local = 1, stride = 4, T = 9: besides itself, query 8 reads the
  // summaries 3 and 7 (j % 4 == 3), not 0 and 4 (the FIRST key of a block).
  const std::vector<int64_t> f = lesson09::strided_mask(9, 9, 1, 4).to_int_vector();
  ASSERT_EQ(f.size(), 81u);
  std::vector<int64_t> read;
  for (int64_t j = 0; j < 9; ++j)
    if (f[8 * 9 + j]) read.push_back(j);
  const std::vector<int64_t> want = {3, 7, 8};
  std::ostringstream g;
  for (int64_t j : read) g << j << " ";
  EXPECT_EQ(read, want) << "query 8 (local 1, stride 4) reads keys [ " << g.str() << "], expected [ 3 7 8 ]"
                        << (read == std::vector<int64_t>{0, 4, 8}
                                ? ": the summary of a block is its LAST key, j % stride == stride - 1, "
                                  "the one that has seen the whole block"
                                : "");
}

TEST(Mistakes, BlockPatternOffByOneBlock) {
  // T = 12, block 3: the queries of block 3 (positions 9..11) read blocks 0,
  // 2 and 3. Which blocks does each query read?
  const std::vector<int64_t> f = lesson09::block_sparse_mask(12, 12, 3).to_int_vector();
  ASSERT_EQ(f.size(), 144u);
  for (int64_t p : {3, 6, 9, 11}) {
    std::vector<int64_t> read;
    for (int64_t kb = 0; kb < 4; ++kb) {
      bool any = false;
      for (int64_t j = kb * 3; j < kb * 3 + 3; ++j) any = any || f[p * 12 + j];
      if (any) read.push_back(kb);
    }
    const int64_t qb = p / 3;
    std::vector<int64_t> want;
    for (int64_t kb = 0; kb <= qb; ++kb)
      if (kb == 0 || kb == qb - 1 || kb == qb) want.push_back(kb);
    std::ostringstream g, w;
    for (int64_t x : read) g << x << " ";
    for (int64_t x : want) w << x << " ";
    EXPECT_EQ(read, want) << "query " << p << " (block " << p << " / 3 = " << qb << ") reads blocks [ "
                          << g.str() << "], expected [ " << w.str() << "]: its own block, block qb - 1 "
                          << "and block 0, with kb = j / block and qb = p / block (positions, not rows)";
  }
}

TEST(Mistakes, DiagonalMissing) {
  // Every query must read itself: with local = 1 the window is the query
  // alone, and in the block pattern the own block includes j == p.
  for (const auto& [what, keep] : std::vector<std::pair<std::string, Tensor>>{
           {"strided_mask(T = 7, local = 1, stride = 3)", lesson09::strided_mask(7, 7, 1, 3)},
           {"block_sparse_mask(T = 7, block = 2)", lesson09::block_sparse_mask(7, 7, 2)},
           {"strided_mask(Tq = 3, Tk = 9, local = 1, stride = 4, offset = 6)", lesson09::strided_mask(3, 9, 1, 4, 6)}}) {
    const int64_t tq = keep.shape()[0], tk = keep.shape()[1], offset = tk - tq;
    const std::vector<int64_t> f = keep.to_int_vector();
    for (int64_t i = 0; i < tq; ++i)
      EXPECT_EQ(f[i * tk + offset + i], 1)
          << what << ": query at position " << offset + i << " does not read itself. Keep j == p: "
          << "the local rule is p - j < local (p - j = 0 included), the own block is kb == qb with j <= p";
  }
}

TEST(Mistakes, DensityCountedWrong) {
  // Over ALL Tq * Tk pairs, not over the causal T (T + 1) / 2 ones, and in
  // floating point (20 / 64 in integers is 0).
  const double got = lesson09::density(mask_from(kStrided_8_L2_S3));
  std::string hint;
  if (std::fabs(got - 20.0 / 36) < 1e-9) hint = ": that is 20 / 36, over the causal pairs; divide by all Tq * Tk = 64";
  if (got == 0) hint = ": 0 looks like an integer division (20 / 64); divide in floating point";
  if (std::fabs(got - 44.0 / 64) < 1e-9) hint = ": that counts the MASKED pairs; count the allowed ones";
  EXPECT_DOUBLE_EQ(got, 20.0 / 64) << "density of the README's strided pattern (20 of 64 pairs)" << hint;
}

TEST(Mistakes, SizesBelowOneAreRejected) {
  EXPECT_TRUE(rejects("strided_mask(local = 0)", [] { lesson09::strided_mask(4, 4, 0, 2); },
                      "a window of 0 keys would not even hold the query itself"));
  EXPECT_TRUE(rejects("strided_mask(stride = 0)", [] { lesson09::strided_mask(4, 4, 2, 0); },
                      "j % 0 divides by zero"));
  EXPECT_TRUE(rejects("block_sparse_mask(block = 0)", [] { lesson09::block_sparse_mask(4, 4, 0); },
                      "j / 0 divides by zero"));
}
