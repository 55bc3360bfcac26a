// attnlab's random numbers: reproducible streams, the exact bits of
// xoshiro256** seeded by splitmix64 (re-implemented here from their published
// definitions, https://prng.di.unimi.it/), the float/normal transforms, the
// statistics of rand/randn, below(n), and checkpointing the state.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/ops.h"
#include "core/random.h"

namespace {

using attn::Generator;
using attn::Tensor;

// ---- the reference: Vigna's splitmix64 and xoshiro256** ----

uint64_t ref_splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

struct RefXoshiro {
  uint64_t s[4];
  explicit RefXoshiro(uint64_t seed) {
    for (uint64_t& w : s) w = ref_splitmix64(seed);
  }
  uint64_t next() {
    const uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
  }
  // 24 random bits scaled by 2^-24.
  float uniform() { return static_cast<float>(next() >> 40) * 0x1p-24f; }
  // Box-Muller: u1 in (0, 1], u2 in [0, 1).
  float normal() {
    const double u1 = (static_cast<double>(next() >> 11) + 1.0) * 0x1p-53;
    const double u2 = static_cast<double>(next() >> 11) * 0x1p-53;
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
};

TEST(Random, ReferenceSplitmixMatchesPublishedValues) {
  // The first outputs of splitmix64 from state 0, a widely published vector:
  // anchors the reference itself.
  uint64_t x = 0;
  EXPECT_EQ(ref_splitmix64(x), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(ref_splitmix64(x), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(ref_splitmix64(x), 0x06c45d188009454fULL);
}

TEST(Random, SeedingFillsTheStateWithSplitmix) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{1}, uint64_t{42}, ~uint64_t{0}}) {
    RefXoshiro ref(seed);
    const std::array<uint64_t, 4> st = Generator(seed).state();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(st[i], ref.s[i]) << "seed " << seed << " word " << i;
  }
}

TEST(Random, NextU64IsXoshiro256StarStar) {
  for (uint64_t seed : {uint64_t{0}, uint64_t{7}, uint64_t{123456789}}) {
    Generator g(seed);
    RefXoshiro ref(seed);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(g.next_u64(), ref.next()) << "seed " << seed << ", draw " << i;
  }
}

TEST(Random, UniformAndNormalTransforms) {
  Generator g(2024);
  RefXoshiro ref(2024);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(g.uniform(), ref.uniform()) << "uniform draw " << i;
    const float n = g.normal(), r = ref.normal();
    // The same double formula; allow one float ulp for libm differences.
    ASSERT_NEAR(n, r, 2e-7f * (1 + std::fabs(r))) << "normal draw " << i;
  }
  // uniform() uses exactly one 64-bit draw, normal() exactly two.
  Generator a(5), b(5);
  a.uniform();
  b.next_u64();
  EXPECT_EQ(a.next_u64(), b.next_u64());
  a.normal();
  b.next_u64();
  b.next_u64();
  EXPECT_EQ(a.next_u64(), b.next_u64());
}

TEST(Random, SameSeedSameNumbersDifferentSeedsDiffer) {
  Generator a(99), b(99), c(100);
  std::vector<uint64_t> va, vb, vc;
  for (int i = 0; i < 64; ++i) va.push_back(a.next_u64()), vb.push_back(b.next_u64()), vc.push_back(c.next_u64());
  EXPECT_EQ(va, vb);
  int same = 0;
  for (int i = 0; i < 64; ++i) same += va[i] == vc[i];
  EXPECT_EQ(same, 0);
  // rand/randn with equal generators give equal tensors; the values are the
  // generator's uniform()/normal() stream in row-major order.
  Generator g1(3), g2(3), g3(4);
  const std::vector<float> r1 = attn::rand({4, 5}, g1).to_vector();
  EXPECT_EQ(r1, attn::rand({4, 5}, g2).to_vector());
  EXPECT_NE(r1, attn::rand({4, 5}, g3).to_vector());
  RefXoshiro ref(3);
  for (size_t i = 0; i < r1.size(); ++i) EXPECT_EQ(r1[i], ref.uniform()) << "rand element " << i;
  Generator g4(8);
  RefXoshiro ref8(8);
  const std::vector<float> n1 = attn::randn({3, 3}, g4).to_vector();
  for (size_t i = 0; i < n1.size(); ++i) EXPECT_NEAR(n1[i], ref8.normal(), 1e-6) << "randn element " << i;
  // Re-seeding restarts the stream.
  Generator g5(1);
  g5.next_u64();
  g5.seed_with(99);
  EXPECT_EQ(g5.next_u64(), va[0]);
}

TEST(Random, RandAndRandnStatistics) {
  Generator g(77);
  const int n = 100000;
  const std::vector<float> u = attn::rand({n}, g).to_vector();
  double mean = 0, sq = 0;
  float lo = 1, hi = 0;
  for (float x : u) mean += x, lo = std::min(lo, x), hi = std::max(hi, x);
  mean /= n;
  for (float x : u) sq += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0.5, 0.005);
  EXPECT_NEAR(sq / n, 1.0 / 12.0, 0.003);
  EXPECT_GE(lo, 0.0f);
  EXPECT_LT(hi, 1.0f);
  EXPECT_LT(lo, 1e-3f);
  EXPECT_GT(hi, 0.999f);
  const std::vector<float> z = attn::randn({n}, g).to_vector();
  mean = 0, sq = 0;
  int tails = 0;
  for (float x : z) mean += x, tails += std::fabs(x) > 2;
  mean /= n;
  for (float x : z) sq += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0.0, 0.015);
  EXPECT_NEAR(sq / n, 1.0, 0.02);
  EXPECT_NEAR(static_cast<double>(tails) / n, 0.0455, 0.004) << "P(|z| > 2)";
  for (float x : z) ASSERT_TRUE(std::isfinite(x));
}

TEST(Random, BelowStaysInRange) {
  Generator g(13);
  for (uint64_t n : {uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{7}, uint64_t{10}, uint64_t{1000003},
                     (uint64_t{1} << 63) + 1, ~uint64_t{0}}) {
    for (int i = 0; i < 2000; ++i) ASSERT_LT(g.below(n), n) << "below(" << n << ")";
  }
  // Roughly uniform over a small range.
  std::vector<int> counts(6, 0);
  for (int i = 0; i < 60000; ++i) ++counts[g.below(6)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  // With no rejection, below(n) is the next draw mod n.
  Generator h(21);
  RefXoshiro ref(21);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(h.below(10), ref.next() % 10);
}

TEST(Random, StateRoundTripResumesTheStream) {
  Generator g(555);
  for (int i = 0; i < 5; ++i) g.next_u64();
  const std::array<uint64_t, 4> saved = g.state();
  std::vector<uint64_t> first;
  for (int i = 0; i < 10; ++i) first.push_back(g.next_u64());
  const float u_first = g.uniform();
  g.set_state(saved);
  std::vector<uint64_t> again;
  for (int i = 0; i < 10; ++i) again.push_back(g.next_u64());
  EXPECT_EQ(again, first);
  EXPECT_EQ(g.uniform(), u_first);
  // A fresh generator given the saved state continues identically.
  Generator other(1);
  other.set_state(saved);
  EXPECT_EQ(other.next_u64(), first[0]);
  // The default generator: manual_seed resets it (state restored after).
  const std::array<uint64_t, 4> old = attn::default_generator().state();
  attn::manual_seed(31);
  const std::vector<float> d = attn::rand({4}).to_vector();
  RefXoshiro ref(31);
  for (float x : d) EXPECT_EQ(x, ref.uniform());
  attn::default_generator().set_state(old);
}

}  // namespace
