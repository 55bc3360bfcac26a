// Elementwise ops against double-precision loops: every unary op on
// contiguous, 0-d, empty and non-contiguous inputs (transpose, permute,
// stepped slice, expand); binary ops with broadcasting; comparisons and
// logic giving bool tensors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
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

Dims random_shape(Generator& g, int max_dims = 4, int max_size = 5) {
  Dims s(g.below(max_dims + 1));
  for (int64_t& d : s) d = 1 + static_cast<int64_t>(g.below(max_size));
  return s;
}

// An input tensor (possibly a view) and the oracle's copy of its values.
struct Input {
  std::string what;
  Tensor t;
  Array a;
};

// The same op is run on many layouts: contiguous of random shapes, 0-d,
// empty, and views whose memory is not row-major.
std::vector<Input> layouts(Generator& g, double lo, double hi) {
  std::vector<Input> out;
  for (int i = 0; i < 3; ++i) {
    Array a = oracle::uniform(random_shape(g), g, lo, hi);
    out.push_back({"contiguous " + oracle::dims_str(a.shape), oracle::tensor(a), a});
  }
  {
    Array a = oracle::uniform({}, g, lo, hi);
    out.push_back({"0-d", oracle::tensor(a), a});
  }
  {
    Array a({0, 3});
    out.push_back({"empty [0,3]", oracle::tensor(a), a});
  }
  {
    Array base = oracle::uniform({4, 5}, g, lo, hi);
    out.push_back({"transpose of [4,5]", attn::transpose(oracle::tensor(base), 0, 1),
                   oracle::transpose(base, 0, 1)});
  }
  {
    Array base = oracle::uniform({2, 3, 4}, g, lo, hi);
    out.push_back({"permute(2,0,1) of [2,3,4]", attn::permute(oracle::tensor(base), {2, 0, 1}),
                   oracle::permute(base, {2, 0, 1})});
  }
  {
    Array base = oracle::uniform({6, 7}, g, lo, hi);
    out.push_back({"slice dim 1 [1:7:2] of [6,7]", attn::slice(oracle::tensor(base), 1, 1, 7, 2),
                   oracle::take(base, 1, {1, 3, 5})});
  }
  {
    Array base = oracle::uniform({3, 1}, g, lo, hi);
    out.push_back({"expand [3,1] -> [2,3,4]", attn::expand(oracle::tensor(base), {2, 3, 4}),
                   oracle::expand(base, {2, 3, 4})});
  }
  return out;
}

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  double lo, hi;  // input domain
};

double gelu_ref(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

std::vector<UnaryCase> unary_cases() {
  return {
      {"neg", [](const Tensor& x) { return attn::neg(x); }, [](double x) { return -x; }, -4, 4},
      {"operator-", [](const Tensor& x) { return -x; }, [](double x) { return -x; }, -4, 4},
      {"exp", [](const Tensor& x) { return attn::exp(x); }, [](double x) { return std::exp(x); }, -4, 4},
      {"log", [](const Tensor& x) { return attn::log(x); }, [](double x) { return std::log(x); }, 0.05, 5},
      {"sqrt", [](const Tensor& x) { return attn::sqrt(x); }, [](double x) { return std::sqrt(x); }, 0, 5},
      {"rsqrt", [](const Tensor& x) { return attn::rsqrt(x); },
       [](double x) { return 1.0 / std::sqrt(x); }, 0.05, 5},
      {"abs", [](const Tensor& x) { return attn::abs(x); }, [](double x) { return std::fabs(x); }, -4, 4},
      {"square", [](const Tensor& x) { return attn::square(x); }, [](double x) { return x * x; }, -4, 4},
      {"relu", [](const Tensor& x) { return attn::relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, -4, 4},
      {"sigmoid", [](const Tensor& x) { return attn::sigmoid(x); },
       [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, -8, 8},
      {"tanh", [](const Tensor& x) { return attn::tanh(x); }, [](double x) { return std::tanh(x); }, -4, 4},
      {"gelu", [](const Tensor& x) { return attn::gelu(x); }, gelu_ref, -4, 4},
      {"silu", [](const Tensor& x) { return attn::silu(x); },
       [](double x) { return x / (1.0 + std::exp(-x)); }, -6, 6},
      {"elu", [](const Tensor& x) { return attn::elu(x); },
       [](double x) { return x > 0 ? x : std::exp(x) - 1.0; }, -4, 4},
      {"sin", [](const Tensor& x) { return attn::sin(x); }, [](double x) { return std::sin(x); }, -5, 5},
      {"cos", [](const Tensor& x) { return attn::cos(x); }, [](double x) { return std::cos(x); }, -5, 5},
      {"pow 2", [](const Tensor& x) { return attn::pow(x, 2.0f); }, [](double x) { return x * x; }, -3, 3},
      {"pow 3", [](const Tensor& x) { return attn::pow(x, 3.0f); }, [](double x) { return x * x * x; }, -3, 3},
      {"pow 0.5", [](const Tensor& x) { return attn::pow(x, 0.5f); },
       [](double x) { return std::sqrt(x); }, 0.01, 4},
      {"pow -1.5", [](const Tensor& x) { return attn::pow(x, -1.5f); },
       [](double x) { return std::pow(x, -1.5); }, 0.2, 4},
      {"add scalar", [](const Tensor& x) { return attn::add(x, 2.5f); }, [](double x) { return x + 2.5; }, -4, 4},
      {"mul scalar", [](const Tensor& x) { return attn::mul(x, -1.75f); },
       [](double x) { return x * -1.75; }, -4, 4},
      {"x + s", [](const Tensor& x) { return x + 0.5f; }, [](double x) { return x + 0.5; }, -4, 4},
      {"s + x", [](const Tensor& x) { return 0.5f + x; }, [](double x) { return x + 0.5; }, -4, 4},
      {"x - s", [](const Tensor& x) { return x - 3.0f; }, [](double x) { return x - 3.0; }, -4, 4},
      {"s - x", [](const Tensor& x) { return 3.0f - x; }, [](double x) { return 3.0 - x; }, -4, 4},
      {"x * s", [](const Tensor& x) { return x * 4.0f; }, [](double x) { return 4.0 * x; }, -4, 4},
      {"s * x", [](const Tensor& x) { return 4.0f * x; }, [](double x) { return 4.0 * x; }, -4, 4},
      {"x / s", [](const Tensor& x) { return x / 8.0f; }, [](double x) { return x / 8.0; }, -4, 4},
  };
}

TEST(Elementwise, UnaryOpsMatchDoubleOnEveryLayout) {
  Generator g(1234);
  for (const UnaryCase& c : unary_cases()) {
    for (const Input& in : layouts(g, c.lo, c.hi)) {
      SCOPED_TRACE(std::string(c.name) + " on " + in.what);
      const Tensor y = c.op(in.t);
      EXPECT_TRUE(oracle::has_dtype(y, DType::Float32));
      EXPECT_TRUE(oracle::close(y, oracle::map(in.a, c.ref), 1e-5, 1e-6));
    }
  }
}

TEST(Elementwise, UnaryOpsAtSpecialPoints) {
  const Array x = oracle::f32(Array({7}, {-100, -1, -0.0, 0, 1e-3, 1, 100}));
  const Tensor t = oracle::tensor(x);
  // Saturation must not produce NaN or inf (exp(100) overflows a float).
  EXPECT_TRUE(oracle::close(attn::sigmoid(t), oracle::map(x, [](double v) { return 1 / (1 + std::exp(-v)); }), 1e-6, 1e-7));
  EXPECT_TRUE(oracle::close(attn::tanh(t), oracle::map(x, [](double v) { return std::tanh(v); }), 1e-6, 1e-7));
  EXPECT_TRUE(oracle::close(attn::silu(t), oracle::map(x, [](double v) { return v / (1 + std::exp(-v)); }), 1e-6, 1e-7));
  EXPECT_TRUE(oracle::close(attn::gelu(t), oracle::map(x, gelu_ref), 1e-6, 1e-7));
  EXPECT_TRUE(oracle::close(attn::relu(t), oracle::map(x, [](double v) { return v > 0 ? v : 0; }), 0, 0));
  EXPECT_TRUE(oracle::close(attn::elu(t), oracle::map(x, [](double v) { return v > 0 ? v : std::expm1(v); }), 1e-6, 1e-7));
  // Known values, not just agreement with a formula.
  EXPECT_NEAR(attn::gelu(attn::full({}, 1.0)).item(), 0.8411919906, 1e-6);
  EXPECT_NEAR(attn::gelu(attn::full({}, -1.0)).item(), -0.1588080094, 1e-6);
  EXPECT_NEAR(attn::elu(attn::full({}, -1.0)).item(), -0.6321205588, 1e-6);
  EXPECT_NEAR(attn::silu(attn::full({}, 2.0)).item(), 1.7615941560, 1e-6);
  // Log of 0 is -inf, sqrt of a negative is NaN, rsqrt of 0 is inf.
  EXPECT_EQ(attn::log(attn::full({}, 0.0)).item(), -INFINITY);
  EXPECT_TRUE(std::isnan(attn::sqrt(attn::full({}, -1.0)).item()));
  EXPECT_EQ(attn::rsqrt(attn::full({}, 0.0)).item(), INFINITY);
}

TEST(Binary, MaximumAndMinimumPropagateNaN) {
  // A NaN on either side must come out as NaN (as torch.maximum does): a
  // diverged value silently replaced by the other operand hides the bug.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Tensor x = attn::from_vector({nan, 1, 2, nan, -3}, {5}),
               y = attn::from_vector({1, nan, 2, nan, 4}, {5});
  for (const bool is_max : {true, false}) {
    const std::vector<float> got = (is_max ? attn::maximum(x, y) : attn::minimum(x, y)).to_vector();
    const char* op = is_max ? "maximum" : "minimum";
    for (int i : {0, 1, 3}) EXPECT_TRUE(std::isnan(got[i])) << op << " element " << i << " = " << got[i];
    EXPECT_EQ(got[2], 2.0f) << op;
    EXPECT_EQ(got[4], is_max ? 4.0f : -3.0f) << op;
  }
}

Array away_from_zero(const Dims& shape, Generator& g) {
  Array a = oracle::uniform(shape, g, 0.5, 2.0);
  for (double& x : a.v)
    if (g.uniform() < 0.5f) x = -x;
  return a;
}

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
};

std::vector<BinaryCase> arithmetic_cases() {
  return {
      {"add", [](const Tensor& a, const Tensor& b) { return attn::add(a, b); }, [](double a, double b) { return a + b; }},
      {"sub", [](const Tensor& a, const Tensor& b) { return attn::sub(a, b); }, [](double a, double b) { return a - b; }},
      {"mul", [](const Tensor& a, const Tensor& b) { return attn::mul(a, b); }, [](double a, double b) { return a * b; }},
      {"div", [](const Tensor& a, const Tensor& b) { return attn::div(a, b); }, [](double a, double b) { return a / b; }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return attn::maximum(a, b); },
       [](double a, double b) { return std::max(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return attn::minimum(a, b); },
       [](double a, double b) { return std::min(a, b); }},
      {"operator+", [](const Tensor& a, const Tensor& b) { return a + b; }, [](double a, double b) { return a + b; }},
      {"operator-", [](const Tensor& a, const Tensor& b) { return a - b; }, [](double a, double b) { return a - b; }},
      {"operator*", [](const Tensor& a, const Tensor& b) { return a * b; }, [](double a, double b) { return a * b; }},
      {"operator/", [](const Tensor& a, const Tensor& b) { return a / b; }, [](double a, double b) { return a / b; }},
  };
}

// Pairs of shapes that broadcast, including 0-d and empty ones.
const std::vector<std::pair<Dims, Dims>>& broadcast_pairs() {
  static const std::vector<std::pair<Dims, Dims>> pairs = {
      {{3, 1, 5}, {4, 5}}, {{4, 5}, {3, 1, 5}}, {{}, {2, 3}},     {{2, 3}, {}},
      {{}, {}},            {{2, 1, 4}, {3, 1}}, {{5}, {2, 5}},    {{1, 1}, {2, 3}},
      {{0, 3}, {3}},       {{2, 3, 4}, {2, 3, 4}}, {{1}, {3, 1}},  {{2, 0, 1}, {1, 4}},
  };
  return pairs;
}

TEST(Elementwise, BinaryOpsBroadcast) {
  Generator g(99);
  for (const BinaryCase& c : arithmetic_cases()) {
    for (const auto& [sa, sb] : broadcast_pairs()) {
      SCOPED_TRACE(std::string(c.name) + " of " + oracle::dims_str(sa) + " and " + oracle::dims_str(sb));
      const Array a = oracle::uniform(sa, g, -3, 3);
      const Array b = away_from_zero(sb, g);
      const Tensor y = c.op(oracle::tensor(a), oracle::tensor(b));
      EXPECT_TRUE(oracle::has_dtype(y, DType::Float32));
      EXPECT_TRUE(oracle::close(y, oracle::zip(a, b, c.ref), 1e-6, 1e-7));
    }
  }
}

TEST(Elementwise, BinaryOpsOnNonContiguousInputs) {
  Generator g(7);
  const Array base_a = oracle::uniform({5, 4}, g, -3, 3);    // transposed -> [4,5]
  const Array base_b = away_from_zero({4, 10}, g);           // [:, 0:10:2] -> [4,5]
  const Array base_c = oracle::uniform({4, 1}, g, -3, 3);    // expanded -> [4,5]
  const Array base_d = away_from_zero({3, 5, 4}, g);         // permute(2,0,1) -> [4,3,5]
  const Tensor a = attn::transpose(oracle::tensor(base_a), 0, 1);
  const Tensor b = attn::slice(oracle::tensor(base_b), 1, 0, 10, 2);
  const Tensor c = attn::expand(oracle::tensor(base_c), {4, 5});
  const Tensor d = attn::permute(oracle::tensor(base_d), {2, 0, 1});
  ASSERT_FALSE(a.is_contiguous());
  ASSERT_FALSE(b.is_contiguous());
  ASSERT_FALSE(c.is_contiguous());
  ASSERT_FALSE(d.is_contiguous());
  const Array oa = oracle::transpose(base_a, 0, 1);
  const Array ob = oracle::take(base_b, 1, {0, 2, 4, 6, 8});
  const Array oc = oracle::expand(base_c, {4, 5});
  const Array od = oracle::permute(base_d, {2, 0, 1});
  // d is [4,3,5]; [4,5] views broadcast against it only after an unsqueeze.
  const Tensor a3 = attn::unsqueeze(a, 1);
  Array oa3 = oa;
  oa3.shape = {4, 1, 5};
  for (const BinaryCase& op : arithmetic_cases()) {
    SCOPED_TRACE(op.name);
    EXPECT_TRUE(oracle::close(op.op(a, b), oracle::zip(oa, ob, op.ref), 1e-6, 1e-7)) << "transpose op slice";
    EXPECT_TRUE(oracle::close(op.op(c, b), oracle::zip(oc, ob, op.ref), 1e-6, 1e-7)) << "expand op slice";
    EXPECT_TRUE(oracle::close(op.op(a3, d), oracle::zip(oa3, od, op.ref), 1e-6, 1e-7)) << "unsqueezed transpose op permute";
    Array ob3 = ob;
    ob3.shape = {4, 1, 5};
    EXPECT_TRUE(oracle::close(op.op(d, attn::unsqueeze(b, 1)), oracle::zip(od, ob3, op.ref), 1e-6, 1e-7))
        << "permute op unsqueezed slice";
  }
}

TEST(Elementwise, ComparisonsGiveBool) {
  Generator g(5);
  const std::vector<BinaryCase> cases = {
      {"gt", [](const Tensor& a, const Tensor& b) { return attn::gt(a, b); }, [](double a, double b) { return double(a > b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return attn::ge(a, b); }, [](double a, double b) { return double(a >= b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return attn::lt(a, b); }, [](double a, double b) { return double(a < b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return attn::le(a, b); }, [](double a, double b) { return double(a <= b); }},
      {"eq", [](const Tensor& a, const Tensor& b) { return attn::eq(a, b); }, [](double a, double b) { return double(a == b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return attn::ne(a, b); }, [](double a, double b) { return double(a != b); }},
  };
  for (const BinaryCase& c : cases) {
    for (const auto& [sa, sb] : broadcast_pairs()) {
      SCOPED_TRACE(std::string(c.name) + " of " + oracle::dims_str(sa) + " and " + oracle::dims_str(sb));
      // Small integers: plenty of ties, where gt/ge and lt/le differ.
      const Array a = oracle::integers(sa, g, -2, 2), b = oracle::integers(sb, g, -2, 2);
      const Tensor y = c.op(oracle::tensor(a), oracle::tensor(b));
      EXPECT_TRUE(oracle::has_dtype(y, DType::Bool));
      EXPECT_TRUE(oracle::equal(y, oracle::zip(a, b, c.ref)));
    }
    // Non-contiguous operands.
    const Array base = oracle::integers({5, 4}, g, -2, 2), other = oracle::integers({4, 10}, g, -2, 2);
    const Tensor y = c.op(attn::transpose(oracle::tensor(base), 0, 1),
                          attn::slice(oracle::tensor(other), 1, 1, 10, 2));
    EXPECT_TRUE(oracle::equal(y, oracle::zip(oracle::transpose(base, 0, 1),
                                             oracle::take(other, 1, {1, 3, 5, 7, 9}), c.ref)))
        << c.name << " on views";
  }
}

TEST(Elementwise, ComparisonsWithScalarsAndInts) {
  const Array a({6}, {-1.5, -1, 0, 0.5, 1, 2});
  const Tensor t = oracle::tensor(a);
  EXPECT_TRUE(oracle::equal(attn::gt(t, 0.5), oracle::map(a, [](double x) { return double(x > 0.5); })));
  EXPECT_TRUE(oracle::equal(attn::lt(t, 0.5), oracle::map(a, [](double x) { return double(x < 0.5); })));
  EXPECT_TRUE(oracle::equal(attn::eq(t, 1.0), oracle::map(a, [](double x) { return double(x == 1); })));
  EXPECT_TRUE(oracle::equal(attn::ne(t, 1.0), oracle::map(a, [](double x) { return double(x != 1); })));
  EXPECT_TRUE(oracle::has_dtype(attn::gt(t, 0.5), DType::Bool));
  // Int64 tensors compare exactly, also against a scalar (the mask idiom).
  const Tensor ids = attn::from_ints({3, -7, 0, 3, 9}, {5});
  EXPECT_TRUE(oracle::equal(attn::eq(ids, 3), Array({5}, {1, 0, 0, 1, 0})));
  EXPECT_TRUE(oracle::equal(attn::ne(ids, 0), Array({5}, {1, 1, 0, 1, 1})));
  EXPECT_TRUE(oracle::equal(attn::lt(ids, attn::from_ints({4, -7, 1, 2, 10}, {5})),
                            Array({5}, {1, 0, 1, 0, 1})));
  // Large int64 values must not be rounded through float: 2^53+1 vs 2^53.
  const Tensor big = attn::from_ints({(int64_t{1} << 53) + 1}, {1});
  const Tensor big2 = attn::from_ints({int64_t{1} << 53}, {1});
  EXPECT_TRUE(oracle::equal(attn::gt(big, big2), Array({1}, std::vector<double>{1})));
}

TEST(Elementwise, LogicalOps) {
  Generator g(11);
  for (const auto& [sa, sb] : broadcast_pairs()) {
    SCOPED_TRACE(oracle::dims_str(sa) + " and " + oracle::dims_str(sb));
    const Array a = oracle::integers(sa, g, 0, 1), b = oracle::integers(sb, g, 0, 1);
    auto bools = [](const Array& x) {
      std::vector<bool> v;
      for (double d : x.v) v.push_back(d != 0);
      return attn::from_bools(v, x.shape);
    };
    const Tensor ta = bools(a), tb = bools(b);
    const Tensor y_and = attn::logical_and(ta, tb), y_or = attn::logical_or(ta, tb);
    EXPECT_TRUE(oracle::has_dtype(y_and, DType::Bool));
    EXPECT_TRUE(oracle::has_dtype(y_or, DType::Bool));
    EXPECT_TRUE(oracle::equal(y_and, oracle::zip(a, b, [](double x, double y) { return double(x && y); })));
    EXPECT_TRUE(oracle::equal(y_or, oracle::zip(a, b, [](double x, double y) { return double(x || y); })));
    const Tensor y_not = attn::logical_not(ta);
    EXPECT_TRUE(oracle::has_dtype(y_not, DType::Bool));
    EXPECT_TRUE(oracle::equal(y_not, oracle::map(a, [](double x) { return double(!x); })));
  }
  // Float inputs: nonzero is true (including -0.5; -0.0 is false).
  const Array f({5}, {0, -0.0, -0.5, 2, 0});
  const Array h({5}, {1, 1, 0, 3, 0});
  EXPECT_TRUE(oracle::equal(attn::logical_not(oracle::tensor(f)), Array({5}, {1, 1, 0, 0, 1})));
  EXPECT_TRUE(oracle::equal(attn::logical_and(oracle::tensor(f), oracle::tensor(h)), Array({5}, {0, 0, 0, 1, 0})));
  EXPECT_TRUE(oracle::equal(attn::logical_or(oracle::tensor(f), oracle::tensor(h)), Array({5}, {1, 1, 1, 1, 0})));
  // logical_not of a non-contiguous bool view.
  const Tensor m = attn::from_bools({true, false, false, true, true, false}, {2, 3});
  EXPECT_TRUE(oracle::equal(attn::logical_not(attn::transpose(m, 0, 1)), Array({3, 2}, {0, 0, 1, 0, 1, 1})));
}

TEST(Elementwise, OutputsAreFreshContiguousTensors) {
  const Tensor base = attn::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor t = attn::transpose(base, 0, 1);
  const Tensor y = attn::exp(t);
  EXPECT_TRUE(y.is_contiguous());
  EXPECT_FALSE(y.same_storage(base));
  // The input is untouched.
  EXPECT_TRUE(oracle::equal(base, Array({2, 3}, {1, 2, 3, 4, 5, 6})));
}

}  // namespace
