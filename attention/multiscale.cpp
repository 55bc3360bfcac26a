// Multi-scale attention: see multiscale.h.
#include "attention/multiscale.h"

#include <algorithm>

#include "attention/attention.h"
#include "attention/window.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

namespace {

std::string joined(const std::vector<int64_t>& windows) {
  std::string s;
  for (int64_t w : windows) {
    if (!s.empty()) s += ',';
    s += std::to_string(w);
  }
  return s;
}

}  // namespace

std::vector<HeadGroup> scale_groups(int64_t heads, const std::vector<int64_t>& windows) {
  check(!windows.empty(), "attention multiscale: windows is empty; expected a list such as "
                          "windows=8,32,0 (0 = full causal)");
  for (int64_t w : windows)
    check(w >= 0, "attention multiscale: windows=", joined(windows), " has ", w,
          "; every window must be >= 0 (0 = full causal)");
  const int64_t n = static_cast<int64_t>(windows.size());
  check(heads >= 1 && heads % n == 0, "attention multiscale: windows=", joined(windows), " lists ", n,
        " windows, which do not divide heads=", heads,
        "; the heads split evenly among the windows, so give a number of windows that divides ",
        heads);
  std::vector<HeadGroup> groups;
  for (int64_t i = 0; i < n; ++i) groups.push_back({i * (heads / n), heads / n, windows[i]});
  return groups;
}

std::vector<int64_t> parse_windows(const std::string& text) {
  std::vector<int64_t> windows;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const bool digits = !item.empty() && item.size() < 10 &&
                        std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; });
    check(digits, "attention multiscale: windows=", text, " has '", item,
          "'; expected a comma-separated list of integers >= 0 (0 = full causal), e.g. windows=8,32,0");
    windows.push_back(std::stoll(item));
    pos = comma + 1;
  }
  return windows;
}

Tensor multiscale_mask(const std::vector<HeadGroup>& groups, int64_t tq, int64_t tk, int64_t offset,
                       const Device& device) {
  std::vector<Tensor> per_group;
  for (const HeadGroup& g : groups) {
    const Tensor keep = g.window == 0 ? causal_mask(tq, tk, offset, device)
                                      : window_mask(tq, tk, offset, g.window, device);
    // The group's heads all share its mask: [Tq, Tk] -> [heads, Tq, Tk].
    per_group.push_back(expand(reshape(keep, {1, tq, tk}), {g.heads, tq, tk}));
  }
  return cat(per_group, 0);
}

Tensor multiscale_attention_masked(const AttentionCall& c, const std::vector<HeadGroup>& groups) {
  const int64_t heads = c.q.shape()[1];
  const Tensor keep = multiscale_mask(groups, c.q.shape()[2], c.k.shape()[2], c.offset, c.q.device());
  const Tensor weights = attention_weights(c.q, repeat_kv(c.k, heads), keep, c.scale, c.bias());
  if (c.want_weights) c.weights = weights;
  return matmul(c.drop(weights), repeat_kv(c.v, heads));
}

Tensor multiscale_attention(const AttentionCall& c, const std::vector<HeadGroup>& groups) {
  if (c.want_weights || !c.q.device().is_cpu()) return multiscale_attention_masked(c, groups);
  FlashOptions o;
  o.offset = c.offset;
  o.alibi = c.alibi;
  o.scale = c.scale;
  o.dropout = c.dropout;
  return flash_attention_groups(c.q, c.k, c.v, o, groups);
}

AttentionKernel multiscale_kernel(const std::vector<int64_t>& windows) {
  return [windows](const AttentionCall& c) {
    return multiscale_attention(c, scale_groups(c.q.shape()[1], windows));
  };
}

}  // namespace attn
