// Chapter 06 — reference solution: thin adapters over the library
// (attention/positions.cpp: attn::rope_tables and attn::apply_rope use this
// chapter's half-split convention; attention/kernel.h: the dense causal
// kernel). ntk_base is the one-line formula the library uses inline.
#include "rope.h"

#include <cmath>
#include <vector>

#include "attention/kernel.h"
#include "attention/multi_head.h"
#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson06 {

using namespace attn;

double ntk_base(double base, double scale, int64_t head_dim) {
  check(head_dim >= 2 && head_dim % 2 == 0, "ntk_base: head_dim must be even and >= 2, got ", head_dim);
  check(base > 1, "ntk_base: base must be > 1, got ", base);
  check(scale >= 1, "ntk_base: scale must be >= 1, got ", scale);
  // The slowest pair (i = d/2 - 1) has exponent -(d - 2)/d: raising the base
  // by scale^(d/(d-2)) divides its frequency by exactly `scale`.
  const double d = static_cast<double>(head_dim);
  return base * std::pow(scale, d / std::max(d - 2, 1.0));
}

RopeTables rope_tables(int64_t positions, int64_t head_dim, int64_t offset, double base,
                       double ntk_scale) {
  check(positions >= 1, "rope_tables: positions must be >= 1, got ", positions);
  ntk_base(base, ntk_scale, head_dim);  // the same argument checks
  const attn::RopeTables t = attn::rope_tables(positions, head_dim, offset, static_cast<float>(base),
                                               static_cast<float>(ntk_scale), Device::cpu());
  return {t.cos, t.sin};
}

Tensor apply_rope(const Tensor& x, const RopeTables& tables) {
  check(x.dim() >= 2 && x.shape().back() % 2 == 0, "apply_rope: expected x [..., T, d] with d even, got ",
        shape_str(x.shape()));
  check(tables.cos.defined() && tables.cos.dim() == 2 && tables.sin.shape() == tables.cos.shape(),
        "apply_rope: expected cos and sin tables of shape [T, d/2]");
  return attn::apply_rope(x, attn::RopeTables{tables.cos, tables.sin});
}

Tensor rope_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                      double base, double ntk_scale, Tensor* weights_out) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "rope_attention: expected q [B, H, Tq, d], k [B, Hkv, Tk, d], v [B, Hkv, Tk, dv], got ",
        shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  const int64_t tq = q.shape()[2], tk = k.shape()[2], d = q.shape()[3];
  AttentionCall call;
  // Queries at offset.., keys at 0..: only the difference survives in q.k.
  call.q = apply_rope(q, rope_tables(tq, d, offset, base, ntk_scale));
  call.k = apply_rope(k, rope_tables(tk, d, 0, base, ntk_scale));
  call.v = v;  // values carry content, not position
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(d));
  call.want_weights = weights_out != nullptr;
  const Tensor out = dense_causal_attention(call);
  if (weights_out) *weights_out = call.weights;
  return out;
}

}  // namespace lesson06
