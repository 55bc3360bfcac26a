// Chapter 04 — reference solution. repeat_kv, grouped_attention are thin
// adapters over the library (attention/kernel.h: attn::repeat_kv and the
// dense causal kernel, which repeats K/V the same way); the module's forward
// is the few lines of bookkeeping around them.
#include "gqa.h"

#include <cmath>

#include "attention/kernel.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson04 {

using namespace attn;

Tensor repeat_kv(const Tensor& kv, int64_t heads) {
  check(kv.dim() == 4, "repeat_kv: expected kv of shape [B, Hkv, T, d], got ", shape_str(kv.shape()));
  check(heads >= 1, "repeat_kv: heads must be >= 1, got ", heads);
  // The library checks heads % Hkv and repeats each head in place.
  return attn::repeat_kv(kv, heads);
}

Tensor grouped_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                         Tensor* weights_out) {
  check(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
        "grouped_attention: expected q [B, H, Tq, d], k [B, Hkv, Tk, d], v [B, Hkv, Tk, dv], got ",
        shape_str(q.shape()), ", ", shape_str(k.shape()), ", ", shape_str(v.shape()));
  check(k.shape()[1] == v.shape()[1] && k.shape()[2] == v.shape()[2],
        "grouped_attention: k ", shape_str(k.shape()), " and v ", shape_str(v.shape()),
        " must have the same heads and length");
  const int64_t heads = q.shape()[1], kv_heads = k.shape()[1];
  check(heads % kv_heads == 0, "grouped_attention: ", kv_heads, " K/V heads do not divide ", heads,
        " query heads");
  AttentionCall call;
  call.q = q, call.k = k, call.v = v;
  call.offset = offset;
  call.scale = 1.0f / std::sqrt(static_cast<float>(q.shape()[3]));
  call.want_weights = weights_out != nullptr;
  // The library's reference kernel: repeat_kv on k and v, causal mask, softmax.
  const Tensor out = dense_causal_attention(call);
  if (weights_out) *weights_out = call.weights;
  return out;
}

int64_t kv_cache_bytes_per_token(int64_t layers, int64_t kv_heads, int64_t head_dim,
                                 int64_t bytes_per_value) {
  // One K row and one V row per K/V head per layer.
  return 2 * layers * kv_heads * head_dim * bytes_per_value;
}

Tensor GroupedQueryAttention::forward(const Tensor& x) {
  check(x.dim() == 3, "GroupedQueryAttention: expected x of shape [B, T, C], got ",
        shape_str(x.shape()));
  const int64_t B = x.shape()[0], T = x.shape()[1], C = x.shape()[2];
  // [B, T, heads * d] -> [B, T, heads, d] -> [B, heads, T, d]
  const Tensor q = transpose(view(wq_->forward(x), {B, T, heads_, head_dim_}), 1, 2);
  const Tensor k = transpose(view(wk_->forward(x), {B, T, kv_heads_, head_dim_}), 1, 2);
  const Tensor v = transpose(view(wv_->forward(x), {B, T, kv_heads_, head_dim_}), 1, 2);
  const Tensor o = grouped_attention(q, k, v);
  // [B, heads, T, d] -> [B, T, heads, d] -> [B, T, C] (reshape copies: not contiguous)
  return wo_->forward(reshape(transpose(o, 1, 2), {B, T, C}));
}

}  // namespace lesson04
