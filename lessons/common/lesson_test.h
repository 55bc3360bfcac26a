// What every chapter's suites share: comparing a tensor with expected values
// so that a failure names the first wrong element, random inputs from a seed,
// and "this call must be rejected" checks that tell an unwritten stub apart
// from a wrong answer. Header-only; each suite includes it as
// "lesson_test.h".
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"

namespace lesson_test {

// "[1,0,2]": where flat element `flat` sits in a row-major tensor of `shape`.
inline std::string index_str(int64_t flat, const attn::Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int i = static_cast<int>(shape.size()) - 1; i >= 0; --i) {
    idx[i] = flat % shape[i];
    flat /= shape[i];
  }
  std::ostringstream os;
  os << "[";
  for (std::size_t i = 0; i < idx.size(); ++i) os << (i ? "," : "") << idx[i];
  os << "]";
  return os.str();
}

// A tensor's elements as doubles, row-major (whatever its strides).
inline std::vector<double> values(const attn::Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return {v.begin(), v.end()};
}

// Standard-normal values times `scale`, the same for the same seed.
inline attn::Tensor random_tensor(const attn::Shape& shape, uint64_t seed, float scale = 1.0f) {
  attn::Generator g(seed);
  return attn::mul(attn::randn(shape, g), scale);
}

// Compares `got` with `want` (row-major values of shape `shape`). Each element
// must be within tol * (1 + |want|), and finite unless an infinity is
// expected (then it must be that same infinity). A failure says how many
// elements are off and names the first: its index, expected and actual value.
inline ::testing::AssertionResult close(const std::string& what, const attn::Tensor& got,
                                        const std::vector<double>& want,
                                        const attn::Shape& shape, double tol = 1e-4) {
  if (!got.defined()) return ::testing::AssertionFailure() << what << ": got an undefined Tensor";
  if (got.shape() != shape)
    return ::testing::AssertionFailure() << what << ": expected shape " << attn::shape_str(shape)
                                         << ", got " << attn::shape_str(got.shape());
  if (want.size() != static_cast<std::size_t>(got.numel()))
    return ::testing::AssertionFailure() << what << ": the test expects " << want.size()
                                         << " values for shape " << attn::shape_str(shape);
  const std::vector<float> g = got.to_vector();
  int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool ok = std::isinf(want[i]) ? g[i] == static_cast<float>(want[i])
                                        : std::isfinite(g[i]) && std::fabs(g[i] - want[i]) <= tol * (1 + std::fabs(want[i]));
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << g.size() << " elements differ; first at "
         << index_str(first, shape) << ": expected " << want[first] << ", got " << g[first];
}

// The same, against another tensor (its shape is the expected shape).
inline ::testing::AssertionResult close(const std::string& what, const attn::Tensor& got,
                                        const attn::Tensor& want, double tol = 1e-4) {
  return close(what, got, values(want), want.shape(), tol);
}

// Succeeds when f throws attn::Error. A stub's NotImplemented does not count:
// an unwritten function is not a function that checks its input. `why` says
// what the check protects against, for the student who forgot it.
inline ::testing::AssertionResult rejects(const std::string& what, const std::function<void()>& f,
                                          const std::string& why) {
  try {
    f();
  } catch (const attn::NotImplemented& e) {
    return ::testing::AssertionFailure() << what << ": not implemented yet (" << e.what() << ")";
  } catch (const attn::Error& e) {
    std::cout << "  [" << what << "] rejected as expected: " << e.what() << "\n";
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << what << " returned normally; it must throw attn::Error ("
                                       << why << ")";
}

}  // namespace lesson_test
