// Chapter 17: multi-scale attention.
//
// The heads of one layer split into groups, and each group attends with its
// own sliding window: windows = {8, 32, 0} with 6 heads gives heads 0-1 the
// last 8 keys, heads 2-3 the last 32 and heads 4-5 every earlier key
// (0 = full causal). The heads split evenly, in the order of the list.
//
// Window convention (chapter 08): a query at position p sees the keys
// max(0, p - W + 1) .. p, W keys counting itself.
//
// Positions. Keys 0..Tk-1 sit at positions 0..Tk-1, queries at offset ..
// offset + Tq - 1 (offset = 0 without a cache; Tk = offset + Tq with one).
//
// Shapes: B batch, H heads, Tq queries, Tk keys, d the head size.
// q [B, H, Tq, d], k and v [B, H, Tk, d] (as many K/V heads as query heads).
//
// You implement scale_groups, multiscale_mask, multiscale_attention_masked
// and WindowedCache::append in multiscale.cpp, with the ops of
// autograd/ops.h. The rest of WindowedCache and attend_cached are given
// (multiscale_glue.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "attention/flash.h"
#include "core/tensor.h"

namespace lesson17 {

using attn::Tensor;
// first_head, heads, window: the heads first_head .. first_head + heads - 1
// attend with `window` (0 = full causal).
using ScaleGroup = attn::HeadGroup;

// Splits `heads` heads evenly among `windows`, in order: group i holds
// heads i*n .. i*n + n - 1 with n = heads / windows.size(), and window
// windows[i]. Throws attn::Error (use attn::check) when the list is empty,
// a window is negative, or the number of windows does not divide heads;
// the message names the value and what was expected.
std::vector<ScaleGroup> scale_groups(int64_t heads, const std::vector<int64_t>& windows);

// keep[h, i, j] (bool, [H, Tq, Tk], H = the groups' heads together): true
// when the query at position offset + i of head h may see key j under its
// group's window: j <= p, and j > p - W unless W = 0.
Tensor multiscale_mask(const std::vector<ScaleGroup>& groups, int64_t tq, int64_t tk,
                       int64_t offset = 0);

// One dense attention for all heads with the per-head mask:
// softmax(q k^T / sqrt(d), masked) v -> [B, H, Tq, d]. weights_out, when
// non-null, receives the weights [B, H, Tq, Tk].
Tensor multiscale_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v,
                                   const std::vector<ScaleGroup>& groups, int64_t offset = 0,
                                   Tensor* weights_out = nullptr);

// A KV cache that keeps, per head group, only the keys its window can still
// reach. Generation appends each step's keys and values, then attends over
// what the cache holds (attend_cached). Values only: no autograd graph.
class WindowedCache {
 public:
  explicit WindowedCache(std::vector<ScaleGroup> groups);  // given

  // YOUR PART. Appends k, v [B, H, T, d] (tokens at positions length() ..
  // length() + T - 1) and advances length() by T. Per group: first drop the
  // old keys that no query from position length() on can reach (a window W
  // keeps at most its W - 1 newest old keys; W = 0 keeps all), then add the
  // group's heads of the new ones. The cache must own what it keeps (copies
  // of the group's heads, not views of the caller's tensors).
  void append(const Tensor& k, const Tensor& v);

  // Given. Tokens appended so far.
  int64_t length() const { return length_; }
  // Given. Group g's kept keys and values [B, heads, kept, d] and the
  // position of the first kept key (length() - kept).
  const Tensor& keys(std::size_t g) const { return k_.at(g); }
  const Tensor& values(std::size_t g) const { return v_.at(g); }
  int64_t first_position(std::size_t g) const;
  // Given. Bytes of every kept key and value: sum over groups of
  // B * heads * kept * d * 2 (K and V) * 4.
  std::size_t bytes() const;
  const std::vector<ScaleGroup>& groups() const { return groups_; }

 private:
  std::vector<ScaleGroup> groups_;
  std::vector<Tensor> k_, v_;  // per group; undefined until the first append
  int64_t length_ = 0;
};

// Given. Attention of the newest Tq tokens (q [B, H, Tq, d], already
// appended to the cache) over what the cache keeps: one flash call per
// group, with its window, its queries at positions length() - Tq ...
Tensor attend_cached(const Tensor& q, const WindowedCache& cache);

}  // namespace lesson17
