// The statistics `compare` needs to say whether two attention variants
// really differ: mean and spread over seeds, and Welch's t-test with its
// p-value, computed here in double precision from first principles (no
// statistics library), so a student can read every step.
//
// Why Welch and not Student's t-test: two variants need not be equally
// noisy across seeds (a variant that trains less stably has a larger
// spread), and Welch's test does not assume they are.
#pragma once
#include <vector>

namespace attn::stats {

// Mean and sample standard deviation (divided by n - 1; 0 for n = 1).
struct Summary {
  double mean = 0, std = 0;
  int n = 0;
};
Summary summarize(const std::vector<double>& values);

// Welch's unequal-variance t-test of mean(b) - mean(a).
//   diff = mean(b) - mean(a)
//   se   = sqrt(var(a)/n_a + var(b)/n_b)   the standard error of diff
//   t    = diff / se
//   df   = se^4 / ((var(a)/n_a)^2/(n_a-1) + (var(b)/n_b)^2/(n_b-1))
//          (Welch–Satterthwaite: the degrees of freedom of a t distribution
//          that best matches the spread of t)
//   p    = P(|T_df| >= |t|), two-sided
// Needs at least two values on each side (valid = false otherwise). When
// both sides have no spread at all, t is 0 (p = 1) for equal means and
// +-infinity (p = 0) for different ones.
struct WelchResult {
  bool valid = false;
  double diff = 0, se = 0, t = 0, df = 0, p = 1;
};
WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

// P(T <= t) for Student's t distribution with df > 0 degrees of freedom.
double student_t_cdf(double t, double df);
// Two-sided p-value P(|T| >= |t|).
double student_t_two_sided_p(double t, double df);

// The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]:
// the CDF of the Beta(a, b) distribution, through which the t distribution's
// tails are written: P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).
double regularized_incomplete_beta(double a, double b, double x);

}  // namespace attn::stats
