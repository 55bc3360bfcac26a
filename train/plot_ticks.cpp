// Tick values for chart axes: "nice" steps (1, 2, 5 x 10^n) on linear
// axes, decades (or 1/2/5 per decade) on log axes. Pure arithmetic: works in
// builds without stb, and the tests call it directly (plot.h, detail::).
#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/plot.h"

namespace attn::plot {
namespace detail {
namespace {

// The smallest step of the form 1, 2 or 5 x 10^n that is >= raw (raw > 0).
double nice_step_at_least(double raw) {
  const double decade = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0}) {
    // The tolerance keeps 0.2000000001 from being rounded up to 0.5.
    if (m * decade >= raw * (1 - 1e-9)) return m * decade;
  }
  return 10 * decade;
}

// The largest nice step strictly below `step` (step is itself nice).
double nice_step_below(double step) { return nice_step_at_least(step * 0.4 * (1 + 1e-6)); }

// The multiples k * step inside [lo, hi]. Computing k * step (rather than
// adding step repeatedly) keeps rounding errors from piling up.
std::vector<double> multiples_in(double lo, double hi, double step) {
  std::vector<double> ticks;
  const double eps = step * 1e-9;
  const double first = std::ceil((lo - eps) / step), last = std::floor((hi + eps) / step);
  // (The cap only matters for absurd inputs, e.g. a step below the
  // precision of lo, where k and k + 1 would be the same double.)
  for (int i = 0; first + i <= last && i < 1000; ++i) {
    double v = (first + i) * step;
    if (std::fabs(v) < eps) v = 0;  // print "0", never "-0.0" or "1e-17"
    ticks.push_back(v);
  }
  return ticks;
}

}  // namespace

std::vector<double> linear_ticks(double lo, double hi, int max_ticks) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo < hi && std::isfinite(hi - lo),
        "plot: ticks need a finite range lo < hi, got [", lo, ", ", hi, "]");
  check(max_ticks >= 2, "plot: ticks need max_ticks >= 2, got ", max_ticks);
  // max_ticks values span max_ticks - 1 gaps, so this step never gives too many.
  double step = nice_step_at_least((hi - lo) / (max_ticks - 1));
  std::vector<double> ticks = multiples_in(lo, hi, step);
  // A range that straddles a big step can catch only one multiple (0.95..1.85
  // with step 1); a finer step then gives the axis at least two labels.
  for (int tries = 0; ticks.size() < 2 && tries < 60; ++tries) {
    step = nice_step_below(step);
    ticks = multiples_in(lo, hi, step);
  }
  if (ticks.size() < 2) return {lo, hi};  // only for ranges at the edge of double precision
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi, int max_ticks) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo < hi,
        "plot: log ticks need a range 0 < lo < hi, got [", lo, ", ", hi, "]");
  check(max_ticks >= 2, "plot: ticks need max_ticks >= 2, got ", max_ticks);
  const double eps = 1e-9;
  const int first = static_cast<int>(std::ceil(std::log10(lo) - eps));
  const int last = static_cast<int>(std::floor(std::log10(hi) + eps));

  // Wide ranges: powers of ten, every k-th decade when there are too many.
  const int decades = last - first + 1;
  if (decades >= 3) {
    const int every = (decades + max_ticks - 1) / max_ticks;
    std::vector<double> ticks;
    for (int e = first; e <= last; e += every) ticks.push_back(std::pow(10.0, e));
    return ticks;
  }
  // Narrower ranges: 1, 2 and 5 in each decade (1, 2, 5, 10, 20, ...).
  std::vector<double> ticks;
  for (int e = first - 1; e <= last; ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, e);
      if (v >= lo * (1 - eps) && v <= hi * (1 + eps)) ticks.push_back(v);
    }
  }
  if (ticks.size() >= 3 && static_cast<int>(ticks.size()) <= max_ticks) return ticks;
  if (decades == 2) return {std::pow(10.0, first), std::pow(10.0, last)};
  // Less than a decade (a loss going from 3.5 to 1.2): plain nice values,
  // still placed on the log scale.
  return linear_ticks(lo, hi, max_ticks);
}

}  // namespace detail

}  // namespace attn::plot
