// Mean, spread, Welch's and the paired t-test, Holm's adjustment (stats.h). The p-value comes from the
// Student-t CDF, written through the regularized incomplete beta function,
// which is evaluated as a continued fraction with Lentz's method.
#include "train/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace attn::stats {

Summary summarize(const std::vector<double>& values) {
  Summary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= s.n;
  if (s.n < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(squares / (s.n - 1));  // n - 1: the mean was estimated from the same values
  return s;
}

namespace {

// 1 + d1/(1 + d2/(1 + d3/(...))), the continued fraction of I_x(a, b), by
// the modified Lentz method: it carries the ratios C_j = K_j / K_{j-1} and
// D_j = K_{j-1} / K_j of successive convergents instead of the convergents
// themselves, which would overflow, and multiplies the fraction together
// until a factor is 1 to within double precision.
//   d_{2m+1} = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1))
//   d_{2m}   =  m(b-m) x / ((a+2m-1)(a+2m))
double beta_continued_fraction(double a, double b, double x) {
  const double tiny = 1e-300;  // stands in for a zero denominator
  const double eps = 1e-15;
  double f = 1, C = 1, D = 0;
  for (int j = 1; j <= 10000; ++j) {
    const int m = j / 2;
    const double d = j % 2 == 1 ? -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
                                : m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    D = 1 + d * D;
    if (std::fabs(D) < tiny) D = tiny;
    C = 1 + d / C;
    if (std::fabs(C) < tiny) C = tiny;
    D = 1 / D;
    const double factor = C * D;
    f *= factor;
    if (std::fabs(factor - 1) < eps) return f;
  }
  return f;  // not reached for the a, b of a t-test; the last value is the best we have
}

}  // namespace

double regularized_incomplete_beta(double a, double b, double x) {
  check(a > 0 && b > 0, "stats: incomplete beta needs a, b > 0, got a = ", a, ", b = ", b);
  check(x >= 0 && x <= 1, "stats: incomplete beta needs x in [0, 1], got ", x);
  if (x == 0 || x == 1) return x;
  // The fraction converges fast for x below the distribution's mean
  // a/(a+b); above it, use the mirror image I_x(a, b) = 1 - I_{1-x}(b, a).
  if (x > (a + 1) / (a + b + 2)) return 1 - regularized_incomplete_beta(b, a, 1 - x);
  const double log_beta = std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
  const double front = std::exp(a * std::log(x) + b * std::log1p(-x) - log_beta) / a;
  return front / beta_continued_fraction(a, b, x);
}

double student_t_two_sided_p(double t, double df) {
  check(df > 0, "stats: the t distribution needs df > 0, got ", df);
  if (std::isnan(t)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(t)) return 0;
  // P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2): the t statistic squared is
  // an F(1, df) variable, whose tail is this beta function. Near t = 0,
  // df/(df+t^2) rounds to 1 and t is lost; there the complement
  // P(|T| < |t|) = I_{t^2/(df+t^2)}(1/2, df/2) keeps it.
  const double x = df / (df + t * t), y = t * t / (df + t * t);
  if (x > 0.5) return 1 - regularized_incomplete_beta(0.5, df / 2, y);
  return regularized_incomplete_beta(df / 2, 0.5, x);
}

double student_t_cdf(double t, double df) {
  const double tail = student_t_two_sided_p(t, df) / 2;  // P(T >= |t|), by symmetry
  return t >= 0 ? 1 - tail : tail;
}

double student_t_quantile(double prob, double df) {
  check(prob > 0 && prob < 1, "stats: a t quantile needs a probability in (0, 1), got ", prob);
  check(df > 0, "stats: the t distribution needs df > 0, got ", df);
  // Widen the bracket until it holds the answer (df = 1, prob = 1e-12 needs
  // t near -3e11), then halve it until it is as narrow as doubles allow.
  double lo = -1, hi = 1;
  while (student_t_cdf(lo, df) > prob) lo *= 2;
  while (student_t_cdf(hi, df) < prob) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * std::max(1.0, std::fabs(lo)); ++i) {
    const double mid = (lo + hi) / 2;
    (student_t_cdf(mid, df) < prob ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

namespace {

// A difference with no noise around it: certain when nonzero, no evidence
// when zero.
void no_spread(TTestResult& r) {
  r.t = r.diff == 0 ? 0 : std::copysign(std::numeric_limits<double>::infinity(), r.diff);
  r.p = r.diff == 0 ? 1 : 0;
}

}  // namespace

WelchResult welch_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  WelchResult r;
  const Summary sa = summarize(a), sb = summarize(b);
  if (sa.n < 2 || sb.n < 2) return r;  // no spread to compare the difference with
  r.valid = true;
  r.diff = sb.mean - sa.mean;
  const double va = sa.std * sa.std / sa.n, vb = sb.std * sb.std / sb.n;
  r.se = std::sqrt(va + vb);
  if (r.se == 0) {
    r.df = sa.n + sb.n - 2;
    no_spread(r);
    return r;
  }
  r.t = r.diff / r.se;
  r.df = (va + vb) * (va + vb) / (va * va / (sa.n - 1) + vb * vb / (sb.n - 1));
  r.p = student_t_two_sided_p(r.t, r.df);
  return r;
}

TTestResult paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  check(a.size() == b.size(), "stats: a paired t-test needs one value of each side per seed, got ", a.size(),
        " and ", b.size());
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = b[i] - a[i];
  const Summary sd = summarize(d);
  TTestResult r;
  if (sd.n < 2) return r;
  r.valid = true;
  r.diff = sd.mean;
  r.se = sd.std / std::sqrt(static_cast<double>(sd.n));
  r.df = sd.n - 1;
  if (r.se == 0) {
    no_spread(r);
    return r;
  }
  r.t = r.diff / r.se;
  r.p = student_t_two_sided_p(r.t, r.df);
  return r;
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const std::size_t m = p.size();
  std::vector<std::size_t> order(m);
  std::iota(order.begin(), order.end(), std::size_t{0});
  // A NaN (a test on a diverged run) sorts last, stays NaN and still counts
  // in m: leaving it out would make the others look stronger than they are.
  auto key = [&](std::size_t i) { return std::isnan(p[i]) ? 2.0 : p[i]; };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) { return key(i) < key(j); });
  std::vector<double> adjusted(m);
  double running = 0;  // the adjusted values may not decrease down the sorted list
  for (std::size_t k = 0; k < m; ++k) {
    const double q = p[order[k]];
    check(std::isnan(q) || (q >= 0 && q <= 1), "stats: holm_adjust needs p-values in [0, 1], got ", q);
    if (std::isnan(q)) {
      adjusted[order[k]] = q;
      continue;
    }
    running = std::max(running, std::min(1.0, static_cast<double>(m - k) * q));
    adjusted[order[k]] = running;
  }
  return adjusted;
}

}  // namespace attn::stats
