// Chapter 15: what both suites compare your code with. The rules of the
// header written out as plain loops, and attention through any mask in
// double precision (forward and backward). Nothing here calls your code
// except random_below, which is given.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "bigbird_attention.h"
#include "lesson_test.h"

namespace oracle {

using attn::Tensor;

// Candidates counted one block at a time, then the shuffle on a full array.
inline std::vector<int64_t> random_blocks(const lesson15::Pattern& p, int64_t qb) {
  const int64_t c0 = (p.global + p.block - 1) / p.block;
  int64_t n = 0;
  while ((c0 + n + 1) * p.block <= qb * p.block - p.window + 1) ++n;
  std::vector<int64_t> slots(static_cast<size_t>(n));
  std::iota(slots.begin(), slots.end(), int64_t{0});
  const int64_t count = std::min(p.random, n);
  for (int64_t r = 0; r < count; ++r)
    std::swap(slots[r], slots[r + static_cast<int64_t>(lesson15::random_below(p.seed, qb, r, n - r))]);
  std::vector<int64_t> blocks;
  for (int64_t r = 0; r < count; ++r) blocks.push_back(c0 + slots[r]);
  std::sort(blocks.begin(), blocks.end());
  return blocks;
}

inline bool allows(const lesson15::Pattern& p, int64_t pos, int64_t j) {
  if (j > pos) return false;
  const std::vector<int64_t> r = oracle::random_blocks(p, pos / p.block);
  const bool random = std::find(r.begin(), r.end(), j / p.block) != r.end();
  return pos - j < p.window || j < p.global || random;
}

// keep[i * tk + j] for queries at offset + i.
inline std::vector<bool> mask(const lesson15::Pattern& p, int64_t tq, int64_t tk, int64_t offset = 0) {
  std::vector<bool> m(static_cast<size_t>(tq * tk));
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) m[i * tk + j] = allows(p, offset + i, j);
  return m;
}

inline int64_t count(const std::vector<bool>& m) { return std::count(m.begin(), m.end(), true); }

// Attention through `keep` in double: out = softmax(q k^T / sqrt(d)) v over
// the kept keys. With `dout` (the gradient of the loss w.r.t. out) it also
// fills dq, dk, dv by the textbook backward:
//   dv_j = sum_i P_ij dout_i,  dP_ij = dout_i . v_j,
//   dS_ij = P_ij (dP_ij - sum_l P_il dP_il),
//   dq_i = sum_j dS_ij k_j / sqrt(d),  dk_j = sum_i dS_ij q_i / sqrt(d).
struct Result {
  std::vector<double> out, dq, dk, dv;
};
inline Result attention(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<bool>& keep,
                        const std::vector<double>* dout = nullptr) {
  const int64_t BH = q.shape()[0] * q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
  const int64_t Tk = k.shape()[2], dv = v.shape()[3];
  const std::vector<double> qv = lesson_test::values(q), kv = lesson_test::values(k), vv = lesson_test::values(v);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Result r;
  r.out.assign(BH * Tq * dv, 0.0);
  if (dout) r.dq.assign(qv.size(), 0.0), r.dk.assign(kv.size(), 0.0), r.dv.assign(vv.size(), 0.0);
  for (int64_t bh = 0; bh < BH; ++bh)
    for (int64_t i = 0; i < Tq; ++i) {
      std::vector<double> P(Tk, 0.0);
      double mx = -INFINITY;
      for (int64_t j = 0; j < Tk; ++j) {
        if (!keep[i * Tk + j]) continue;
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += qv[(bh * Tq + i) * d + c] * kv[(bh * Tk + j) * d + c];
        P[j] = s * scale;
        mx = std::max(mx, P[j]);
      }
      if (mx == -INFINITY) continue;
      double z = 0;
      for (int64_t j = 0; j < Tk; ++j) z += keep[i * Tk + j] ? std::exp(P[j] - mx) : 0.0;
      for (int64_t j = 0; j < Tk; ++j) P[j] = keep[i * Tk + j] ? std::exp(P[j] - mx) / z : 0.0;
      for (int64_t j = 0; j < Tk; ++j)
        for (int64_t c = 0; c < dv; ++c) r.out[(bh * Tq + i) * dv + c] += P[j] * vv[(bh * Tk + j) * dv + c];
      if (!dout) continue;
      std::vector<double> dP(Tk, 0.0);
      double dot = 0;
      for (int64_t j = 0; j < Tk; ++j) {
        for (int64_t c = 0; c < dv; ++c) {
          const double g = (*dout)[(bh * Tq + i) * dv + c];
          dP[j] += g * vv[(bh * Tk + j) * dv + c];
          r.dv[(bh * Tk + j) * dv + c] += P[j] * g;
        }
        dot += P[j] * dP[j];
      }
      for (int64_t j = 0; j < Tk; ++j) {
        const double dS = P[j] * (dP[j] - dot) * scale;
        for (int64_t c = 0; c < d; ++c) {
          r.dq[(bh * Tq + i) * d + c] += dS * kv[(bh * Tk + j) * d + c];
          r.dk[(bh * Tk + j) * d + c] += dS * qv[(bh * Tq + i) * d + c];
        }
      }
    }
  return r;
}

// A mask drawn as rows of 'x' (allowed) and '.' (masked).
inline std::vector<std::string> picture(const std::vector<bool>& m, int64_t tq, int64_t tk) {
  std::vector<std::string> rows;
  for (int64_t i = 0; i < tq; ++i) {
    std::string r;
    for (int64_t j = 0; j < tk; ++j) r += m[i * tk + j] ? 'x' : '.';
    rows.push_back(r);
  }
  return rows;
}

// Your mask against the expected one; a failure shows both and names the
// first wrong (query, key) pair and which part of the rule covers it.
inline ::testing::AssertionResult mask_is(const std::string& what, const Tensor& keep,
                                          const std::vector<bool>& want, int64_t tq, int64_t tk,
                                          int64_t offset = 0) {
  if (!keep.defined() || keep.dtype() != attn::DType::Bool || keep.shape() != attn::Shape{tq, tk})
    return ::testing::AssertionFailure()
           << what << ": expected a bool mask " << attn::shape_str({tq, tk}) << ", got "
           << (keep.defined() ? std::string(attn::dtype_name(keep.dtype())) + " " + attn::shape_str(keep.shape())
                              : "an undefined Tensor");
  const std::vector<int64_t> f = keep.to_int_vector();
  std::vector<bool> got(f.size());
  for (size_t n = 0; n < f.size(); ++n) got[n] = f[n] != 0;
  if (got == want) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os << what << " differs (x = allowed, . = masked)\n";
  if (tk <= 40) {
    const auto w = picture(want, tq, tk), g = picture(got, tq, tk);
    os << "  expected" << std::string(tk > 8 ? tk - 6 : 2, ' ') << "got\n";
    for (int64_t i = 0; i < tq; ++i) os << "  " << w[i] << "  " << g[i] << "\n";
  }
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j)
      if (got[i * tk + j] != want[i * tk + j]) {
        os << "first difference: query row " << i << " (position " << offset + i << "), key " << j
           << ": expected " << (want[i * tk + j] ? "allowed" : "masked") << ", got "
           << (got[i * tk + j] ? "allowed" : "masked");
        return ::testing::AssertionFailure() << os.str();
      }
  return ::testing::AssertionFailure() << os.str();
}

inline std::string list_str(const std::vector<int64_t>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t n = 0; n < v.size(); ++n) os << (n ? ", " : "") << v[n];
  return os.str() + "]";
}

}  // namespace oracle
