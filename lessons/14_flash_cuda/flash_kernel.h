// Chapter 14: the flash attention forward pass as a CUDA kernel.
//
// You implement flash_forward_launch in flash_kernel.cu: a __global__ kernel
// and the host function that launches it. This header is plain C++17 so that
// nvcc can read it; the Tensor-level op around your kernel is in
// flash_cuda.h (glue: you do not write it).
#pragma once
#include "core/backend.h"  // attn::FlashArgs

namespace lesson14 {

// Fills a.out [B, H, Tq, d] and a.lse [B, H, Tq] from a.q [B, H, Tq, d] and
// a.k, a.v [B, Hkv, Tk, d]. Every pointer is GPU memory, contiguous, float32
// (a.q_at, a.k_at, a.v_at say so; the library's kernels also take other
// layouts, yours may assume this one).
//
//   query head h reads K/V head h / (H / Hkv)                        (GQA)
//   query row i sits at position a.offset + i; key j is allowed when
//       j <= a.offset + i                               (if a.causal)
//       j >  a.offset + i - a.window                    (if a.window > 0)
//   out[i] = sum_j softmax_j(a.scale * q_i . k_j) v_j   over allowed j
//   lse[i] = log sum_j exp(a.scale * q_i . k_j)         over allowed j
//   a row with no allowed key: out = 0, lse = -infinity
//
// Never build the Tq x Tk score matrix in GPU memory: stream K/V tiles
// through shared memory and keep a running max and sum per row (the online
// softmax of chapter 11). Head dims 1..128 must work. a.alibi is always
// null here (the glue refuses ALiBi). Report a failed launch as attn::Error.
void flash_forward_launch(const attn::FlashArgs& a);

}  // namespace lesson14
