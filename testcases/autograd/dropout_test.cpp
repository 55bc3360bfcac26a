// Dropout from Philox (core/philox.h, autograd/ops_dropout.cpp):
//   - the generator against Random123's known answers, and the mapping of
//     32 bits to a float in [0, 1);
//   - the op against an oracle that recomputes every keep decision with its
//     own Philox (testcases/philox_oracle.h, from the paper's description), so a
//     wrong counter layout, a swapped key, an off-by-one group or a wrong
//     scale fails;
//   - a sample's mask depends on its place in the data order, not its row
//     in this tensor (what data-parallel ranks rely on);
//   - the backward regenerates the same mask (gradcheck), dropout_add is
//     residual + dropout, the rate is about p, thread counts agree, and bad
//     inputs name the op and the value.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "core/philox.h"
#include "core/threads.h"
#include "testcases/philox_oracle.h"

namespace {

using namespace attn;

std::string hex(const philox::Words& w) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x %08x %08x %08x", w.w[0], w.w[1], w.w[2], w.w[3]);
  return buf;
}

TEST(Philox, KnownAnswersFromRandom123) {
  EXPECT_EQ(hex(philox::philox4x32_10({{0, 0, 0, 0}}, 0, 0)), "6627e8d5 e169c58d bc57ac4c 9b00dbd8");
  EXPECT_EQ(hex(philox::philox4x32_10({{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u)),
            "408f276d 41c83b0e a20bc7c6 6d5451fd");
  EXPECT_EQ(hex(philox::philox4x32_10({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
                                      0xa4093822, 0x299f31d0)),
            "d16cfe09 94fdcceb 5001e420 24126ea1");
}

TEST(Philox, UniformIsTheTop24BitsTimesTwoToTheMinus24) {
  EXPECT_EQ(philox::uniform(0), 0.0f);
  EXPECT_EQ(philox::uniform(0xFFu), 0.0f);             // the low 8 bits are dropped
  EXPECT_EQ(philox::uniform(0x100u), 1.0f / 16777216);  // the smallest step, 2^-24
  EXPECT_EQ(philox::uniform(0x80000000u), 0.5f);
  EXPECT_EQ(philox::uniform(0xFFFFFFFFu), 1.0f - 1.0f / 16777216);  // never 1
  // bits_at picks word e % 4 of group e / 4, for 64-bit element indices.
  const philox::Stream s{0x1234567890abcdefULL, 77};
  const uint64_t e = (uint64_t{5} << 32) + 6;  // past 2^32
  EXPECT_EQ(philox::bits_at(s, 3, e), philox::group_at(s, 3, e >> 2).w[2]);
  EXPECT_EQ(philox::keep(s, 3, e, 0.3f), philox_oracle::keep(s.seed, s.offset, 3, e, 0.3f));
}

TEST(Dropout, EveryDecisionMatchesTheOracle) {
  const philox::Stream s{0xfeedbeefcafeULL, 5};
  for (int64_t row_len : {1, 3, 4, 7, 130}) {
    Generator g(1);
    const Tensor x = randn({6, row_len}, g);
    const float p = 0.3f;
    const auto y = dropout(x, p, s, 40).to_vector();
    const auto xs = x.to_vector();
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t e = 0; e < row_len; ++e) {
        const int64_t i = r * row_len + e;
        const float want = philox_oracle::keep(s.seed, s.offset, 40 + r, e, p) ? xs[i] / (1 - p) : 0.0f;
        ASSERT_FLOAT_EQ(y[i], want) << "row " << r << " element " << e << " of rows of " << row_len;
      }
  }
}

TEST(Dropout, ASamplesMaskFollowsItsPlaceInTheDataOrder) {
  // Rows 2..4 of a batch that starts at sample 10 equal a batch of those
  // three rows that starts at sample 12: a rank holding only some rows
  // draws what one process holding all of them draws.
  Generator g(2);
  const Tensor x = randn({5, 3, 8}, g);
  const philox::Stream s{42, 9};
  const Tensor whole = dropout(x, 0.5f, s, 10);
  const Tensor part = dropout(slice(x, 0, 2, 5), 0.5f, s, 12);
  EXPECT_EQ(slice(whole, 0, 2, 5).to_vector(), part.to_vector());
  // Another offset, or another seed, is another mask.
  EXPECT_NE(dropout(x, 0.5f, {42, 10}, 10).to_vector(), whole.to_vector());
  EXPECT_NE(dropout(x, 0.5f, {43, 9}, 10).to_vector(), whole.to_vector());
}

TEST(Dropout, KeepsAboutOneMinusP) {
  const Tensor x = ones({100, 1000});
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const auto y = dropout(x, p, {7, 0}, 0).to_vector();
    double kept = 0;
    for (float v : y) kept += v != 0;
    // 1e5 Bernoulli draws: the standard deviation of the rate is < 0.0016.
    EXPECT_NEAR(kept / y.size(), 1 - p, 0.01) << "p = " << p;
  }
}

TEST(Dropout, GradientsRegenerateTheMask) {
  Generator g(3);
  Tensor x = randn({4, 9}, g), r = randn({4, 9}, g);
  x.set_requires_grad();
  r.set_requires_grad();
  const philox::Stream s{11, 2};
  auto result = gradcheck([&](const std::vector<Tensor>& in) { return dropout(in[0], 0.4f, s, 3); }, {x});
  EXPECT_TRUE(result.ok) << result.message;
  result = gradcheck([&](const std::vector<Tensor>& in) { return dropout_add(in[1], in[0], 0.4f, s, 3); },
                     {x, r});
  EXPECT_TRUE(result.ok) << result.message;
  // dropout_add is residual + dropout, exactly.
  EXPECT_EQ(dropout_add(r, x, 0.4f, s, 3).to_vector(), add(r, dropout(x, 0.4f, s, 3)).to_vector());
}

TEST(Dropout, SameOnAnyThreadCount) {
  const int saved = num_threads();
  Generator g(4);
  const Tensor x = randn({64, 3000}, g);
  set_num_threads(1);
  const auto one = dropout(x, 0.2f, {5, 6}, 7).to_vector();
  set_num_threads(3);
  const auto three = dropout(x, 0.2f, {5, 6}, 7).to_vector();
  set_num_threads(saved);
  EXPECT_EQ(one, three);
}

TEST(Dropout, BadInputsNameTheOpAndValue) {
  const Tensor x = ones({2, 3});
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message([&] { dropout(x, 1.0f, {1, 0}, 0); }).find("dropout: p must be in [0, 1), got 1"),
            std::string::npos);
  EXPECT_NE(message([&] { dropout(x, -0.1f, {1, 0}, 0); }).find("got -0.1"), std::string::npos);
  EXPECT_NE(message([&] { dropout(x, 0.1f, {1, 0}, -1); }).find("first_sample must be >= 0, got -1"),
            std::string::npos);
  EXPECT_NE(message([&] { dropout_add(ones({3, 2}), x, 0.1f, {1, 0}, 0); })
                .find("dropout_add: residual [3,2] and x [2,3] must have the same shape"),
            std::string::npos);
}

}  // namespace
