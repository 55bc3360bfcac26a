// Finite-difference checks of every differentiable op in autograd/ops.h.
//
// gradcheck compares backward() with central differences of the forward, so
// each test here is an independent check of one op's backward formula. The
// inputs are small (a few dozen elements) and drawn from seeded generators
// with the properties finite differences need: away from kinks (relu, abs),
// positive where the op needs it (log, sqrt), and free of ties (max, min).
// Unless a case says otherwise, gradcheck's defaults hold: eps = atol = rtol = 1e-2.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ag_test_util.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"

using namespace attn;
using agtest::away_from_zero;
using agtest::distinct;
using agtest::distinct_pair;
using agtest::GradOk;
using agtest::normal;
using agtest::uniform;

// fn(in) = expr, capturing the test's locals by reference.
#define FN(expr) [&](const std::vector<Tensor>& in) -> Tensor { return expr; }

// ---------------------------------------------------------------- elementwise

namespace {

// Broadcast pairs of shapes: same shape, the right side broadcast, the left
// side broadcast, both sides broadcast, and a 0-d tensor on either side.
const std::vector<std::pair<Shape, Shape>> kBroadcastPairs = {
    {{2, 3}, {2, 3}},       {{3, 1, 4}, {4}}, {{4}, {3, 1, 4}},
    {{3, 1}, {1, 4}},       {{2, 3, 1}, {3, 4}}, {{}, {2, 3}},
    {{2, 3}, {}},
};

std::string shapes_str(const Shape& a, const Shape& b) {
  return shape_str(a) + " with " + shape_str(b);
}

}  // namespace

TEST(GradcheckElementwise, AddBroadcasting) {
  uint64_t seed = 100;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    SCOPED_TRACE(shapes_str(sa, sb));
    Tensor a = normal(sa, seed++), b = normal(sb, seed++);
    EXPECT_GRAD_OK(FN(add(in[0], in[1])), {a, b});
  }
}

TEST(GradcheckElementwise, SubBroadcasting) {
  uint64_t seed = 200;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    SCOPED_TRACE(shapes_str(sa, sb));
    Tensor a = normal(sa, seed++), b = normal(sb, seed++);
    EXPECT_GRAD_OK(FN(sub(in[0], in[1])), {a, b});
  }
}

TEST(GradcheckElementwise, MulBroadcasting) {
  uint64_t seed = 300;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    SCOPED_TRACE(shapes_str(sa, sb));
    Tensor a = normal(sa, seed++), b = normal(sb, seed++);
    EXPECT_GRAD_OK(FN(mul(in[0], in[1])), {a, b});
  }
}

TEST(GradcheckElementwise, DivBroadcasting) {
  uint64_t seed = 400;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    SCOPED_TRACE(shapes_str(sa, sb));
    // |b| >= 0.5 keeps 1/b smooth over +-eps (its third derivative stays small).
    Tensor a = normal(sa, seed++), b = away_from_zero(sb, seed++, 0.5f, 2.0f);
    EXPECT_GRAD_OK(FN(div(in[0], in[1])), {a, b});
  }
}

TEST(GradcheckElementwise, MulAndDivWithOneSideNotRequiringGrad) {
  // mul/div skip the gradient of an input that does not require it; the
  // other input's gradient must still be right.
  Tensor a = normal({3, 4}, 1);
  Tensor b = away_from_zero({4}, 2, 0.5f, 2.0f);
  const Tensor b_const = b.detach();
  const Tensor a_const = a.detach();
  EXPECT_GRAD_OK(FN(mul(in[0], b_const)), {a});
  EXPECT_GRAD_OK(FN(mul(a_const, in[0])), {b});
  EXPECT_GRAD_OK(FN(div(in[0], b_const)), {a});
  EXPECT_GRAD_OK(FN(div(a_const, in[0])), {b});
}

TEST(GradcheckElementwise, MaximumMinimumBroadcasting) {
  uint64_t seed = 500;
  for (const auto& [sa, sb] : kBroadcastPairs) {
    SCOPED_TRACE(shapes_str(sa, sb));
    // All values distinct and 0.1 apart: no ties, even after +-eps.
    auto [a, b] = distinct_pair(sa, sb, seed++);
    EXPECT_GRAD_OK(FN(maximum(in[0], in[1])), {a, b});
    EXPECT_GRAD_OK(FN(minimum(in[0], in[1])), {a, b});
  }
}

TEST(GradcheckElementwise, ScalarForms) {
  Tensor a = normal({2, 3, 2}, 7);
  EXPECT_GRAD_OK(FN(add(in[0], 2.5f)), {a});
  EXPECT_GRAD_OK(FN(add(in[0], -1.0f)), {a});
  EXPECT_GRAD_OK(FN(mul(in[0], 3.0f)), {a});
  EXPECT_GRAD_OK(FN(mul(in[0], -0.5f)), {a});
  EXPECT_GRAD_OK(FN(mul(in[0], 0.0f)), {a});
}

TEST(GradcheckElementwise, Pow) {
  Tensor x = normal({3, 4}, 11);
  Tensor pos = uniform({3, 4}, 12, 0.5f, 2.0f);
  EXPECT_GRAD_OK(FN(pow(in[0], 2.0f)), {x});
  EXPECT_GRAD_OK(FN(pow(in[0], 3.0f)), {x});  // negative bases, odd power
  EXPECT_GRAD_OK(FN(pow(in[0], 1.0f)), {x});
  EXPECT_GRAD_OK(FN(pow(in[0], 0.5f)), {pos});
  EXPECT_GRAD_OK(FN(pow(in[0], -1.5f)), {pos});
  EXPECT_GRAD_OK(FN(pow(in[0], 2.7f)), {pos});
  EXPECT_GRAD_OK(FN(pow(in[0], 0.0f)), {pos});
}

TEST(GradcheckElementwise, SmoothUnary) {
  Tensor x = normal({3, 5}, 21, 1.2f);
  EXPECT_GRAD_OK(FN(neg(in[0])), {x});
  EXPECT_GRAD_OK(FN(exp(in[0])), {x});
  EXPECT_GRAD_OK(FN(square(in[0])), {x});
  EXPECT_GRAD_OK(FN(sigmoid(in[0])), {x});
  EXPECT_GRAD_OK(FN(tanh(in[0])), {x});
  EXPECT_GRAD_OK(FN(gelu(in[0])), {x});
  EXPECT_GRAD_OK(FN(silu(in[0])), {x});
  EXPECT_GRAD_OK(FN(sin(in[0])), {x});
  EXPECT_GRAD_OK(FN(cos(in[0])), {x});
}

TEST(GradcheckElementwise, GeluSiluSigmoidTanhOverAWideRange) {
  // Saturated tails and the steep middle, including the cubic term of GELU.
  std::vector<float> v;
  for (float t = -4.5f; t <= 4.5f; t += 0.45f) v.push_back(t + 0.013f);
  Tensor x = from_vector(v, {static_cast<int64_t>(v.size())}).set_requires_grad();
  EXPECT_GRAD_OK(FN(gelu(in[0])), {x});
  EXPECT_GRAD_OK(FN(silu(in[0])), {x});
  EXPECT_GRAD_OK(FN(sigmoid(in[0])), {x});
  EXPECT_GRAD_OK(FN(tanh(in[0])), {x});
  EXPECT_GRAD_OK(FN(elu(in[0])), {x});
}

TEST(GradcheckElementwise, PositiveDomainUnary) {
  // log, sqrt and rsqrt on [0.5, 2.5): their higher derivatives blow up near
  // 0, which would make the central difference itself inaccurate.
  Tensor x = uniform({3, 5}, 31, 0.5f, 2.5f);
  EXPECT_GRAD_OK(FN(log(in[0])), {x});
  EXPECT_GRAD_OK(FN(sqrt(in[0])), {x});
  EXPECT_GRAD_OK(FN(rsqrt(in[0])), {x});
}

TEST(GradcheckElementwise, KinkedUnaryAwayFromTheKink) {
  // |x| >= 0.2 >> eps: the difference never straddles the kink at 0.
  Tensor x = away_from_zero({4, 5}, 41);
  EXPECT_GRAD_OK(FN(abs(in[0])), {x});
  EXPECT_GRAD_OK(FN(relu(in[0])), {x});
  EXPECT_GRAD_OK(FN(elu(in[0])), {x});
}

TEST(GradcheckElementwise, Operators) {
  Tensor a = normal({2, 3}, 51);
  Tensor b = away_from_zero({3}, 52, 0.5f, 2.0f);
  EXPECT_GRAD_OK(FN(in[0] + in[1]), {a, b});
  EXPECT_GRAD_OK(FN(in[0] - in[1]), {a, b});
  EXPECT_GRAD_OK(FN(in[1] - in[0]), {a, b});
  EXPECT_GRAD_OK(FN(in[0] * in[1]), {a, b});
  EXPECT_GRAD_OK(FN(in[0] / in[1]), {a, b});
  EXPECT_GRAD_OK(FN(-in[0]), {a});
  EXPECT_GRAD_OK(FN(in[0] + 1.5f), {a});
  EXPECT_GRAD_OK(FN(1.5f + in[0]), {a});
  EXPECT_GRAD_OK(FN(in[0] - 1.5f), {a});
  EXPECT_GRAD_OK(FN(1.5f - in[0]), {a});
  EXPECT_GRAD_OK(FN(in[0] * 2.5f), {a});
  EXPECT_GRAD_OK(FN(2.5f * in[0]), {a});
  EXPECT_GRAD_OK(FN(in[0] / 4.0f), {a});
  // A compound expression: a / b * a - b, every input used more than once.
  EXPECT_GRAD_OK(FN(in[0] / in[1] * in[0] - in[1]), {a, b});
}

// ----------------------------------------------------------------- reductions

TEST(GradcheckReduce, SumAndMean) {
  Tensor x = normal({2, 3, 4}, 61);
  EXPECT_GRAD_OK(FN(sum(in[0])), {x});
  EXPECT_GRAD_OK(FN(mean(in[0])), {x});
  for (bool keep : {false, true}) {
    SCOPED_TRACE(keep ? "keepdim" : "no keepdim");
    for (const std::vector<int64_t>& dims :
         std::vector<std::vector<int64_t>>{{0}, {1}, {-1}, {0, 2}, {2, 0, 1}}) {
      SCOPED_TRACE("dims " + shape_str(dims));
      EXPECT_GRAD_OK(FN(sum(in[0], dims, keep)), {x});
      EXPECT_GRAD_OK(FN(mean(in[0], dims, keep)), {x});
    }
  }
}

TEST(GradcheckReduce, MaxMinOverADim) {
  Tensor x = distinct({3, 4, 2}, 71);  // no ties
  for (bool keep : {false, true}) {
    for (int64_t d : {0, 1, 2, -1}) {
      SCOPED_TRACE("dim " + std::to_string(d) + (keep ? " keepdim" : ""));
      EXPECT_GRAD_OK(FN(max(in[0], d, keep)), {x});
      EXPECT_GRAD_OK(FN(min(in[0], d, keep)), {x});
    }
  }
  EXPECT_GRAD_OK(FN(max(in[0])), {x});
}

TEST(GradcheckReduce, Var) {
  Tensor x = normal({3, 4, 2}, 81);
  for (int64_t correction : {0, 1}) {
    for (bool keep : {false, true}) {
      for (const std::vector<int64_t>& dims :
           std::vector<std::vector<int64_t>>{{1}, {-1}, {0, 2}, {0, 1, 2}}) {
        SCOPED_TRACE("correction " + std::to_string(correction) + " dims " + shape_str(dims) +
                     (keep ? " keepdim" : ""));
        EXPECT_GRAD_OK(FN(var(in[0], dims, correction, keep)), {x});
      }
    }
  }
}

// ------------------------------------------------------------ views and shape

TEST(GradcheckShape, ReshapeViewFlatten) {
  Tensor x = normal({2, 3, 4}, 91);
  EXPECT_GRAD_OK(FN(reshape(in[0], {4, 6})), {x});
  EXPECT_GRAD_OK(FN(reshape(in[0], {-1, 2})), {x});
  EXPECT_GRAD_OK(FN(view(in[0], {6, -1})), {x});
  EXPECT_GRAD_OK(FN(flatten(in[0])), {x});
  EXPECT_GRAD_OK(FN(flatten(in[0], 1)), {x});
  EXPECT_GRAD_OK(FN(flatten(in[0], 0, 1)), {x});
  // reshape of a non-contiguous view copies; its gradient must still find the input.
  EXPECT_GRAD_OK(FN(reshape(transpose(in[0], 0, 2), {4, 6})), {x});
  EXPECT_GRAD_OK(FN(flatten(permute(in[0], {1, 2, 0}))), {x});
}

TEST(GradcheckShape, TransposePermute) {
  Tensor x = normal({2, 3, 4}, 92);
  EXPECT_GRAD_OK(FN(transpose(in[0], 0, 2)), {x});
  EXPECT_GRAD_OK(FN(transpose(in[0], -1, -2)), {x});
  EXPECT_GRAD_OK(FN(permute(in[0], {2, 0, 1})), {x});
  EXPECT_GRAD_OK(FN(permute(in[0], {1, 2, 0})), {x});
  // A non-symmetric consumer, so a wrong inverse permutation shows up.
  Tensor w = normal({4, 2, 3}, 93);
  EXPECT_GRAD_OK(FN(mul(permute(in[0], {2, 0, 1}), in[1])), {x, w});
}

TEST(GradcheckShape, SliceNarrowSelect) {
  Tensor x = normal({5, 6}, 94);
  EXPECT_GRAD_OK(FN(slice(in[0], 0, 1, 4)), {x});
  EXPECT_GRAD_OK(FN(slice(in[0], 1, 0, 6, 2)), {x});    // step
  EXPECT_GRAD_OK(FN(slice(in[0], 1, 1, 100, 3)), {x});  // step, end clamped
  EXPECT_GRAD_OK(FN(slice(in[0], 0, -3, 5, 2)), {x});   // negative start
  EXPECT_GRAD_OK(FN(slice(slice(in[0], 1, 1, 6, 2), 0, 0, 5, 2)), {x});  // slice of a slice
  EXPECT_GRAD_OK(FN(narrow(in[0], 1, 2, 3)), {x});
  EXPECT_GRAD_OK(FN(narrow(in[0], 0, 0, 1)), {x});
  EXPECT_GRAD_OK(FN(select(in[0], 0, 2)), {x});
  EXPECT_GRAD_OK(FN(select(in[0], 1, -1)), {x});
  EXPECT_GRAD_OK(FN(select(transpose(in[0], 0, 1), 0, 3)), {x});
}

TEST(GradcheckShape, ExpandSqueezeUnsqueeze) {
  Tensor x = normal({3, 1}, 95);
  EXPECT_GRAD_OK(FN(expand(in[0], {3, 4})), {x});
  EXPECT_GRAD_OK(FN(expand(in[0], {2, 3, 4})), {x});  // new leading dim
  EXPECT_GRAD_OK(FN(expand(in[0], {2, -1, 5})), {x});
  EXPECT_GRAD_OK(FN(squeeze(in[0], 1)), {x});
  EXPECT_GRAD_OK(FN(squeeze(in[0], 0)), {x});  // size 3: a no-op
  Tensor y = normal({2, 3}, 96);
  EXPECT_GRAD_OK(FN(unsqueeze(in[0], 0)), {y});
  EXPECT_GRAD_OK(FN(unsqueeze(in[0], 1)), {y});
  EXPECT_GRAD_OK(FN(unsqueeze(in[0], -1)), {y});
  EXPECT_GRAD_OK(FN(squeeze(unsqueeze(in[0], 1), 1)), {y});
  // expand then a weighted consumer: each input element collects several gradients.
  Tensor w = normal({2, 3, 4}, 97);
  EXPECT_GRAD_OK(FN(mul(expand(unsqueeze(in[0], -1), {2, 3, 4}), in[1])), {y, w});
}

TEST(GradcheckShape, Contiguous) {
  Tensor x = normal({3, 4}, 98);
  EXPECT_GRAD_OK(FN(contiguous(in[0])), {x});
  EXPECT_GRAD_OK(FN(contiguous(transpose(in[0], 0, 1))), {x});
  EXPECT_GRAD_OK(FN(contiguous(slice(in[0], 1, 0, 4, 2))), {x});
}

TEST(GradcheckShape, CatStack) {
  Tensor a = normal({2, 3}, 101), b = normal({1, 3}, 102), c = normal({2, 2}, 103);
  Tensor d = normal({2, 3}, 104);
  EXPECT_GRAD_OK(FN(cat({in[0], in[1]}, 0)), {a, b});
  EXPECT_GRAD_OK(FN(cat({in[0], in[1], in[0]}, 1)), {a, c});  // a used twice
  EXPECT_GRAD_OK(FN(cat({in[0], in[1]}, -1)), {a, c});
  EXPECT_GRAD_OK(FN(stack({in[0], in[1]}, 0)), {a, d});
  EXPECT_GRAD_OK(FN(stack({in[0], in[1]}, 1)), {a, d});
  EXPECT_GRAD_OK(FN(stack({in[0], in[1], in[0]}, 2)), {a, d});
  // An input that does not require grad mixed in.
  const Tensor fixed = b.detach();
  EXPECT_GRAD_OK(FN(cat({fixed, in[0]}, 0)), {a});
}

TEST(GradcheckShape, RepeatInterleave) {
  Tensor x = normal({2, 3}, 105);
  EXPECT_GRAD_OK(FN(repeat_interleave(in[0], 2, 0)), {x});
  EXPECT_GRAD_OK(FN(repeat_interleave(in[0], 3, 1)), {x});
  EXPECT_GRAD_OK(FN(repeat_interleave(in[0], 2, -1)), {x});
  EXPECT_GRAD_OK(FN(repeat_interleave(in[0], 1, 0)), {x});
}

TEST(GradcheckShape, ToSameDevice) {
  Tensor x = normal({2, 3}, 106);
  EXPECT_GRAD_OK(FN(mul(to(in[0], Device::cpu()), 2.0f)), {x});
}

// ------------------------------------------------------------------- matmul

TEST(GradcheckMatmul, TwoD) {
  Tensor a = normal({3, 4}, 111), b = normal({4, 5}, 112);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {a, b});
}

TEST(GradcheckMatmul, Vectors) {
  Tensor v = normal({4}, 113), m = normal({4, 5}, 114), n = normal({3, 4}, 115);
  Tensor u = normal({4}, 116);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {v, m});  // vector @ matrix
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {n, v});  // matrix @ vector
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {v, u});  // dot product
  Tensor batch = normal({2, 3, 4}, 117);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {batch, v});  // batched @ vector
  Tensor batch_r = normal({2, 4, 3}, 118);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {v, batch_r});  // vector @ batched
}

TEST(GradcheckMatmul, BatchedAndBroadcast) {
  Tensor a = normal({2, 3, 4}, 121), b = normal({2, 4, 2}, 122);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {a, b});
  Tensor w = normal({4, 3}, 123);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {a, w});  // [..,M,K] @ [K,N] (one big GEMM)
  Tensor m = normal({3, 2}, 124);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {m, normal({2, 2, 4}, 125)});  // [M,K] @ [B,K,N]
  // Batch broadcasting on both sides: [2,1,3,4] @ [3,4,2] -> [2,3,3,2].
  Tensor c = normal({2, 1, 3, 4}, 126), d = normal({3, 4, 2}, 127);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {c, d});
  Tensor e = normal({1, 2, 2, 3}, 128), f = normal({2, 1, 3, 2}, 129);
  EXPECT_GRAD_OK(FN(matmul(in[0], in[1])), {e, f});
}

TEST(GradcheckMatmul, TransposedAndStridedViews) {
  // gradcheck clones its inputs contiguous, so views are made inside fn.
  Tensor at = normal({4, 3}, 131), bt = normal({5, 4}, 132);
  EXPECT_GRAD_OK(FN(matmul(transpose(in[0], 0, 1), in[1])), {at, normal({4, 5}, 133)});
  EXPECT_GRAD_OK(FN(matmul(in[0], transpose(in[1], 0, 1))), {normal({3, 4}, 135), bt});
  EXPECT_GRAD_OK(FN(matmul(transpose(in[0], 0, 1), transpose(in[1], 0, 1))), {at, bt});
  // Batched transposes (as in q @ k^T), a permuted batch, and a strided slice.
  Tensor q = normal({2, 3, 4}, 136), k = normal({2, 5, 4}, 137);
  EXPECT_GRAD_OK(FN(matmul(in[0], transpose(in[1], -1, -2))), {q, k});
  Tensor p = normal({3, 2, 4}, 138);
  EXPECT_GRAD_OK(FN(matmul(permute(in[0], {1, 0, 2}), transpose(in[1], -1, -2))), {p, k});
  Tensor wide = normal({3, 8}, 139);
  EXPECT_GRAD_OK(FN(matmul(slice(in[0], 1, 0, 8, 2), in[1])), {wide, normal({4, 2}, 140)});
}

// ------------------------------------------------------- softmax, log_softmax

TEST(GradcheckSoftmax, LastAndMiddleDims) {
  Tensor x = normal({2, 3, 4}, 141, 1.5f);
  for (int64_t d : {-1, 2, 1, 0}) {
    SCOPED_TRACE("dim " + std::to_string(d));
    EXPECT_GRAD_OK(FN(softmax(in[0], d)), {x});
    EXPECT_GRAD_OK(FN(log_softmax(in[0], d)), {x});
  }
  // On a non-contiguous input, and on a 1-D one.
  EXPECT_GRAD_OK(FN(softmax(transpose(in[0], 0, 2), -1)), {x});
  Tensor v = normal({5}, 142);
  EXPECT_GRAD_OK(FN(softmax(in[0], 0)), {v});
  EXPECT_GRAD_OK(FN(log_softmax(in[0], 0)), {v});
}

// -------------------------------------------------------- indexing and masks

TEST(GradcheckIndex, IndexSelectWithRepeatedIndices) {
  Tensor x = normal({5, 3}, 151);
  const Tensor rows = from_ints({0, 2, 2, 4, 0, 2}, {6});
  const Tensor cols = from_ints({2, 0, 2, 1}, {4});
  // The index travels through gradcheck as an unchecked (int64) input.
  EXPECT_GRAD_OK(FN(index_select(in[0], 0, in[1])), {x, rows});
  EXPECT_GRAD_OK(FN(index_select(in[0], 1, in[1])), {x, cols});
  EXPECT_GRAD_OK(FN(index_select(in[0], -1, in[1])), {x, cols});
  Tensor y = normal({2, 4, 3}, 152);
  EXPECT_GRAD_OK(FN(index_select(in[0], 1, from_ints({3, 3, 1}, {3}))), {y});
}

TEST(GradcheckIndex, Embedding) {
  Tensor w = normal({6, 4}, 153);
  const Tensor ids = from_ints({1, 5, 1, 0, 5, 5}, {2, 3});
  EXPECT_GRAD_OK(FN(embedding(in[0], ids)), {w});
  EXPECT_GRAD_OK(FN(embedding(in[0], from_ints({3}, {1}))), {w});
}

TEST(GradcheckIndex, WhereAndMaskedFill) {
  Tensor a = normal({3, 4}, 161), b = normal({4}, 162);
  const Tensor cond = from_bools({true, false, false, true, true, true, false, false, false, true,
                                  true, false},
                                 {3, 4});
  EXPECT_GRAD_OK(FN(where(cond, in[0], in[1])), {a, b});
  const Tensor row_cond = from_bools({true, false, true, false}, {4});  // broadcast condition
  EXPECT_GRAD_OK(FN(where(row_cond, in[0], in[1])), {a, b});
  const Tensor mask = from_bools({false, true, true, false}, {1, 4});
  EXPECT_GRAD_OK(FN(masked_fill(in[0], mask, -1e9f)), {a});
  EXPECT_GRAD_OK(FN(masked_fill(in[0], cond, 3.0f)), {a});
}

TEST(GradcheckIndex, TrilTriu) {
  Tensor sq = normal({2, 4, 4}, 171), wide = normal({3, 5}, 172);
  for (int64_t k : {0, 1, -1}) {
    SCOPED_TRACE("diagonal " + std::to_string(k));
    EXPECT_GRAD_OK(FN(tril(in[0], k)), {sq});
    EXPECT_GRAD_OK(FN(triu(in[0], k)), {sq});
    EXPECT_GRAD_OK(FN(tril(in[0], k)), {wide});
    EXPECT_GRAD_OK(FN(triu(in[0], k)), {wide});
  }
}

TEST(GradcheckIndex, Cumsum) {
  Tensor x = normal({3, 4}, 181);
  EXPECT_GRAD_OK(FN(cumsum(in[0], 0)), {x});
  EXPECT_GRAD_OK(FN(cumsum(in[0], -1)), {x});
  EXPECT_GRAD_OK(FN(cumsum(in[0], 1)), {x});
  Tensor y = normal({2, 3, 4}, 182);
  EXPECT_GRAD_OK(FN(cumsum(in[0], 1)), {y});
  EXPECT_GRAD_OK(FN(cumsum(transpose(in[0], 0, 2), 0)), {y});
}

// ------------------------------------------------------------- fused layers

TEST(GradcheckFused, LayerNormRmsNormCrossEntropy) {
  Tensor x = normal({3, 5}, 191), w = normal({5}, 192, 0.5f, 1.0f), b = normal({5}, 193);
  EXPECT_GRAD_OK(FN(layer_norm(in[0], in[1], in[2])), {x, w, b});
  EXPECT_GRAD_OK(FN(layer_norm(in[0], Tensor(), Tensor())), {x});
  EXPECT_GRAD_OK(FN(rms_norm(in[0], in[1])), {x, w});
  EXPECT_GRAD_OK(FN(rms_norm(in[0], Tensor())), {x});
  Tensor logits = normal({2, 3, 4}, 194, 2.0f);
  const Tensor targets = from_ints({0, 3, 3, 1, 2, 0}, {2, 3});
  EXPECT_GRAD_OK(FN(cross_entropy(in[0], targets)), {logits});
}

// ----------------------------------------------------------------- composites

TEST(GradcheckComposite, CausalAttentionHead) {
  // softmax(mask(q k^T / sqrt(d))) v with the mask from tril: strided views,
  // broadcasting, masked_fill and softmax gradients all flow through one graph.
  const int64_t T = 4, D = 3;
  Tensor q = normal({2, T, D}, 201), k = normal({2, T, D}, 202), v = normal({2, T, D}, 203);
  const Tensor causal = eq(tril(ones({T, T})), 0.0);
  auto head = FN(matmul(
      softmax(masked_fill(matmul(in[0], transpose(in[1], -1, -2)) / std::sqrt(float(D)), causal,
                          -1e9f),
              -1),
      in[2]));
  EXPECT_GRAD_OK(head, {q, k, v});
}

TEST(GradcheckComposite, NormalisedGeluMlpWithResidual) {
  Tensor x = normal({3, 4}, 211), w1 = normal({4, 6}, 212, 0.5f), w2 = normal({6, 4}, 213, 0.5f);
  auto block = FN(add(in[0], matmul(gelu(matmul(layer_norm(in[0], Tensor(), Tensor()), in[1])),
                                    in[2])));
  EXPECT_GRAD_OK(block, {x, w1, w2});
}
