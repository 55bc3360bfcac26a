// Chapter 03, basic suite: the norms on numbers checked by hand, the two
// ways BatchNorm breaks a language model (and LayerNorm does not), the
// pre-norm and post-norm wiring with toy sublayers, the equivalence with the
// library's transformer block, and the classic mistakes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attention/multi_head.h"
#include "autograd/ops.h"
#include "nn/gpt.h"
#include "nn/layers.h"
#include "norms_blocks.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// Largest |a - b| over the elements of slice [from, to) of the flat data.
double max_diff(const std::vector<float>& a, const std::vector<float>& b, std::size_t from,
                std::size_t to) {
  double m = 0;
  for (std::size_t i = from; i < to; ++i) m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// Toy sublayers with obvious numbers: see the README's wiring table.
Tensor halve(const Tensor& t) { return mul(t, 0.5f); }
Tensor plus_one(const Tensor& t) { return add(t, 1.0f); }
Tensor twice(const Tensor& t) { return mul(t, 2.0f); }
Tensor thrice(const Tensor& t) { return mul(t, 3.0f); }

const Tensor kNone;  // an undefined weight or bias

}  // namespace

// ----------------------------------------------------------- LayerNorm

TEST(LayerNorm, HandValues) {
  // [1, 2, 3, 4]: mean 2.5, variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25.
  // (x - 2.5) / sqrt(1.25) = [-1.3416, -0.4472, 0.4472, 1.3416].
  EXPECT_TRUE(close("layer_norm([1, 2, 3, 4])",
                    lesson03::layer_norm(from_vector({1, 2, 3, 4}, {1, 4}), kNone, kNone),
                    {-1.3416354, -0.4472118, 0.4472118, 1.3416354}, {1, 4}));
}

TEST(LayerNorm, WeightAndBias) {
  // Normalised values times weight [1, 2, 1, 2] plus bias [0, 0, 1, 1].
  const Tensor y = lesson03::layer_norm(from_vector({1, 2, 3, 4}, {1, 4}),
                                        from_vector({1, 2, 1, 2}, {4}), from_vector({0, 0, 1, 1}, {4}));
  EXPECT_TRUE(close("layer_norm([1, 2, 3, 4]) * w + b", y, {-1.3416354, -0.8944236, 1.4472118, 3.6832708},
                    {1, 4}));
}

TEST(LayerNorm, EveryTokenGetsMeanZeroAndVarianceOne) {
  const Tensor x = add(random_tensor({2, 3, 8}, 1, 3.0f), 5.0f);
  const Tensor y = lesson03::layer_norm(x, kNone, kNone);
  ASSERT_EQ(y.shape(), x.shape()) << "layer_norm must keep the input's shape";
  EXPECT_TRUE(close("mean over the last dim", mean(y, {-1}), std::vector<double>(6, 0.0), {2, 3}, 1e-5));
  EXPECT_TRUE(close("variance (biased) over the last dim", var(y, {-1}, 0), std::vector<double>(6, 1.0),
                    {2, 3}, 1e-4));
}

// ------------------------------------------------------------- RMSNorm

TEST(RMSNorm, HandValues) {
  // mean(x^2) = (1 + 4 + 9 + 16) / 4 = 7.5, rms = 2.7386:
  // [1, 2, 3, 4] / 2.7386 = [0.3651, 0.7303, 1.0954, 1.4606].
  EXPECT_TRUE(close("rms_norm([1, 2, 3, 4])", lesson03::rms_norm(from_vector({1, 2, 3, 4}, {1, 4}), kNone),
                    {0.3651481, 0.7302963, 1.0954444, 1.4605925}, {1, 4}));
  EXPECT_TRUE(close("rms_norm([1, 2, 3, 4]) * [2, 1, 1, 0]",
                    lesson03::rms_norm(from_vector({1, 2, 3, 4}, {1, 4}), from_vector({2, 1, 1, 0}, {4})),
                    {0.7302963, 0.7302963, 1.0954444, 0}, {1, 4}));
}

TEST(RMSNorm, DoesNotCentre) {
  // A constant vector: LayerNorm maps it to 0, RMSNorm to 1 (2 / rms 2).
  const Tensor x = from_vector({2, 2, 2, 2}, {1, 4});
  EXPECT_TRUE(close("rms_norm([2, 2, 2, 2])", lesson03::rms_norm(x, kNone), {1, 1, 1, 1}, {1, 4}));
  EXPECT_TRUE(close("layer_norm([2, 2, 2, 2])", lesson03::layer_norm(x, kNone, kNone), {0, 0, 0, 0},
                    {1, 4}));
}

// ----------------------------------------------------------- BatchNorm

TEST(BatchNorm, HandValues) {
  // [N = 2, C = 2]: channel 0 = {1, 3} (mean 2, var 1), channel 1 = {10, 30}
  // (mean 20, var 100): both become {-1, 1}.
  EXPECT_TRUE(close("batch_norm([[1, 10], [3, 30]])",
                    lesson03::batch_norm(from_vector({1, 10, 3, 30}, {2, 2})), {-1, -1, 1, 1}, {2, 2}));
  // [B = 2, T = 2, C = 1]: one channel over all four positions {1, 3, 2, 6}:
  // mean 3, var (4 + 0 + 1 + 9) / 4 = 3.5.
  EXPECT_TRUE(close("batch_norm of [2, 2, 1]", lesson03::batch_norm(from_vector({1, 3, 2, 6}, {2, 2, 1})),
                    {-1.0690434, 0, -0.5345217, 1.6035652}, {2, 2, 1}))
      << "for [B, T, C], each channel's statistics come from all B * T positions";
}

TEST(WhyNotBatchNorm, BatchNormCouplesTheExamplesOfABatch) {
  // Change example 1 only. BatchNorm's output for example 0 moves (its
  // statistics include example 1); LayerNorm's does not.
  const int64_t B = 4, T = 6, C = 8;
  const Tensor x = random_tensor({B, T, C}, 2);
  const Tensor x2 = where(from_bools({0, 1, 0, 0}, {B, 1, 1}), random_tensor({B, T, C}, 3, 4.0f), x);
  const std::size_t ex0 = T * C;  // example 0 is the first T * C numbers
  const double bn = max_diff(lesson03::batch_norm(x).to_vector(), lesson03::batch_norm(x2).to_vector(), 0, ex0);
  const double ln = max_diff(lesson03::layer_norm(x, kNone, kNone).to_vector(),
                             lesson03::layer_norm(x2, kNone, kNone).to_vector(), 0, ex0);
  EXPECT_GT(bn, 1e-2) << "your batch_norm output for example 0 did not change when example 1 did: "
                         "BatchNorm's per-channel statistics must come from the whole batch";
  EXPECT_EQ(ln, 0.0) << "your layer_norm output for example 0 changed by " << ln
                     << " when only example 1 changed: LayerNorm normalises each token over its "
                        "own C features, nothing else";
}

TEST(WhyNotBatchNorm, BatchNormLeaksTheFutureIntoThePast) {
  // Change the LAST token of every sequence. With BatchNorm, the output at
  // t = 0 moves: a causal language model would see the future through the
  // normalisation statistics. LayerNorm's t = 0 output cannot move.
  const int64_t B = 2, T = 5, C = 4;
  const Tensor x = random_tensor({B, T, C}, 4);
  const Tensor x2 = where(from_bools({0, 0, 0, 0, 1}, {1, T, 1}), random_tensor({B, T, C}, 5, 4.0f), x);
  const std::vector<float> bn1 = lesson03::batch_norm(x).to_vector(), bn2 = lesson03::batch_norm(x2).to_vector();
  const std::vector<float> ln1 = lesson03::layer_norm(x, kNone, kNone).to_vector(),
                           ln2 = lesson03::layer_norm(x2, kNone, kNone).to_vector();
  EXPECT_GT(max_diff(bn1, bn2, 0, C), 1e-2)
      << "your batch_norm output at token 0 did not react to token 4: its statistics should span "
         "every position of the batch (B and T)";
  for (int64_t b = 0; b < B; ++b)
    EXPECT_EQ(max_diff(ln1, ln2, b * T * C, b * T * C + (T - 1) * C), 0.0)
        << "your layer_norm output at tokens 0..3 of example " << b
        << " changed when only token 4 changed: normalise over the last dim only";
}

// ---------------------------------------------------- residual wiring

TEST(Residual, PreAndPostNormByHand) {
  // norm = x / 2, f = x + 1 (toy sublayers with obvious numbers).
  //   pre:  x + f(norm(x)) = x + (x/2 + 1)   = 1.5 x + 1  -> [2.5, 4]
  //   post: norm(x + f(x)) = (x + x + 1) / 2 = x + 0.5    -> [1.5, 2.5]
  const Tensor x = from_vector({1, 2}, {1, 1, 2});
  EXPECT_TRUE(close("pre_norm_residual(x = [1, 2], norm = x/2, f = x+1)",
                    lesson03::pre_norm_residual(x, halve, plus_one), {2.5, 4}, {1, 1, 2}));
  EXPECT_TRUE(close("post_norm_residual(x = [1, 2], norm = x/2, f = x+1)",
                    lesson03::post_norm_residual(x, halve, plus_one), {1.5, 2.5}, {1, 1, 2}));
}

TEST(Residual, ZeroBranchLeavesPreNormStreamUntouched) {
  // A branch that outputs 0: pre-norm returns x itself (the identity path),
  // post-norm returns norm(x).
  const Tensor x = random_tensor({2, 3, 4}, 6, 3.0f);
  auto zero = [](const Tensor& t) { return mul(t, 0.0f); };
  auto ln = [](const Tensor& t) { return attn::layer_norm(t, Tensor(), Tensor()); };
  EXPECT_TRUE(close("pre-norm with a zero branch", lesson03::pre_norm_residual(x, ln, zero),
                    values(x), {2, 3, 4}));
  EXPECT_TRUE(close("post-norm with a zero branch", lesson03::post_norm_residual(x, ln, zero),
                    values(ln(x)), {2, 3, 4}));
}

TEST(Block, PreAndPostNormByHand) {
  // norm1 = x/2, attn = x+1, norm2 = 2x, mlp = 3x:
  //   pre:  h = x + (x/2 + 1) = 1.5x + 1;   out = h + 3(2h) = 7h = 10.5x + 7
  //   post: h = (x + x + 1)/2 = x + 0.5;    out = 2(h + 3h) = 8h = 8x + 4
  const Tensor x = from_vector({1, 2}, {1, 1, 2});
  EXPECT_TRUE(close("pre-norm block", lesson03::block_forward(x, halve, plus_one, twice, thrice, true),
                    {17.5, 28}, {1, 1, 2}));
  EXPECT_TRUE(close("post-norm block", lesson03::block_forward(x, halve, plus_one, twice, thrice, false),
                    {12, 20}, {1, 1, 2}));
}

TEST(Block, SameAsTheLibraryBlock) {
  // Build the library's transformer block, copy its norms, attention and
  // MLP out by their parameter names, and wire them with block_forward.
  for (const char* position : {"pre", "post"}) {
    GPTConfig c;
    c.vocab = 10;
    c.block_size = 8;
    c.layers = 1;
    c.heads = 2;
    c.embd = 8;
    c.norm_position = position;
    Generator g(1), g2(3);
    DropoutSource dg{2, 0, 0};
    Block block(c, g, dg);
    AttentionConfig ac;
    ac.embd = 8;
    ac.heads = 2;
    ac.block_size = 8;
    Norm norm1("layernorm", 8), norm2("layernorm", 8);
    MultiHeadAttention mha(ac, 2, g2);
    MLP mlp(8, 1, true, g2);
    // Random weights of a healthy size everywhere (the default init is tiny).
    std::map<std::string, Tensor> state;
    uint64_t seed = 10;
    for (auto& [name, p] : block.named_parameters()) state[name] = random_tensor(p->shape(), seed++, 0.5f);
    block.load_state_dict(state);
    auto part = [&](Module& m, const std::string& prefix) {
      std::map<std::string, Tensor> sub;
      for (auto& [name, t] : state)
        if (name.rfind(prefix, 0) == 0) sub[name.substr(prefix.size())] = t;
      m.load_state_dict(sub);
    };
    part(norm1, "norm1.");
    part(norm2, "norm2.");
    part(mha, "attn.");
    part(mlp, "mlp.");
    const Tensor x = random_tensor({2, 5, 8}, 4);
    const Tensor mine = lesson03::block_forward(
        x, [&](const Tensor& t) { return norm1.forward(t); }, [&](const Tensor& t) { return mha.forward(t); },
        [&](const Tensor& t) { return norm2.forward(t); }, [&](const Tensor& t) { return mlp.forward(t); },
        std::string(position) == "pre");
    EXPECT_TRUE(close(std::string(position) + "-norm block_forward vs attn::Block", mine,
                      values(block.forward(x)), {2, 5, 8}, 1e-4));
  }
}

// ------------------------------------------------------------- mistakes

TEST(Mistakes, UnbiasedVarianceInLayerNorm) {
  // LayerNorm divides the squared deviations by C. torch.var (and attn::var)
  // divide by C - 1 by default; with C = 4 that shrinks the output by
  // sqrt(3/4) = 0.866.
  const Tensor y = lesson03::layer_norm(from_vector({1, 2, 3, 4}, {1, 4}), kNone, kNone);
  const std::vector<float> v = y.to_vector();
  const double ratio = v[3] / 1.3416354;
  EXPECT_TRUE(close("layer_norm([1, 2, 3, 4])", y, {-1.3416354, -0.4472118, 0.4472118, 1.3416354}, {1, 4}))
      << (std::fabs(ratio - std::sqrt(0.75)) < 1e-3
              ? "your output is 0.866 = sqrt((C-1)/C) times the expected one: you used the unbiased "
                "variance (divide by C - 1). LayerNorm divides by C: var(x, {-1}, /*correction=*/0, "
                "true), or mean(square(x - mu), {-1}, true)"
              : "");
}

TEST(Mistakes, NormalisedOverWrongDim) {
  // [B = 2, T = 3, C = 4], each token with its own offset and scale. After
  // LayerNorm every token (row over C) has mean 0 and variance 1.
  const Tensor x = add(mul(random_tensor({2, 3, 4}, 7), from_vector({1, 5, 0.5f, 2, 9, 3}, {2, 3, 1})),
                       from_vector({0, 10, -4, 7, 1, 2}, {2, 3, 1}));
  const Tensor y = lesson03::layer_norm(x, kNone, kNone);
  ASSERT_EQ(y.shape(), x.shape());
  auto all_near_zero = [](const Tensor& t) {
    for (float v : t.to_vector())
      if (std::fabs(v) > 1e-4) return false;
    return true;
  };
  // The most specific diagnosis wins (mean 0 over dim 0 implies it over {0, 1}).
  std::string hint;
  if (all_near_zero(mean(y, {0, 1}))) hint = " (your output has mean 0 over dims 0 and 1: that is BatchNorm)";
  if (all_near_zero(mean(y, {1}))) hint = " (your output has mean 0 over dim 1, the time steps)";
  if (all_near_zero(mean(y, {0}))) hint = " (your output has mean 0 over dim 0, the batch)";
  EXPECT_TRUE(close("per-token mean of layer_norm(x)", mean(y, {-1}), std::vector<double>(6, 0.0), {2, 3}, 1e-4))
      << "LayerNorm normalises each token over its own C features: reduce over the last dim (-1) "
         "with keepdim=true" << hint;
}

TEST(Mistakes, PreNormAlsoNormalisesTheResidual) {
  // Writing   x = norm(x); x = x + f(x)   replaces the residual stream by its
  // normalised version: the identity path is gone. With norm = x/2,
  // f = x + 1 that gives x + 1 instead of 1.5x + 1.
  const Tensor x = from_vector({1, 2}, {1, 1, 2});
  const Tensor y = lesson03::pre_norm_residual(x, halve, plus_one);
  const bool overwrote = close("", y, {2, 3}, {1, 1, 2});
  EXPECT_TRUE(close("pre_norm_residual(x = [1, 2], norm = x/2, f = x+1)", y, {2.5, 4}, {1, 1, 2}))
      << (overwrote ? "you added f(norm(x)) to norm(x) instead of to x: in pre-norm only the branch "
                      "sees the normalised input; the residual carries x itself"
                    : "");
}

TEST(Mistakes, RmsNormSubtractsTheMean) {
  // RMSNorm has no centring: rms_norm([1, 2, 3, 4]) is all positive.
  const Tensor y = lesson03::rms_norm(from_vector({1, 2, 3, 4}, {1, 4}), kNone);
  const bool centred = close("", y, {-1.3416354, -0.4472118, 0.4472118, 1.3416354}, {1, 4});
  EXPECT_TRUE(close("rms_norm([1, 2, 3, 4])", y, {0.3651481, 0.7302963, 1.0954444, 1.4605925}, {1, 4}))
      << (centred ? "your rms_norm subtracted the mean: that is LayerNorm. RMSNorm divides x by "
                    "sqrt(mean(x^2) + eps) and nothing else"
                  : "");
}
