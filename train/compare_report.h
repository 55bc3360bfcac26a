// The report of `attnlab compare` (compare.h): report.md with the table,
// the significance sentences, the plots, the command and the machine.
#pragma once
#include <string>
#include <vector>

#include "train/compare.h"
#include "train/stats.h"

namespace attn {

void write_compare_report(const CompareOptions& options, const CompareResult& result);

// One variant against the baseline, in words: "`mqa` is 0.040 ± 0.010
// nats/char worse than `mha` (p = 0.003)", "`gqa` is within noise of
// `mha` (...)", or why no test is possible. `w` tests the final val loss
// of the baseline's seeds against the variant's.
std::string significance_sentence(const std::string& variant, const std::string& baseline,
                                  const stats::WelchResult& w, double mean_diff);

// "p = 0.41", "p = 0.003", "p < 0.001".
std::string format_p(double p);

// The CPU's model name from /proc/cpuinfo ("unknown CPU" elsewhere).
std::string cpu_model();

}  // namespace attn
