// softmax / log_softmax (any dim, extreme logits, masked rows) and the
// indexing and masking ops: index_select, embedding, where, masked_fill,
// tril / triu, cumsum. All against double loops.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "oracle.h"

namespace {

using attn::DType;
using attn::Generator;
using attn::Shape;
using attn::Tensor;
using oracle::Array;
using oracle::Dims;

// Softmax along `dim` in double. A row with no finite maximum (all -inf)
// is treated as all-zero logits, the documented behaviour of the kernel.
Array softmax_ref(const Array& x, int64_t dim, bool log) {
  Array out(x.shape);
  Dims outer = x.shape;
  outer[dim] = 1;
  const int64_t n = x.shape[dim];
  for (int64_t f = 0; f < oracle::count(outer); ++f) {
    Dims idx = oracle::unravel(f, outer);
    double m = -INFINITY;
    for (idx[dim] = 0; idx[dim] < n; ++idx[dim]) m = std::max(m, x.at(idx));
    if (m == -INFINITY) m = 0;
    double s = 0;
    for (idx[dim] = 0; idx[dim] < n; ++idx[dim]) s += std::exp(x.at(idx) - m);
    for (idx[dim] = 0; idx[dim] < n; ++idx[dim]) {
      if (s == 0) {  // every logit -inf: uniform
        out.at(idx) = log ? -std::log(static_cast<double>(n)) : 1.0 / static_cast<double>(n);
      } else {
        out.at(idx) = log ? x.at(idx) - m - std::log(s) : std::exp(x.at(idx) - m) / s;
      }
    }
  }
  return out;
}

TEST(Softmax, AnyDimAgainstDouble) {
  Generator g(51);
  const Array a = oracle::uniform({3, 4, 5}, g, -6, 6);
  const Array base = oracle::uniform({5, 3, 4}, g, -6, 6);
  const Tensor perm = attn::permute(oracle::tensor(base), {1, 2, 0});  // [3,4,5], non-contiguous
  const Array operm = oracle::permute(base, {1, 2, 0});
  for (int64_t dim : {0, 1, 2, -1, -2}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    SCOPED_TRACE("dim " + std::to_string(dim));
    EXPECT_TRUE(oracle::close(attn::softmax(oracle::tensor(a), dim), softmax_ref(a, d, false), 1e-5, 1e-7));
    EXPECT_TRUE(oracle::close(attn::log_softmax(oracle::tensor(a), dim), softmax_ref(a, d, true), 1e-5, 1e-5));
    EXPECT_TRUE(oracle::close(attn::softmax(perm, dim), softmax_ref(operm, d, false), 1e-5, 1e-7))
        << "permuted input";
    EXPECT_TRUE(oracle::close(attn::log_softmax(perm, dim), softmax_ref(operm, d, true), 1e-5, 1e-5))
        << "permuted input";
  }
  // Each row sums to one.
  const Array s = oracle::read(attn::softmax(oracle::tensor(a), 1));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < 5; ++k) {
      double total = 0;
      for (int64_t j = 0; j < 4; ++j) total += s.at({i, j, k});
      EXPECT_NEAR(total, 1.0, 1e-6) << "row " << i << ", " << k;
    }
  // 1-D and a single column.
  const Array v({4}, {1, 2, 3, 4});
  EXPECT_TRUE(oracle::close(attn::softmax(oracle::tensor(v), 0), softmax_ref(v, 0, false), 1e-6, 1e-7));
  EXPECT_TRUE(oracle::equal(attn::softmax(attn::full({3, 1}, 5.0), 1), Array({3, 1}, {1, 1, 1})));
}

TEST(Softmax, ExtremeLogitsAreStable) {
  const Array x = oracle::f32(Array({3, 4}, {1000, 999, -1000, 0,       //
                                             -1000, -1000, -1000, -1001,  //
                                             88.8, 89, 0, -88.8}));
  const Tensor t = oracle::tensor(x);
  const Tensor s = attn::softmax(t, 1), ls = attn::log_softmax(t, 1);
  for (float v : s.to_vector()) EXPECT_TRUE(std::isfinite(v)) << "softmax gave " << v;
  for (float v : ls.to_vector()) EXPECT_TRUE(std::isfinite(v)) << "log_softmax gave " << v;
  EXPECT_TRUE(oracle::close(s, softmax_ref(x, 1, false), 1e-5, 1e-7));
  EXPECT_TRUE(oracle::close(ls, softmax_ref(x, 1, true), 1e-5, 1e-4));
  // The first row, by hand: p = [1/(1+e^-1), e^-1/(1+e^-1), 0, 0].
  const double p0 = 1 / (1 + std::exp(-1.0));
  EXPECT_NEAR(s.to_vector()[0], p0, 1e-6);
  EXPECT_NEAR(s.to_vector()[1], 1 - p0, 1e-6);
  EXPECT_NEAR(ls.to_vector()[2], -2000 - std::log(1 + std::exp(-1.0)), 1e-3);
}

TEST(Softmax, MaskedPositions) {
  const float ninf = -std::numeric_limits<float>::infinity();
  // Some -inf (masked) positions: probability exactly 0, log-prob -inf.
  const Tensor t = attn::from_vector({ninf, 0, 0, 1, ninf, ninf}, {2, 3});
  const std::vector<float> s = attn::softmax(t, 1).to_vector();
  EXPECT_EQ(s[0], 0.0f);
  EXPECT_NEAR(s[1], 0.5, 1e-7);
  EXPECT_NEAR(s[2], 0.5, 1e-7);
  EXPECT_EQ(s[3], 1.0f);
  EXPECT_EQ(s[4], 0.0f);
  const std::vector<float> ls = attn::log_softmax(t, 1).to_vector();
  EXPECT_EQ(ls[0], ninf);
  EXPECT_NEAR(ls[1], std::log(0.5), 1e-6);
  EXPECT_EQ(ls[3], 0.0f);
  EXPECT_EQ(ls[5], ninf);
}

TEST(Softmax, FullyMaskedRowIsUniform) {
  // core/cpu/softmax.cpp: a row of -inf has no max to subtract; it is
  // treated as all-zero logits, so it comes out uniform instead of NaN.
  const float ninf = -std::numeric_limits<float>::infinity();
  const Tensor t = attn::from_vector({ninf, ninf, ninf, ninf, 1, 2, 3, 4}, {2, 4});
  EXPECT_TRUE(oracle::close(attn::softmax(t, -1), Array({2, 4}, {0.25, 0.25, 0.25, 0.25, 0.0320586, 0.0871443, 0.2368828, 0.6439143}), 1e-5, 1e-7));
  const double l4 = -std::log(4.0);
  const Array want_log = softmax_ref(oracle::read(t), 1, true);
  EXPECT_TRUE(oracle::close(attn::log_softmax(t, -1), want_log, 1e-5, 1e-6));
  EXPECT_NEAR(attn::log_softmax(t, -1).to_vector()[0], l4, 1e-6);
  // The same along a non-last dim (column 1 is fully masked).
  const Tensor c = attn::from_vector({0, ninf, 1, ninf, 2, ninf}, {3, 2});
  EXPECT_TRUE(oracle::close(attn::softmax(c, 0), softmax_ref(oracle::read(c), 0, false), 1e-5, 1e-7));
  EXPECT_NEAR(attn::softmax(c, 0).to_vector()[1], 1.0 / 3.0, 1e-7);
}

TEST(IndexSelect, RowsAndColumnsWithRepeats) {
  Generator g(52);
  const Array a = oracle::uniform({4, 3}, g);
  const Tensor t = oracle::tensor(a);
  const Tensor idx0 = attn::from_ints({2, 0, 2, 3, 2}, {5});
  EXPECT_TRUE(oracle::equal(attn::index_select(t, 0, idx0), oracle::take(a, 0, {2, 0, 2, 3, 2})));
  const Tensor idx1 = attn::from_ints({1, 1, 0}, {3});
  EXPECT_TRUE(oracle::equal(attn::index_select(t, 1, idx1), oracle::take(a, 1, {1, 1, 0})));
  EXPECT_TRUE(oracle::equal(attn::index_select(t, -1, idx1), oracle::take(a, 1, {1, 1, 0})));
  // Empty index: zero rows.
  EXPECT_EQ(attn::index_select(t, 0, attn::from_ints({}, {0})).shape(), (Shape{0, 3}));
  // 3-D, middle dim, on a permuted input.
  const Array b = oracle::uniform({3, 5, 2}, g);
  const Tensor tb = attn::permute(oracle::tensor(b), {2, 0, 1});  // [2,3,5]
  const Array ob = oracle::permute(b, {2, 0, 1});
  const Tensor idx = attn::from_ints({4, 0, 4}, {3});
  EXPECT_TRUE(oracle::equal(attn::index_select(tb, 2, idx), oracle::take(ob, 2, {4, 0, 4})));
  EXPECT_TRUE(oracle::equal(attn::index_select(tb, 1, attn::from_ints({2, 2}, {2})), oracle::take(ob, 1, {2, 2})));
  // A non-contiguous index (every other entry of a longer one).
  const Tensor long_idx = attn::from_ints({3, 9, 1, 9, 3, 9}, {6});
  EXPECT_TRUE(oracle::equal(attn::index_select(t, 0, attn::slice(long_idx, 0, 0, 6, 2)),
                            oracle::take(a, 0, {3, 1, 3})));
}

TEST(IndexSelect, Embedding) {
  Generator g(53);
  const Array w = oracle::uniform({5, 3}, g);
  const Tensor tw = oracle::tensor(w);
  const Tensor ids = attn::from_ints({1, 4, 1, 0, 0, 2}, {2, 3});
  const Tensor e = attn::embedding(tw, ids);
  EXPECT_EQ(e.shape(), (Shape{2, 3, 3}));
  Array want = oracle::take(w, 0, {1, 4, 1, 0, 0, 2});
  want.shape = {2, 3, 3};
  EXPECT_TRUE(oracle::equal(e, want));
  // A single 0-d id gives one row of shape [D].
  const Tensor one = attn::embedding(tw, attn::from_ints({3}, {}));
  EXPECT_EQ(one.shape(), (Shape{3}));
  Array row = oracle::take(w, 0, {3});
  row.shape = {3};
  EXPECT_TRUE(oracle::equal(one, row));
}

TEST(Where, BroadcastsAllThreeInputs) {
  Generator g(54);
  const Array c = oracle::integers({3, 1}, g, 0, 1);
  const Array a = oracle::uniform({1, 4}, g), b({}, {-7});
  std::vector<bool> cb;
  for (double v : c.v) cb.push_back(v != 0);
  const Tensor tc = attn::from_bools(cb, {3, 1});
  const Array want = oracle::zip(oracle::expand(c, {3, 4}), oracle::expand(a, {3, 4}), [](double cc, double aa) {
    return cc != 0 ? aa : -7.0;
  });
  EXPECT_TRUE(oracle::equal(attn::where(tc, oracle::tensor(a), oracle::tensor(b)), want));
  // Condition [4] against values [2,4]; a transposed value input.
  const Tensor cond = attn::from_bools({true, false, false, true}, {4});
  const Array x = oracle::uniform({4, 2}, g), y = oracle::uniform({2, 4}, g);
  const Array xt = oracle::transpose(x, 0, 1);
  Array want2(Dims{2, 4});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 4; ++j)
      want2.at({i, j}) = (j == 0 || j == 3) ? xt.at({i, j}) : y.at({i, j});
  EXPECT_TRUE(oracle::equal(attn::where(cond, attn::transpose(oracle::tensor(x), 0, 1), oracle::tensor(y)), want2));
}

TEST(Where, MaskedFill) {
  Generator g(55);
  const Array x = oracle::uniform({3, 4}, g);
  const Tensor tx = oracle::tensor(x);
  const float ninf = -std::numeric_limits<float>::infinity();
  // Mask [1,4] (columns), [3,1] (rows), [3,4] and a transposed [4,3] view.
  const Tensor cols = attn::from_bools({false, true, false, true}, {1, 4});
  Array want = x;
  for (int64_t i = 0; i < 3; ++i) want.at({i, 1}) = want.at({i, 3}) = -INFINITY;
  EXPECT_TRUE(oracle::equal(attn::masked_fill(tx, cols, ninf), want));
  const Tensor rows = attn::from_bools({true, false, false}, {3, 1});
  want = x;
  for (int64_t j = 0; j < 4; ++j) want.at({0, j}) = 2.5;
  EXPECT_TRUE(oracle::equal(attn::masked_fill(tx, rows, 2.5f), want));
  // The causal-mask idiom: masked_fill(scores, eq(tril(ones), 0), -inf).
  const Tensor causal = attn::eq(attn::tril(attn::ones({3, 4})), 0.0);
  want = x;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = i + 1; j < 4; ++j) want.at({i, j}) = -INFINITY;
  EXPECT_TRUE(oracle::equal(attn::masked_fill(tx, causal, ninf), want));
  const Tensor mt = attn::transpose(attn::from_bools({true, false, false, false, true, false,
                                                      false, false, true, false, false, false},
                                                     {4, 3}),
                                    0, 1);  // [3,4], true at (0,0), (1,1), (2,2)
  want = x;
  for (int64_t i = 0; i < 3; ++i) want.at({i, i}) = 0;
  EXPECT_TRUE(oracle::equal(attn::masked_fill(tx, mt, 0.0f), want));
  // The input is not modified.
  EXPECT_TRUE(oracle::equal(tx, x));
}

TEST(Triangles, TrilTriuWithOffsets) {
  Generator g(56);
  for (const Dims& shape : std::vector<Dims>{{3, 5}, {5, 3}, {4, 4}, {2, 3, 4}, {1, 1}}) {
    const Array a = oracle::uniform(shape, g);
    const int64_t r = shape.size() - 2, c = shape.size() - 1;
    for (int64_t k : {-10, -1, 0, 1, 2, 10}) {
      SCOPED_TRACE(oracle::dims_str(shape) + " diagonal " + std::to_string(k));
      Array lo = a, up = a;
      for (int64_t f = 0; f < a.size(); ++f) {
        const Dims idx = oracle::unravel(f, shape);
        const int64_t diff = idx[c] - idx[r];
        if (diff > k) lo.v[f] = 0;
        if (diff < k) up.v[f] = 0;
      }
      EXPECT_TRUE(oracle::equal(attn::tril(oracle::tensor(a), k), lo));
      EXPECT_TRUE(oracle::equal(attn::triu(oracle::tensor(a), k), up));
    }
  }
  // A transposed input: the triangle is of the view, not of the memory.
  const Array b = oracle::uniform({4, 3}, g);
  const Array bt = oracle::transpose(b, 0, 1);
  Array want = bt;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      if (j > i) want.at({i, j}) = 0;
  EXPECT_TRUE(oracle::equal(attn::tril(attn::transpose(oracle::tensor(b), 0, 1)), want));
}

TEST(Cumsum, AlongEachDim) {
  Generator g(57);
  const Array a = oracle::uniform({3, 4, 5}, g);
  const Array base = oracle::uniform({5, 3, 4}, g);
  const Tensor perm = attn::permute(oracle::tensor(base), {1, 2, 0});
  const Array operm = oracle::permute(base, {1, 2, 0});
  auto ref = [](const Array& x, int64_t dim) {
    Array out(x.shape);
    for (int64_t f = 0; f < x.size(); ++f) {
      Dims idx = oracle::unravel(f, x.shape);
      const int64_t upto = idx[dim];
      double s = 0;
      for (idx[dim] = 0; idx[dim] <= upto; ++idx[dim]) s += x.at(idx);
      out.v[f] = s;
    }
    return out;
  };
  for (int64_t dim : {0, 1, 2, -1}) {
    const int64_t d = dim < 0 ? dim + 3 : dim;
    SCOPED_TRACE("cumsum dim " + std::to_string(dim));
    EXPECT_TRUE(oracle::close(attn::cumsum(oracle::tensor(a), dim), ref(a, d), 1e-6, 1e-6));
    EXPECT_TRUE(oracle::close(attn::cumsum(perm, dim), ref(operm, d), 1e-6, 1e-6)) << "permuted input";
  }
  // The running sum is kept in double: 1e8 + 1 - 1e8 is 1.
  EXPECT_TRUE(oracle::equal(attn::cumsum(attn::from_vector({1e8f, 1, -1e8f, 1}, {4}), 0),
                            Array({4}, {1e8, 1e8, 1, 2})));
}

}  // namespace
