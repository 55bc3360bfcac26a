// Flash attention on the CPU (the FlashAttention-2 schedule, in plain loops).
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
// Memory: O(tile^2 + T d) instead of O(T^2).
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/cpu/cpu_backend.h"

namespace attn {

namespace {

constexpr int64_t kTile = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The keys query i may see: [lo, hi).
struct KeyRange {
  int64_t lo, hi;
};

KeyRange allowed_keys(const FlashArgs& a, int64_t i) {
  const int64_t pos = a.offset + i;
  int64_t hi = a.causal ? std::min(a.tk, pos + 1) : a.tk;
  int64_t lo = a.window > 0 ? std::max<int64_t>(0, pos - a.window + 1) : 0;
  if (hi < lo) hi = lo;
  return {lo, hi};
}

// Where head h of batch b starts in an operand of layout `at` (rows follow
// every at.row floats).
inline int64_t head_start(const FlashLayout& at, int64_t b, int64_t h) {
  return b * at.batch + h * at.head;
}

// score(i, j) = scale * q_i . k_j - slope * |pos_i - j|
inline float score(const FlashArgs& a, const float* qi, const float* kj, int64_t pos, int64_t j,
                   float slope) {
  float dot = 0;
  for (int64_t c = 0; c < a.dim; ++c) dot += qi[c] * kj[c];
  return dot * a.scale - slope * static_cast<float>(std::llabs(pos - j));
}

}  // namespace

void CpuBackend::flash_attention_forward(const FlashArgs& a) {
  const int64_t d = a.dim, group = a.heads / a.kv_heads;
  std::vector<float> s(kTile), acc(d);
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < a.heads; ++h) {
      const int64_t kvh = h / group;  // GQA: read the shared K/V head, no copies
      const float* q = a.q + head_start(a.q_at, b, h);
      const float* k = a.k + head_start(a.k_at, b, kvh);
      const float* v = a.v + head_start(a.v_at, b, kvh);
      float* out = a.out + head_start(a.q_at, b, h);
      float* lse = a.lse + (b * a.heads + h) * a.tq;
      const int64_t qs = a.q_at.row, ks = a.k_at.row, vs = a.v_at.row;  // row strides
      const float slope = a.alibi ? a.alibi[h] : 0.0f;
      for (int64_t i = 0; i < a.tq; ++i) {
        const KeyRange r = allowed_keys(a, i);
        const float* qi = q + i * qs;
        float m = kNegInf, l = 0;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j0 = r.lo; j0 < r.hi; j0 += kTile) {
          const int64_t n = std::min(kTile, r.hi - j0);
          float tile_max = kNegInf;
          for (int64_t t = 0; t < n; ++t) {
            s[t] = score(a, qi, k + (j0 + t) * ks, a.offset + i, j0 + t, slope);
            tile_max = std::max(tile_max, s[t]);
          }
          const float m_new = std::max(m, tile_max);
          const float rescale = std::exp(m - m_new);  // 0 on the first tile (m = -inf)
          l *= rescale;
          for (int64_t c = 0; c < d; ++c) acc[c] *= rescale;
          for (int64_t t = 0; t < n; ++t) {
            const float p = std::exp(s[t] - m_new);
            l += p;
            const float* vj = v + (j0 + t) * vs;
            for (int64_t c = 0; c < d; ++c) acc[c] += p * vj[c];
          }
          m = m_new;
        }
        // A row with no allowed key outputs zeros (and lse = -inf).
        const float inv = l > 0 ? 1.0f / l : 0.0f;
        for (int64_t c = 0; c < d; ++c) out[i * qs + c] = acc[c] * inv;
        lse[i] = l > 0 ? m + std::log(l) : kNegInf;
      }
    }
}

void CpuBackend::flash_attention_backward(const FlashArgs& a, const float* dout, float* dq,
                                          float* dk, float* dv) {
  const int64_t d = a.dim, group = a.heads / a.kv_heads;
  // Every layout is dense: its B*H*T*d floats, in some order.
  std::fill(dk, dk + a.batch * a.kv_heads * a.tk * d, 0.0f);
  std::fill(dv, dv + a.batch * a.kv_heads * a.tk * d, 0.0f);
  const int64_t qs = a.q_at.row, ks = a.k_at.row, vs = a.v_at.row;  // row strides
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t h = 0; h < a.heads; ++h) {
      const int64_t kvh = h / group;
      const int64_t qoff = head_start(a.q_at, b, h);
      const float *q = a.q + qoff, *o = a.out + qoff, *g = dout + qoff;
      const float *k = a.k + head_start(a.k_at, b, kvh), *v = a.v + head_start(a.v_at, b, kvh);
      const float* lse = a.lse + (b * a.heads + h) * a.tq;
      float* dqh = dq + qoff;
      float* dkh = dk + head_start(a.k_at, b, kvh);
      float* dvh = dv + head_start(a.v_at, b, kvh);
      const float slope = a.alibi ? a.alibi[h] : 0.0f;
      for (int64_t i = 0; i < a.tq; ++i) {
        const float* qi = q + i * qs;
        const float* gi = g + i * qs;
        float* dqi = dqh + i * qs;
        for (int64_t c = 0; c < d; ++c) dqi[c] = 0;
        if (lse[i] == kNegInf) continue;  // no keys: no gradient
        // D_i = dout_i . out_i equals sum_j p_ij dP_ij: the softmax
        // backward's row term, computed without the row of probabilities.
        float D = 0;
        for (int64_t c = 0; c < d; ++c) D += gi[c] * o[i * qs + c];
        const KeyRange r = allowed_keys(a, i);
        for (int64_t j = r.lo; j < r.hi; ++j) {
          const float* kj = k + j * ks;
          const float* vj = v + j * vs;
          const float p = std::exp(score(a, qi, kj, a.offset + i, j, slope) - lse[i]);
          float dp = 0;
          for (int64_t c = 0; c < d; ++c) {
            dp += gi[c] * vj[c];
            dvh[j * vs + c] += p * gi[c];
          }
          const float ds = p * (dp - D) * a.scale;
          for (int64_t c = 0; c < d; ++c) {
            dqi[c] += ds * kj[c];
            dkh[j * ks + c] += ds * qi[c];
          }
        }
      }
    }
}

}  // namespace attn
