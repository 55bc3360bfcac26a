// Sliding-window attention, masked and banded: see window.h.
//
// The banded path in pictures (W = 3, chunks of c = 3 query rows):
//
//              keys ->  0 1 2 3 4 5 6 7 8
//   chunk 0  q0         x
//            q1         x x
//            q2         x x x
//   chunk 1  q3           x x x            keys 1..5: the chunk's band
//            q4             x x x
//            q5               x x x
//   chunk 2  q6                 x x x      keys 4..8
//            ...
// A chunk's scores are c x (c + W - 1) instead of c x T, so all chunks
// together hold T x (c + W - 1) scores: linear in T for a fixed window.
#include "attention/window.h"

#include <algorithm>
#include <limits>

#include "attention/attention.h"
#include "attention/pattern.h"
#include "attention/positions.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

namespace {

void check_window(int64_t window) {
  check(window >= 1, "attention window: size must be >= 1, got ", window);
}

// Rows per chunk: about W, so a chunk's band is at most 2W - 1 keys wide.
// At least 16 rows so that W = 1 does not mean T tiny matmuls; at most 256
// so that a huge W does not turn one chunk into the whole T x T matrix.
int64_t default_chunk(int64_t window) { return std::clamp<int64_t>(window, 16, 256); }

// Softmax weights of one chunk over its band, for chunks where every
// query sees at least one key (its own). Written out rather than calling
// attention_weights because the autograd graph keeps every intermediate
// alive until backward: each c x band tensor made here is kept for every
// chunk, so this path makes as few as it can.
Tensor band_weights(const Tensor& q, const Tensor& kb, const Tensor& keep, float scale,
                    const Tensor& bias) {
  // Scale q (c x d) rather than the scores (c x band): a smaller tensor.
  Tensor scores = matmul(mul(q, scale), transpose(kb, -2, -1));
  if (bias.defined()) scores = add(scores, bias);
  scores = masked_fill(scores, logical_not(keep), -std::numeric_limits<float>::infinity());
  return softmax(scores, -1);
}

// Output rows [s, s + rows) of the banded path. k and v already have the
// query heads (repeat_kv); q is the whole [B, H, Tq, d] query tensor.
Tensor window_chunk(const AttentionCall& c, const Tensor& k, const Tensor& v, int64_t s,
                    int64_t rows, int64_t window) {
  const int64_t tk = k.shape()[2];
  const int64_t first = c.offset + s;  // position of the chunk's first query
  const int64_t last = first + rows - 1;
  // The band: from W - 1 keys before the first query to the last query
  // itself, clipped to the keys that exist.
  const int64_t k0 = std::clamp<int64_t>(first - window + 1, 0, tk);
  const int64_t k1 = std::clamp<int64_t>(last + 1, 0, tk);
  const Tensor q = narrow(c.q, 2, s, rows);
  if (k1 <= k0)  // no key in reach (queries before position 0): zeros, like the masked path
    return zeros({q.shape()[0], q.shape()[1], rows, v.shape()[3]}, DType::Float32, q.device());
  // Views, not copies: narrow only moves the start of the tensor.
  const Tensor kb = narrow(k, 2, k0, k1 - k0), vb = narrow(v, 2, k0, k1 - k0);
  // Inside the band, positions are relative to key k0: query i sits at
  // first - k0 + i. The same band rule then applies unchanged.
  const Tensor keep = window_mask(rows, k1 - k0, first - k0, window, q.device());
  const Tensor bias = c.alibi.empty()
                          ? Tensor()
                          : alibi_bias(c.q.shape()[1], rows, k1 - k0, first - k0, q.device());
  // Query p has at least one key in its band when 0 <= p and p - W + 1 < Tk
  // (with a cache, its own key p is always there). Calls from
  // MultiHeadAttention always satisfy this; for the odd call that does not
  // (a negative offset), the general function outputs zeros for the rows
  // without keys instead of softmax's 0/0 = NaN.
  const bool every_row_has_a_key = first >= 0 && last - window + 1 < tk;
  const Tensor weights = every_row_has_a_key ? band_weights(q, kb, keep, c.scale, bias)
                                             : attention_weights(q, kb, keep, c.scale, bias);
  // Attention dropout: the chunk's weights are rows s.. and keys k0.. of
  // the call's matrix, and are dropped as the dense path would drop them.
  return matmul(c.drop(weights, s, k0), vb);
}

}  // namespace

Tensor window_mask(int64_t tq, int64_t tk, int64_t offset, int64_t window, const Device& device) {
  check_window(window);
  const Tensor i = reshape(arange(static_cast<double>(offset), static_cast<double>(offset + tq), 1,
                                  DType::Float32, device), {tq, 1});
  const Tensor j = reshape(arange(0, static_cast<double>(tk), 1, DType::Float32, device), {1, tk});
  // j <= i (causal) and j > i - W (inside the window): W keys, i included.
  return logical_and(logical_not(gt(j, i)), gt(j, i - static_cast<float>(window)));
}

Tensor window_attention_masked(const AttentionCall& c, int64_t window) {
  return attention_with_pattern(
      c, window_mask(c.q.shape()[2], c.k.shape()[2], c.offset, window, c.q.device()));
}

Tensor window_attention_banded(const AttentionCall& c, int64_t window, int64_t chunk) {
  check_window(window);
  check(chunk >= 0, "attention window: chunk must be >= 0 (0 = automatic), got ", chunk);
  if (c.want_weights) return window_attention_masked(c, window);
  const int64_t heads = c.q.shape()[1], tq = c.q.shape()[2];
  check(tq > 0, "attention window: no queries");
  if (chunk == 0) chunk = default_chunk(window);
  const Tensor k = repeat_kv(c.k, heads), v = repeat_kv(c.v, heads);
  std::vector<Tensor> out;
  for (int64_t s = 0; s < tq; s += chunk)
    out.push_back(window_chunk(c, k, v, s, std::min(chunk, tq - s), window));
  // cat's backward hands each chunk its slice of the gradient, and each
  // narrow's backward places it back into K/V: autograd does the rest.
  return out.size() == 1 ? out.front() : cat(out, 2);
}

AttentionKernel window_kernel(int64_t window) {
  check_window(window);
  return [window](const AttentionCall& c) { return window_attention_banded(c, window); };
}

}  // namespace attn
