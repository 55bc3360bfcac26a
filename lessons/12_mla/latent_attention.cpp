// Chapter 12 — your code. Replace each `throw` with an implementation.
// Read lessons/12_mla/README.md first; the shapes are in latent_attention.h.
// The given code (you do not write it) is in latent_attention_glue.cpp.
#include "latent_attention.h"

#include <algorithm>
#include <cmath>

#include "attention/positions.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson12 {

using namespace attn;

Tensor up_project(const Tensor& latent, const Tensor& w_up, int64_t heads) {
  (void)latent, (void)w_up, (void)heads;
  throw NotImplemented("lesson 12 (MLA): up_project is not implemented yet - see lessons/12_mla/README.md");
}

Tensor mla_attention(const Tensor& q, const Tensor& q_rope, const Tensor& k, const Tensor& k_rope,
                     const Tensor& v, int64_t offset, Tensor* weights_out) {
  (void)q, (void)q_rope, (void)k, (void)k_rope, (void)v, (void)offset, (void)weights_out;
  throw NotImplemented("lesson 12 (MLA): mla_attention is not implemented yet - see lessons/12_mla/README.md");
}

Tensor mla_attention_absorbed(const Tensor& q, const Tensor& q_rope, const Tensor& latents,
                              const Tensor& k_rope, const Tensor& w_up_k, const Tensor& w_up_v,
                              int64_t offset, Tensor* weights_out) {
  (void)q, (void)q_rope, (void)latents, (void)k_rope, (void)w_up_k, (void)w_up_v, (void)offset,
      (void)weights_out;
  throw NotImplemented("lesson 12 (MLA): mla_attention_absorbed is not implemented yet - see lessons/12_mla/README.md");
}

int64_t mla_cache_bytes_per_token(int64_t layers, int64_t latent, int64_t rope_dim,
                                  int64_t bytes_per_value) {
  (void)layers, (void)latent, (void)rope_dim, (void)bytes_per_value;
  throw NotImplemented("lesson 12 (MLA): mla_cache_bytes_per_token is not implemented yet - see lessons/12_mla/README.md");
}

LatentAttention::Parts LatentAttention::project(const Tensor& x, int64_t offset) {
  (void)x, (void)offset;
  throw NotImplemented("lesson 12 (MLA): LatentAttention::project is not implemented yet - see lessons/12_mla/README.md");
}

Tensor LatentAttention::forward(const Tensor& x) {
  (void)x;
  throw NotImplemented("lesson 12 (MLA): LatentAttention::forward is not implemented yet - see lessons/12_mla/README.md");
}

Tensor LatentAttention::forward_cached(const Tensor& x, KVCache& cache, int64_t layer) {
  (void)x, (void)cache, (void)layer;
  throw NotImplemented("lesson 12 (MLA): LatentAttention::forward_cached is not implemented yet - see lessons/12_mla/README.md");
}

CacheLayout LatentAttention::cache_layout() const {
  throw NotImplemented("lesson 12 (MLA): LatentAttention::cache_layout is not implemented yet - see lessons/12_mla/README.md");
}

}  // namespace lesson12
