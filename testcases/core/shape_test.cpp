// Views and shape ops: the values each one shows (against the oracle's own
// index math), the metadata (shape, strides, offset), and whether it shares
// storage with its input (views) or copies (reshape of a non-contiguous
// tensor, cat, stack, contiguous()).
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
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

// 0, 1, 2, ... as float, so every value names its own position.
Array iota(const Dims& shape) {
  Array a(shape);
  for (int64_t i = 0; i < a.size(); ++i) a.v[i] = static_cast<double>(i);
  return a;
}

TEST(Shape, ViewSharesStorageAndInfersMinusOne) {
  const Array a = iota({2, 3, 4});
  const Tensor t = oracle::tensor(a);
  const Tensor v = attn::view(t, {4, -1});
  EXPECT_EQ(v.shape(), (Shape{4, 6}));
  EXPECT_EQ(v.strides(), (Shape{6, 1}));
  EXPECT_TRUE(v.same_storage(t));
  Array want = a;
  want.shape = {4, 6};
  EXPECT_TRUE(oracle::equal(v, want));
  EXPECT_EQ(attn::view(t, {-1}).shape(), (Shape{24}));
  EXPECT_EQ(attn::view(t, {2, -1, 3}).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(attn::view(attn::full({1, 1}, 3.0), {}).shape(), Shape{});
  // Writing through the storage is seen by the view (they are one memory).
  t.data<float>()[7] = -5;
  EXPECT_EQ(v.to_vector()[7], -5.0f);
}

TEST(Shape, ReshapeCopiesOnlyWhenItMust) {
  const Array a = iota({3, 4});
  const Tensor t = oracle::tensor(a);
  const Tensor r = attn::reshape(t, {2, -1, 2});
  EXPECT_EQ(r.shape(), (Shape{2, 3, 2}));
  EXPECT_TRUE(r.same_storage(t)) << "reshape of a contiguous tensor is a view";
  // The transpose is not contiguous: reshape copies, in the transpose's order.
  const Tensor tt = attn::transpose(t, 0, 1);
  const Tensor r2 = attn::reshape(tt, {-1});
  EXPECT_FALSE(r2.same_storage(t));
  Array want = oracle::transpose(a, 0, 1);
  want.shape = {12};
  EXPECT_TRUE(oracle::equal(r2, want));
  // Empty tensors reshape too (the -1 is inferred from the known dims).
  EXPECT_EQ(attn::reshape(attn::zeros({0, 6}), {-1, 3}).shape(), (Shape{0, 3}));
}

TEST(Shape, Flatten) {
  const Array a = iota({2, 3, 4, 5});
  const Tensor t = oracle::tensor(a);
  EXPECT_EQ(attn::flatten(t).shape(), (Shape{120}));
  EXPECT_EQ(attn::flatten(t, 1).shape(), (Shape{2, 60}));
  EXPECT_EQ(attn::flatten(t, 1, 2).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(attn::flatten(t, -2, -1).shape(), (Shape{2, 3, 20}));
  EXPECT_EQ(attn::flatten(t, 2, 2).shape(), (Shape{2, 3, 4, 5}));
  EXPECT_EQ(attn::flatten(attn::full({}, 1.0)).shape(), (Shape{1}));
  // Flattening a permuted view reads it in its logical order.
  Array want = oracle::permute(a, {3, 1, 0, 2});
  want.shape = {120};
  EXPECT_TRUE(oracle::equal(attn::flatten(attn::permute(t, {3, 1, 0, 2})), want));
}

TEST(Shape, TransposeAndPermuteAreViews) {
  const Array a = iota({2, 3, 4});
  const Tensor t = oracle::tensor(a);
  const Tensor tr = attn::transpose(t, 0, 2);
  EXPECT_EQ(tr.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(tr.strides(), (Shape{1, 4, 12}));
  EXPECT_TRUE(tr.same_storage(t));
  EXPECT_FALSE(tr.is_contiguous());
  EXPECT_TRUE(oracle::equal(tr, oracle::transpose(a, 0, 2)));
  EXPECT_TRUE(oracle::equal(attn::transpose(t, -1, -3), oracle::transpose(a, 0, 2)));
  EXPECT_TRUE(oracle::equal(attn::transpose(t, 1, 1), a));
  for (const Dims& p : std::vector<Dims>{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {2, 1, 0}, {-1, 0, -2}}) {
    SCOPED_TRACE("permute " + oracle::dims_str(p));
    Dims np;
    for (int64_t d : p) np.push_back(d < 0 ? d + 3 : d);
    const Tensor pv = attn::permute(t, p);
    EXPECT_TRUE(pv.same_storage(t));
    EXPECT_TRUE(oracle::equal(pv, oracle::permute(a, np)));
  }
  // Permute of a permute composes.
  EXPECT_TRUE(oracle::equal(attn::permute(attn::permute(t, {2, 0, 1}), {2, 0, 1}),
                            oracle::permute(oracle::permute(a, {2, 0, 1}), {2, 0, 1})));
}

// Python's range(*slice(start, end, step).indices(n)) for step > 0.
Dims python_slice(int64_t n, int64_t start, int64_t end, int64_t step) {
  auto fix = [n](int64_t i) {
    if (i < 0) i += n;
    return i < 0 ? 0 : (i > n ? n : i);
  };
  Dims out;
  for (int64_t i = fix(start); i < fix(end); i += step) out.push_back(i);
  return out;
}

TEST(Shape, SliceFollowsPythonRules) {
  const Array a = iota({7, 5});
  const Tensor t = oracle::tensor(a);
  struct Case { int64_t start, end, step; };
  const std::vector<Case> cases = {{1, 5, 1},   {-3, 100, 1},      {-100, 2, 1}, {0, 7, 3},
                                   {5, 2, 1},   {1, -1, 2},        {7, 10, 1},   {-1, LLONG_MAX, 1},
                                   {0, 0, 1},   {-7, 7, 7},        {2, 6, 10},   {LLONG_MIN, LLONG_MAX, 2}};
  for (const Case& c : cases) {
    for (int64_t dim : {0, 1, -1}) {
      SCOPED_TRACE("slice dim " + std::to_string(dim) + " [" + std::to_string(c.start) + ":" +
                   std::to_string(c.end) + ":" + std::to_string(c.step) + "]");
      const int64_t d = dim < 0 ? dim + 2 : dim;
      const Tensor s = attn::slice(t, dim, c.start, c.end, c.step);
      EXPECT_TRUE(s.same_storage(t));
      EXPECT_TRUE(oracle::equal(s, oracle::take(a, d, python_slice(a.shape[d], c.start, c.end, c.step))));
    }
  }
  // A slice of a slice of a transpose: offsets and strides compose.
  const Tensor st = attn::slice(attn::slice(attn::transpose(t, 0, 1), 1, 1, 7, 2), 0, 1, 5, 3);
  EXPECT_TRUE(oracle::equal(st, oracle::take(oracle::take(oracle::transpose(a, 0, 1), 1, {1, 3, 5}), 0, {1, 4})));
  EXPECT_EQ(st.offset(), 1 * 1 + 1 * 5);
}

TEST(Shape, NarrowAndSelect) {
  const Array a = iota({4, 6});
  const Tensor t = oracle::tensor(a);
  const Tensor n = attn::narrow(t, 1, 2, 3);
  EXPECT_TRUE(n.same_storage(t));
  EXPECT_TRUE(oracle::equal(n, oracle::take(a, 1, {2, 3, 4})));
  EXPECT_TRUE(oracle::equal(attn::narrow(t, 0, 3, 1), oracle::take(a, 0, {3})));
  EXPECT_EQ(attn::narrow(t, -1, 6, 0).shape(), (Shape{4, 0}));
  // select drops the dim; negative indices count from the end.
  const Tensor s = attn::select(t, 1, -2);
  EXPECT_EQ(s.shape(), (Shape{4}));
  EXPECT_TRUE(s.same_storage(t));
  EXPECT_TRUE(oracle::equal(s, Array({4}, {4, 10, 16, 22})));
  EXPECT_TRUE(oracle::equal(attn::select(t, 0, 2), Array({6}, {12, 13, 14, 15, 16, 17})));
  // select of a 1-D tensor is 0-d.
  const Tensor e = attn::select(attn::select(t, 0, 3), 0, 5);
  EXPECT_EQ(e.dim(), 0);
  EXPECT_EQ(e.item(), 23.0f);
}

TEST(Shape, ExpandRepeatsWithoutCopying) {
  const Array a = iota({3, 1});
  const Tensor t = oracle::tensor(a);
  const Tensor e = attn::expand(t, {2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_TRUE(e.same_storage(t));
  EXPECT_TRUE(oracle::equal(e, oracle::expand(a, {2, 3, 4})));
  EXPECT_TRUE(oracle::equal(attn::expand(t, {-1, 5}), oracle::expand(a, {3, 5})));
  // Expanding a 0-d tensor, and a non-contiguous one.
  EXPECT_TRUE(oracle::equal(attn::expand(attn::full({}, 7.0), {2, 2}), Array({2, 2}, {7, 7, 7, 7})));
  const Array b = iota({1, 4});
  const Tensor bt = attn::transpose(oracle::tensor(b), 0, 1);  // [4,1]
  EXPECT_TRUE(oracle::equal(attn::expand(bt, {4, 3}), oracle::expand(oracle::transpose(b, 0, 1), {4, 3})));
  // contiguous() of an expanded view materialises the repeats.
  const Tensor c = attn::contiguous(e);
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(c.same_storage(t));
  EXPECT_TRUE(oracle::equal(c, oracle::expand(a, {2, 3, 4})));
}

TEST(Shape, SqueezeAndUnsqueeze) {
  const Array a = iota({2, 1, 3});
  const Tensor t = oracle::tensor(a);
  EXPECT_EQ(attn::squeeze(t, 1).shape(), (Shape{2, 3}));
  EXPECT_EQ(attn::squeeze(t, -2).shape(), (Shape{2, 3}));
  EXPECT_EQ(attn::squeeze(t, 0).shape(), (Shape{2, 1, 3})) << "squeezing a dim that is not 1 is a no-op";
  EXPECT_TRUE(attn::squeeze(t, 1).same_storage(t));
  EXPECT_EQ(attn::unsqueeze(t, 0).shape(), (Shape{1, 2, 1, 3}));
  EXPECT_EQ(attn::unsqueeze(t, 3).shape(), (Shape{2, 1, 3, 1}));
  EXPECT_EQ(attn::unsqueeze(t, -1).shape(), (Shape{2, 1, 3, 1}));
  EXPECT_EQ(attn::unsqueeze(t, -4).shape(), (Shape{1, 2, 1, 3}));
  EXPECT_EQ(attn::unsqueeze(attn::full({}, 1.0), 0).shape(), (Shape{1}));
  // Unsqueezing a non-contiguous view keeps it a valid view of the same data.
  const Array b = iota({3, 4});
  const Tensor bt = attn::transpose(oracle::tensor(b), 0, 1);  // [4,3]
  Array want = oracle::transpose(b, 0, 1);
  want.shape = {4, 1, 3};
  const Tensor u = attn::unsqueeze(bt, 1);
  EXPECT_TRUE(u.same_storage(bt));
  EXPECT_TRUE(oracle::equal(u, want));
  EXPECT_TRUE(oracle::equal(attn::contiguous(u), want));
  want.shape = {4, 3, 1};
  EXPECT_TRUE(oracle::equal(attn::contiguous(attn::unsqueeze(bt, 2)), want));
}

TEST(Shape, ContiguousCopiesOnlyNonContiguousTensors) {
  const Array a = iota({3, 4});
  const Tensor t = oracle::tensor(a);
  // Already contiguous: the very same storage and data pointer, no copy.
  EXPECT_TRUE(attn::contiguous(t).same_storage(t));
  EXPECT_EQ(attn::contiguous(t).data<float>(), t.data<float>());
  EXPECT_TRUE(t.contiguous().same_storage(t));
  // A contiguous slice (rows 1..2) with an offset is also left alone.
  const Tensor rows = attn::slice(t, 0, 1, 3);
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_EQ(attn::contiguous(rows).data<float>(), rows.data<float>());
  // Size-1 dims may carry any stride and still be contiguous.
  EXPECT_TRUE(attn::make_view(t, {3, 1, 4}, {4, 999, 1}, 0).is_contiguous());
  // Non-contiguous: a fresh row-major copy with the same values.
  const Tensor tr = attn::transpose(t, 0, 1);
  const Tensor c = attn::contiguous(tr);
  EXPECT_FALSE(c.same_storage(t));
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.strides(), (Shape{3, 1}));
  EXPECT_TRUE(oracle::equal(c, oracle::transpose(a, 0, 1)));
  // clone() always copies.
  const Tensor k = t.clone();
  EXPECT_FALSE(k.same_storage(t));
  EXPECT_TRUE(oracle::equal(k, a));
}

TEST(Shape, Cat) {
  Generator g(31);
  const Array a = oracle::uniform({2, 3}, g), b = oracle::uniform({4, 3}, g), c = oracle::uniform({2, 5}, g);
  auto concat = [](const Array& x, const Array& y, int64_t dim) {
    Dims shape = x.shape;
    shape[dim] += y.shape[dim];
    Array out(shape);
    for (int64_t f = 0; f < out.size(); ++f) {
      Dims idx = oracle::unravel(f, shape);
      if (idx[dim] < x.shape[dim]) {
        out.v[f] = x.at(idx);
      } else {
        idx[dim] -= x.shape[dim];
        out.v[f] = y.at(idx);
      }
    }
    return out;
  };
  const Tensor ta = oracle::tensor(a), tb = oracle::tensor(b), tc = oracle::tensor(c);
  EXPECT_TRUE(oracle::equal(attn::cat({ta, tb}, 0), concat(a, b, 0)));
  EXPECT_TRUE(oracle::equal(attn::cat({ta, tc}, 1), concat(a, c, 1)));
  EXPECT_TRUE(oracle::equal(attn::cat({ta, tc}, -1), concat(a, c, 1)));
  EXPECT_TRUE(oracle::equal(attn::cat({ta, tb, ta}, 0), concat(concat(a, b, 0), a, 0)));
  EXPECT_TRUE(oracle::equal(attn::cat({ta}, 0), a));
  EXPECT_FALSE(attn::cat({ta}, 0).same_storage(ta)) << "cat always makes a new tensor";
  // Non-contiguous pieces and an empty piece.
  const Tensor tbt = attn::transpose(oracle::tensor(oracle::transpose(b, 0, 1)), 0, 1);  // [4,3] view
  ASSERT_FALSE(tbt.is_contiguous());
  EXPECT_TRUE(oracle::equal(attn::cat({ta, attn::zeros({0, 3}), tbt}, 0), concat(a, b, 0)));
  // Int64 and bool keep their dtype.
  const Tensor ci = attn::cat({attn::from_ints({1, 2}, {2}), attn::from_ints({int64_t{1} << 40}, {1})}, 0);
  EXPECT_TRUE(oracle::has_dtype(ci, DType::Int64));
  EXPECT_EQ(ci.to_int_vector(), (std::vector<int64_t>{1, 2, int64_t{1} << 40}));
  const Tensor cb = attn::cat({attn::from_bools({true}, {1}), attn::from_bools({false, true}, {2})}, 0);
  EXPECT_TRUE(oracle::has_dtype(cb, DType::Bool));
  EXPECT_TRUE(oracle::equal(cb, Array({3}, {1, 0, 1})));
}

TEST(Shape, Stack) {
  const Array a = iota({2, 3});
  Array b = iota({2, 3});
  for (double& x : b.v) x += 100;
  const Tensor ta = oracle::tensor(a), tb = oracle::tensor(b);
  for (int64_t dim : {0, 1, 2, -1, -3}) {
    SCOPED_TRACE("stack dim " + std::to_string(dim));
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Dims shape = {2, 3};
    shape.insert(shape.begin() + d, 2);
    Array want(shape);
    for (int64_t f = 0; f < want.size(); ++f) {
      Dims idx = oracle::unravel(f, shape);
      const int64_t which = idx[d];
      idx.erase(idx.begin() + d);
      want.v[f] = (which == 0 ? a : b).at(idx);
    }
    EXPECT_TRUE(oracle::equal(attn::stack({ta, tb}, dim), want));
  }
  // Stacking transposed views.
  const Tensor s = attn::stack({attn::transpose(ta, 0, 1), attn::transpose(tb, 0, 1)}, 0);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 2}));
  EXPECT_TRUE(oracle::equal(attn::select(s, 0, 1), oracle::transpose(b, 0, 1)));
}

TEST(Shape, RepeatInterleaveRepeatsEachSliceInPlace) {
  // [a, b] -> [a, a, b, b]; a tiling "repeat" would give [a, b, a, b].
  const Tensor x = attn::from_vector({1, 2}, {2});
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(x, 2, 0), Array({4}, {1, 1, 2, 2})));
  EXPECT_FALSE(oracle::equal(attn::repeat_interleave(x, 2, 0), Array({4}, {1, 2, 1, 2})));
  // 2-D, along each dim, and along a non-contiguous view (the GQA use: K/V heads).
  const Array a = iota({2, 3});
  const Tensor t = oracle::tensor(a);
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(t, 2, 0), oracle::take(a, 0, {0, 0, 1, 1})));
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(t, 3, 1), oracle::take(a, 1, {0, 0, 0, 1, 1, 1, 2, 2, 2})));
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(t, 2, -1), oracle::take(a, 1, {0, 0, 1, 1, 2, 2})));
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(attn::transpose(t, 0, 1), 2, 1),
                            oracle::take(oracle::transpose(a, 0, 1), 1, {0, 0, 1, 1})));
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(t, 1, 0), a));
  // [B, Hkv, T, d] -> [B, 2*Hkv, T, d]: head h of the output is head h/2.
  const Array kv = iota({1, 2, 3, 2});
  EXPECT_TRUE(oracle::equal(attn::repeat_interleave(oracle::tensor(kv), 2, 1), oracle::take(kv, 1, {0, 0, 1, 1})));
}

TEST(Shape, ToDtypeConverts) {
  const Tensor f = attn::from_vector({-1.7f, -0.5f, 0.0f, 0.5f, 2.9f, 3.0f}, {2, 3});
  const Tensor i = f.to(DType::Int64);
  EXPECT_TRUE(oracle::has_dtype(i, DType::Int64));
  EXPECT_EQ(i.shape(), (Shape{2, 3}));
  EXPECT_EQ(i.to_int_vector(), (std::vector<int64_t>{-1, 0, 0, 0, 2, 3})) << "float -> int truncates toward 0";
  const Tensor b = f.to(DType::Bool);
  EXPECT_TRUE(oracle::has_dtype(b, DType::Bool));
  EXPECT_TRUE(oracle::equal(b, Array({2, 3}, {1, 1, 0, 1, 1, 1})));
  EXPECT_TRUE(oracle::equal(b.to(DType::Float32), Array({2, 3}, {1, 1, 0, 1, 1, 1})));
  EXPECT_TRUE(oracle::equal(attn::from_ints({-3, 0, 7}, {3}).to(DType::Float32), Array({3}, {-3, 0, 7})));
  EXPECT_TRUE(oracle::equal(attn::from_ints({-3, 0, 7}, {3}).to(DType::Bool), Array({3}, {1, 0, 1})));
  // Same dtype: no copy. A non-contiguous input converts in logical order.
  EXPECT_TRUE(f.to(DType::Float32).same_storage(f));
  EXPECT_EQ(attn::transpose(f, 0, 1).to(DType::Int64).to_int_vector(),
            (std::vector<int64_t>{-1, 0, 0, 2, 0, 3}));
}

TEST(Shape, ArangeAndCreation) {
  EXPECT_TRUE(oracle::equal(attn::arange(0, 5), Array({5}, {0, 1, 2, 3, 4})));
  EXPECT_TRUE(oracle::has_dtype(attn::arange(int64_t{5}), DType::Int64));
  EXPECT_TRUE(oracle::equal(attn::arange(1, 2, 0.25), Array({4}, {1, 1.25, 1.5, 1.75})));
  EXPECT_TRUE(oracle::equal(attn::arange(5, 0, -2), Array({3}, {5, 3, 1})));
  EXPECT_EQ(attn::arange(3, 3).numel(), 0);
  EXPECT_TRUE(oracle::equal(attn::full({2, 2}, -1.5), Array({2, 2}, {-1.5, -1.5, -1.5, -1.5})));
  EXPECT_TRUE(oracle::equal(attn::ones({3}, DType::Int64), Array({3}, {1, 1, 1})));
  EXPECT_TRUE(oracle::equal(attn::zeros({}), Array({}, {0})));
  EXPECT_EQ(attn::zeros({}).numel(), 1);
}

}  // namespace
