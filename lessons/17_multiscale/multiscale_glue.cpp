// Chapter 17 glue: given code, compiled both with your multiscale.cpp and
// with the reference solution (solution/multiscale.cpp), so it is written
// once. You do not need to change this file.
#include <cmath>
#include <memory>

#include "attention/flash.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "attention/multiscale.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "multiscale.h"

namespace lesson17 {

using namespace attn;

WindowedCache::WindowedCache(std::vector<ScaleGroup> groups)
    : groups_(std::move(groups)), k_(groups_.size()), v_(groups_.size()) {}

int64_t WindowedCache::first_position(std::size_t g) const {
  return keys(g).defined() ? length_ - keys(g).shape()[2] : length_;
}

std::size_t WindowedCache::bytes() const {
  std::size_t total = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g)
    if (k_[g].defined()) total += static_cast<std::size_t>(k_[g].numel() + v_[g].numel()) * sizeof(float);
  return total;
}

Tensor attend_cached(const Tensor& q, const WindowedCache& cache) {
  const int64_t tq = q.shape()[2];
  std::vector<Tensor> outs;
  for (std::size_t g = 0; g < cache.groups().size(); ++g) {
    const ScaleGroup& group = cache.groups()[g];
    check(cache.keys(g).defined(), "attend_cached: the cache is empty; append first");
    // Positions inside the kept keys: the first kept key is position 0, so
    // the newest query sits at (length - 1) - first_position.
    FlashOptions o;
    o.offset = cache.length() - tq - cache.first_position(g);
    o.window = group.window;
    outs.push_back(flash_attention(narrow(q, 1, group.first_head, group.heads), cache.keys(g),
                                   cache.values(g), o));
  }
  return outs.size() == 1 ? outs.front() : cat(outs, 1);
}

}  // namespace lesson17

// ---- glue: your masked path as a variant ----------------------------------
// Registers "student:multiscale:windows=W1,W2,...": the library's multi-head
// module running YOUR scale_groups and multiscale_attention_masked.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:multiscale",
      "chapter 17: multi-head attention running your multiscale_attention_masked; option windows=W1,W2,...",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"windows"});
        attn::check(spec.options.count("windows"), "attention student:multiscale: needs the option "
                    "windows=W1,W2,..., e.g. student:multiscale:windows=2,0");
        const auto groups =
            lesson17::scale_groups(config.heads, attn::parse_windows(spec.options.at("windows")));
        auto kernel = [groups](const attn::AttentionCall& call) {
          return lesson17::multiscale_attention_masked(call.q, call.k, call.v, groups, call.offset);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
