#include "train/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "autograd/engine.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

namespace {

// Draws an index from the (unnormalised) probabilities p.
int64_t draw(const std::vector<double>& p, Generator& gen) {
  const double total = std::accumulate(p.begin(), p.end(), 0.0);
  double u = gen.uniform() * total;
  for (size_t i = 0; i < p.size(); ++i) {
    if (u < p[i]) return static_cast<int64_t>(i);
    u -= p[i];
  }
  // Rounding can leave u just past the end: take the last nonzero entry.
  for (size_t i = p.size(); i-- > 0;)
    if (p[i] > 0) return static_cast<int64_t>(i);
  return 0;
}

// Streaming: a rolling cache; the prompt goes in slices that fit the
// window, then one token per step, so the cache never holds more than
// sinks + window tokens however long the text grows.
Tensor stream_step(GPT& model, KVCache& cache, const std::vector<int64_t>& context, bool first,
                   int64_t window, const Device& device) {
  if (!first) return model.forward_cached(from_ints({context.back()}, {1, 1}, device), cache);
  Tensor logits;
  for (std::size_t at = 0; at < context.size(); at += static_cast<std::size_t>(window)) {
    const std::size_t end = std::min(context.size(), at + static_cast<std::size_t>(window));
    const std::vector<int64_t> slice(context.begin() + static_cast<std::ptrdiff_t>(at),
                                     context.begin() + static_cast<std::ptrdiff_t>(end));
    logits = model.forward_cached(from_ints(slice, {1, static_cast<int64_t>(slice.size())}, device), cache);
  }
  return logits;
}

}  // namespace

int64_t stream_window(const GPT& model, const SampleOptions& o) {
  const GPTConfig& c = model.config();
  check(o.sinks >= 0, "sample: --sinks must be >= 0, got ", o.sinks);
  check(o.window == -1 || o.window >= 1, "sample: --window must be >= 1 (tokens kept after the sinks), got ",
        o.window);
  const int64_t window = o.window == -1 ? c.block_size - o.sinks : o.window;
  check(o.sinks + window <= c.block_size, "sample: --sinks ", o.sinks, " + --window ", window, " = ",
        o.sinks + window, " exceeds the model's block size ", c.block_size,
        " (positions inside the cache must stay ones the model trained on)");
  check(window >= 1, "sample: --sinks ", o.sinks, " leaves no room for a window in the block size ",
        c.block_size);
  return window;
}

std::vector<int64_t> generate(GPT& model, const std::vector<int64_t>& prompt,
                              const SampleOptions& o, Generator& gen) {
  check(!prompt.empty(), "sample: the prompt must contain at least one character");
  check(o.tokens >= 0, "sample: --tokens must be >= 0, got ", o.tokens);
  check(o.temperature >= 0 && std::isfinite(o.temperature),
        "sample: --temperature must be a finite number >= 0 (0 = greedy), got ", o.temperature);
  check(o.top_k >= 0, "sample: --top-k must be >= 0, got ", o.top_k);
  const int64_t vocab = model.config().vocab, block = model.config().block_size;
  for (int64_t id : prompt)
    check(id >= 0 && id < vocab, "sample: token id ", id, " is outside the vocabulary of ", vocab);
  NoGradGuard no_grad;
  model.eval();
  const Device device = model.parameters().front()->device();
  const bool cached = o.use_cache && model.blocks().front()->attention().cache_layout().heads > 0;
  std::optional<KVCache> cache;
  const int64_t window = o.stream ? stream_window(model, o) : 0;
  if (o.stream) {
    check(o.use_cache, "sample: --stream needs the KV cache");
    try {
      cache.emplace(model.make_rolling_cache(1, o.sinks, window));
    } catch (const Error& e) {
      fail("sample: --stream: ", e.what());  // the model's reason, said as the option's
    }
  } else if (cached) {
    cache.emplace(model.make_cache(1));
  }
  std::vector<int64_t> context = prompt, out;
  for (int64_t n = 0; n < o.tokens; ++n) {
    Tensor logits;
    if (o.stream) {
      logits = stream_step(model, *cache, context, n == 0, window, device);
    } else if (cached && cache->length() > 0 && cache->length() < block) {
      // Decode: only the newest token goes through the model.
      logits = model.forward_cached(from_ints({context.back()}, {1, 1}, device), *cache);
    } else {
      // Prefill the last <= block tokens. When the context outgrows the
      // block, the window slides and positions restart: refill the cache.
      const int64_t t = std::min<int64_t>(static_cast<int64_t>(context.size()), block);
      const Tensor ids = from_ints(std::vector<int64_t>(context.end() - t, context.end()), {1, t}, device);
      if (cached) {
        cache->clear();
        logits = model.forward_cached(ids, *cache);
      } else {
        logits = model.forward(ids);
      }
    }
    const std::vector<float> last = select(select(logits, 0, 0), 0, logits.shape()[1] - 1).to_vector();
    std::vector<double> p(last.begin(), last.end());
    int64_t next;
    if (o.temperature == 0) {
      next = std::max_element(p.begin(), p.end()) - p.begin();
    } else {
      // Only the k largest logits survive; then softmax(logits / T).
      double cutoff = -INFINITY;
      if (o.top_k > 0 && o.top_k < vocab) {
        std::vector<double> sorted = p;
        std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(),
                         std::greater<double>());
        cutoff = sorted[o.top_k - 1];
      }
      const double mx = *std::max_element(p.begin(), p.end());
      for (double& x : p) x = x < cutoff ? 0.0 : std::exp((x - mx) / o.temperature);
      next = draw(p, gen);
    }
    context.push_back(next);
    out.push_back(next);
  }
  return out;
}

}  // namespace attn
