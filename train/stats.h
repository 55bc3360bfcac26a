// The statistics `compare` needs to say whether two attention variants
// really differ: mean and spread over seeds, Welch's and the paired t-test
// with their p-values, and Holm's adjustment for testing several variants
// at once, computed here in double precision from first principles (no
// statistics library), so a student can read every step.
//
// Why Welch and not Student's t-test: two variants need not be equally
// noisy across seeds (a variant that trains less stably has a larger
// spread), and Welch's test does not assume they are.
//
// Why also a paired test: in `compare` a seed fixes more than the initial
// weights. Runs of the same seed see the same batches in the same order and
// are evaluated on the same windows, so part of the seed-to-seed spread is
// shared by every variant (a lucky batch order helps them all). Welch's
// test counts that shared spread as noise; the paired test takes the
// difference seed by seed, where it cancels.
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
struct TTestResult {
  bool valid = false;
  double diff = 0, se = 0, t = 0, df = 0, p = 1;
};
using WelchResult = TTestResult;
WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b);

// The paired t-test of b - a, where a[i] and b[i] come from the same seed.
//   d_i  = b_i - a_i
//   diff = mean(d)
//   se   = sd(d) / sqrt(n)     sd with n - 1, as in summarize
//   t    = diff / se, df = n - 1
//   p    = P(|T_df| >= |t|), two-sided
// Needs two or more pairs (valid = false otherwise) and fails on sides of
// different lengths. No spread in d: as Welch's test, t = 0 (p = 1) for no
// difference, +-infinity (p = 0) for any other.
TTestResult paired_t_test(const std::vector<double>& a, const std::vector<double>& b);

// Holm's step-down adjustment of m p-values tested together: sort them,
// multiply the k-th smallest (k = 1..m) by m - k + 1, keep the sequence
// from decreasing, cap at 1. Rejecting where the adjusted p < alpha keeps
// the chance of any false "significant" among all m at most alpha, whatever
// the tests' dependence (Bonferroni's guarantee, with more power). Returns
// the adjusted values in the order given.
std::vector<double> holm_adjust(const std::vector<double>& p);

// P(T <= t) for Student's t distribution with df > 0 degrees of freedom.
double student_t_cdf(double t, double df);
// Two-sided p-value P(|T| >= |t|).
double student_t_two_sided_p(double t, double df);
// The t with P(T <= t) = prob, prob in (0, 1): the inverse of student_t_cdf,
// found by bisection (the CDF only grows, so halving a bracket that holds
// the answer always closes in on it). The 95 % confidence interval of a
// difference is diff ± student_t_quantile(0.975, df) * se.
double student_t_quantile(double prob, double df);

// The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]:
// the CDF of the Beta(a, b) distribution, through which the t distribution's
// tails are written: P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).
double regularized_incomplete_beta(double a, double b, double x);

}  // namespace attn::stats
