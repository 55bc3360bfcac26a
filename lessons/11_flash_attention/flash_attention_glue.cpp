// Chapter 11 glue: given code, compiled both with your flash_attention.cpp and with
// the reference solution (solution/flash_attention.cpp), so it is written once.
// It holds flash_attention, the autograd op around your flash_forward, and
// registers the variant "student:flash".
// You do not need to change this file.

#include "flash_attention.h"

#include <cmath>
#include <memory>
#include <vector>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace lesson11 {

using namespace attn;

// Your forward as an autograd op. The backward is attnlab's recomputing
// flash backward (core/cpu/flash_attention.cpp), fed with YOUR out and lse:
// it never stores the weights, it rebuilds p_ij = exp(s_ij - lse_i) tile by
// tile. See the README, "The backward: recompute, don't store".
Tensor flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                       int64_t tile, int64_t offset) {
  check(q.dim() == 4 && k.dim() == 4 && v.shape() == k.shape() && q.shape()[0] == k.shape()[0] &&
            q.shape()[1] == k.shape()[1] && q.shape()[3] == k.shape()[3],
        "flash_attention: expected q [B, H, Tq, d] and k, v [B, H, Tk, d], got ",
        shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  // flash_forward works on float arrays in CPU memory. With q, k, v on a
  // GPU, it runs on CPU copies and its results go back to their device (the
  // gradients too); chapter 14 writes the same loops as a CUDA kernel.
  const Device device = q.device(), cpu = Device::cpu();
  check(k.device() == device && v.device() == device,
        "flash_attention: q, k, v must be on one device, got ", device.str(), ", ",
        k.device().str(), ", ", v.device().str());
  const Tensor qd = q.detach().to(cpu).contiguous(), kd = k.detach().to(cpu).contiguous(),
               vd = v.detach().to(cpu).contiguous();
  FlashResult r = flash_forward(qd, kd, vd, causal, tile, offset);
  const int64_t B = q.shape()[0], H = q.shape()[1], Tq = q.shape()[2], d = q.shape()[3];
  check(r.out.defined() && r.out.shape() == q.shape(), "flash_forward: out must be [B, H, Tq, d] = ",
        shape_str(q.shape()), ", got ", r.out.defined() ? shape_str(r.out.shape()) : "undefined");
  check(r.lse.defined() && r.lse.shape() == Shape{B, H, Tq},
        "flash_forward: lse must be [B, H, Tq] = ", shape_str(Shape{B, H, Tq}), ", got ",
        r.lse.defined() ? shape_str(r.lse.shape()) : "undefined");
  const Tensor out = r.out.detach().to(cpu).contiguous(), lse = r.lse.detach().to(cpu).contiguous();
  FlashArgs a;
  a.q = qd.data<float>(), a.k = kd.data<float>(), a.v = vd.data<float>();
  a.out = out.data<float>(), a.lse = lse.data<float>();
  a.batch = B, a.heads = H, a.kv_heads = H, a.tq = Tq, a.tk = k.shape()[2], a.dim = d;
  a.offset = offset, a.window = 0, a.causal = causal;
  a.scale = 1.0f / std::sqrt(static_cast<float>(d));
  a.q_at = contiguous_layout(H, Tq, d);
  a.k_at = a.v_at = contiguous_layout(H, k.shape()[2], d);
  // The closure keeps q, k, v, out and lse alive: O(T d) saved, never T x T.
  return record(out.to(device), "lesson11_flash_attention", {q, k, v},
                [a, qd, kd, vd, out, lse, device](const Tensor& g) {
                  const Tensor dout = g.to(Device::cpu()).contiguous();
                  Tensor dq = empty(qd.shape()), dk = empty(kd.shape()), dv = empty(vd.shape());
                  if (dq.numel() > 0 && dk.numel() > 0)
                    backend_for(Device::cpu()).flash_attention_backward(
                        a, dout.data<float>(), dq.data<float>(), dk.data<float>(), dv.data<float>());
                  else
                    dq = zeros(qd.shape()), dk = zeros(kd.shape()), dv = zeros(vd.shape());
                  return std::vector<Tensor>{dq.to(device), dk.to(device), dv.to(device)};
                });
}

}  // namespace lesson11

// ---- glue: your forward as a variant -------------------------------------
// Registers the variant "student:flash": the library's multi-head module
// running YOUR flash forward (tiles of 64 keys) on its heads, causally. The
// advanced suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:flash", "chapter 11: multi-head attention running your flash_forward",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        auto kernel = [](const attn::AttentionCall& call) {
          return lesson11::flash_attention(call.q, call.k, call.v, /*causal=*/true, 64,
                                           call.offset);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
