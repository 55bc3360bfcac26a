// Chapter 16 — reference solution. The projection and the features are thin
// adapters over the library (attention/performer.cpp); the attention and
// Linformer are written out here, as the README derives them.
#include "performer.h"

#include <cmath>

#include "attention/performer.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson16 {

using namespace attn;

// Added to the denominator only against 0/0 (every feature underflowed):
// the features are positive, so a real denominator is never 0.
constexpr float kEps = 1e-12f;

Tensor gaussian_projection(int64_t features, int64_t dim, bool orthogonal, uint64_t seed) {
  return attn::performer_projection(features, dim, orthogonal, seed);
}

Tensor favor_features(const Tensor& x, const Tensor& w, bool is_query) {
  return attn::performer_features(x, w, is_query ? FeatureRole::Query : FeatureRole::Key);
}

Tensor favor_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w, bool causal) {
  check(q.dim() == 4 && k.shape() == q.shape() && v.dim() == 4 && v.shape()[2] == q.shape()[2],
        "favor_attention: expected q, k [B, H, T, d] and v [B, H, T, d_v], got ", shape_str(q.shape()),
        ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  const Tensor fq = favor_features(q, w, true);   // [B, H, T, M]
  const Tensor fk = favor_features(k, w, false);  // [B, H, T, M]
  if (!causal) {
    // (phi(Q) phi(K)^T) V = phi(Q) (phi(K)^T V): an [M, d] state instead of [T, T].
    const Tensor s = matmul(transpose(fk, -2, -1), v);  // [B, H, M, d]
    const Tensor z = sum(fk, {2}, true);                 // [B, H, 1, M]
    return div(matmul(fq, s), add(sum(mul(fq, z), {-1}, true), kEps));
  }
  // S_i = sum_{j <= i} phi(k_j) v_j^T: the outer products [B, H, T, M, d],
  // summed along T. Query i then reads only its own prefix S_i, z_i.
  const Tensor outer = mul(unsqueeze(fk, -1), unsqueeze(v, -2));
  const Tensor s = cumsum(outer, 2);  // [B, H, T, M, d]
  const Tensor z = cumsum(fk, 2);     // [B, H, T, M]
  const Tensor numerator = sum(mul(unsqueeze(fq, -1), s), {-2});  // [B, H, T, d]
  return div(numerator, add(sum(mul(fq, z), {-1}, true), kEps));
}

Tensor linformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e,
                           const Tensor& f) {
  check(q.dim() == 4 && k.shape() == q.shape() && v.shape() == q.shape(),
        "linformer: expected q, k, v of one shape [B, H, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
  const int64_t t = q.shape()[2];
  check(e.dim() == 2 && f.shape() == e.shape() && e.shape()[1] >= t,
        "linformer: expected E and F of one shape [k, Tmax] with Tmax >= T = ", t, ", got ",
        shape_str(e.shape()), " and ", shape_str(f.shape()));
  const Tensor kp = matmul(narrow(e, 1, 0, t), k);  // [B, H, k, d]: K and V shrink, Q does not
  const Tensor vp = matmul(narrow(f, 1, 0, t), v);
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  return matmul(softmax(mul(matmul(q, transpose(kp, -2, -1)), scale), -1), vp);
}

}  // namespace lesson16
