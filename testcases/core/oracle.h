// A tiny, independent reference for the core forward tests.
//
// An Array is a dense row-major block of doubles with a shape. Everything
// here is written with plain loops and its own index math (broadcasting,
// permutes, slices, reductions, products), so the expected values never come
// from attnlab's ops. The only attnlab calls are creation (from_vector,
// from_ints, from_bools) and reading data back (to_vector / to_int_vector).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/random.h"
#include "core/tensor.h"

namespace oracle {

using Dims = std::vector<int64_t>;

inline int64_t count(const Dims& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

inline std::string dims_str(const Dims& d) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < d.size(); ++i) os << (i ? "," : "") << d[i];
  os << ']';
  return os.str();
}

// Row-major multi-index of flat position `flat`.
inline Dims unravel(int64_t flat, const Dims& shape) {
  Dims idx(shape.size(), 0);
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] == 0) return idx;
    idx[i] = flat % shape[i];
    flat /= shape[i];
  }
  return idx;
}

inline int64_t ravel(const Dims& idx, const Dims& shape) {
  int64_t flat = 0;
  for (size_t i = 0; i < shape.size(); ++i) flat = flat * shape[i] + idx[i];
  return flat;
}

struct Array {
  Dims shape;
  std::vector<double> v;

  Array() = default;
  explicit Array(Dims s, double fill = 0.0) : shape(std::move(s)), v(count(shape), fill) {}
  Array(Dims s, std::vector<double> values) : shape(std::move(s)), v(std::move(values)) {
    EXPECT_EQ(static_cast<int64_t>(v.size()), count(shape)) << "oracle: bad Array literal";
  }
  int64_t size() const { return static_cast<int64_t>(v.size()); }
  double& at(const Dims& idx) { return v[ravel(idx, shape)]; }
  double at(const Dims& idx) const { return v[ravel(idx, shape)]; }
};

// ---- moving data between attnlab and the oracle ----

inline Array read(const attn::Tensor& t) {
  Array a;
  a.shape = t.shape();
  if (t.dtype() == attn::DType::Int64) {
    for (int64_t x : t.to_int_vector()) a.v.push_back(static_cast<double>(x));
  } else {
    for (float x : t.to_vector()) a.v.push_back(x);
  }
  return a;
}

inline attn::Tensor tensor(const Array& a) {
  std::vector<float> f(a.v.begin(), a.v.end());
  return attn::from_vector(f, a.shape);
}

// The values rounded to float32, as a tensor made from them holds them.
inline Array f32(Array a) {
  for (double& x : a.v) x = static_cast<float>(x);
  return a;
}

// Uniform values in [lo, hi) rounded to float, so the oracle sees exactly
// the numbers the tensor holds.
inline Array uniform(const Dims& shape, attn::Generator& g, double lo = -1, double hi = 1) {
  Array a(shape);
  for (double& x : a.v)
    x = static_cast<float>(lo + (hi - lo) * static_cast<double>(g.uniform()));
  return a;
}

// Small integers in [lo, hi] (as floats): many ties, for comparisons.
inline Array integers(const Dims& shape, attn::Generator& g, int lo, int hi) {
  Array a(shape);
  for (double& x : a.v) x = lo + static_cast<int>(g.below(static_cast<uint64_t>(hi - lo + 1)));
  return a;
}

// ---- index math ----

// NumPy broadcasting, right-aligned; fails the test on a mismatch.
inline Dims broadcast(const Dims& a, const Dims& b) {
  const size_t n = std::max(a.size(), b.size());
  Dims out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i + a.size() < n ? 1 : a[i + a.size() - n];
    const int64_t db = i + b.size() < n ? 1 : b[i + b.size() - n];
    EXPECT_TRUE(da == db || da == 1 || db == 1) << "oracle: shapes do not broadcast";
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// The element of `a` that index `out_idx` of a larger broadcast shape reads.
inline double at_broadcast(const Array& a, const Dims& out_idx) {
  const size_t lead = out_idx.size() - a.shape.size();
  Dims idx(a.shape.size());
  for (size_t i = 0; i < a.shape.size(); ++i)
    idx[i] = a.shape[i] == 1 ? 0 : out_idx[i + lead];
  return a.at(idx);
}

inline Array expand(const Array& a, const Dims& shape) {
  Array out(shape);
  for (int64_t f = 0; f < out.size(); ++f) out.v[f] = at_broadcast(a, unravel(f, shape));
  return out;
}

inline Array map(const Array& a, const std::function<double(double)>& f) {
  Array out(a.shape);
  for (int64_t i = 0; i < a.size(); ++i) out.v[i] = f(a.v[i]);
  return out;
}

inline Array zip(const Array& a, const Array& b, const std::function<double(double, double)>& f) {
  Array out(broadcast(a.shape, b.shape));
  for (int64_t i = 0; i < out.size(); ++i) {
    const Dims idx = unravel(i, out.shape);
    out.v[i] = f(at_broadcast(a, idx), at_broadcast(b, idx));
  }
  return out;
}

// out[i0..] = a[idx] with idx[dims[k]] = i_k.
inline Array permute(const Array& a, const Dims& dims) {
  Dims shape(dims.size());
  for (size_t k = 0; k < dims.size(); ++k) shape[k] = a.shape[dims[k]];
  Array out(shape);
  for (int64_t f = 0; f < out.size(); ++f) {
    const Dims o = unravel(f, shape);
    Dims src(a.shape.size());
    for (size_t k = 0; k < dims.size(); ++k) src[dims[k]] = o[k];
    out.v[f] = a.at(src);
  }
  return out;
}

inline Array transpose(const Array& a, int64_t d0, int64_t d1) {
  Dims dims(a.shape.size());
  for (size_t i = 0; i < dims.size(); ++i) dims[i] = static_cast<int64_t>(i);
  std::swap(dims[d0], dims[d1]);
  return permute(a, dims);
}

// Explicit positions along `dim` (start, start+step, ... listed by the caller).
inline Array take(const Array& a, int64_t dim, const Dims& positions) {
  Dims shape = a.shape;
  shape[dim] = static_cast<int64_t>(positions.size());
  Array out(shape);
  for (int64_t f = 0; f < out.size(); ++f) {
    Dims idx = unravel(f, shape);
    idx[dim] = positions[idx[dim]];
    out.v[f] = a.at(idx);
  }
  return out;
}

// Reduces `dims` (non-negative) with f(acc, x) starting from init.
inline Array reduce(const Array& a, const Dims& dims, bool keepdim, double init,
                    const std::function<double(double, double)>& f) {
  std::vector<bool> red(a.shape.size(), false);
  for (int64_t d : dims) red[d] = true;
  Dims kshape = a.shape, oshape;
  for (size_t i = 0; i < a.shape.size(); ++i) {
    if (red[i]) kshape[i] = 1;
    else oshape.push_back(a.shape[i]);
  }
  Array out(kshape, init);
  for (int64_t i = 0; i < a.size(); ++i) {
    Dims idx = unravel(i, a.shape);
    for (size_t k = 0; k < idx.size(); ++k)
      if (red[k]) idx[k] = 0;
    double& acc = out.at(idx);
    acc = f(acc, a.v[i]);
  }
  if (!keepdim) out.shape = oshape;
  return out;
}

// [..., M, K] @ [..., K, N] with batch broadcasting; 1-D operands as in NumPy.
inline Array matmul(Array a, Array b) {
  const bool a_vec = a.shape.size() == 1, b_vec = b.shape.size() == 1;
  if (a_vec) a.shape.insert(a.shape.begin(), 1);
  if (b_vec) b.shape.push_back(1);
  const int64_t m = a.shape[a.shape.size() - 2], k = a.shape.back(), n = b.shape.back();
  EXPECT_EQ(k, b.shape[b.shape.size() - 2]) << "oracle: inner sizes differ";
  const Dims ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  const Dims batch = broadcast(ab, bb);
  Dims oshape = batch;
  oshape.push_back(m);
  oshape.push_back(n);
  Array out(oshape);
  for (int64_t f = 0; f < out.size(); ++f) {
    const Dims o = unravel(f, oshape);
    Dims ia(a.shape.size()), ib(b.shape.size());
    const size_t nb = batch.size();
    for (size_t i = 0; i < ab.size(); ++i) ia[i] = ab[i] == 1 ? 0 : o[i + nb - ab.size()];
    for (size_t i = 0; i < bb.size(); ++i) ib[i] = bb[i] == 1 ? 0 : o[i + nb - bb.size()];
    double acc = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      ia[ia.size() - 2] = o[nb];
      ia[ia.size() - 1] = kk;
      ib[ib.size() - 2] = kk;
      ib[ib.size() - 1] = o[nb + 1];
      acc += a.at(ia) * b.at(ib);
    }
    out.v[f] = acc;
  }
  if (a_vec) out.shape.erase(out.shape.end() - 2);
  if (b_vec) out.shape.pop_back();
  return out;
}

// ---- comparison ----

// Every element within atol + rtol * |expected|; NaN matches NaN and an
// infinity matches the same infinity. Names the first mismatches.
inline ::testing::AssertionResult close(const attn::Tensor& got_t, const Array& want,
                                        double rtol = 1e-5, double atol = 1e-6) {
  if (got_t.shape() != want.shape)
    return ::testing::AssertionFailure() << "shape: expected " << dims_str(want.shape) << ", got "
                                         << dims_str(got_t.shape());
  const Array got = read(got_t);
  std::ostringstream bad;
  int64_t nbad = 0;
  double worst = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    const double e = want.v[i], g = got.v[i];
    bool ok;
    if (std::isnan(e) || std::isnan(g)) ok = std::isnan(e) && std::isnan(g);
    else if (std::isinf(e) || std::isinf(g)) ok = e == g;
    else ok = std::fabs(g - e) <= atol + rtol * std::fabs(e);
    if (!ok) {
      if (nbad < 5)
        bad << "\n  at " << dims_str(unravel(i, want.shape)) << ": expected "
            << std::setprecision(9) << e << ", got " << g;
      if (std::isfinite(e) && std::isfinite(g)) worst = std::max(worst, std::fabs(g - e));
      ++nbad;
    }
  }
  if (nbad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << nbad << " of " << want.size()
                                       << " elements differ (rtol " << rtol << ", atol " << atol
                                       << ", worst abs error " << worst << "):" << bad.str();
}

// Exact comparison (indices, bools, pure data movement).
inline ::testing::AssertionResult equal(const attn::Tensor& got, const Array& want) {
  return close(got, want, 0.0, 0.0);
}

inline ::testing::AssertionResult has_dtype(const attn::Tensor& t, attn::DType d) {
  if (t.dtype() == d) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "dtype: expected " << attn::dtype_name(d) << ", got "
                                       << attn::dtype_name(t.dtype());
}

}  // namespace oracle
