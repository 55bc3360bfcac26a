// Flash attention on the CPU (the FlashAttention-2 schedule, in tiles).
//
// Dense attention materialises S = q k^T (Tq x Tk) before the softmax. Flash
// attention walks over key tiles instead, keeping for each query row only:
//   m  the largest score seen so far,
//   l  the sum of exp(score - m) so far,
//   acc the sum of exp(score - m) * v so far.
// When a new tile raises the max from m to m', the old sums are rescaled by
// exp(m - m') (forgetting to rescale l as well as acc is the classic bug).
// At the end out = acc / l, and lse = m + log l is saved for the backward,
// which recomputes each probability as exp(score - lse) tile by tile.
// Memory: O(tile^2 + tile d) of scratch per task instead of O(T^2).
//
// Tiles. The forward takes queries in blocks of 64 rows; each block walks
// the keys it may see in tiles of 64, and a block times a tile is a few
// small matrix products, done by OpenBLAS sgemm (one BLAS thread, called
// from each of our threads):
//   S   = scale * Q_blk K_tile^T           (64 x 64 scores)
//   P   = exp(S - m)                       (online softmax, row by row)
//   acc = acc * exp(m_old - m) + P V_tile
// Rows are read in place through their strides (FlashLayout), so a
// projection's [B, T, H*d] output needs no transposing copy.
//
// Masks. Query i may see keys [lo(i), hi(i)) (causal limit, sliding window);
// both ends only grow with i, so a query block sees one contiguous span of
// keys, and only that span is visited: this is where causal attention
// saves half the work. A tile inside every row's range needs no mask; one
// that straddles an edge gets -inf for its hidden scores, which exp turns
// into weight 0.
//
// Threads and determinism. Every output element is computed by exactly one
// task, in a fixed order of tiles that depends on the shapes alone, so a run
// on 1 thread and one on 8 give bitwise the same numbers (DESIGN.md,
// "Threads"), with no atomics:
//   forward   one task per (batch, head, query block): out and lse rows;
//   backward  D_i = dout_i . out_i, once per row, then two passes; each
//             recomputes P = exp(S - lse) and dS = P * (dO V^T - D) * scale
//             tile by tile:
//     pass 1  one task per (batch, kv head, tile of 64 keys): dV += P^T dO
//             and dK += dS^T Q, over every query head of the GQA group and
//             every block of the query rows that see the keys, in order;
//     pass 2  one task per (batch, head, query block): dQ += dS K over the
//             block's key span, like the forward.
//   Pass 2 computes S and dP again (two of the backward's seven products)
//   rather than have pass 1 add into dQ rows that other tasks share, which
//   would need atomics (an order that changes from run to run) or a
//   Tq x Tk-sized stack of partial sums.
// Under a causal mask the last query blocks (and the first key tiles) do
// the most work; tasks are numbered in a zigzag order (first, last, second,
// second last, ...) so that cheap and costly ones alternate and the last
// tasks the pool hands out are middling, never all the costly end. The
// order changes who computes a block, never what it computes.
//
// Attention dropout (optional). The output is (P * Z) V, where Z is 0 for a
// dropped probability and 1 / (1 - p) for a kept one; the softmax's l and
// lse are sums of the undropped P. So the forward drops a tile's
// probabilities after the online softmax has summed them and before P V.
// The backward regenerates each tile's Z from its (b, h, i, j) indices
// (core/attention_dropout.h), the decisions the forward drew, and uses
//   dV += (P * Z)^T dO,   dP = (dO V^T) * Z,   dS = P * (dP - D) * scale,
// with D_i = dO_i . O_i as before: O is the dropped output, and
// sum_j P_ij dP_ij = dO_i . sum_j P_ij Z_ij V_j = dO_i . O_i still holds.
// Nothing T x T is stored: a tile's decisions are 64 x 64 bits of scratch.
//
// Block lists (block-sparse attention). A sparse pattern compiled to blocks
// (BlockList in core/backend.h) replaces the contiguous span: a query block
// visits exactly the key tiles its list names, in key order, and the dK/dV
// pass visits the query blocks listed for its key tile. A tile the pattern
// allows whole needs no mask; a partial one carries one word of bits per
// row, and hidden pairs get -inf as above. Everything else (online softmax,
// dropout keyed by (b, h, i, j), the two backward passes, the task order)
// is the dense kernel's, so the time is that of the tiles visited.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/attention_dropout.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/flash_geometry.h"
#include "core/cpu/lanes.h"
#include "core/cpu/parallel.h"
#include "core/cpu/philox_groups.h"
#include "core/cpu/vmath.h"
#include "core/error.h"

namespace attn {
using namespace cpu;

namespace {

// Rows of a query block, keys of a key tile. 64 x 64 x d products run near
// OpenBLAS's peak at d = 64 (longer key tiles measured no faster), and a
// task's scratch (two 16 KB tiles, two 64 x d accumulators) stays in cache.
constexpr int64_t kBlock = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The spans, tiles and heads of flash_geometry.h.
using namespace flash;

// Which block task k of a head's n works on (the zigzag order of the
// header comment).
int64_t zigzag(int64_t k, int64_t n) { return k % 2 == 0 ? k / 2 : n - 1 - k / 2; }

// ---- small products (row-major, leading dimensions in floats) ----

// C (m x n) = alpha op(A) op(B) + beta C, op(X) = X^T where trans_x.
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, A,
              static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

// ---- row kernels (vectorised: see core/cpu/vmath.h) ----

// s[t] -= slope * |dist0 - t|: the ALiBi penalty of key j0 + t for a query
// at position j0 + dist0. Distances are exact in float below 2^24.
ATTN_VECTOR_CLONES void add_alibi(float* s, int64_t n, float slope, int64_t dist0) {
  const float d0 = static_cast<float>(dist0);
  for (int64_t t = 0; t < n; ++t) s[t] -= slope * std::fabs(d0 - static_cast<float>(t));
}

// The largest of s[0, n), in kLanes running maxima. A NaN score is passed
// over here, but exp carries it into the row's sum, so it still reaches the
// output. (`#pragma GCC unroll 1` keeps the lane loop a loop: unrolled into
// 16 scalar maxima, GCC no longer turns them into one vector max.)
ATTN_VECTOR_CLONES float row_max(const float* s, int64_t n) {
  float lane[kLanes];
  std::fill(lane, lane + kLanes, kNegInf);
  int64_t t = 0;
  for (; t + kLanes <= n; t += kLanes)
#pragma GCC unroll 1
    for (int l = 0; l < kLanes; ++l) lane[l] = lane[l] < s[t + l] ? s[t + l] : lane[l];
  for (int l = 0; t < n; ++t, ++l) lane[l] = lane[l] < s[t] ? s[t] : lane[l];
  return *std::max_element(lane, lane + kLanes);
}

// One step of the online softmax for a row that sees at least one key of
// the tile: s (n scores) becomes exp(s - m'), and the running max m, sum l
// and output acc (d floats) move to the new max m'.
ATTN_VECTOR_CLONES void online_softmax_row(float* s, int64_t n, float& m, float& l, float* acc,
                                           int64_t d) {
  const float m_new = std::max(m, row_max(s, n));
  for (int64_t t = 0; t < n; ++t) s[t] = vmath::exp(s[t] - m_new);
  if (m_new != m) {
    const float rescale = vmath::exp(m - m_new);  // 0 on the first tile (m = -inf)
    l *= rescale;
    for (int64_t c = 0; c < d; ++c) acc[c] *= rescale;
  }
  l += static_cast<float>(sum_of(s, n));
  m = m_new;
}

// The backward's probabilities: s becomes exp(s - lse). A row without any
// allowed key (lse = -inf) has only hidden scores: all its weights are 0.
ATTN_VECTOR_CLONES void probabilities_row(float* s, int64_t n, float lse) {
  if (lse == kNegInf) {
    std::fill(s, s + n, 0.0f);
    return;
  }
  for (int64_t t = 0; t < n; ++t) s[t] = vmath::exp(s[t] - lse);
}

// dS = P * (dP - D) * scale, in place over dp: the softmax backward, where
// D = sum_j P_ij dP_ij = dout_i . out_i.
ATTN_VECTOR_CLONES void softmax_grad_row(float* dp, const float* p, int64_t n, float D, float scale) {
  for (int64_t t = 0; t < n; ++t) dp[t] = p[t] * (dp[t] - D) * scale;
}

// The dropout backward of one row: dp (= dO V^T) becomes dS = P * (dP * Z -
// D) * scale, and p becomes P * Z (what dV needs); z holds the row's
// multipliers Z (1 / (1 - p) where kept, 0 where dropped).
ATTN_VECTOR_CLONES void dropped_softmax_grad_row(float* dp, float* p, int64_t n, float D, float scale,
                                                 const float* z) {
  for (int64_t t = 0; t < n; ++t) {
    dp[t] = p[t] * (dp[t] * z[t] - D) * scale;
    p[t] *= z[t];
  }
}

// ---- attention dropout ----

// The multipliers Z for the keys of tile v in query row i of head hd
// (at most kBlock): one product per probability then drops it, in a loop
// that vectorises (decisions as bits would need a shift and a test each).
// Gathered keys draw at their positions, one by one.
void row_keep_scales(const AttentionDropoutArgs& d, const FlashArgs& a, const Head& hd, int64_t i,
                     const Visit& v, float* z) {
  if (!v.positions) {
    keep_scales(d, hd.b, attention_dropout::element(d, hd.h, i, v.t.j0, a.tq, a.tk), v.t.cols(), z);
    return;
  }
  for (int64_t u = 0; u < v.t.cols(); ++u)
    keep_scales(d, hd.b, attention_dropout::element(d, hd.h, i, v.positions[u], a.tq, v.span), 1, z + u);
}

// Drops row i's probabilities for the keys of tile v in place.
ATTN_VECTOR_CLONES void drop_row(const AttentionDropoutArgs& d, const FlashArgs& a, const Head& hd, int64_t i,
                                 const Visit& v, float* row) {
  float z[kBlock];
  row_keep_scales(d, a, hd, i, v, z);
  for (int64_t t = 0; t < v.t.cols(); ++t) row[t] *= z[t];
}

// ---- one tile ----

// s (t.rows() x t.cols(), dense) = the scores of the tile:
// scale * q_i . k_j - slope |pos_i - j| where key j is visible, -inf where not.
void tile_scores(const FlashArgs& a, const Head& hd, const Visit& v, float* s) {
  const Tile& t = v.t;
  const int64_t qs = a.q_at.row, ks = a.k_at.row;
  sgemm(false, true, t.rows(), t.cols(), a.dim, a.scale, a.q + hd.q_at + t.i0 * qs, qs,
        a.k + hd.k_at + t.j0 * ks, ks, 0.0f, s, t.cols());
  const bool masked = !fully_visible(a, t);
  for (int64_t i = t.i0; i < t.i1; ++i) {
    float* row = s + (i - t.i0) * t.cols();
    if (hd.slope != 0 && v.positions) {
      for (int64_t u = 0; u < t.cols(); ++u)
        row[u] -= hd.slope * static_cast<float>(std::abs(a.offset + i - v.positions[u]));
    } else if (hd.slope != 0) {
      add_alibi(row, t.cols(), hd.slope, a.offset + i - t.j0);
    }
    if (v.bits) {
      const uint64_t word = v.bits[i - t.i0];
      for (int64_t u = 0; u < t.cols(); ++u)
        if (!(word >> u & 1)) row[u] = kNegInf;
    }
    if (!masked) continue;
    const Span r = visible_in(a, i, t);
    std::fill(row, row + r.lo, kNegInf);
    std::fill(row + r.hi, row + t.cols(), kNegInf);
  }
}

// The backward of one tile, shared by both passes: p = the tile's
// probabilities, ds = dS = P * (dO V^T - D) * scale. dout and D are the
// head's (dout in q's layout, D one float per row). With dropout, p leaves
// as P * Z and ds as P * (dO V^T * Z - D) * scale (see the header).
void tile_grads(const FlashArgs& a, const Head& hd, const Visit& v, const float* dout,
                const float* lse, const float* D, const AttentionDropoutArgs* drop, float* p,
                float* ds) {
  const Tile& t = v.t;
  const int64_t qs = a.q_at.row, vs = a.v_at.row;
  tile_scores(a, hd, v, p);
  for (int64_t i = t.i0; i < t.i1; ++i) probabilities_row(p + (i - t.i0) * t.cols(), t.cols(), lse[i]);
  sgemm(false, true, t.rows(), t.cols(), a.dim, 1.0f, dout + hd.q_at + t.i0 * qs, qs,
        a.v + hd.v_at + t.j0 * vs, vs, 0.0f, ds, t.cols());
  for (int64_t i = t.i0; i < t.i1; ++i) {
    const int64_t r = (i - t.i0) * t.cols();
    if (!drop) {
      softmax_grad_row(ds + r, p + r, t.cols(), D[i], a.scale);
      continue;
    }
    float z[kBlock];
    row_keep_scales(*drop, a, hd, i, v, z);
    dropped_softmax_grad_row(ds + r, p + r, t.cols(), D[i], a.scale, z);
  }
}

// Room for one tile of scores (or probabilities, or their gradients). Every
// use writes it before reading it, so it is left uninitialised (a
// std::vector would zero it for nothing).
std::unique_ptr<float[]> tile_scratch() {
  return std::make_unique_for_overwrite<float[]>(kBlock * kBlock);
}

// Copies rows (n x d, contiguous) to rows of stride `stride` at dst.
void store_rows(float* dst, int64_t stride, const float* rows, int64_t n, int64_t d) {
  for (int64_t r = 0; r < n; ++r) std::copy(rows + r * d, rows + (r + 1) * d, dst + r * stride);
}

// ---- the tiles a block visits ----

// Calls f(visit) for the key tiles query rows [i0, i1) visit, in key order:
// the span of block_keys cut into tiles, or the entries of their block.
template <class F>
void for_each_key_tile(const FlashArgs& a, const BlockList* list, int64_t i0, int64_t i1, F&& f) {
  if (!list) {
    const Span span = block_keys(a, i0, i1);
    for (int64_t j0 = span.lo; j0 < span.hi; j0 += kBlock)
      f(Visit{{i0, i1, j0, std::min(j0 + kBlock, span.hi)}, nullptr});
    return;
  }
  const int64_t r = i0 / list->block;
  for (int64_t e = list->row_begin[r]; e < list->row_begin[r + 1]; ++e) {
    const int64_t j0 = list->row_key[e] * list->block;
    const int64_t m = list->row_mask[e];
    f(Visit{{i0, i1, j0, std::min(j0 + list->block, a.tk)},
            m < 0 ? nullptr : list->masks + m * list->block,
            list->key_position ? list->key_position + j0 : nullptr, list->key_span});
  }
}

// Calls f(visit) for the query tiles that see keys [j0, j1), in query order.
template <class F>
void for_each_query_tile(const FlashArgs& a, const BlockList* list, int64_t j0, int64_t j1, F&& f) {
  if (!list) {
    const Span span = block_rows(a, j0, j1);
    for (int64_t i0 = span.lo; i0 < span.hi; i0 += kBlock)
      f(Visit{{i0, std::min(i0 + kBlock, span.hi), j0, j1}, nullptr});
    return;
  }
  const int64_t c = j0 / list->block;
  for (int64_t e = list->col_begin[c]; e < list->col_begin[c + 1]; ++e) {
    const int64_t i0 = list->col_query[e] * list->block;
    const int64_t m = list->col_mask[e];
    f(Visit{{i0, std::min(i0 + list->block, a.tq), j0, j1},
            m < 0 ? nullptr : list->masks + m * list->block,
            list->key_position ? list->key_position + j0 : nullptr, list->key_span});
  }
}

// ---- the three kinds of task ----

// Forward of query rows [i0, i1) of one head: out and lse (drop: attention
// dropout, or null).
void forward_block(const FlashArgs& a, const BlockList* list, const Head& hd, int64_t i0,
                   int64_t i1, const AttentionDropoutArgs* drop) {
  const int64_t d = a.dim, rows = i1 - i0, vs = a.v_at.row;
  const auto s = tile_scratch();
  std::vector<float> acc(rows * d, 0.0f), m(rows, kNegInf), l(rows, 0.0f);
  for_each_key_tile(a, list, i0, i1, [&](const Visit& v) {
    const Tile& t = v.t;
    tile_scores(a, hd, v, s.get());
    for (int64_t r = 0; r < rows; ++r) {
      float* row = s.get() + r * t.cols();
      if (!row_sees_any(a, i0 + r, v)) {  // all hidden: weight 0 (and its max, -inf, would give NaN)
        std::fill(row, row + t.cols(), 0.0f);
        continue;
      }
      online_softmax_row(row, t.cols(), m[r], l[r], &acc[r * d], d);
      if (drop) drop_row(*drop, a, hd, i0 + r, v, row);  // after l has summed P
    }
    sgemm(false, false, rows, d, t.cols(), 1.0f, s.get(), t.cols(), a.v + hd.v_at + t.j0 * vs, vs,
          1.0f, acc.data(), d);
  });
  // A row with no allowed key outputs zeros (and lse = -inf). Any other row
  // has l >= 1 (its largest score adds exp(0)), or NaN, which must show.
  float* lse = a.lse + (hd.b * a.heads + hd.h) * a.tq;
  for (int64_t r = 0; r < rows; ++r) {
    const bool empty = l[r] == 0;
    const float inv = empty ? 0.0f : 1.0f / l[r];
    for (int64_t c = 0; c < d; ++c) acc[r * d + c] *= inv;
    lse[i0 + r] = empty ? kNegInf : m[r] + std::log(l[r]);
  }
  store_rows(a.out + hd.q_at + i0 * a.q_at.row, a.q_at.row, acc.data(), rows, d);
}

// Backward pass 1 for keys [j0, j1) of kv head kvh: dK and dV, summed over
// the query heads of its group and their query blocks, in a fixed order.
void key_tile_grads(const FlashArgs& a, const BlockList* list, int64_t b, int64_t kvh, int64_t j0,
                    int64_t j1, const float* dout, const float* D, const AttentionDropoutArgs* drop,
                    float* dk, float* dv) {
  const int64_t d = a.dim, cols = j1 - j0, group = a.heads / a.kv_heads, qs = a.q_at.row;
  const auto p = tile_scratch(), ds = tile_scratch();
  std::vector<float> dk_acc(cols * d, 0.0f), dv_acc(cols * d, 0.0f);
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const Head hd = head_of(a, b, h);
    const float* lse = a.lse + (b * a.heads + h) * a.tq;
    const float* Dh = D + (b * a.heads + h) * a.tq;
    for_each_query_tile(a, list, j0, j1, [&](const Visit& v) {
      const int64_t i0 = v.t.i0;
      tile_grads(a, hd, v, dout, lse, Dh, drop, p.get(), ds.get());
      // dV += P^T dO (P * Z with dropout) and dK += dS^T Q.
      sgemm(true, false, cols, d, v.t.rows(), 1.0f, p.get(), cols, dout + hd.q_at + i0 * qs, qs,
            1.0f, dv_acc.data(), d);
      sgemm(true, false, cols, d, v.t.rows(), 1.0f, ds.get(), cols, a.q + hd.q_at + i0 * qs, qs,
            1.0f, dk_acc.data(), d);
    });
  }
  store_rows(dk + head_start(a.k_at, b, kvh) + j0 * a.k_at.row, a.k_at.row, dk_acc.data(), cols, d);
  store_rows(dv + head_start(a.v_at, b, kvh) + j0 * a.v_at.row, a.v_at.row, dv_acc.data(), cols, d);
}

// Backward pass 2 for query rows [i0, i1) of one head: dQ = sum over its key
// tiles of dS K, in key order.
void query_block_grads(const FlashArgs& a, const BlockList* list, const Head& hd, int64_t i0,
                       int64_t i1, const float* dout, const float* D,
                       const AttentionDropoutArgs* drop, float* dq) {
  const int64_t d = a.dim, rows = i1 - i0, ks = a.k_at.row;
  const auto p = tile_scratch(), ds = tile_scratch();
  std::vector<float> dq_acc(rows * d, 0.0f);
  const float* lse = a.lse + (hd.b * a.heads + hd.h) * a.tq;
  const float* Dh = D + (hd.b * a.heads + hd.h) * a.tq;
  for_each_key_tile(a, list, i0, i1, [&](const Visit& v) {
    tile_grads(a, hd, v, dout, lse, Dh, drop, p.get(), ds.get());
    sgemm(false, false, rows, d, v.t.cols(), 1.0f, ds.get(), v.t.cols(),
          a.k + hd.k_at + v.t.j0 * ks, ks, 1.0f, dq_acc.data(), d);
  });
  store_rows(dq + hd.q_at + i0 * a.q_at.row, a.q_at.row, dq_acc.data(), rows, d);
}

// Calls f(batch, head, block start, block end) for every block of `size`
// rows of `t` of every (batch, head) pair, spread over the pool in zigzag order.
template <class F>
void for_each_block(int64_t batch, int64_t heads, int64_t t, int64_t size, F&& f) {
  const int64_t blocks = (t + size - 1) / size;
  parallel_for(batch * heads * blocks, 1, [&](int64_t task0, int64_t task1) {
    for (int64_t task = task0; task < task1; ++task) {
      const int64_t bh = task / blocks, start = zigzag(task % blocks, blocks) * size;
      f(bh / heads, bh % heads, start, std::min(start + size, t));
    }
  });
}

// Dropout with p = 0 drops nothing: the kernels then skip it altogether.
const AttentionDropoutArgs* active(const AttentionDropoutArgs* drop) {
  return drop && drop->p > 0 ? drop : nullptr;
}

// The forward and backward of both entry points: list null = the dense
// span rule (causal, window), else the block list's tiles.
void forward(const FlashArgs& a, const BlockList* list, const AttentionDropoutArgs* dropout) {
  const AttentionDropoutArgs* drop = active(dropout);
  const int64_t size = list ? list->block : kBlock;
  for_each_block(a.batch, a.heads, a.tq, size, [&](int64_t b, int64_t h, int64_t i0, int64_t i1) {
    forward_block(a, list, head_of(a, b, h), i0, i1, drop);
  });
}

void backward(const FlashArgs& a, const BlockList* list, const float* dout, float* dq, float* dk,
              float* dv, const AttentionDropoutArgs* dropout) {
  const AttentionDropoutArgs* drop = active(dropout);
  // D_i = dout_i . out_i equals sum_j p_ij dP_ij: the softmax backward's row
  // term, computed without the row of probabilities, once for both passes.
  const int64_t bh = a.batch * a.heads;
  std::vector<float> D(bh * a.tq);
  parallel_for(bh * a.tq, rows_per_chunk(a.dim), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {  // r = (b * heads + h) * tq + i, as in lse
      const int64_t b = r / (a.heads * a.tq), h = r / a.tq % a.heads, i = r % a.tq;
      const int64_t at = head_start(a.q_at, b, h) + i * a.q_at.row;
      D[r] = static_cast<float>(dot_of(dout + at, a.out + at, a.dim));
    }
  });
  const int64_t size = list ? list->block : kBlock;
  for_each_block(a.batch, a.kv_heads, a.tk, size, [&](int64_t b, int64_t kvh, int64_t j0, int64_t j1) {
    key_tile_grads(a, list, b, kvh, j0, j1, dout, D.data(), drop, dk, dv);
  });
  for_each_block(a.batch, a.heads, a.tq, size, [&](int64_t b, int64_t h, int64_t i0, int64_t i1) {
    query_block_grads(a, list, head_of(a, b, h), i0, i1, dout, D.data(), drop, dq);
  });
}

// A block list fits the call: its blocks cut Tq and Tk, at most 64 keys a
// block (one word of bits per row), and it alone masks.
void check_block_list(const FlashArgs& a, const BlockList& l) {
  const char* op = "block_sparse_flash";
  check(l.block >= 1 && l.block <= kBlock, op, ": block ", l.block, " outside 1..", kBlock);
  check(l.query_blocks == (a.tq + l.block - 1) / l.block && l.key_blocks == (a.tk + l.block - 1) / l.block,
        op, ": a list of ", l.query_blocks, " x ", l.key_blocks, " blocks of ", l.block, " for ",
        a.tq, " queries and ", a.tk, " keys");
  check(!a.causal && a.window == 0, op, ": the block list alone masks; causal and window must be off");
  check(!l.key_position || l.key_span > 0, op, ": gathered keys need the span they come from");
}

}  // namespace

// Float32 products whatever `products` asks (see FlashProducts).
void CpuBackend::flash_attention_forward(const FlashArgs& a, const AttentionDropoutArgs* dropout,
                                         FlashProducts) {
  forward(a, nullptr, dropout);
}

void CpuBackend::flash_attention_backward(const FlashArgs& a, const float* dout, float* dq,
                                          float* dk, float* dv, const AttentionDropoutArgs* dropout,
                                          FlashProducts) {
  backward(a, nullptr, dout, dq, dk, dv, dropout);
}

void CpuBackend::block_sparse_flash_forward(const FlashArgs& a, const BlockList& blocks,
                                            const AttentionDropoutArgs* dropout) {
  check_block_list(a, blocks);
  forward(a, &blocks, dropout);
}

void CpuBackend::block_sparse_flash_backward(const FlashArgs& a, const BlockList& blocks,
                                             const float* dout, float* dq, float* dk, float* dv,
                                             const AttentionDropoutArgs* dropout) {
  check_block_list(a, blocks);
  backward(a, &blocks, dout, dq, dk, dv, dropout);
}

}  // namespace attn
