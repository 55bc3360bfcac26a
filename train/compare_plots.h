// The plots of `attnlab compare`'s report: val loss against steps and
// against training seconds (mean and a ± one std band over seeds), loss
// against position past the training block, and one attention heatmap per
// variant, drawn from the first seed's checkpoint.
#pragma once
#include <string>

#include "train/compare.h"

namespace attn {

// Writes the PNGs into the comparison's folder and returns the report's
// "## Plots" section that shows them (or says why there are none).
std::string plots_section(const CompareOptions& options, const CompareResult& result);

}  // namespace attn
