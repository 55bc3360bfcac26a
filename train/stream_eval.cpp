// Streaming evaluation (stream_eval.h): four ways to read a stream longer
// than the block, the loss of every token, averaged per stream position.
#include "train/stream_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "train/plot.h"

namespace attn {

namespace {

// The tokens at stream position t of every stream (a [B, 1] column).
std::vector<int64_t> column(const std::vector<int64_t>& tokens, const std::vector<int64_t>& starts, int64_t t) {
  std::vector<int64_t> ids;
  for (int64_t s : starts) ids.push_back(tokens[static_cast<std::size_t>(s + t)]);
  return ids;
}

// Adds -log p(next token) for the last position of logits [B, T, V] to
// sums[t]: log-sum-exp in double, shifted by the row's maximum.
void add_last_position_loss(const Tensor& logits, const std::vector<int64_t>& next, int64_t t,
                            std::vector<double>& sums) {
  const Tensor last = select(logits, 1, logits.shape()[1] - 1);  // [B, V]
  const std::vector<float> rows = last.to_vector();
  const int64_t V = last.shape()[1];
  for (std::size_t b = 0; b < next.size(); ++b) {
    const float* row = &rows[b * static_cast<std::size_t>(V)];
    const double top = *std::max_element(row, row + V);
    double total = 0;
    for (int64_t v = 0; v < V; ++v) total += std::exp(row[v] - top);
    sums[static_cast<std::size_t>(t)] += top + std::log(total) - row[next[b]];
  }
}

// (a), (b): one token of every stream per step through a rolling cache.
std::vector<double> rolling_sums(GPT& model, const std::vector<int64_t>& tokens, const std::vector<int64_t>& starts,
                                 int64_t length, int64_t sinks, int64_t window) {
  const Device device = model.parameters().front()->device();
  const int64_t B = static_cast<int64_t>(starts.size());
  KVCache cache = model.make_rolling_cache(B, sinks, window);
  std::vector<double> sums(static_cast<std::size_t>(length), 0.0);
  for (int64_t t = 0; t < length; ++t) {
    const Tensor logits = model.forward_cached(from_ints(column(tokens, starts, t), {B, 1}, device), cache);
    add_last_position_loss(logits, column(tokens, starts, t + 1), t, sums);
  }
  return sums;
}

// (c): every token reads the last `context` tokens again, from position 0.
std::vector<double> recompute_sums(GPT& model, const std::vector<int64_t>& tokens,
                                   const std::vector<int64_t>& starts, int64_t length, int64_t context) {
  const Device device = model.parameters().front()->device();
  const int64_t B = static_cast<int64_t>(starts.size());
  std::vector<double> sums(static_cast<std::size_t>(length), 0.0);
  for (int64_t t = 0; t < length; ++t) {
    const int64_t first = std::max<int64_t>(0, t + 1 - context), T = t + 1 - first;
    std::vector<int64_t> ids;
    for (int64_t s : starts) ids.insert(ids.end(), tokens.begin() + s + first, tokens.begin() + s + t + 1);
    add_last_position_loss(model.forward(from_ints(ids, {B, T}, device)), column(tokens, starts, t + 1), t, sums);
  }
  return sums;
}

// (d): the whole stream in one forward, positions 0 .. length-1.
std::vector<double> whole_stream_sums(GPT& model, const std::vector<int64_t>& tokens,
                                      const std::vector<int64_t>& starts, int64_t length) {
  const Device device = model.parameters().front()->device();
  std::vector<double> sums(static_cast<std::size_t>(length), 0.0);
  for (std::size_t b = 0; b < starts.size(); ++b) {  // one stream at a time: T x T scores
    const std::vector<int64_t> ids(tokens.begin() + starts[b], tokens.begin() + starts[b] + length);
    const Tensor logits = model.forward_any_length(from_ints(ids, {1, length}, device));
    for (int64_t t = 0; t < length; ++t)
      add_last_position_loss(narrow(logits, 1, t, 1), {tokens[static_cast<std::size_t>(starts[b] + t + 1)]}, t, sums);
  }
  return sums;
}

StreamLoss summarize(const std::string& mode, const std::string& label, std::vector<double> sums,
                     int64_t streams, int64_t filled) {
  StreamLoss r;
  r.mode = mode, r.label = label;
  double all = 0, after = 0;
  for (std::size_t t = 0; t < sums.size(); ++t) {
    sums[t] /= static_cast<double>(streams);
    all += sums[t];
    if (static_cast<int64_t>(t) >= filled) after += sums[t];
  }
  r.loss = all / static_cast<double>(sums.size());
  const int64_t past = static_cast<int64_t>(sums.size()) - filled;
  r.loss_after_fill = past > 0 ? after / static_cast<double>(past) : NAN;
  r.per_position = std::move(sums);
  return r;
}

}  // namespace

std::vector<StreamLoss> evaluate_streams(GPT& model, const std::vector<int64_t>& tokens, int64_t length,
                                         int64_t max_streams, int64_t sinks, int64_t window,
                                         int64_t* streams_read) {
  const std::vector<int64_t> starts = window_starts(static_cast<int64_t>(tokens.size()), length, max_streams);
  check(!starts.empty(), "eval: --stream: the val split of ", tokens.size(),
        " tokens is shorter than one stream of ", length + 1);
  if (streams_read) *streams_read = static_cast<int64_t>(starts.size());
  NoGradGuard no_grad;
  model.eval();
  const int64_t kept = sinks + window, n = static_cast<int64_t>(starts.size());
  std::vector<StreamLoss> out;
  out.push_back(summarize(str("(a) sliding window, last ", kept), "(a) sliding",
                          rolling_sums(model, tokens, starts, length, 0, kept), n, kept));
  out.push_back(summarize(str("(b) ", sinks, " sinks + last ", window), "(b) sinks + window",
                          rolling_sums(model, tokens, starts, length, sinks, window), n, kept));
  out.push_back(summarize(str("(c) recompute last ", kept, " per token"), "(c) recompute",
                          recompute_sums(model, tokens, starts, length, kept), n, kept));
  out.push_back(summarize("(d) no eviction, positions past the block", "(d) no eviction",
                          whole_stream_sums(model, tokens, starts, length), n, kept));
  return out;
}

FirstTokenShare first_token_share(GPT& model, const std::vector<int64_t>& tokens, int64_t max_streams) {
  const int64_t T = model.config().block_size;
  // At most 64 blocks: every layer keeps its [B, H, T, T] weights until read.
  const std::vector<int64_t> starts =
      window_starts(static_cast<int64_t>(tokens.size()), T, std::min<int64_t>(max_streams, 64));
  check(!starts.empty(), "eval: --stream: the val split is shorter than one block");
  std::vector<int64_t> ids;
  for (int64_t s : starts) ids.insert(ids.end(), tokens.begin() + s, tokens.begin() + s + T);
  NoGradGuard no_grad;
  model.eval();
  for (auto& block : model.blocks()) block->attention().keep_weights = true;
  model.forward(from_ints(ids, {static_cast<int64_t>(starts.size()), T}, model.parameters().front()->device()));
  FirstTokenShare r;
  for (auto& block : model.blocks()) {
    Attention& a = block->attention();
    a.keep_weights = false;
    check(a.last_weights.defined(), "eval: --stream: attention '", model.config().attention,
          "' keeps no weights to read the first token's share from");
    // weights [B, H, T, T]: column 0, rows T/2 .. T-1, averaged over B and H.
    const Tensor column = select(narrow(a.last_weights, 2, T / 2, T - T / 2), 3, 0);
    r.per_layer.push_back(mean(column, {0, 1, 2}).item());
    a.last_weights = Tensor();
  }
  for (int64_t i = T / 2; i < T; ++i) r.uniform += 1.0 / static_cast<double>(i + 1);
  r.uniform /= static_cast<double>(T - T / 2);
  return r;
}

int run_stream_eval(const EvalOptions& o) {
  check(o.lengths.size() <= 1, "eval: --stream reads one stream length, got ", o.lengths.size(), " --lengths");
  EvalInputs in = load_eval_inputs(o);
  GPT& model = *in.model;
  const int64_t block = model.config().block_size;
  check(o.sinks >= 0, "eval: --sinks must be >= 0, got ", o.sinks);
  check(o.window == -1 || o.window >= 1, "eval: --window must be >= 1 (tokens kept after the sinks), got ", o.window);
  const int64_t window = o.window == -1 ? block - o.sinks : o.window;
  check(o.sinks + window <= block && window >= 1, "eval: --sinks ", o.sinks, " + --window ", window,
        " must fit the model's block size ", block, " with a window of at least 1");
  try {
    model.make_rolling_cache(1, o.sinks, window);  // the model's own reasons, before any work
  } catch (const Error& e) {
    fail("eval: --stream: ", e.what());
  }
  const int64_t length = o.lengths.empty() ? 4 * block : o.lengths.front();
  int64_t streams = 0;
  const std::vector<StreamLoss> results = evaluate_streams(model, in.val, length, o.windows, o.sinks, window, &streams);
  std::printf("%s: trained at block %lld; %lld val streams of %lld tokens; cache of %lld tokens\n", o.ckpt.c_str(),
              static_cast<long long>(block), static_cast<long long>(streams), static_cast<long long>(length),
              static_cast<long long>(o.sinks + window));
  std::printf("%-46s %10s %22s\n", "mode", "nats/char", "past the first cache");
  for (const StreamLoss& r : results)
    std::printf("%-46s %10.4f %22.4f\n", r.mode.c_str(), r.loss, r.loss_after_fill);
  const FirstTokenShare share = first_token_share(model, in.val, o.windows);
  std::printf("attention on the first token of a block (queries in its second half): uniform %.4f; layer", share.uniform);
  for (double x : share.per_layer) std::printf(" %.4f", x);
  std::printf("\n");
  if (!o.plot.empty()) {
    plot::LineChart chart;
    chart.title = str("stream loss: ", o.sinks, " sinks + ", window, ", block ", block);
    chart.x_label = "position in the stream (characters)";
    chart.y_label = "val loss (nats/char)";
    chart.width = 760, chart.height = 420;
    for (const StreamLoss& r : results) {
      plot::Series s{r.label, {}, {}};
      bin_positions(r.per_position, 64, s.x, s.y);
      chart.series.push_back(s);
    }
    plot::write_line_chart(o.plot, chart);
    std::printf("plot: %s\n", o.plot.c_str());
  }
  return 0;
}

}  // namespace attn
