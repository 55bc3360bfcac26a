// Chapter 04: grouped-query attention (GQA), with MHA and MQA as its two
// ends.
//
// You implement, in gqa.cpp: repeat_kv, grouped_attention,
// kv_cache_bytes_per_token and GroupedQueryAttention::forward. The
// constructor of the module is given.
//
// Names: H query heads, Hkv K/V heads, g = H / Hkv query heads per group.
//   Hkv == H       MHA: every query head has its own K and V (g = 1)
//   1 < Hkv < H    GQA: each K/V head serves a group of g query heads
//   Hkv == 1       MQA: one K and one V for all query heads (g = H)
// Query head h belongs to group h / g and reads K/V head h / g. With H = 4,
// Hkv = 2: query heads 0, 1 read K/V head 0 and query heads 2, 3 read K/V
// head 1. H must be a multiple of Hkv; anything else is an error.
#pragma once
#include <cstdint>
#include <memory>

#include "attention/attention.h"
#include "nn/linear.h"

namespace lesson04 {

using attn::Tensor;

// [B, Hkv, T, d] -> [B, heads, T, d]: every K/V head repeated g = heads / Hkv
// times *in place*, so that output head h is input head h / g:
//     Hkv = 2, heads = 4:   k0 k1  ->  k0 k0 k1 k1      (repeat_interleave)
//                          not  ->  k0 k1 k0 k1      (repeat / tile: wrong)
// heads % Hkv != 0 (or heads < 1) throws attn::Error saying which numbers do
// not fit. With Hkv == heads (MHA) return kv itself: nothing to copy.
Tensor repeat_kv(const Tensor& kv, int64_t heads);

// Causal attention with grouped K/V heads.
//   q [B, H, Tq, d], k [B, Hkv, Tk, d], v [B, Hkv, Tk, dv]  ->  [B, H, Tq, dv]
// Query head h attends with K/V head h / (H / Hkv); the scores are
// q k^T / sqrt(d). The queries sit at positions offset .. offset + Tq - 1
// and the keys at 0 .. Tk - 1 (Tk = offset + Tq; offset > 0 when decoding
// with a cache, chapter 05): query i may see key j when j <= offset + i.
// H % Hkv != 0 throws attn::Error.
// weights_out: when non-null, receives the weights [B, H, Tq, Tk].
Tensor grouped_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset = 0,
                         Tensor* weights_out = nullptr);

// Bytes the KV cache of one sequence grows by per generated token:
//     2 (K and V) * layers * kv_heads * head_dim * bytes_per_value
// (bytes_per_value: 4 for float32, 2 for fp16/bf16). Multiply by the batch
// size and the number of tokens for the whole cache.
int64_t kv_cache_bytes_per_token(int64_t layers, int64_t kv_heads, int64_t head_dim,
                                 int64_t bytes_per_value = 4);

// Causal self-attention with `kv_heads` K/V heads, x [B, T, C] -> [B, T, C]:
//   q = x Wq^T + bq     [B, T, C]          -> [B, H, T, d]      (d = C / H)
//   k = x Wk^T + bk     [B, T, Hkv * d]    -> [B, Hkv, T, d]
//   v = x Wv^T + bv     [B, T, Hkv * d]    -> [B, Hkv, T, d]
//   o = grouped_attention(q, k, v)         [B, H, T, d]
//   out = merge(o) Wo^T + bo               [B, T, C]
// Its parameters are named like the library's attn::MultiHeadAttention
// (wq, wk, wv, wo), so the two load each other's state_dict.
class GroupedQueryAttention : public attn::Attention {
 public:
  // Given (not part of the exercise): checks that heads divides embd and
  // kv_heads divides heads, and registers the four projections. Wk and Wv
  // map C -> kv_heads * d: that is where GQA saves parameters and cache.
  GroupedQueryAttention(int64_t embd, int64_t heads, int64_t kv_heads, attn::Generator& gen,
                        bool bias = true, int64_t layers = 1);

  // x [B, T, C] -> [B, T, C], causal.
  Tensor forward(const Tensor& x) override;

  int64_t heads() const { return heads_; }
  int64_t kv_heads() const { return kv_heads_; }
  int64_t head_dim() const { return head_dim_; }

 private:
  int64_t heads_, kv_heads_, head_dim_;
  std::shared_ptr<attn::Linear> wq_, wk_, wv_, wo_;
};

}  // namespace lesson04
