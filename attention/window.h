// Sliding-window attention: each query looks at the last W keys only.
//
// Convention (the same as flash:window=W): W counts the query's own key.
// Query i (at position p = offset + i) sees keys
//     max(0, p - W + 1) .. p          -> at most W keys, itself included.
// So W = 1 attends only to itself, and W >= T is plain causal attention.
// (The classic off-by-one is the band `p - W <= j <= p`: W + 1 keys.)
//
// With L layers stacked, information still travels L * (W - 1) positions:
// each layer extends the reach of the one below (as in Mistral).
//
// Two implementations of the same thing:
//   window_attention_masked  dense scores + the band as a mask:
//                            O(T^2) time and memory, easy to read.
//   window_attention_banded  queries in chunks of c rows; a chunk only ever
//                            touches the c + W - 1 keys its band can reach:
//                            O(T * W) time and memory, never a T x T matrix.
#pragma once
#include "attention/kernel.h"

namespace attn {

// keep[i, j] = (p - W < j <= p) with p = offset + i: the band, [Tq, Tk].
Tensor window_mask(int64_t tq, int64_t tk, int64_t offset, int64_t window, const Device& device);

// The readable path: full scores, masked to the band. Fills call.weights
// when asked.
Tensor window_attention_masked(const AttentionCall& call, int64_t window);

// The memory-lean path. `chunk` = query rows per step (0: chosen from W).
// Works with a KV cache (Tk > Tq, queries at offset..offset+Tq-1). When the
// call wants the weights (heatmaps), it falls back to the masked path,
// since a [Tq, Tk] weight matrix is exactly what the bands avoid.
Tensor window_attention_banded(const AttentionCall& call, int64_t window, int64_t chunk = 0);

// The multi-head kernel of the `window:size=W` variant (the banded path).
AttentionKernel window_kernel(int64_t window);

}  // namespace attn
