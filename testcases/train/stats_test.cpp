// The statistics behind compare's significance sentences, against values
// known independently: closed forms and published t-table entries.
#include <gtest/gtest.h>

#include <cmath>
#include <exception>
#include <string>
#include <vector>

#include "train/stats.h"

using namespace attn::stats;

TEST(Stats, MeanAndSampleStandardDeviation) {
  const Summary s = summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_DOUBLE_EQ(s.mean, 5);
  EXPECT_NEAR(s.std, std::sqrt(32.0 / 7), 1e-12);  // divided by n - 1
  EXPECT_EQ(summarize({3.5}).std, 0);
  EXPECT_EQ(summarize({}).n, 0);
}

TEST(Stats, IncompleteBetaMatchesClosedForms) {
  for (double x : {0.0, 0.1, 0.37, 0.5, 0.93, 1.0}) {
    EXPECT_NEAR(regularized_incomplete_beta(1, 1, x), x, 1e-13);                  // uniform
    EXPECT_NEAR(regularized_incomplete_beta(3, 1, x), x * x * x, 1e-13);          // x^a
    EXPECT_NEAR(regularized_incomplete_beta(1, 4, x), 1 - std::pow(1 - x, 4), 1e-13);
  }
  EXPECT_NEAR(regularized_incomplete_beta(7.5, 7.5, 0.5), 0.5, 1e-13);  // symmetric
  // I_x(2, 2) = 3x^2 - 2x^3
  EXPECT_NEAR(regularized_incomplete_beta(2, 2, 0.3), 3 * 0.09 - 2 * 0.027, 1e-13);
}

TEST(Stats, StudentTPValuesMatchTables) {
  // The brief's two values and the 5 % two-sided critical values of t tables.
  EXPECT_NEAR(student_t_two_sided_p(2.0, 5), 0.1019, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(2.228, 10), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(12.706, 1), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(4.303, 2), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(2.571, 5), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(2.042, 30), 0.05, 1e-4);
  EXPECT_NEAR(student_t_two_sided_p(3.169, 10), 0.01, 1e-4);
  // Closed forms: df = 1 is the Cauchy distribution, df = 2 has one too.
  EXPECT_NEAR(student_t_two_sided_p(1.0, 1), 0.5, 1e-12);
  EXPECT_NEAR(student_t_two_sided_p(2.0, 2), 1 - 2 / std::sqrt(6.0), 1e-12);
  // Many degrees of freedom: the normal distribution's 1.96.
  EXPECT_NEAR(student_t_two_sided_p(1.959964, 1e7), 0.05, 1e-5);
  EXPECT_DOUBLE_EQ(student_t_two_sided_p(0, 4), 1);
  EXPECT_EQ(student_t_two_sided_p(INFINITY, 4), 0);
  EXPECT_NEAR(student_t_cdf(2.0, 5), 1 - 0.1019 / 2, 1e-4);
  EXPECT_NEAR(student_t_cdf(-2.0, 5), 0.1019 / 2, 1e-4);
}

TEST(Stats, WelchTTestByHand) {
  // a: mean 2, var 1; b: mean 6, var 4 -> se^2 = 1/3 + 4/3,
  // df = (5/3)^2 / ((1/3)^2/2 + (4/3)^2/2) = 50/17.
  const WelchResult w = welch_t_test({1, 2, 3}, {4, 6, 8});
  ASSERT_TRUE(w.valid);
  EXPECT_DOUBLE_EQ(w.diff, 4);
  EXPECT_NEAR(w.se, std::sqrt(5.0 / 3), 1e-12);
  EXPECT_NEAR(w.t, 4 / std::sqrt(5.0 / 3), 1e-12);
  EXPECT_NEAR(w.df, 50.0 / 17, 1e-12);
  EXPECT_NEAR(w.p, student_t_two_sided_p(w.t, w.df), 1e-15);
  // Between the df = 2 and df = 3 values of the same t.
  EXPECT_LT(w.p, student_t_two_sided_p(w.t, 2));
  EXPECT_GT(w.p, student_t_two_sided_p(w.t, 3));
  // The sign follows b - a; the p-value does not.
  const WelchResult back = welch_t_test({4, 6, 8}, {1, 2, 3});
  EXPECT_DOUBLE_EQ(back.t, -w.t);
  EXPECT_DOUBLE_EQ(back.p, w.p);
}

TEST(Stats, WelchEdgeCases) {
  EXPECT_FALSE(welch_t_test({1.0}, {2.0, 3.0}).valid);  // one seed: nothing to test against
  const WelchResult same = welch_t_test({2, 2, 2}, {2, 2, 2});
  EXPECT_TRUE(same.valid);
  EXPECT_EQ(same.p, 1);
  const WelchResult apart = welch_t_test({2, 2, 2}, {3, 3, 3});
  EXPECT_EQ(apart.p, 0);
  EXPECT_TRUE(std::isinf(apart.t) && apart.t > 0);
}

TEST(Stats, PairedTTestByHand) {
  // d = {0.1, 0.3, 0.2, 0.4}: mean 0.25, squares about it 0.05, sd^2 = 0.05 / 3.
  const TTestResult t = paired_t_test({1, 2, 3, 4}, {1.1, 2.3, 3.2, 4.4});
  ASSERT_TRUE(t.valid);
  EXPECT_NEAR(t.diff, 0.25, 1e-12);
  EXPECT_NEAR(t.se, std::sqrt(0.05 / 3) / 2, 1e-12);
  EXPECT_NEAR(t.t, 0.25 / (std::sqrt(0.05 / 3) / 2), 1e-9);
  EXPECT_EQ(t.df, 3);
  EXPECT_NEAR(t.p, student_t_two_sided_p(t.t, 3), 1e-15);
  // t = 3.87 on 3 df: between the tables' 5 % (3.182) and 1 % (5.841) points.
  EXPECT_LT(t.p, 0.05);
  EXPECT_GT(t.p, 0.01);
  const TTestResult back = paired_t_test({1.1, 2.3, 3.2, 4.4}, {1, 2, 3, 4});
  EXPECT_NEAR(back.t, -t.t, 1e-9);
  EXPECT_NEAR(back.p, t.p, 1e-12);
}

TEST(Stats, PairingFindsWhatTheSeedSpreadHides) {
  // Three seeds whose losses spread by a whole nat; the variant is 0.1 worse
  // on every one of them (give or take 0.02).
  const std::vector<double> a = {1.0, 2.0, 3.0}, b = {1.1, 2.1, 3.12};
  EXPECT_GT(welch_t_test(a, b).p, 0.5) << "unpaired, the shared spread swamps the difference";
  const TTestResult paired = paired_t_test(a, b);
  // d = {0.1, 0.1, 0.12}: mean 0.32/3, sd = 0.02/sqrt(3), se = 0.02/3, t = 16 on 2 df.
  EXPECT_NEAR(paired.t, 16, 1e-6);
  EXPECT_NEAR(paired.p, 1 - 16 / std::sqrt(16.0 * 16 + 2), 1e-8);  // df = 2: p = 1 - t / sqrt(t^2 + 2)
  EXPECT_LT(paired.p, 0.01);
}

TEST(Stats, PairedEdgeCases) {
  EXPECT_FALSE(paired_t_test({1.0}, {2.0}).valid);  // one seed: no spread of differences
  EXPECT_FALSE(paired_t_test({}, {}).valid);
  try {
    paired_t_test({1, 2, 3}, {1, 2});
    ADD_FAILURE() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("one value of each side per seed, got 3 and 2"), std::string::npos)
        << e.what();
  }
  // The same shift on every seed: no noise, a certain difference.
  const TTestResult shifted = paired_t_test({1, 2, 3}, {1.5, 2.5, 3.5});
  EXPECT_TRUE(shifted.valid);
  EXPECT_EQ(shifted.p, 0);
  EXPECT_TRUE(std::isinf(shifted.t) && shifted.t > 0);
  EXPECT_EQ(paired_t_test({1, 2, 3}, {1, 2, 3}).p, 1);
}

TEST(Stats, HolmAdjustsInStepsAndKeepsTheOrder) {
  // Sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> never decreasing: 0.03, 0.06, 0.06.
  const std::vector<double> adjusted = holm_adjust({0.01, 0.04, 0.03});
  ASSERT_EQ(adjusted.size(), 3u);
  EXPECT_NEAR(adjusted[0], 0.03, 1e-15);
  EXPECT_NEAR(adjusted[1], 0.06, 1e-15);
  EXPECT_NEAR(adjusted[2], 0.06, 1e-15);
  EXPECT_EQ(holm_adjust({0.5}), std::vector<double>{0.5});  // one test: unchanged
  EXPECT_EQ(holm_adjust({0.6, 0.9}), (std::vector<double>{1.0, 1.0}));  // 1.2 capped at 1
  EXPECT_TRUE(holm_adjust({}).empty());
  const std::vector<double> with_nan = holm_adjust({NAN, 0.02});  // a diverged run still counts in m
  EXPECT_TRUE(std::isnan(with_nan[0]));
  EXPECT_NEAR(with_nan[1], 0.04, 1e-15);
  try {
    holm_adjust({0.2, 1.5});
    ADD_FAILURE() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("p-values in [0, 1], got 1.5"), std::string::npos) << e.what();
  }
}

TEST(Stats, StudentTQuantilesMatchTables) {
  // The 97.5 % points of t tables: the half-width of a 95 % interval is this times se.
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.706, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 2), 4.303, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 4), 2.776, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 10), 2.228, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.995, 10), 3.169, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 1e7), 1.959964, 1e-5);
  // Closed form for df = 1 (Cauchy): tan(pi (p - 1/2)); symmetry; the median.
  EXPECT_NEAR(student_t_quantile(0.9, 1), std::tan(M_PI * 0.4), 1e-9);
  EXPECT_NEAR(student_t_quantile(0.025, 4), -student_t_quantile(0.975, 4), 1e-9);
  EXPECT_NEAR(student_t_quantile(0.5, 3), 0, 1e-12);
  // Inverse of the CDF, far into a tail too.
  for (double p : {1e-9, 0.01, 0.3, 0.77, 0.999999})
    EXPECT_NEAR(student_t_cdf(student_t_quantile(p, 2.5), 2.5), p, 1e-9 * std::max(1.0, p / 1e-3)) << p;
  for (double bad : {0.0, 1.0, -0.5, std::nan("")}) {
    try {
      student_t_quantile(bad, 3);
      ADD_FAILURE() << "expected an error for " << bad;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("a probability in (0, 1)"), std::string::npos) << e.what();
    }
  }
}
