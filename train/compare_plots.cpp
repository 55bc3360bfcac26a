// The report's plots (compare_plots.h).
#include "train/compare_plots.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <sstream>
#include <vector>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/length_eval.h"
#include "train/plot.h"
#include "train/stats.h"
#include "train/tokenizer.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

// y at x on the polyline (xs, ys), xs increasing; clamped at the ends.
double interpolate(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  const auto it = std::lower_bound(xs.begin(), xs.end(), x);
  if (it == xs.begin()) return ys.front();
  if (it == xs.end()) return ys.back();
  const std::size_t k = static_cast<std::size_t>(it - xs.begin());
  const double f = (x - xs[k - 1]) / (xs[k] - xs[k - 1]);
  return ys[k - 1] + f * (ys[k] - ys[k - 1]);
}

// The seeds' curves on common x values (the first seed's, inside the span
// every seed covers; the others interpolated there), as mean and a ± one
// std band. With equal steps the x values coincide and nothing is interpolated.
plot::Series mean_band(const std::string& label, const std::vector<std::vector<double>>& xs,
                       const std::vector<std::vector<double>>& ys) {
  plot::Series s{label, {}, {}};
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  for (const auto& x : xs) {
    if (x.empty()) return s;
    lo = std::max(lo, x.front()), hi = std::min(hi, x.back());
  }
  for (double x : xs.front()) {
    if (x < lo || x > hi) continue;
    std::vector<double> at;
    for (std::size_t i = 0; i < xs.size(); ++i) at.push_back(interpolate(xs[i], ys[i], x));
    const stats::Summary m = stats::summarize(at);
    s.x.push_back(x);
    s.y.push_back(m.mean);
    s.band_lo.push_back(m.mean - m.std);
    s.band_hi.push_back(m.mean + m.std);
  }
  return s;
}

bool write_curves(const fs::path& png, const CompareResult& r, bool against_time, std::size_t seeds) {
  plot::LineChart chart;
  chart.title = seeds == 1 ? "val loss (one seed: no spread to show)"
                            : "val loss, mean and +/- 1 std over " + std::to_string(seeds) + " seeds";
  chart.x_label = against_time ? "training seconds (evaluations not counted)" : "step";
  chart.y_label = "val loss (nats/char)";
  for (const VariantReport& v : r.variants) {
    std::vector<std::vector<double>> xs, ys;
    for (const SeedRun& run : v.runs) {
      xs.push_back(against_time ? run.eval_seconds : run.eval_steps);
      ys.push_back(run.eval_loss);
    }
    plot::Series s = mean_band(v.spec, xs, ys);
    if (!s.x.empty()) chart.series.push_back(s);
  }
  if (chart.series.empty()) return false;
  plot::write_line_chart(png.string(), chart);
  return true;
}

// Loss against position at each variant's longest measured length, binned,
// mean ± std over seeds, and a vertical line at the training block.
bool write_extrapolation_plot(const fs::path& png, const CompareOptions& o, const CompareResult& r) {
  plot::LineChart chart;
  chart.title = "loss against position in the window (trained at " + std::to_string(o.base.model.block_size) + ")";
  chart.x_label = "position (characters of context)";
  chart.y_label = "val loss (nats/char)";
  double y_lo = std::numeric_limits<double>::infinity(), y_hi = -y_lo;
  for (const VariantReport& v : r.variants) {
    std::size_t last = 0;
    for (std::size_t i = 0; i < v.runs.front().lengths.size(); ++i)
      if (v.runs.front().lengths[i].unavailable.empty()) last = i;
    std::vector<std::vector<double>> xs, ys;
    for (const SeedRun& run : v.runs) {
      xs.emplace_back();
      ys.emplace_back();
      bin_positions(run.lengths[last].per_position, 48, xs.back(), ys.back());  // single positions are noise
    }
    const int64_t length = v.runs.front().lengths[last].length;
    plot::Series s = mean_band(v.spec + ", T = " + std::to_string(length), xs, ys);
    for (double y : s.y) y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
    chart.series.push_back(s);
  }
  if (chart.series.empty() || !(y_lo <= y_hi)) return false;
  const double block = static_cast<double>(o.base.model.block_size);
  chart.series.push_back({"training block " + std::to_string(o.base.model.block_size), {block, block}, {y_lo, y_hi}});
  plot::write_line_chart(png.string(), chart);
  return true;
}

// The prompt's characters that the corpus has (a heatmap prompt of
// characters the model never saw would otherwise end the whole comparison).
std::vector<int64_t> known_ids(const CharTokenizer& tok, const std::string& prompt) {
  std::vector<int64_t> ids;
  for (std::size_t i = 0; i < prompt.size();) {
    std::size_t n = 1;  // one UTF-8 character: its first byte and the continuation bytes
    while (i + n < prompt.size() && (static_cast<unsigned char>(prompt[i + n]) & 0xC0) == 0x80) ++n;
    try {
      for (int64_t id : tok.encode(prompt.substr(i, n))) ids.push_back(id);
    } catch (const Error&) {
      // not in the vocabulary: left out
    }
    i += n;
  }
  return ids;
}

// Layer-0 attention weights (mean over heads) of the first seed's model on
// the prompt. False when the variant keeps no weights.
bool write_heatmap(const fs::path& run, const std::string& prompt, const fs::path& png, const std::string& title,
                   const Device& device) {
  const CheckpointData d = load_checkpoint(checkpoint_path(run.string()));
  const CharTokenizer tok = CharTokenizer::from_json(d.tokenizer);
  GPT model(GPTConfig::from_json(d.model_config), 0);
  model.to(device);
  load_model_weights(model, d, checkpoint_path(run.string()));
  model.eval();
  std::vector<int64_t> ids = known_ids(tok, prompt);
  if (ids.empty()) return false;
  if (static_cast<int64_t>(ids.size()) > model.config().block_size) ids.resize(model.config().block_size);
  Attention& a = model.blocks().front()->attention();
  a.keep_weights = true;
  NoGradGuard no_grad;
  model.forward(from_ints(ids, {1, static_cast<int64_t>(ids.size())}, device));
  if (!a.last_weights.defined()) return false;
  const Tensor w = mean(select(a.last_weights, 0, 0), {0});  // [T, T]
  plot::Heatmap h;
  h.title = title;
  h.x_label = "key position";
  h.y_label = "query position";
  h.values = w.to_vector();
  h.rows = h.cols = static_cast<int>(ids.size());
  for (int64_t id : ids) {
    std::string ch = tok.decode({id});
    if (ch == "\n") ch = "\\n";
    h.row_names.push_back(ch);
    h.col_names.push_back(ch);
  }
  plot::write_heatmap(png.string(), h);
  return true;
}

}  // namespace

std::string plots_section(const CompareOptions& o, const CompareResult& r) {
  if (!plot::available()) return "(No plots: attnlab was built without stb.)\n\n";
  const fs::path out(o.base.out);
  std::ostringstream s;
  s << "## Plots\n\nLines are the mean over seeds, shaded bands ± one standard deviation.\n\n";
  if (write_curves(out / "loss_steps.png", r, false, o.seeds)) s << "![val loss against step](loss_steps.png)\n\n";
  if (write_curves(out / "loss_time.png", r, true, o.seeds))
    s << "![val loss against training seconds](loss_time.png)\n\n";
  if (!o.extrapolate.empty() && write_extrapolation_plot(out / "extrapolation.png", o, r))
    s << "![loss against position past the block](extrapolation.png)\n\n";
  for (const VariantReport& v : r.variants) {
    const std::string png = "attention_" + v.folder + ".png";
    if (write_heatmap(out / v.runs.front().folder, o.prompt, out / png,
                      v.spec + ": layer 0, mean over heads (seed " + std::to_string(v.runs.front().seed) + ")",
                      Device::parse(o.base.device)))
      s << "![" << png << "](" << png << ")\n\n";
  }
  return s.str();
}

}  // namespace attn
