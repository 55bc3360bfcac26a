// matmul against a double triple loop: 2-D, vector operands, batched with
// batch broadcasting, views as inputs (transposed, offset sub-blocks,
// stepped, expanded), and empty sizes (K = 0 gives zeros).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "oracle.h"

namespace {

using attn::Generator;
using attn::Shape;
using attn::Tensor;
using oracle::Array;
using oracle::Dims;

// float32 products of K terms in [-1, 1): BLAS may reorder the sum.
constexpr double kRtol = 1e-5, kAtol = 1e-5;

TEST(Matmul, ShapesAgainstTripleLoop) {
  Generator g(41);
  const std::vector<std::pair<Dims, Dims>> cases = {
      {{3, 4}, {4, 5}},          {{1, 1}, {1, 1}},       {{7, 13}, {13, 3}},
      {{4}, {4, 5}},             {{3, 4}, {4}},          {{4}, {4}},
      {{2, 3, 4}, {4, 5}},       {{3, 4}, {2, 4, 5}},    {{2, 3, 4}, {2, 4, 5}},
      {{2, 1, 3, 4}, {5, 4, 6}}, {{1, 3, 4}, {2, 4, 2}}, {{2, 3, 4}, {4}},
      {{4}, {2, 4, 5}},          {{2, 1, 1, 4}, {3, 4, 1}},
      {{64, 33}, {33, 17}},
  };
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(oracle::dims_str(sa) + " @ " + oracle::dims_str(sb));
    const Array a = oracle::uniform(sa, g), b = oracle::uniform(sb, g);
    EXPECT_TRUE(oracle::close(attn::matmul(oracle::tensor(a), oracle::tensor(b)), oracle::matmul(a, b),
                              kRtol, kAtol));
  }
}

TEST(Matmul, VectorOperandsDropTheirDim) {
  const Tensor v = attn::from_vector({1, 2, 3}, {3});
  const Tensor m = attn::from_vector({1, 0, 2, -1, 3, 1}, {3, 2});
  EXPECT_EQ(attn::matmul(v, v).shape(), Shape{});
  EXPECT_EQ(attn::matmul(v, v).item(), 14.0f);
  EXPECT_TRUE(oracle::equal(attn::matmul(v, m), Array({2}, {1 + 4 + 9, 0 - 2 + 3})));
  EXPECT_TRUE(oracle::equal(attn::matmul(attn::transpose(m, 0, 1), v), Array({2}, {14, 1})));
}

TEST(Matmul, TransposedViewsEqualTheContiguousResult) {
  Generator g(42);
  const Array a = oracle::uniform({5, 3}, g), b = oracle::uniform({6, 5}, g);
  const Tensor ta = attn::transpose(oracle::tensor(a), 0, 1);  // [3,5] with column-major memory
  const Tensor tb = attn::transpose(oracle::tensor(b), 0, 1);  // [5,6]
  ASSERT_FALSE(ta.is_contiguous());
  const Array want = oracle::matmul(oracle::transpose(a, 0, 1), oracle::transpose(b, 0, 1));
  const Tensor got = attn::matmul(ta, tb);
  EXPECT_TRUE(oracle::close(got, want, kRtol, kAtol));
  EXPECT_TRUE(oracle::close(attn::matmul(ta.contiguous(), tb.contiguous()), oracle::read(got), 1e-6, 1e-6))
      << "transposed views and their contiguous copies must agree";
  // Only one side transposed.
  EXPECT_TRUE(oracle::close(attn::matmul(ta, oracle::tensor(oracle::transpose(b, 0, 1))), want, kRtol, kAtol));
  EXPECT_TRUE(oracle::close(attn::matmul(oracle::tensor(oracle::transpose(a, 0, 1)), tb), want, kRtol, kAtol));
  // Batched: permuted 4-D operands, the attention pattern q @ k^T.
  const Array q = oracle::uniform({2, 4, 3, 5}, g), k = oracle::uniform({2, 6, 3, 5}, g);  // [B,T,H,d]
  const Tensor tq = attn::permute(oracle::tensor(q), {0, 2, 1, 3});                       // [B,H,T,d]
  const Tensor tk = attn::permute(oracle::tensor(k), {0, 2, 3, 1});                       // [B,H,d,T]
  EXPECT_TRUE(oracle::close(attn::matmul(tq, tk),
                            oracle::matmul(oracle::permute(q, {0, 2, 1, 3}), oracle::permute(k, {0, 2, 3, 1})),
                            kRtol, kAtol));
  // A 3-D contiguous-looking left side that is really a transpose.
  const Array c = oracle::uniform({2, 4, 3}, g), w = oracle::uniform({4, 2}, g);
  EXPECT_TRUE(oracle::close(attn::matmul(attn::transpose(oracle::tensor(c), 1, 2), oracle::tensor(w)),
                            oracle::matmul(oracle::transpose(c, 1, 2), w), kRtol, kAtol));
}

TEST(Matmul, OtherViewsAsInputs) {
  Generator g(43);
  // Sub-blocks of a larger matrix: leading dimension != number of columns,
  // and a non-zero offset.
  const Array big = oracle::uniform({6, 10}, g), other = oracle::uniform({9, 8}, g);
  const Tensor a = attn::narrow(attn::narrow(oracle::tensor(big), 0, 1, 3), 1, 2, 4);   // [3,4]
  const Tensor b = attn::narrow(attn::narrow(oracle::tensor(other), 0, 5, 4), 1, 3, 5);  // [4,5]
  const Array oa = oracle::take(oracle::take(big, 0, {1, 2, 3}), 1, {2, 3, 4, 5});
  const Array ob = oracle::take(oracle::take(other, 0, {5, 6, 7, 8}), 1, {3, 4, 5, 6, 7});
  EXPECT_TRUE(oracle::close(attn::matmul(a, b), oracle::matmul(oa, ob), kRtol, kAtol)) << "narrowed blocks";
  // Transposed sub-block.
  EXPECT_TRUE(oracle::close(attn::matmul(attn::transpose(b, 0, 1), attn::transpose(a, 0, 1)),
                            oracle::matmul(oracle::transpose(ob, 0, 1), oracle::transpose(oa, 0, 1)), kRtol,
                            kAtol))
      << "transposed narrowed blocks";
  // Stepped slices (neither rows nor columns contiguous).
  const Tensor s = attn::slice(attn::slice(oracle::tensor(big), 1, 0, 10, 2), 0, 0, 6, 2);  // [3,5]
  const Array os = oracle::take(oracle::take(big, 1, {0, 2, 4, 6, 8}), 0, {0, 2, 4});
  EXPECT_TRUE(oracle::close(attn::matmul(s, attn::transpose(s, 0, 1)),
                            oracle::matmul(os, oracle::transpose(os, 0, 1)), kRtol, kAtol))
      << "stepped slices";
  // Expanded operands (stride 0), in the matrix dims and in a batch dim.
  const Array col = oracle::uniform({3, 1}, g), m = oracle::uniform({4, 2}, g);
  EXPECT_TRUE(oracle::close(attn::matmul(attn::expand(oracle::tensor(col), {3, 4}), oracle::tensor(m)),
                            oracle::matmul(oracle::expand(col, {3, 4}), m), kRtol, kAtol))
      << "expanded columns";
  const Array mat = oracle::uniform({3, 4}, g), bm = oracle::uniform({2, 4, 5}, g);
  EXPECT_TRUE(oracle::close(attn::matmul(attn::expand(oracle::tensor(mat), {2, 3, 4}), oracle::tensor(bm)),
                            oracle::matmul(oracle::expand(mat, {2, 3, 4}), bm), kRtol, kAtol))
      << "expanded batch";
  // A batch of row vectors taken with select (a size-1 matrix dim with an odd stride).
  const Array r = oracle::uniform({2, 3, 4}, g);
  const Tensor row = attn::unsqueeze(attn::select(oracle::tensor(r), 1, 1), 1);  // [2,1,4]
  Array orow = oracle::take(r, 1, {1});
  EXPECT_TRUE(oracle::close(attn::matmul(row, oracle::tensor(bm)), oracle::matmul(orow, bm), kRtol, kAtol))
      << "selected rows";
}

TEST(Matmul, EmptySizes) {
  // K = 0: every output is an empty sum, 0.
  EXPECT_TRUE(oracle::equal(attn::matmul(attn::zeros({3, 0}), attn::zeros({0, 4})), Array({3, 4})));
  EXPECT_TRUE(oracle::equal(attn::matmul(attn::full({2, 3, 0}, 1.0), attn::full({0, 4}, 1.0)), Array({2, 3, 4})));
  EXPECT_TRUE(oracle::equal(attn::matmul(attn::full({2, 3, 0}, 1.0), attn::full({2, 0, 4}, 1.0)), Array({2, 3, 4})));
  EXPECT_TRUE(oracle::equal(attn::matmul(attn::zeros({0}), attn::zeros({0})), Array(Dims{})));
  // M, N or batch = 0: empty results of the right shape.
  EXPECT_EQ(attn::matmul(attn::zeros({0, 3}), attn::zeros({3, 4})).shape(), (Shape{0, 4}));
  EXPECT_EQ(attn::matmul(attn::zeros({2, 3}), attn::zeros({3, 0})).shape(), (Shape{2, 0}));
  EXPECT_EQ(attn::matmul(attn::zeros({0, 2, 3}), attn::zeros({3, 4})).shape(), (Shape{0, 2, 4}));
  EXPECT_EQ(attn::matmul(attn::zeros({0, 2, 3}), attn::zeros({1, 3, 4})).shape(), (Shape{0, 2, 4}));
}

TEST(Matmul, ResultDoesNotAliasInputs) {
  const Tensor a = attn::from_vector({1, 2, 3, 4}, {2, 2});
  const Tensor c = attn::matmul(a, a);
  EXPECT_FALSE(c.same_storage(a));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_TRUE(oracle::equal(c, Array({2, 2}, {7, 10, 15, 22})));
  EXPECT_TRUE(oracle::equal(a, Array({2, 2}, {1, 2, 3, 4})));
}

}  // namespace
