// What every multi-head variant shares: project x to q, k, v, place the
// positions, then run an attention *kernel* on the heads, then project back.
// Variants (dense, sliding window, sparse, linear, flash) differ only in the
// kernel, so each one is a single function of this signature.
#pragma once
#include <functional>
#include <vector>

#include "core/attention_dropout.h"
#include "core/tensor.h"

namespace attn {

struct AttentionCall {
  Tensor q;            // [B, H, Tq, d], positions already applied (RoPE)
  Tensor k, v;         // [B, Hkv, Tk, d]: every key so far (Tk >= Tq with a cache)
  int64_t offset = 0;  // position of q's first row; causal means key j <= offset + i
  float scale = 1;     // 1/sqrt(d)
  std::vector<float> alibi;  // ALiBi slope per query head; empty = no ALiBi
  // The ALiBi bias as a dense [H, Tq, Tk] tensor (undefined without ALiBi),
  // for kernels that add it to materialised scores. Flash attention uses
  // the slopes directly and never builds it.
  Tensor bias() const;
  bool want_weights = false;  // fill `weights` ([B, H, Tq, Tk]) if the kernel has them
  mutable Tensor weights;     // before dropout
  // Attention dropout on the probabilities (p = 0: none): probability
  // (b, h, i, j) of this call's [B, H, Tq, Tk] matrix is dropped as
  // core/attention_dropout.h says, whichever way the kernel computes it.
  AttentionDropoutArgs dropout;
  // drop_attention_weights for this call: `w` holds rows row0.. and keys col0..
  Tensor drop(const Tensor& w, int64_t row0 = 0, int64_t col0 = 0) const;
};

// Returns [B, H, Tq, d]. Query head h reads K/V head h / (H / Hkv).
using AttentionKernel = std::function<Tensor(const AttentionCall&)>;

// The reference: K/V heads repeated to H, full causal mask, softmax.
Tensor dense_causal_attention(const AttentionCall& call);

// [B, Hkv, T, d] -> [B, H, T, d]: K/V head j serves query heads j*g .. j*g+g-1.
Tensor repeat_kv(const Tensor& kv, int64_t heads);

}  // namespace attn
