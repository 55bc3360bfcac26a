// The backward engine: accumulation, graph structure, grad mode, freeing,
// error messages, and the ownership of leaf gradients. Expected gradients are
// derived by hand and computed in double with plain loops.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ag_test_util.h"
#include "autograd/engine.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/error.h"

using namespace attn;
using agtest::AllClose;
using agtest::normal;
using agtest::values;

namespace {

// Runs `f` and checks it throws attn::Error whose message contains `needle`.
template <class F>
::testing::AssertionResult ThrowsWith(F f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message \"" << e.what() << "\" lacks \"" << needle
                                         << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-attn exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

std::vector<double> map(const std::vector<double>& x, double (*f)(double)) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

}  // namespace

// ------------------------------------------------------------- accumulation

TEST(Engine, TensorUsedTwiceAccumulates) {
  Tensor x = normal({5}, 1);
  sum(x * x + x).backward();  // d/dx = 2x + 1
  EXPECT_TRUE(AllClose(x.grad(), map(values(x), [](double v) { return 2 * v + 1; })));
}

TEST(Engine, SameTensorAsBothInputsOfOneNode) {
  Tensor x = normal({4}, 2);
  sum(mul(x, x)).backward();  // one node, x in both slots: 2x
  EXPECT_TRUE(AllClose(x.grad(), map(values(x), [](double v) { return 2 * v; })));
}

TEST(Engine, GradAccumulatesAcrossBackwardCallsUntilZeroGrad) {
  Tensor x = normal({4}, 3);
  const std::vector<double> xv = values(x);
  sum(x * x).backward();          // 2x
  sum(mul(x, 3.0f)).backward();   // + 3, a separate graph
  EXPECT_TRUE(AllClose(x.grad(), map(xv, [](double v) { return 2 * v + 3; })));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(exp(x)).backward();  // starts afresh: exp(x) only
  EXPECT_TRUE(AllClose(x.grad(), map(xv, [](double v) { return std::exp(v); })));
}

TEST(Engine, BackwardOnALeafSeedsItsGradient) {
  Tensor x = normal({3}, 4);
  const Tensor g = from_vector({1, 2, 3}, {3});
  x.backward(g);
  EXPECT_TRUE(AllClose(x.grad(), {1, 2, 3}));
  x.backward(g);
  EXPECT_TRUE(AllClose(x.grad(), {2, 4, 6}));
  Tensor s = from_vector({2.5f}, {}).set_requires_grad();
  s.backward();
  EXPECT_TRUE(AllClose(s.grad(), {1}));
}

// --------------------------------------------------- requires_grad and leaves

TEST(Engine, RequiresGradPropagation) {
  const Tensor a = from_vector({1, 2}, {2}), b = from_vector({3, 4}, {2});
  const Tensor c = a * b + exp(a);
  EXPECT_FALSE(c.requires_grad());
  EXPECT_EQ(c.impl()->grad_fn, nullptr);
  Tensor w = from_vector({0.5f, -1}, {2}).set_requires_grad();
  const Tensor d = a * w;
  EXPECT_TRUE(d.requires_grad());
  EXPECT_NE(d.impl()->grad_fn, nullptr);
  const Tensor e = sum(d + c);  // mixed: requires grad
  EXPECT_TRUE(e.requires_grad());
  e.backward();
  EXPECT_TRUE(AllClose(w.grad(), {1, 2}));
  // Inputs that did not require grad get no gradient.
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(Engine, SetRequiresGradOnNonLeafThrows) {
  Tensor x = normal({3}, 5);
  Tensor y = x * 2.0f;
  EXPECT_TRUE(ThrowsWith([&] { y.set_requires_grad(); }, "leaf"));
  // detach() makes a leaf that may require grad again.
  Tensor z = y.detach();
  EXPECT_NO_THROW(z.set_requires_grad());
  EXPECT_TRUE(z.requires_grad());
}

TEST(Engine, SetRequiresGradFalseStopsRecording) {
  Tensor x = normal({3}, 6);
  x.set_requires_grad(false);
  EXPECT_FALSE(x.requires_grad());
  EXPECT_FALSE((x * x).requires_grad());
}

TEST(Engine, IntermediateGradientsAreNotStored) {
  Tensor x = normal({3}, 7);
  Tensor y = x * 2.0f;
  sum(y * y).backward();
  EXPECT_FALSE(y.grad().defined());
  EXPECT_TRUE(AllClose(x.grad(), map(values(x), [](double v) { return 8 * v; })));
}

TEST(Engine, BackwardOnTensorNotRequiringGradThrows) {
  const Tensor x = from_vector({1, 2}, {2});
  EXPECT_TRUE(ThrowsWith([&] { sum(x).backward(); }, "does not require grad"));
}

// ------------------------------------------------------------------- detach

TEST(Engine, DetachCutsTheGraphAndSharesStorage) {
  Tensor x = normal({4}, 8);
  const std::vector<double> xv = values(x);
  const Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.impl()->grad_fn, nullptr);
  EXPECT_TRUE(d.same_storage(x));
  // d(sum(detach(x) * x))/dx = x: only the attached path contributes.
  sum(d * x).backward();
  EXPECT_TRUE(AllClose(x.grad(), xv));
  // A graph that goes only through the detached tensor does not reach x.
  x.zero_grad();
  EXPECT_FALSE(sum(exp(d)).requires_grad());
  // Writing through the detached handle is visible in x (same memory).
  d.data<float>()[1] = 42.0f;
  EXPECT_EQ(x.to_vector()[1], 42.0f);
}

TEST(Engine, DetachOfANonLeafStopsAtIt) {
  Tensor x = normal({3}, 9);
  Tensor y = exp(x);
  Tensor z = y.detach() * y;  // d/dx = exp(x) * exp(x) (one path only)
  sum(z).backward();
  EXPECT_TRUE(AllClose(x.grad(), map(values(x), [](double v) { return std::exp(2 * v); }), 1e-5));
}

// ---------------------------------------------------------------- grad mode

TEST(Engine, NoGradGuardRecordsNothingAndRestoresNesting) {
  Tensor x = normal({3}, 10);
  ASSERT_TRUE(grad_enabled());
  {
    NoGradGuard outer;
    EXPECT_FALSE(grad_enabled());
    const Tensor y = x * x + exp(x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.impl()->grad_fn, nullptr);
    {
      NoGradGuard inner;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());  // the inner guard restores "off", not "on"
    EXPECT_FALSE((x * 2.0f).requires_grad());
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE((x * 2.0f).requires_grad());
}

TEST(Engine, NoGradGuardRestoresOnException) {
  try {
    NoGradGuard guard;
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(grad_enabled());
}

TEST(Engine, BackwardRunsWithoutRecordingAndRestoresGradMode) {
  Tensor x = normal({3}, 11);
  bool enabled_inside = true;
  const Tensor xd = x.detach();
  Tensor y = record(mul(xd, 2.0f), "probe", {x}, [&enabled_inside](const Tensor& g) {
    enabled_inside = grad_enabled();
    return std::vector<Tensor>{mul(g, 2.0f)};
  });
  sum(y).backward();
  EXPECT_FALSE(enabled_inside);
  EXPECT_TRUE(grad_enabled());
  ASSERT_TRUE(x.grad().defined());
  EXPECT_FALSE(x.grad().requires_grad());  // gradients are plain tensors
  // Also when the backward throws.
  Tensor z = record(mul(xd, 2.0f), "throws", {x}, [](const Tensor&) -> std::vector<Tensor> {
    fail("backward exploded");
  });
  EXPECT_TRUE(ThrowsWith([&] { sum(z).backward(); }, "backward exploded"));
  EXPECT_TRUE(grad_enabled());
}

// ------------------------------------------------------ seeds and their shape

TEST(Engine, NonScalarBackwardNeedsAGradient) {
  Tensor x = normal({2, 3}, 12);
  const Tensor y = x * 2.0f;
  EXPECT_TRUE(ThrowsWith([&] { y.backward(); }, "backward() without a gradient needs a scalar"));
}

TEST(Engine, NonScalarBackwardWithExplicitGradient) {
  Tensor x = normal({2, 3}, 13);
  const Tensor y = x * x;
  const Tensor g = from_vector({1, -2, 3, 0.5f, 0, 4}, {2, 3});
  y.backward(g);
  const std::vector<double> xv = values(x), gv = values(g);
  std::vector<double> want(6);
  for (int i = 0; i < 6; ++i) want[i] = 2 * xv[i] * gv[i];
  EXPECT_TRUE(AllClose(x.grad(), want));
}

TEST(Engine, OneElementNonScalarIsASeedableScalar) {
  Tensor x = normal({1, 1}, 14);
  (x * 3.0f).backward();
  EXPECT_TRUE(AllClose(x.grad(), {3}));
}

TEST(Engine, GradientOfTheWrongShapeThrows) {
  Tensor x = normal({2, 3}, 15);
  const Tensor y = x * 2.0f;
  EXPECT_TRUE(ThrowsWith([&] { y.backward(ones({3, 2})); }, "gradient has shape"));
  EXPECT_TRUE(ThrowsWith([&] { y.backward(ones({6})); }, "gradient has shape"));
  EXPECT_TRUE(ThrowsWith([&] { y.backward(ones({1, 2, 3})); }, "gradient has shape"));
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, NonFloatGradientThrows) {
  // An int64 seed used to flow unchanged through add into the leaves' .grad.
  Tensor a = normal({3}, 35), b = normal({3}, 36);
  EXPECT_TRUE(ThrowsWith([&] { (a + b).backward(from_ints({1, 2, 3}, {3})); },
                         "gradient must be float32"));
  EXPECT_TRUE(ThrowsWith([&] { a.backward(from_bools({true, false, true}, {3})); },
                         "gradient must be float32"));
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

// ------------------------------------------------------ freeing the graph

TEST(Engine, SecondBackwardThroughAFreedGraphThrows) {
  Tensor x = normal({3}, 16);
  const Tensor loss = sum(x * x);
  loss.backward();
  EXPECT_TRUE(ThrowsWith([&] { loss.backward(); }, "was freed by an earlier backward()"));
}

TEST(Engine, SharedSubgraphFreedByAnEarlierBackwardThrows) {
  Tensor x = normal({3}, 17);
  const Tensor h = exp(x);
  sum(h).backward();
  // A new graph on top of h reaches h's freed node.
  EXPECT_TRUE(ThrowsWith([&] { sum(h * 2.0f).backward(); }, "was freed by an earlier backward()"));
}

TEST(Engine, RetainGraphAllowsTwoPasses) {
  Tensor x = normal({4}, 18);
  const Tensor loss = sum(x * x + exp(x));
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  std::vector<double> want;
  for (double v : values(x)) want.push_back(2 * (2 * v + std::exp(v)));
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-5));
  // The second pass did not retain: a third one fails.
  EXPECT_TRUE(ThrowsWith([&] { loss.backward(); }, "was freed by an earlier backward()"));
}

// -------------------------------------------------- leaf gradient ownership

TEST(Engine, LeafGradientsAreSeparateCopies) {
  Tensor a = normal({3}, 19), b = normal({3}, 20);
  sum(a + b).backward();  // both receive the very same gradient tensor
  ASSERT_TRUE(AllClose(a.grad(), {1, 1, 1}));
  ASSERT_TRUE(AllClose(b.grad(), {1, 1, 1}));
  EXPECT_FALSE(a.grad().same_storage(b.grad()));
  a.grad().data<float>()[0] = 100.0f;  // an optimizer scaling a's gradient in place
  EXPECT_TRUE(AllClose(b.grad(), {1, 1, 1}));
  EXPECT_TRUE(AllClose(a.grad(), {100, 1, 1}));
}

TEST(Engine, LeafGradientDoesNotAliasTheSeed) {
  Tensor a = normal({3}, 21), b = normal({3}, 22);
  const Tensor g = from_vector({1, 2, 3}, {3});
  (a + b).backward(g);
  ASSERT_TRUE(a.grad().defined());
  a.grad().data<float>()[1] = -7.0f;
  EXPECT_TRUE(AllClose(g, {1, 2, 3}));
  EXPECT_TRUE(AllClose(b.grad(), {1, 2, 3}));
  // Backward on the leaf itself: its gradient is a copy of the seed too.
  Tensor c = normal({3}, 23);
  c.backward(g);
  ASSERT_TRUE(c.grad().defined());
  c.grad().data<float>()[0] = 9.0f;
  EXPECT_TRUE(AllClose(g, {1, 2, 3}));
}

TEST(Engine, BroadcastGradientIsReducedToTheLeafShape) {
  Tensor bias = normal({3}, 24);
  Tensor x = normal({4, 3}, 25);
  sum(x + bias).backward();
  ASSERT_TRUE(bias.grad().defined() && x.grad().defined());
  EXPECT_EQ(bias.grad().shape(), Shape({3}));
  EXPECT_TRUE(AllClose(bias.grad(), {4, 4, 4}));
  EXPECT_EQ(x.grad().shape(), Shape({4, 3}));
  // Through an explicit expand too (a stride-0 gradient view).
  Tensor v = normal({3}, 26);
  sum(expand(v, {5, 3})).backward();
  EXPECT_TRUE(AllClose(v.grad(), {5, 5, 5}));
}

// ------------------------------------------------------------ graph shapes

TEST(Engine, LongChainDoesNotOverflowTheStack) {
  Tensor x = from_vector({0.5f, -1.0f}, {2}).set_requires_grad();
  Tensor y = x;
  const int n = 10000;
  for (int i = 0; i < n; ++i) y = y + x;  // y = (n + 1) x
  sum(y).backward();
  EXPECT_TRUE(AllClose(x.grad(), {n + 1.0, n + 1.0}));
}

TEST(Engine, LongChainWithRetainedGraphCanBeDropped) {
  // A retained graph is freed by destructors alone; a deep one must not
  // overflow the stack on the way (it did: one recursion level per node).
  Tensor x = from_vector({1.0f}, {1}).set_requires_grad();
  {
    Tensor y = x;
    for (int i = 0; i < 10000; ++i) y = add(y, 1.0f);
    sum(y).backward(Tensor(), /*retain_graph=*/true);
    sum(y).backward(Tensor(), /*retain_graph=*/true);
  }
  EXPECT_TRUE(AllClose(x.grad(), {2}));
}

TEST(Engine, VeryDeepGraphNeverBackpropagatedCanBeDropped) {
  // E.g. a running total of losses kept without detach(). 300k nodes is
  // several times what a recursive teardown survives on an 8 MB stack.
  Tensor x = from_vector({1.0f}, {1}).set_requires_grad();
  {
    Tensor y = x;
    for (int i = 0; i < 300000; ++i) y = y + x;
    EXPECT_TRUE(y.requires_grad());
  }
  {
    // Two chains sharing their nodes: dropping one must leave the other intact.
    Tensor y = x;
    for (int i = 0; i < 1000; ++i) y = mul(y, 1.0f);
    Tensor a = y * 2.0f;
    Tensor b = y * 3.0f;
    { Tensor drop = std::move(a); }
    sum(b).backward();
    EXPECT_TRUE(AllClose(x.grad(), {3}));
  }
}

TEST(Engine, DiamondGraph) {
  // x -> a = 2x, b = exp(x) -> c = a * b: dc/dx = 2 exp(x) + 2x exp(x).
  Tensor x = normal({4}, 27);
  const Tensor a = x * 2.0f, b = exp(x);
  sum(a * b).backward();
  EXPECT_TRUE(AllClose(x.grad(), map(values(x), [](double v) {
    return 2 * std::exp(v) + 2 * v * std::exp(v);
  }), 1e-5));
}

TEST(Engine, SharedIntermediateGetsAllContributionsBeforeItsBackward) {
  // h = x^2 feeds two branches of different depth, and a skip connection
  // reaches the output from h directly:
  //   out = sum(sin(3h) * x + tanh(tanh(h)) + h)
  // dh = 3 cos(3h) x + (1 - tanh(tanh h)^2)(1 - tanh(h)^2) + 1,
  // dx = sin(3h) + dh * 2x.
  Tensor x = normal({5}, 28);
  const Tensor h = x * x;
  const Tensor out = sum(sin(h * 3.0f) * x + tanh(tanh(h)) + h);
  out.backward();
  std::vector<double> want;
  for (double v : values(x)) {
    const double hv = v * v, t1 = std::tanh(hv), t2 = std::tanh(t1);
    const double dh = 3 * std::cos(3 * hv) * v + (1 - t2 * t2) * (1 - t1 * t1) + 1;
    want.push_back(std::sin(3 * hv) + dh * 2 * v);
  }
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-4));
}

TEST(Engine, ManyPathsToOneLeaf) {
  // out = sum_k x^k for k = 1..6 built from a chain of products, every
  // partial product used twice: d/dx = sum k x^(k-1).
  Tensor x = from_vector({0.7f, -1.1f, 1.3f}, {3}).set_requires_grad();
  Tensor p = x, total = x;
  for (int k = 2; k <= 6; ++k) {
    p = p * x;
    total = total + p;
  }
  sum(total).backward();
  std::vector<double> want;
  for (double v : values(x)) {
    double d = 0;
    for (int k = 1; k <= 6; ++k) d += k * std::pow(v, k - 1);
    want.push_back(d);
  }
  EXPECT_TRUE(AllClose(x.grad(), want, 1e-5));
}

TEST(Engine, BranchNotRequiringGradIsSkipped) {
  Tensor w = normal({3}, 29);
  const Tensor c = from_vector({1, 2, 3}, {3});
  // exp(c) is a constant branch: no node, no gradient, no error.
  sum(w * exp(c) + c).backward();
  EXPECT_TRUE(AllClose(w.grad(), {std::exp(1.0), std::exp(2.0), std::exp(3.0)}, 1e-6));
  EXPECT_FALSE(c.grad().defined());
}

// ------------------------------------------------------- integer tensors

TEST(Engine, IntTensorsNeverGetGradients) {
  Tensor ids = from_ints({0, 2, 2}, {3});
  EXPECT_TRUE(ThrowsWith([&] { ids.set_requires_grad(); }, "only float32"));
  Tensor flags = from_bools({true, false}, {2});
  EXPECT_TRUE(ThrowsWith([&] { flags.set_requires_grad(); }, "only float32"));

  Tensor w = normal({3, 2}, 30);
  sum(embedding(w, ids)).backward();  // rows 0 once, 2 twice, 1 never
  EXPECT_FALSE(ids.grad().defined());
  EXPECT_TRUE(AllClose(w.grad(), {1, 1, 0, 0, 2, 2}));

  Tensor a = normal({2}, 31), b = normal({2}, 32);
  sum(where(flags, a, b)).backward();
  EXPECT_FALSE(flags.grad().defined());
  EXPECT_TRUE(AllClose(a.grad(), {1, 0}));
  EXPECT_TRUE(AllClose(b.grad(), {0, 1}));

  // A custom op that (wrongly) returns a gradient for its int input: the
  // engine must not attach it, since the int input cannot require grad.
  Tensor x = normal({3}, 33);
  const Tensor xd = x.detach();
  Tensor y = record(mul(xd, 2.0f), "with_int_input", {x, ids}, [](const Tensor& g) {
    return std::vector<Tensor>{mul(g, 2.0f), ones({3})};
  });
  sum(y).backward();
  EXPECT_FALSE(ids.grad().defined());
  EXPECT_TRUE(AllClose(x.grad(), {2, 2, 2}));
}

TEST(Engine, IndexSelectRepeatedIndicesAccumulate) {
  Tensor x = normal({4, 2}, 34);
  const Tensor idx = from_ints({1, 3, 1, 1, 0}, {5});
  const Tensor g = from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 2});
  index_select(x, 0, idx).backward(g);
  // Row r's gradient is the sum of g's rows picked from r.
  std::vector<double> want(8, 0.0);
  const std::vector<int64_t> iv = idx.to_int_vector();
  const std::vector<double> gv = values(g);
  for (int i = 0; i < 5; ++i)
    for (int c = 0; c < 2; ++c) want[iv[i] * 2 + c] += gv[i * 2 + c];
  EXPECT_TRUE(AllClose(x.grad(), want));  // row 1: 1+5+7, 2+6+8; row 2: none
}
