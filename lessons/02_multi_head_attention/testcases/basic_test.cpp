// Chapter 02, basic suite: where each number goes when heads are split and
// merged, hand-checked outputs with identity projections, the equivalence
// with the library's module, causality, and the two classic reshaping
// mistakes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "attention/multi_head.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "multi_head_attention.h"
#include "lesson_test.h"

using namespace attn;
using namespace lesson_test;

namespace {

// 0, 1, 2, ... in a tensor of `shape`: every element says where it came from.
Tensor counting(const Shape& shape) { return reshape(arange(0, static_cast<double>(numel(shape))), shape); }

Tensor eye(int64_t n) {
  std::vector<float> v(n * n, 0.0f);
  for (int64_t i = 0; i < n; ++i) v[i * n + i] = 1;
  return from_vector(v, {n, n});
}

// Identity projections and zero biases: q = k = v = x, out = merged heads.
void make_identity(lesson02::MultiHeadAttention& m, int64_t c) {
  std::map<std::string, Tensor> state;
  for (const char* p : {"wq", "wk", "wv", "wo"}) {
    state[std::string(p) + ".weight"] = eye(c);
    state[std::string(p) + ".bias"] = zeros({c});
  }
  m.load_state_dict(state);
}

// What split_heads must give for counting({B, T, C}): out[b,h,t,j] = x[b,t,h*d+j].
std::vector<double> split_expected(int64_t B, int64_t T, int64_t C, int64_t H) {
  const int64_t d = C / H;
  std::vector<double> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t j = 0; j < d; ++j) out.push_back(static_cast<double>((b * T + t) * C + h * d + j));
  return out;
}

// What merge_heads must give for counting({B, H, T, d}): out[b,t,h*d+j] = x[b,h,t,j].
std::vector<double> merge_expected(int64_t B, int64_t H, int64_t T, int64_t d) {
  std::vector<double> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < d; ++j) out.push_back(static_cast<double>(((b * H + h) * T + t) * d + j));
  return out;
}

}  // namespace

// ------------------------------------------------------- split and merge

TEST(SplitHeads, ShapeAndWhereEachFeatureGoes) {
  // x[b, t, :] = 8 features; with 2 heads, head 0 gets features 0..3 of
  // every token and head 1 gets features 4..7.
  const Tensor out = lesson02::split_heads(counting({2, 3, 8}), 2);
  EXPECT_TRUE(close("split_heads(0..47 as [2, 3, 8], heads = 2)", out, split_expected(2, 3, 8, 2),
                    {2, 2, 3, 4}))
      << "out[b, h, t, j] must be x[b, t, h*d + j]";
}

TEST(MergeHeads, ShapeAndWhereEachFeatureGoes) {
  const Tensor out = lesson02::merge_heads(counting({2, 2, 3, 4}));
  EXPECT_TRUE(close("merge_heads(0..47 as [2, 2, 3, 4])", out, merge_expected(2, 2, 3, 4), {2, 3, 8}))
      << "out[b, t, h*d + j] must be x[b, h, t, j]";
  EXPECT_TRUE(out.is_contiguous()) << "merge_heads must return a contiguous [B, T, C] tensor";
}

TEST(SplitHeads, MergeUndoesSplit) {
  const Tensor x = random_tensor({3, 5, 12}, 1);
  for (int64_t heads : {1, 2, 3, 4, 6, 12})
    EXPECT_TRUE(close("merge_heads(split_heads(x, " + std::to_string(heads) + "))",
                      lesson02::merge_heads(lesson02::split_heads(x, heads)),
                      values(x), {3, 5, 12}, 0.0));
}

// ---------------------------------------------------------------- module

TEST(MultiHead, OutputShape) {
  Generator gen(1);
  lesson02::MultiHeadAttention m(12, 3, gen);
  EXPECT_EQ(m.forward(random_tensor({2, 5, 12}, 2)).shape(), (Shape{2, 5, 12}));
}

TEST(MultiHead, OneHeadByHand) {
  // C = 2, one head (d = 2), identity projections: q = k = v = x.
  // Token 1: scores [x1.x0, x1.x1] / sqrt(2) = [0, 0.7071] -> weights
  // [0.3302, 0.6698] -> out = 0.3302 x0 + 0.6698 x1.
  Generator gen(1);
  lesson02::MultiHeadAttention m(2, 1, gen);
  make_identity(m, 2);
  const Tensor x = from_vector({1, 0, /**/ 0, 1}, {1, 2, 2});
  EXPECT_TRUE(close("one head, identity weights", m.forward(x), {1, 0, 0.3302385, 0.6697615}, {1, 2, 2}));
}

TEST(MultiHead, TwoHeadsByHand) {
  // C = 4, two heads of d = 2, identity projections (the README's example).
  // Head 0 sees features 0-1: tokens [1,0] and [0,1] -> token 1 mixes them
  //   0.3302 / 0.6698, as above.
  // Head 1 sees features 2-3: both tokens are [0,1] -> equal scores ->
  //   weights 0.5 / 0.5 -> [0, 1].
  Generator gen(1);
  lesson02::MultiHeadAttention m(4, 2, gen);
  make_identity(m, 4);
  const Tensor x = from_vector({1, 0, 0, 1, /**/ 0, 1, 0, 1}, {1, 2, 4});
  EXPECT_TRUE(close("two heads, identity weights", m.forward(x),
                    {1, 0, 0, 1, /**/ 0.3302385, 0.6697615, 0, 1}, {1, 2, 4}))
      << "each head attends with its own slice of the features; token 1's first two outputs "
         "come from head 0, its last two from head 1";
}

TEST(MultiHead, SameAsTheLibraryModuleWithTheSameWeights) {
  // The parameters are named like attn::MultiHeadAttention's, so the
  // library's weights load into yours; then the outputs must agree.
  AttentionConfig c;
  c.embd = 12;
  c.heads = 3;
  c.block_size = 8;
  Generator g1(5), g2(6);
  MultiHeadAttention reference(c, /*kv_heads=*/3, g1);
  lesson02::MultiHeadAttention mine(12, 3, g2);
  // Weights of a healthy size: the default init (std 0.02) makes every
  // score nearly 0, which would hide a wrong q or k.
  std::map<std::string, Tensor> state;
  uint64_t seed = 50;
  for (auto& [name, p] : reference.named_parameters()) state[name] = random_tensor(p->shape(), seed++, 0.4f);
  reference.load_state_dict(state);
  mine.load_state_dict(state);
  const Tensor x = random_tensor({2, 6, 12}, 7);
  EXPECT_TRUE(close("your MHA vs attn::MultiHeadAttention", mine.forward(x),
                    values(reference.forward(x)), {2, 6, 12}, 1e-4));
}

TEST(MultiHead, TheFutureDoesNotLeakIntoThePast) {
  Generator gen(8);
  lesson02::MultiHeadAttention m(8, 2, gen);
  const Tensor x = random_tensor({1, 5, 8}, 9);
  // Change the last token only.
  const Tensor last = from_bools({0, 0, 0, 0, 1}, {1, 5, 1});
  const Tensor x2 = where(last, random_tensor({1, 5, 8}, 10), x);
  const std::vector<float> a = m.forward(x).to_vector(), b = m.forward(x2).to_vector();
  for (int i = 0; i < 4 * 8; ++i)
    ASSERT_NEAR(a[i], b[i], 1e-6) << "output of token " << i / 8 << " (feature " << i % 8
                                  << ") changed when only token 4 changed: use a causal mask";
}

// -------------------------------------------------------------- mistakes

TEST(Mistakes, MergeHeadsWithoutTransposingBack) {
  // Reshaping [B, H, T, d] straight to [B, T, C] keeps the numbers in head
  // order: the "token 0" row would hold head 0's first tokens, not token 0's
  // heads.
  const int64_t B = 1, H = 2, T = 3, d = 2;
  const Tensor out = lesson02::merge_heads(counting({B, H, T, d}));
  const std::vector<double> want = merge_expected(B, H, T, d);
  std::vector<double> plain(B * H * T * d);
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<double>(i);
  const bool reshaped_only = out.shape() == Shape{B, T, H * d} && close("", out, plain, {B, T, H * d});
  EXPECT_TRUE(close("merge_heads(0..11 as [1, 2, 3, 2])", out, want, {B, T, H * d}))
      << (reshaped_only
              ? "you reshaped [B, H, T, d] straight to [B, T, C]: the memory is still in head "
                "order. Swap heads and T back first: transpose(x, 1, 2), then make it "
                "contiguous and view/reshape to [B, T, C]"
              : "out[b, t, h*d + j] must be x[b, h, t, j]");
}

TEST(Mistakes, SplitHeadsWithWrongView) {
  // Viewing [B, T, C] directly as [B, H, T, d] cuts the flat memory into H
  // blocks of T*d numbers: "head 0" would get whole tokens 0..T/2, not the
  // first d features of every token.
  const int64_t B = 1, T = 4, C = 6, H = 2;
  const Tensor out = lesson02::split_heads(counting({B, T, C}), H);
  std::vector<double> plain(B * T * C);
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<double>(i);
  const bool viewed_directly = out.shape() == Shape{B, H, T, C / H} && close("", out, plain, {B, H, T, C / H});
  EXPECT_TRUE(close("split_heads(0..23 as [1, 4, 6], heads = 2)", out, split_expected(B, T, C, H),
                    {B, H, T, C / H}))
      << (viewed_directly
              ? "you viewed [B, T, C] directly as [B, H, T, d]: that slices the sequence, not the "
                "features. View as [B, T, H, d] first (the features of each token split into "
                "heads), then transpose(x, 1, 2)"
              : "out[b, h, t, j] must be x[b, t, h*d + j]");
}

TEST(Mistakes, ViewAfterTransposeWithoutContiguous) {
  // transpose() only swaps strides; view() needs contiguous memory and says
  // so. PyTorch's fix is .contiguous().view(...), or .reshape(...).
  const Tensor y = counting({2, 2, 3, 2});
  try {
    lesson02::merge_heads(y);
  } catch (const NotImplemented&) {
    throw;
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find("not contiguous") != std::string::npos)
      FAIL() << "merge_heads threw: " << msg
             << "\nAfter transpose(x, 1, 2) the tensor is a strided view; call contiguous() "
                "before view(), or use reshape() which copies when it has to";
    FAIL() << "merge_heads threw: " << msg;
  }
}
