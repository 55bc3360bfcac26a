// The statistics behind compare's significance sentences, against values
// known independently: closed forms and published t-table entries.
#include <gtest/gtest.h>

#include <cmath>

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
