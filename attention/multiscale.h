// Multi-scale attention: the heads of one layer look at different scales.
//
// A single attention pattern has one reach. Multi-scale attention splits the
// heads into groups and gives each group its own sliding window:
//
//   windows = 8, 32, 0   with 6 heads ->  heads 0-1: the last 8 keys
//                                         heads 2-3: the last 32 keys
//                                         heads 4-5: every earlier key (0 = full causal)
//
// The heads split evenly, in the order of the list, so the number of windows
// must divide the number of heads. A window counts the query's own key (the
// convention of attention/window.h): W = 1 sees only itself.
//
// Two implementations of the same thing:
//   multiscale_attention_masked  one dense attention with a [H, Tq, Tk] mask
//                                that differs per head: O(T^2), readable.
//   multiscale_attention         one flash kernel call per group, each
//                                reading its heads in place (a pointer
//                                offset into q, k, v: no copy). CPU; on
//                                CUDA it takes the masked path.
#pragma once
#include <string>
#include <vector>

#include "attention/flash.h"
#include "attention/kernel.h"

namespace attn {

// The groups for `heads` heads and a list of windows (>= 0, 0 = full):
// group i holds heads i*n .. i*n+n-1 with n = heads / windows.size().
// An empty list, a negative window or a list that does not divide the
// heads is an error that names the value.
std::vector<HeadGroup> scale_groups(int64_t heads, const std::vector<int64_t>& windows);

// "8,32,0" -> {8, 32, 0}; an item that is not an integer >= 0 is an error.
std::vector<int64_t> parse_windows(const std::string& text);

// keep[h, i, j]: may the query at position offset + i of head h see key j?
// Its group's window decides. Shape [H, Tq, Tk], bool.
Tensor multiscale_mask(const std::vector<HeadGroup>& groups, int64_t tq, int64_t tk, int64_t offset,
                       const Device& device);

// The readable path: dense scores, the per-head mask, softmax. Fills
// call.weights when asked.
Tensor multiscale_attention_masked(const AttentionCall& call, const std::vector<HeadGroup>& groups);

// The lean path: flash attention group by group, in place. Falls back to
// the masked path when the call wants the weights (heatmaps) and on CUDA
// (see flash_attention_groups).
Tensor multiscale_attention(const AttentionCall& call, const std::vector<HeadGroup>& groups);

// The kernel of the `multiscale:windows=...` variant; the groups are made
// from the call's head count, which the variant has checked already.
AttentionKernel multiscale_kernel(const std::vector<int64_t>& windows);

}  // namespace attn
