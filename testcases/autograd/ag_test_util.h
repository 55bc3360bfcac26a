// Shared helpers for the autograd tests: seeded inputs with the properties
// finite differences need (away from kinks, no ties), and a gradcheck
// assertion that prints gradcheck's own report on failure.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace agtest {

using attn::Generator;
using attn::Shape;
using attn::Tensor;

// Standard normal * scale + shift, requiring grad.
inline Tensor normal(const Shape& s, uint64_t seed, float scale = 1.0f, float shift = 0.0f) {
  Generator g(seed);
  std::vector<float> v(attn::numel(s));
  for (float& x : v) x = g.normal() * scale + shift;
  return attn::from_vector(v, s).set_requires_grad();
}

// Uniform in [lo, hi), requiring grad.
inline Tensor uniform(const Shape& s, uint64_t seed, float lo, float hi) {
  Generator g(seed);
  std::vector<float> v(attn::numel(s));
  for (float& x : v) x = lo + (hi - lo) * g.uniform();
  return attn::from_vector(v, s).set_requires_grad();
}

// |x| in [lo, hi) with a random sign: keeps finite differences (eps 1e-2)
// away from the kinks of relu/abs and the pole of 1/x.
inline Tensor away_from_zero(const Shape& s, uint64_t seed, float lo = 0.2f, float hi = 1.5f) {
  Generator g(seed);
  std::vector<float> v(attn::numel(s));
  for (float& x : v) {
    x = lo + (hi - lo) * g.uniform();
    if (g.uniform() < 0.5f) x = -x;
  }
  return attn::from_vector(v, s).set_requires_grad();
}

// n distinct values spaced `spacing` apart, centred on 0, in random order.
inline std::vector<float> distinct_values(int64_t n, uint64_t seed, float spacing = 0.1f) {
  Generator g(seed);
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = (static_cast<float>(i) - n / 2.0f) * spacing;
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[g.below(i + 1)]);
  return v;
}

// A tensor with no ties (every pair of values differs by >= spacing, far
// more than 2 eps), so max/min pick a unique winner even when perturbed.
inline Tensor distinct(const Shape& s, uint64_t seed, float spacing = 0.1f) {
  return attn::from_vector(distinct_values(attn::numel(s), seed, spacing), s).set_requires_grad();
}

// Two tensors whose values are all distinct from each other (for
// maximum/minimum with broadcasting: no a_i == b_j for any pair).
inline std::pair<Tensor, Tensor> distinct_pair(const Shape& sa, const Shape& sb, uint64_t seed) {
  const int64_t na = attn::numel(sa), nb = attn::numel(sb);
  const std::vector<float> v = distinct_values(na + nb, seed);
  Tensor a = attn::from_vector(std::vector<float>(v.begin(), v.begin() + na), sa);
  Tensor b = attn::from_vector(std::vector<float>(v.begin() + na, v.end()), sb);
  return {a.set_requires_grad(), b.set_requires_grad()};
}

// gradcheck as a gtest assertion: the failure text is gradcheck's report.
inline ::testing::AssertionResult GradOk(const attn::GradFn& fn, const std::vector<Tensor>& in,
                                         double eps = 1e-2, double atol = 1e-2,
                                         double rtol = 1e-2) {
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].dtype() == attn::DType::Float32 && !in[i].requires_grad())
      return ::testing::AssertionFailure()
             << "test bug: float input " << i << " does not require grad (nothing checked)";
  const attn::GradcheckResult r = attn::gradcheck(fn, in, eps, atol, rtol);
  if (r.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << r.message;
}

#define EXPECT_GRAD_OK(...) EXPECT_TRUE(::agtest::GradOk(__VA_ARGS__))

// Flat values of a tensor as doubles.
inline std::vector<double> values(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

// Elementwise |got - want| <= tol * (1 + |want|).
inline ::testing::AssertionResult AllClose(const Tensor& got, const std::vector<double>& want,
                                           double tol = 1e-5) {
  if (!got.defined()) return ::testing::AssertionFailure() << "tensor is undefined";
  const std::vector<float> v = got.to_vector();
  if (v.size() != want.size())
    return ::testing::AssertionFailure() << "size " << v.size() << " != expected " << want.size();
  for (size_t i = 0; i < v.size(); ++i)
    if (!(std::fabs(v[i] - want[i]) <= tol * (1 + std::fabs(want[i]))))
      return ::testing::AssertionFailure()
             << "element " << i << ": got " << v[i] << ", expected " << want[i];
  return ::testing::AssertionSuccess();
}

}  // namespace agtest
