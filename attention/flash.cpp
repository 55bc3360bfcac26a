#include "attention/flash.h"

#include <cmath>

#include "autograd/autocast.h"
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/stream.h"

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

// The heads of one group as a call of their own: every pointer moved to the
// group's first head (layouts unchanged, so nothing is copied), its lse rows
// a [B, heads, Tq] block of their own in the lse buffer.
FlashArgs group_args(FlashArgs a, const HeadGroup& g) {
  const int64_t per_kv = a.heads / a.kv_heads, kv0 = g.first_head / per_kv;
  a.q += g.first_head * a.q_at.head;
  a.out += g.first_head * a.q_at.head;  // out is stored as q is
  a.k += kv0 * a.k_at.head;
  a.v += kv0 * a.v_at.head;
  a.lse += a.batch * g.first_head * a.tq;
  if (a.alibi) a.alibi += g.first_head;
  a.kv_heads = g.heads / per_kv;
  a.heads = g.heads;
  a.window = g.window;
  return a;
}

// The dropout of one group's kernel call: its heads draw the numbers they
// have in the whole attention.
AttentionDropoutArgs group_dropout(AttentionDropoutArgs d, const HeadGroup& g) {
  d.first_head += g.first_head;
  return d;
}

// What a kernel call is given: null when nothing is dropped.
const AttentionDropoutArgs* dropping(const AttentionDropoutArgs& d) { return d.p > 0 ? &d : nullptr; }

void check_groups(const std::vector<HeadGroup>& groups, int64_t heads, int64_t kv_heads) {
  const char* op = "flash_attention";
  const int64_t per_kv = heads / kv_heads;
  int64_t next = 0;
  for (const HeadGroup& g : groups) {
    check(g.first_head == next && g.heads >= 1 && g.window >= 0, op, ": head groups must tile heads 0..",
          heads - 1, " in order, with windows >= 0; got a group of ", g.heads, " heads at head ",
          g.first_head, " with window ", g.window);
    check(g.heads % per_kv == 0, op, ": a group of ", g.heads, " heads at head ", g.first_head,
          " splits a K/V head's ", per_kv, " query heads");
    next += g.heads;
  }
  check(next == heads, op, ": the head groups cover ", next, " of ", heads, " heads");
}

// Flash attention as one autograd op over head groups (empty: one group of
// every head with o.window), one kernel call per group, its products as
// flash_autocast (below) chose them.
Tensor flash_op(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const FlashOptions& o,
                std::vector<HeadGroup> groups, Tensor* lse_out, const FlashForward& forward,
                FlashProducts products) {
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
  if (o.blocks) {
    check(o.blocks->tq() == Tq && o.blocks->tk() == Tk && o.blocks->offset() == o.offset, op,
          ": a block list made for ", o.blocks->tq(), " queries at offset ", o.blocks->offset(),
          " over ", o.blocks->tk(), " keys, called with ", Tq, " at offset ", o.offset, " over ", Tk);
    check(groups.empty() && !forward, op,
          ": a block list runs without head groups or a forward kernel passed in");
  }
  check(!forward || o.dropout.p == 0, op, ": the forward kernel passed in (chapter 14's) has no "
        "attention dropout; use dropout 0 with it");
  if (groups.empty()) groups.push_back({0, H, o.blocks ? 0 : o.window});
  check_groups(groups, H, Hkv);
  check(groups.size() == 1 || (!forward && !lse_out), op,
        ": head groups run without a forward kernel passed in or lse_out");
  // The CUDA backward clears dq as one dense block per call, which would
  // wipe the rows of the groups beside it.
  check(groups.size() == 1 || device.is_cpu(), op, ": head groups run on the CPU only; on ",
        device.str(), " use the masked multi-scale path");
  // A kernel passed in (chapter 14's) is promised contiguous operands.
  const bool in_place = !forward;
  const Tensor q = readable(q_in.detach(), in_place), k = readable(k_in.detach(), in_place),
               v = readable(v_in.detach(), in_place);
  Tensor out = empty_as(q);
  Tensor lse = empty({B, H, Tq}, DType::Float32, device);  // group by group: [B, heads, Tq] each
  FlashArgs a;
  a.q = q.data<float>(), a.k = k.data<float>(), a.v = v.data<float>();
  a.q_at = layout_of(q), a.k_at = layout_of(k), a.v_at = layout_of(v);
  a.out = out.data<float>(), a.lse = lse.data<float>();
  a.batch = B, a.heads = H, a.kv_heads = Hkv, a.tq = Tq, a.tk = Tk, a.dim = d;
  a.offset = o.offset, a.window = o.window, a.causal = o.causal;
  // A block list is the whole mask: the kernel must not apply causal or a window on top.
  const std::shared_ptr<const BlockSparsity> blocks = o.blocks;
  if (blocks) a.window = 0, a.causal = false;
  a.scale = o.scale > 0 ? o.scale : 1.0f / std::sqrt(static_cast<float>(d));
  a.alibi = o.alibi.empty() ? nullptr : o.alibi.data();
  // Dropout's parameters and the products' precision travel beside FlashArgs (see core/backend.h).
  const AttentionDropoutArgs drop = o.dropout;
  if (out.numel() > 0) {
    for (const HeadGroup& g : groups) {
      if (forward)  // code of its own, which may know nothing of streams
        call_on_default_stream(device, [&] { forward(group_args(a, g)); });
      else if (blocks)
        backend_for(device).block_sparse_flash_forward(a, blocks->list(), dropping(drop));
      else
        backend_for(device).flash_attention_forward(group_args(a, g), dropping(group_dropout(drop, g)), products);
    }
  }
  if (lse_out) *lse_out = lse;
  // The backward keeps q, k, v, out and lse: O(T d), never the T x T weights.
  // With dropout, the backward regenerates the forward's decisions from drop.
  return record(out, op, {q_in, k_in, v_in},
                [a, q, k, v, out = out.detach(), lse, alibi = o.alibi, drop, products, groups,
                                          blocks](const Tensor& g) mutable {
    // dout is read in out's layout (the usual case: the gradient of the
    // output projection's input arrives in it); else copied into it.
    Tensor dout = g;
    if (g.strides() != out.strides()) {
      dout = empty_as(out);
      backend_for(g.device()).copy(dout.view_desc(), g.view_desc());
    }
    Tensor dq = empty_as(q), dk = empty_as(k), dv = empty_as(v);
    a.alibi = alibi.empty() ? nullptr : alibi.data();
    if (dq.numel() > 0 && dk.numel() > 0) {
      for (const HeadGroup& group : groups) {
        // Gradients sit where their operands do: dout and dq as q, dk as k, dv as v.
        const FlashArgs ga = group_args(a, group);
        const int64_t at_q = group.first_head * a.q_at.head;
        const int64_t kv0 = group.first_head / (a.heads / a.kv_heads);
        if (blocks) {
          backend_for(q.device()).block_sparse_flash_backward(
              ga, blocks->list(), dout.data<float>(), dq.data<float>(), dk.data<float>(),
              dv.data<float>(), dropping(drop));
          continue;
        }
        backend_for(q.device()).flash_attention_backward(
            ga, dout.data<float>() + at_q, dq.data<float>() + at_q,
            dk.data<float>() + kv0 * a.k_at.head, dv.data<float>() + kv0 * a.v_at.head,
            dropping(group_dropout(drop, group)), products);
      }
    }
    return std::vector<Tensor>{dq, dk, dv};
  });
}

// Under bfloat16 autocast the products read bfloat16 operands (FlashProducts
// in core/backend.h), as torch.autocast's attention does; a block list or a
// kernel passed in (chapter 14's) keeps float32. The CUDA kernels round Q,
// K and V themselves; the CPU kernel multiplies float32, so they are
// rounded here, with a straight-through gradient, and both devices see the
// same operands.
Tensor flash_autocast(const Tensor& q, const Tensor& k, const Tensor& v, const FlashOptions& o,
                      std::vector<HeadGroup> groups, Tensor* lse_out, const FlashForward& forward) {
  const bool bf16 = autocast_dtype() == DType::BFloat16 && !forward && !o.blocks;
  const FlashProducts products = bf16 ? FlashProducts::BFloat16 : FlashProducts::Float32;
  const bool cpu = q.defined() && k.defined() && v.defined() && q.device().is_cpu();
  if (!bf16 || !cpu) return flash_op(q, k, v, o, std::move(groups), lse_out, forward, products);
  return flash_op(round_to_bfloat16(q), round_to_bfloat16(k), round_to_bfloat16(v), o,
                  std::move(groups), lse_out, forward, products);
}

}  // namespace

Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const FlashOptions& o,
                       Tensor* lse_out, const FlashForward& forward) {
  return flash_autocast(q, k, v, o, {}, lse_out, forward);
}

Tensor flash_attention_groups(const Tensor& q, const Tensor& k, const Tensor& v,
                              const FlashOptions& o, const std::vector<HeadGroup>& groups) {
  check(!groups.empty(), "flash_attention: no head groups given");
  return flash_autocast(q, k, v, o, groups, nullptr, {});
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
