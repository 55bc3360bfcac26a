// Chapter 13: attention surgery. Take a GPT trained with multi-head attention
// (MHA) and turn it into grouped-query attention (GQA) without training from
// scratch: average the K and V heads of each group, keep everything else.
//
// You implement, in attention_surgery.cpp: pool_kv_heads, gqa_from_mha and
// mha_to_gqa. attention_config, position_options and gqa_spec are given.
//
// Names: H heads, G groups (= the K/V heads of the result), g = H / G heads
// per group, d = C / H the head size. Group j holds the CONTIGUOUS heads
//     j*g, j*g + 1, ..., j*g + g - 1
// because chapter 04's repeat_kv (repeat_interleave) hands K/V head j to
// exactly those query heads. H = 4, G = 2: group 0 = heads 0, 1; group 1 =
// heads 2, 3 (not 0, 2 and 1, 3).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "attention/multi_head.h"
#include "nn/gpt.h"

namespace lesson13 {

using attn::Tensor;

// Averages the heads of a K or V projection group by group.
//   weight  [H*d, C]  ->  [G*d, C]      (rows h*d .. h*d+d-1 belong to head h)
//   bias    [H*d]     ->  [G*d]
// Output head j = mean of input heads j*g .. j*g+g-1 (g = H / G), row by row:
//   out[j*d + i, :] = (1/g) * sum_r w[(j*g + r)*d + i, :]
// Throws attn::Error when groups < 1, H % groups != 0, w is not 1-D or 2-D,
// or its first dimension is not a multiple of H. Made of autograd ops, so a
// gradient flows back to w (1/g to each head of the group).
Tensor pool_kv_heads(const Tensor& w, int64_t heads, int64_t groups);

// A new attn::MultiHeadAttention with `groups` K/V heads whose weights come
// from the trained `mha` (which must have kv_heads == heads):
//   wq, wo (weight and bias)   copied unchanged: every query head is kept
//   wk, wv (weight and bias)   pool_kv_heads(..., H, groups)
// `config` is the one `mha` was built with; `positions` its position options
// (RoPE / ALiBi: they act after the projections, so they carry over as is).
// `mha` is left untouched. groups == H gives back the same function.
std::shared_ptr<attn::MultiHeadAttention> gqa_from_mha(attn::MultiHeadAttention& mha,
                                                       const attn::AttentionConfig& config,
                                                       int64_t groups,
                                                       const attn::PositionOptions& positions = {});

// Converts `model` in place: the attention of EVERY block becomes
// gqa_from_mha(its attention, ...) and the model's spec becomes
// gqa_spec(old spec, groups), so a checkpoint of it rebuilds. Embeddings,
// norms, MLPs and the head are not touched. Throws attn::Error (before
// changing anything) when groups does not divide the heads or the model's
// attention is not "mha".
void mha_to_gqa(attn::GPT& model, int64_t groups);

// ---- given ------------------------------------------------------------------
// The AttentionConfig the GPT built each block's attention with.
attn::AttentionConfig attention_config(const attn::GPTConfig& config);
// The position options in a spec: "mha:rope" -> {rope = true}, "mha" -> {}.
attn::PositionOptions position_options(const std::string& spec);
// The spec of the converted model: ("mha:rope", 2) -> "gqa:kv_heads=2,rope".
// Throws attn::Error unless `spec` is an "mha" spec.
std::string gqa_spec(const std::string& spec, int64_t groups);

}  // namespace lesson13
