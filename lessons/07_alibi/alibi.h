// Chapter 07: ALiBi, attention with linear biases.
//
// You implement, in alibi.cpp: alibi_slopes, alibi_bias, alibi_attention
// and extend_context. Read lessons/07_alibi/README.md first.
//
// ALiBi gives the model no position vectors at all. Instead, head h
// subtracts m_h * (distance between query and key) from every score:
//     score[h, i, j] = q_i . k_j / sqrt(d)  -  m_h * (p - j)
// where p = offset + i is the query's position and j the key's. Nearby keys
// lose little, distant keys lose a lot; each head has its own slope m_h, so
// some heads look far and some only at the last few tokens. Nothing in the
// model depends on the length it was trained on, which is why it can run on
// longer sequences than it has ever seen.
//
// Positions. Keys 0..Tk-1 sit at positions 0..Tk-1; queries at positions
// offset .. offset + Tq - 1 (offset > 0 when decoding after a KV cache,
// chapter 05; then Tk = offset + Tq).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "nn/gpt.h"

namespace lesson07 {

using attn::Tensor;

// The slope of every head, m_0 .. m_{n-1}, for n = heads >= 1 (else
// attn::Error).
//   n a power of two:  m_k = 2^(-8 (k + 1) / n),  k = 0 .. n-1
//                      (n = 8: 1/2, 1/4, ..., 1/256; n = 1: 1/256)
//   otherwise:         p = the largest power of two below n. Take the p
//                      slopes of p heads, then fill up the remaining n - p
//                      with every other slope of 2p heads, starting with its
//                      first: slopes(2p)[0], slopes(2p)[2], slopes(2p)[4], ...
//                      (n = 6: 1/4, 1/16, 1/64, 1/256, then 1/2, 1/8)
std::vector<float> alibi_slopes(int64_t heads);

// The bias added to the scores, [heads, Tq, Tk]:
//     bias[h, i, j] = -m_h * (p - j)      p = offset + i,  for every j <= p
// with m_h = alibi_slopes(heads)[h]. 0 on the diagonal (j = p), more
// negative the older the key. Entries with j > p (future keys) are masked
// out before the softmax, so their value is up to you; the library and the
// solution use the distance |p - j| there, the tests only require finite
// values.
Tensor alibi_bias(int64_t heads, int64_t tq, int64_t tk, int64_t offset = 0);

// Causal attention with the ALiBi bias of H = q.shape()[1] heads:
//     weights = softmax(q k^T / sqrt(d) + bias, causal mask),  out = weights v
// q [B, H, Tq, d], k [B, H, Tk, d], v [B, H, Tk, dv] -> [B, H, Tq, dv].
// Query i may see key j when j <= offset + i. The bias goes in BEFORE the
// softmax: it is a log-space penalty, a factor exp(-m (p - j)) on the weight.
// weights_out: when non-null, receives the weights [B, H, Tq, Tk].
Tensor alibi_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset = 0,
                       Tensor* weights_out = nullptr);

// Extrapolation: a GPT like `model` (the same config, the same weights) that
// accepts sequences of up to `block_size` tokens, more than it was trained
// on. Possible only when the model has no learned position table: its
// state_dict has no "wpe.weight" (ALiBi and RoPE models encode positions in
// the attention). A model with learned positions has no vector for position
// block_size and beyond: throw attn::Error saying so. block_size smaller
// than the model's own is an error too.
std::unique_ptr<attn::GPT> extend_context(attn::GPT& model, int64_t block_size);

}  // namespace lesson07
