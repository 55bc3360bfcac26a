#include "attention/flash.h"

#include <cmath>

#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

// q, k and v usually arrive as a projection's [B, T, H*d] output seen as
// [B, H, T, d]: a transposed view, dense in "token-major" order. The kernels
// read that layout where it is; any other is copied to contiguous first.
bool token_major(const Tensor& t) {
  const Shape& s = t.shape();
  return t.strides() == Shape{s[2] * s[1] * s[3], s[3], s[1] * s[3], 1};
}

Tensor readable(const Tensor& t, bool keep_token_major) {
  return keep_token_major && token_major(t) ? t : t.contiguous();
}

FlashLayout layout_of(const Tensor& t) { return {t.strides()[0], t.strides()[1], t.strides()[2]}; }

// A new [B, H, T, d] tensor stored as `like` is (token-major or contiguous),
// so that results (out, dq, dk, dv) leave the op in the order their
// consumers read them: the output projection, the weight gradients.
Tensor empty_as(const Tensor& like) {
  if (like.is_contiguous()) return empty(like.shape(), DType::Float32, like.device());
  const Shape& s = like.shape();
  return transpose(empty({s[0], s[2], s[1], s[3]}, DType::Float32, like.device()), 1, 2);
}

}  // namespace

Tensor flash_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                       const FlashOptions& o, Tensor* lse_out, const FlashForward& forward) {
  const char* op = "flash_attention";
  for (const Tensor* t : {&q_in, &k_in, &v_in}) {
    require_defined(op, *t);
    require_float(op, *t);
  }
  const Device device = common_device(op, {q_in, k_in, v_in});
  check(q_in.dim() == 4 && k_in.dim() == 4 && v_in.dim() == 4 && k_in.shape() == v_in.shape(),
        op, ": expected q [B, H, Tq, d] and k, v [B, Hkv, Tk, d], got ", shape_str(q_in.shape()),
        ", ", shape_str(k_in.shape()), ", ", shape_str(v_in.shape()));
  const int64_t B = q_in.shape()[0], H = q_in.shape()[1], Tq = q_in.shape()[2], d = q_in.shape()[3];
  const int64_t Hkv = k_in.shape()[1], Tk = k_in.shape()[2];
  check(k_in.shape()[0] == B && k_in.shape()[3] == d, op, ": q ", shape_str(q_in.shape()),
        " and k ", shape_str(k_in.shape()), " disagree on batch or head dim");
  check(Hkv > 0 && H % Hkv == 0, op, ": ", Hkv, " K/V heads do not divide ", H, " query heads");
  check(o.window >= 0, op, ": window must be >= 0, got ", o.window);
  check(o.alibi.empty() || static_cast<int64_t>(o.alibi.size()) == H, op, ": ", o.alibi.size(),
        " ALiBi slopes for ", H, " heads");
  check(o.dropout.p >= 0 && o.dropout.p < 1, op, ": dropout must be in [0, 1), got ", o.dropout.p);
  check(!forward || o.dropout.p == 0, op, ": the forward kernel passed in (chapter 14's) has no "
        "attention dropout; use dropout 0 with it");
  // A kernel passed in (chapter 14's) is promised contiguous operands.
  const bool in_place = !forward;
  const Tensor q = readable(q_in.detach(), in_place), k = readable(k_in.detach(), in_place),
               v = readable(v_in.detach(), in_place);
  Tensor out = empty_as(q);
  Tensor lse = empty({B, H, Tq}, DType::Float32, device);
  FlashArgs a;
  a.q = q.data<float>(), a.k = k.data<float>(), a.v = v.data<float>();
  a.q_at = layout_of(q), a.k_at = layout_of(k), a.v_at = layout_of(v);
  a.out = out.data<float>(), a.lse = lse.data<float>();
  a.batch = B, a.heads = H, a.kv_heads = Hkv, a.tq = Tq, a.tk = Tk, a.dim = d;
  a.offset = o.offset, a.window = o.window, a.causal = o.causal;
  a.scale = o.scale > 0 ? o.scale : 1.0f / std::sqrt(static_cast<float>(d));
  a.alibi = o.alibi.empty() ? nullptr : o.alibi.data();
  // Dropout's parameters travel beside FlashArgs (see core/backend.h).
  const AttentionDropoutArgs drop = o.dropout;
  const AttentionDropoutArgs* dropping = drop.p > 0 ? &drop : nullptr;
  if (out.numel() > 0) {
    if (forward)
      forward(a);
    else
      backend_for(device).flash_attention_forward(a, dropping);
  }
  if (lse_out) *lse_out = lse;
  // The backward keeps q, k, v, out and lse: O(T d), never the T x T weights.
  // With dropout, the backward regenerates the forward's decisions from drop.
  return record(out, op, {q_in, k_in, v_in},
                [a, q, k, v, out = out.detach(), lse, alibi = o.alibi, drop](const Tensor& g) mutable {
    // dout is read in out's layout (the usual case: the gradient of the
    // output projection's input arrives in it); else copied into it.
    Tensor dout = g;
    if (g.strides() != out.strides()) {
      dout = empty_as(out);
      backend_for(g.device()).copy(dout.view_desc(), g.view_desc());
    }
    Tensor dq = empty_as(q), dk = empty_as(k), dv = empty_as(v);
    a.alibi = alibi.empty() ? nullptr : alibi.data();
    if (dq.numel() > 0 && dk.numel() > 0)
      backend_for(q.device()).flash_attention_backward(a, dout.data<float>(), dq.data<float>(),
                                                       dk.data<float>(), dv.data<float>(),
                                                       drop.p > 0 ? &drop : nullptr);
    return std::vector<Tensor>{dq, dk, dv};
  });
}

AttentionKernel flash_kernel(int64_t window) {
  return [window](const AttentionCall& c) {
    FlashOptions o;
    o.offset = c.offset;
    o.window = window;
    o.alibi = c.alibi;
    o.scale = c.scale;
    o.dropout = c.dropout;
    return flash_attention(c.q, c.k, c.v, o);
  };
}

}  // namespace attn
