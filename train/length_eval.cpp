// Length generalisation (length_eval.h): windows of the val text at each
// length, the loss of every target, averaged per position and overall.
#include "train/length_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autograd/engine.h"
#include "core/error.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/plot.h"
#include "train/stream_eval.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

namespace attn {

namespace {

// The attention's T x T scores dominate memory at long lengths: about 4M
// scores per head per forward, and never more than 64 windows at once.
int64_t windows_per_forward(int64_t length) {
  return std::clamp<int64_t>((int64_t{1} << 22) / (length * length), 1, 64);
}

// Adds -log p(target) of each of B x T targets to sums[t], from logits
// [B, T, V] on the host: log-sum-exp in double, shifted by the row's
// maximum so exp never overflows.
void add_position_losses(const std::vector<float>& logits, const std::vector<int64_t>& targets,
                         int64_t B, int64_t T, int64_t V, std::vector<double>& sums) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* row = &logits[static_cast<std::size_t>((b * T + t) * V)];
      const double top = *std::max_element(row, row + V);
      double total = 0;
      for (int64_t v = 0; v < V; ++v) total += std::exp(row[v] - top);
      sums[t] += top + std::log(total) - row[targets[b * T + t]];
    }
}

LengthLoss evaluate_length(GPT& model, const std::vector<int64_t>& tokens, int64_t length,
                           int64_t max_windows) {
  LengthLoss r;
  r.length = length;
  if (model.has_learned_positions() && length > model.config().block_size) {
    r.unavailable = "learned positions";  // no embedding for position block_size and beyond
    return r;
  }
  const std::vector<int64_t> starts = window_starts(static_cast<int64_t>(tokens.size()), length, max_windows);
  if (starts.empty()) {
    r.unavailable = str("val split of ", tokens.size(), " tokens is shorter than one window");
    return r;
  }
  const Device device = model.parameters().front()->device();
  const int64_t per_forward = windows_per_forward(length), V = model.config().vocab;
  std::vector<double> sums(static_cast<std::size_t>(length), 0.0);
  NoGradGuard no_grad;
  model.eval();
  for (std::size_t first = 0; first < starts.size(); first += per_forward) {
    const int64_t B = std::min<int64_t>(per_forward, static_cast<int64_t>(starts.size() - first));
    std::vector<int64_t> x, y;
    for (int64_t b = 0; b < B; ++b) {
      const auto at = tokens.begin() + starts[first + b];
      x.insert(x.end(), at, at + length);
      y.insert(y.end(), at + 1, at + length + 1);
    }
    const Tensor logits = model.forward_any_length(from_ints(x, {B, length}, device));
    add_position_losses(logits.to_vector(), y, B, length, V, sums);
  }
  r.windows = static_cast<int64_t>(starts.size());
  double total = 0;
  for (double& s : sums) total += (s /= static_cast<double>(r.windows));
  r.loss = total / static_cast<double>(length);
  r.per_position = std::move(sums);
  return r;
}

}  // namespace

std::vector<int64_t> window_starts(int64_t n, int64_t length, int64_t max_windows) {
  const int64_t count = n > 1 ? (n - 1) / length : 0;
  const int64_t take = std::min(count, max_windows);
  std::vector<int64_t> starts;
  for (int64_t k = 0; k < take; ++k) starts.push_back(k * count / take * length);
  return starts;
}

std::vector<LengthLoss> evaluate_lengths(GPT& model, const std::vector<int64_t>& tokens,
                                         const std::vector<int64_t>& lengths, int64_t max_windows) {
  std::vector<LengthLoss> out;
  for (int64_t length : lengths) out.push_back(evaluate_length(model, tokens, length, max_windows));
  return out;
}

std::string loss_cell(const LengthLoss& l) {
  if (!l.unavailable.empty()) return "n/a (" + l.unavailable + ")";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", l.loss);
  return buf;
}

void bin_positions(const std::vector<double>& per_position, int max_points, std::vector<double>& x,
                   std::vector<double>& y) {
  const std::size_t n = per_position.size();
  const std::size_t width = std::max<std::size_t>(1, (n + max_points - 1) / std::max(max_points, 1));
  x.clear();
  y.clear();
  for (std::size_t lo = 0; lo < n; lo += width) {
    const std::size_t hi = std::min(n, lo + width);
    double sum = 0;
    for (std::size_t t = lo; t < hi; ++t) sum += per_position[t];
    x.push_back((static_cast<double>(lo + hi - 1)) / 2 + 1);  // context length = position + 1
    y.push_back(sum / static_cast<double>(hi - lo));
  }
}

// ------------------------------------------------------------ attnlab eval --

void EvalOptions::validate() const {
  for (int64_t l : lengths)
    check(l >= 1 && l <= 1048576, "eval: --lengths must be in 1..1048576, got ", l);
  check(windows >= 1, "eval: --windows must be >= 1, got ", windows);
  check(max_corpus_bytes >= 1, "eval: --max-corpus-bytes must be >= 1, got ", max_corpus_bytes);
  Device::parse(device);
}

EvalInputs load_eval_inputs(const EvalOptions& o) {
  o.validate();
  const CheckpointData d = load_checkpoint(checkpoint_path(o.ckpt));
  const CharTokenizer tok = CharTokenizer::from_json(d.tokenizer);
  EvalInputs in;
  in.model = std::make_unique<GPT>(GPTConfig::from_json(d.model_config), 0);
  in.model->to(Device::parse(o.device));
  load_model_weights(*in.model, d, checkpoint_path(o.ckpt));
  const std::string data = o.data.empty() ? TrainOptions::from_json(d.train_options).data : o.data;
  in.val = TextDataset(tok.encode_corpus(read_corpus(data, o.max_corpus_bytes))).tokens(Split::Val);
  return in;
}

std::vector<LengthLoss> eval_checkpoint(const EvalOptions& o, int64_t* block_size) {
  EvalInputs in = load_eval_inputs(o);
  const int64_t block = in.model->config().block_size;
  std::vector<int64_t> lengths = o.lengths;
  if (lengths.empty()) lengths = {block, 2 * block, 4 * block};
  if (block_size) *block_size = block;
  return evaluate_lengths(*in.model, in.val, lengths, o.windows);
}

namespace {

void plot_eval(const std::string& path, const std::vector<LengthLoss>& results, int64_t block) {
  plot::LineChart chart;
  chart.title = "loss against position (trained at block " + std::to_string(block) + ")";
  chart.x_label = "position in the window (characters of context)";
  chart.y_label = "val loss (nats/char)";
  for (const LengthLoss& l : results) {
    if (!l.unavailable.empty()) continue;
    plot::Series s{"length " + std::to_string(l.length), {}, {}};
    bin_positions(l.per_position, 128, s.x, s.y);
    chart.series.push_back(s);
  }
  check(!chart.series.empty(), "eval: --plot has nothing to draw: no length could be evaluated");
  plot::write_line_chart(path, chart);
}

}  // namespace

int run_eval(const EvalOptions& o) {
  if (o.stream) return run_stream_eval(o);
  int64_t block = 0;
  const std::vector<LengthLoss> results = eval_checkpoint(o, &block);
  std::printf("%s: trained at block %lld; val split, at most %lld windows per length\n", o.ckpt.c_str(),
              static_cast<long long>(block), static_cast<long long>(o.windows));
  std::printf("%8s %8s %10s %10s\n", "length", "windows", "nats/char", "bits/char");
  for (const LengthLoss& l : results) {
    if (!l.unavailable.empty())
      std::printf("%8lld %8s %s\n", static_cast<long long>(l.length), "-", loss_cell(l).c_str());
    else
      std::printf("%8lld %8lld %10.4f %10.4f\n", static_cast<long long>(l.length),
                  static_cast<long long>(l.windows), l.loss, l.loss / std::log(2.0));
  }
  if (!o.plot.empty()) {
    plot_eval(o.plot, results, block);
    std::printf("plot: %s\n", o.plot.c_str());
  }
  return 0;
}

}  // namespace attn
