// Reductions against double loops: sum/mean over one or several dims
// (keepdim, negative dims, non-contiguous inputs), max/min/argmax (first
// index on ties, NaN propagation), var with correction 0 and 1, and the
// accuracy of long sums.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "oracle.h"

namespace {

using attn::DType;
using attn::Generator;
using attn::Tensor;
using oracle::Array;
using oracle::Dims;

struct Input {
  std::string what;
  Tensor t;
  Array a;
};

// 3-D inputs of shape [3,4,5] laid out in different ways.
std::vector<Input> inputs3(Generator& g) {
  std::vector<Input> out;
  {
    Array a = oracle::uniform({3, 4, 5}, g, -2, 2);
    out.push_back({"contiguous", oracle::tensor(a), a});
  }
  {
    Array base = oracle::uniform({5, 3, 4}, g, -2, 2);
    out.push_back({"permute(1,2,0) of [5,3,4]", attn::permute(oracle::tensor(base), {1, 2, 0}),
                   oracle::permute(base, {1, 2, 0})});
  }
  {
    Array base = oracle::uniform({3, 9, 5}, g, -2, 2);
    out.push_back({"slice dim 1 [1:9:2] of [3,9,5]", attn::slice(oracle::tensor(base), 1, 1, 9, 2),
                   oracle::take(base, 1, {1, 3, 5, 7})});
  }
  {
    Array base = oracle::uniform({3, 1, 5}, g, -2, 2);
    out.push_back({"expand [3,1,5] -> [3,4,5]", attn::expand(oracle::tensor(base), {3, 4, 5}),
                   oracle::expand(base, {3, 4, 5})});
  }
  {
    Array base = oracle::uniform({4, 3, 5}, g, -2, 2);
    out.push_back({"transpose(0,1) of [4,3,5]", attn::transpose(oracle::tensor(base), 0, 1),
                   oracle::transpose(base, 0, 1)});
  }
  return out;
}

Dims normalized(const Dims& dims, int64_t ndim) {
  Dims out;
  for (int64_t d : dims) out.push_back(d < 0 ? d + ndim : d);
  return out;
}

const std::vector<Dims>& dim_lists() {
  static const std::vector<Dims> lists = {{0},    {1},     {2},     {-1},       {-3},
                                          {0, 2}, {2, 0},  {-1, 1}, {0, 1, 2},  {1, -3}};
  return lists;
}

double add(double a, double b) { return a + b; }

TEST(Reduce, SumOverDims) {
  Generator g(21);
  for (const Input& in : inputs3(g)) {
    for (const Dims& dims : dim_lists()) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE("sum over " + oracle::dims_str(dims) + (keepdim ? " keepdim" : "") + " of " + in.what);
        const Array want = oracle::reduce(in.a, normalized(dims, 3), keepdim, 0.0, add);
        EXPECT_TRUE(oracle::close(attn::sum(in.t, dims, keepdim), want, 1e-6, 1e-6));
      }
    }
  }
}

TEST(Reduce, MeanOverDims) {
  Generator g(22);
  for (const Input& in : inputs3(g)) {
    for (const Dims& dims : dim_lists()) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE("mean over " + oracle::dims_str(dims) + (keepdim ? " keepdim" : "") + " of " + in.what);
        Array want = oracle::reduce(in.a, normalized(dims, 3), keepdim, 0.0, add);
        const double n = static_cast<double>(in.a.size()) / static_cast<double>(want.size());
        for (double& x : want.v) x /= n;
        EXPECT_TRUE(oracle::close(attn::mean(in.t, dims, keepdim), want, 1e-5, 1e-6));
      }
    }
  }
}

TEST(Reduce, SumAndMeanOfEverythingAreScalars) {
  Generator g(23);
  for (const Input& in : inputs3(g)) {
    SCOPED_TRACE(in.what);
    double total = 0;
    for (double x : in.a.v) total += x;
    const Tensor s = attn::sum(in.t), m = attn::mean(in.t);
    EXPECT_EQ(s.dim(), 0);
    EXPECT_EQ(m.dim(), 0);
    EXPECT_NEAR(s.item(), total, 1e-5 + 1e-6 * std::fabs(total));
    EXPECT_NEAR(m.item(), total / 60.0, 1e-6);
  }
  // The matrix case that takes the "kept dims are innermost" fast path:
  // sum over rows of a row-major [N, C], and over columns of its transpose.
  const Array a = oracle::uniform({7, 6}, g, -1, 1);
  EXPECT_TRUE(oracle::close(attn::sum(oracle::tensor(a), {0}), oracle::reduce(a, {0}, false, 0, add), 1e-6, 1e-6));
  EXPECT_TRUE(oracle::close(attn::sum(attn::transpose(oracle::tensor(a), 0, 1), {1}),
                            oracle::reduce(a, {0}, false, 0, add), 1e-6, 1e-6));
  // A 0-d input sums to itself.
  EXPECT_FLOAT_EQ(attn::sum(attn::full({}, 2.5)).item(), 2.5f);
  // Summing over an empty dim gives zeros; the shape keeps the other dims.
  EXPECT_TRUE(oracle::equal(attn::sum(attn::zeros({0, 3}), {0}), Array({3}, {0, 0, 0})));
  EXPECT_TRUE(oracle::equal(attn::sum(attn::ones({2, 0}), {1}, true), Array({2, 1}, {0, 0})));
}

TEST(Reduce, LongSumsAreAccurate) {
  // 2^21 values: a float accumulator drifts by ~1e-4 relative here; the
  // kernel accumulates in double, so only the final rounding remains.
  Generator g(24);
  const int64_t n = int64_t{1} << 21;
  std::vector<float> v(n);
  double total = 0;
  for (float& x : v) {
    x = g.uniform();
    total += x;
  }
  const Tensor t = attn::from_vector(v, {n});
  EXPECT_NEAR(attn::sum(t).item(), total, 1e-6 * total) << "sum of all";
  EXPECT_NEAR(attn::mean(t).item(), total / n, 1e-6 * total / n) << "mean of all";
  // The same data as [n/2, 2] summed over dim 0 (the fast path).
  const Tensor cols = attn::sum(attn::view(t, {n / 2, 2}), {0});
  double even = 0, odd = 0;
  for (int64_t i = 0; i < n; ++i) (i % 2 ? odd : even) += v[i];
  EXPECT_TRUE(oracle::close(cols, Array({2}, {even, odd}), 1e-6, 0));
  // Catastrophic cancellation: 1e8 + 1 - 1e8 + 1 is 2, not 0 or 1.
  EXPECT_EQ(attn::sum(attn::from_vector({1e8f, 1, -1e8f, 1}, {4})).item(), 2.0f);
  EXPECT_EQ(attn::sum(attn::from_vector({1e8f, 1, -1e8f, 1}, {4, 1}), {0}).item(), 2.0f);
}

double max2(double a, double b) { return std::max(a, b); }
double min2(double a, double b) { return std::min(a, b); }

TEST(Reduce, MaxMinOverADim) {
  Generator g(25);
  for (const Input& in : inputs3(g)) {
    for (int64_t dim : {0, 1, 2, -1, -2}) {
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE("dim " + std::to_string(dim) + (keepdim ? " keepdim" : "") + " of " + in.what);
        const Dims d = normalized({dim}, 3);
        EXPECT_TRUE(oracle::equal(attn::max(in.t, dim, keepdim),
                                  oracle::reduce(in.a, d, keepdim, -INFINITY, max2)));
        EXPECT_TRUE(oracle::equal(attn::min(in.t, dim, keepdim),
                                  oracle::reduce(in.a, d, keepdim, INFINITY, min2)));
      }
    }
    double all = -INFINITY;
    for (double x : in.a.v) all = std::max(all, x);
    EXPECT_EQ(attn::max(in.t).item(), all) << in.what;
    EXPECT_EQ(attn::max(in.t).dim(), 0);
  }
  // Rows of -inf have -inf as their max (not some sentinel).
  const Tensor ninf = attn::full({2, 3}, -INFINITY);
  EXPECT_TRUE(oracle::equal(attn::max(ninf, 1), Array({2}, {-INFINITY, -INFINITY})));
  EXPECT_TRUE(oracle::equal(attn::min(attn::full({2, 3}, INFINITY), 0), Array({3}, {INFINITY, INFINITY, INFINITY})));
}

// Index of the first maximum along `dim` of a 3-D array, by brute force.
Array argmax_ref(const Array& a, int64_t dim, bool keepdim) {
  Dims kshape = a.shape;
  kshape[dim] = 1;
  Array out(kshape);
  for (int64_t f = 0; f < out.size(); ++f) {
    Dims idx = oracle::unravel(f, kshape);
    int64_t best = 0;
    double best_v = -INFINITY;
    for (int64_t i = 0; i < a.shape[dim]; ++i) {
      idx[dim] = i;
      if (i == 0 || a.at(idx) > best_v) best_v = a.at(idx), best = i;
    }
    out.v[f] = static_cast<double>(best);
  }
  if (!keepdim) out.shape.erase(out.shape.begin() + dim);
  return out;
}

TEST(Reduce, ArgmaxPicksTheFirstIndexOnTies) {
  const Tensor t = attn::from_vector({1, 3, 3, 2, 2, 1}, {2, 3});
  const Tensor a1 = attn::argmax(t, 1), a0 = attn::argmax(t, 0);
  EXPECT_TRUE(oracle::has_dtype(a1, DType::Int64));
  EXPECT_TRUE(oracle::equal(a1, Array({2}, {1, 0})));
  EXPECT_TRUE(oracle::equal(a0, Array({3}, {1, 0, 0})));
  EXPECT_TRUE(oracle::equal(attn::argmax(t, -1, true), Array({2, 1}, {1, 0})));
  // All equal: index 0.
  EXPECT_TRUE(oracle::equal(attn::argmax(attn::zeros({4, 5}), 1), Array({4}, {0, 0, 0, 0})));
  // Random small integers (many ties), on contiguous and permuted inputs.
  Generator g(26);
  const Array a = oracle::integers({4, 5, 6}, g, 0, 3);
  const Array p = oracle::permute(a, {2, 0, 1});
  const Tensor tp = attn::permute(oracle::tensor(a), {2, 0, 1});
  for (int64_t dim : {0, 1, 2}) {
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE("argmax dim " + std::to_string(dim) + (keepdim ? " keepdim" : ""));
      EXPECT_TRUE(oracle::equal(attn::argmax(oracle::tensor(a), dim, keepdim), argmax_ref(a, dim, keepdim)));
      EXPECT_TRUE(oracle::equal(attn::argmax(tp, dim, keepdim), argmax_ref(p, dim, keepdim)));
    }
  }
}

TEST(Reduce, NanPropagatesThroughMaxAndMin) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // NaN first, in the middle and last: a NaN must never hide behind a number.
  const Tensor t = attn::from_vector({nan, 1, 2, 3, nan, 4, 5, 6, nan, 7, 8, 9}, {4, 3});
  const Array want_max({4}, {NAN, NAN, NAN, 9});
  EXPECT_TRUE(oracle::equal(attn::max(t, 1), want_max));
  EXPECT_TRUE(oracle::equal(attn::min(t, 1), Array({4}, {NAN, NAN, NAN, 7})));
  EXPECT_TRUE(std::isnan(attn::max(t).item()));
  // argmax points at the NaN (as in PyTorch).
  EXPECT_TRUE(oracle::equal(attn::argmax(t, 1), Array({4}, {0, 1, 2, 2})));
  // Over dim 0 of the transpose (strided reads), column by column.
  EXPECT_TRUE(oracle::equal(attn::max(attn::transpose(t, 0, 1), 0), want_max));
  // Sums propagate NaN too.
  EXPECT_TRUE(std::isnan(attn::sum(t).item()));
}

Array var_ref(const Array& a, const Dims& dims, int64_t correction, bool keepdim) {
  const Array s = oracle::reduce(a, dims, true, 0.0, add);
  const double n = static_cast<double>(a.size()) / static_cast<double>(s.size());
  Array mean = s;
  for (double& x : mean.v) x /= n;
  Array ss(s.shape);
  for (int64_t i = 0; i < a.size(); ++i) {
    const double d = a.v[i] - oracle::at_broadcast(mean, oracle::unravel(i, a.shape));
    Dims idx = oracle::unravel(i, a.shape);
    for (int64_t dd : dims) idx[dd] = 0;
    ss.at(idx) += d * d;
  }
  for (double& x : ss.v) x /= (n - static_cast<double>(correction));
  if (!keepdim) {
    Dims shape;
    for (size_t i = 0; i < a.shape.size(); ++i)
      if (std::find(dims.begin(), dims.end(), static_cast<int64_t>(i)) == dims.end())
        shape.push_back(a.shape[i]);
    ss.shape = shape;
  }
  return ss;
}

TEST(Reduce, VarianceWithCorrection) {
  Generator g(27);
  for (const Input& in : inputs3(g)) {
    for (const Dims& dims : std::vector<Dims>{{0}, {-1}, {1, 2}, {0, 1, 2}}) {
      for (int64_t corr : {0, 1}) {
        for (bool keepdim : {false, true}) {
          SCOPED_TRACE("var over " + oracle::dims_str(dims) + " correction " + std::to_string(corr) +
                       (keepdim ? " keepdim" : "") + " of " + in.what);
          EXPECT_TRUE(oracle::close(attn::var(in.t, dims, corr, keepdim),
                                    var_ref(in.a, normalized(dims, 3), corr, keepdim), 1e-5, 1e-6));
        }
      }
    }
  }
  // Known values: var([1,2,3,4]) = 1.25 (population) and 5/3 (sample).
  const Tensor t = attn::from_vector({1, 2, 3, 4}, {4});
  EXPECT_FLOAT_EQ(attn::var(t, {0}, 0).item(), 1.25f);
  EXPECT_FLOAT_EQ(attn::var(t, {0}).item(), 5.0f / 3.0f);  // correction 1 is the default
  // A large offset must not swamp a small spread (two-pass, not E[x^2]-E[x]^2).
  const Tensor shifted = attn::from_vector({1000.5f, 1001.5f, 1002.5f, 1003.5f}, {4});
  EXPECT_NEAR(attn::var(shifted, {0}, 0).item(), 1.25, 1e-4);
}

}  // namespace
