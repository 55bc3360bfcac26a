// Performer (FAVOR+) and Linformer: two ways to avoid the T x T softmax
// matrix by approximating it (chapter 16).
//
// Performer. The softmax kernel exp(q . k / sqrt(d)) is an expectation over
// Gaussian vectors w ~ N(0, I_d):
//   exp(x . y) = E_w[ exp(w.x - |x|^2/2) exp(w.y - |y|^2/2) ],
// so with M draws w_1..w_M and the positive random features
//   phi(x)_m = exp(w_m . x - |x|^2 / 2) / sqrt(M)
// phi(x) . phi(y) is an unbiased estimate of exp(x . y). With x = q / d^(1/4)
// and y = k / d^(1/4), x . y = q . k / sqrt(d): the softmax's own kernel.
// Attention then becomes linear attention (attention/linear.h) with phi:
//   out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i) . sum_j phi(k_j)),
// O(T M d) time instead of O(T^2 d), no T x T matrix. The features are
// positive (unlike sin/cos features), so the denominator never goes
// negative and the estimate of a small weight stays small.
//
// Orthogonal draws: within a block of d rows, making the w_m exactly
// orthogonal (Gram-Schmidt on a Gaussian matrix) and giving each row the
// norm of an independent Gaussian vector (chi with d degrees of freedom)
// keeps every w_m ~ N(0, I_d) on its own but removes the chance overlap
// between draws: a lower-variance estimate for the same M.
//
// Linformer. Projects the keys and values along the sequence: with learned
// E, F of shape [k, T], K' = E K and V' = F V are [k, d], and
// out = softmax(Q K'^T / sqrt(d)) V' costs O(T k d). Every row of K' mixes
// all T positions, the future included, so Linformer is bidirectional only:
// it has no causal form, and the registry refuses it in the causal GPT.
#pragma once
#include <cstdint>

#include "attention/kernel.h"
#include "attention/multi_head.h"

namespace attn {

// The M x d random projection of one draw, from `seed` alone (the same seed,
// the same matrix, on any machine). orthogonal: blocks of d orthogonal rows
// (Gram-Schmidt in double), each row rescaled to a chi_d-distributed norm;
// the last block keeps only the rows it needs. Otherwise iid N(0, 1) rows.
Tensor performer_projection(int64_t features, int64_t dim, bool orthogonal, uint64_t seed);

// The seed of draw number `draw` of a projection keyed by `seed` (draw 0 is
// the first): redrawing every N steps stays reproducible from the seed.
uint64_t performer_draw_seed(uint64_t seed, int64_t draw);

// phi(x): x [..., T, d] (q or k as they come, unscaled), w [M, d] -> [..., T, M].
// Scales x by d^(-1/4), then exp(w.x - |x|^2/2 - c) / sqrt(M) with the
// stabiliser c: per row for queries, one value per [T, M] slice for keys
// (see performer.cpp for why the two differ).
enum class FeatureRole { Query, Key };
Tensor performer_features(const Tensor& x, const Tensor& w, FeatureRole role);

// FAVOR+ attention. q [B, H, T, d], k, v [B, Hkv, T, d], w [M, d] -> [B, H, T, d].
// causal: prefix sums of the key features (the chunked path of linear.cpp).
Tensor performer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w,
                           bool causal);

// The attention weights the features imply, phi(q_i) . phi(k_j) normalised
// over j (j <= i when causal): [B, H, T, T]. For measuring the
// approximation against softmax; the attention itself never forms them.
Tensor performer_weights(const Tensor& q, const Tensor& k, const Tensor& w, bool causal);

struct PerformerOptions {
  int64_t features = 64;   // M
  bool orthogonal = true;  // orthogonal blocks, or iid rows
  int64_t redraw = 0;      // draw new features every `redraw` training forwards (0 = never)
  uint64_t seed = 0;       // with a number the model's generator gives each layer
};

// Multi-head attention with the causal FAVOR+ kernel. The projection is a
// buffer (saved in checkpoints, moved by to(), never trained); with redraw
// = N, training forward t (counted from 0) with t a non-zero multiple of N
// first draws draw t / N, from performer_draw_seed(key, t / N). The count
// of training forwards is a buffer too, so a resumed run redraws exactly
// when the unbroken run would. No K/V cache, no attention weights, no
// ALiBi, no attention dropout (it never forms probabilities).
class PerformerAttention : public MultiHeadAttention {
 public:
  PerformerAttention(const AttentionConfig& config, const PerformerOptions& options, Generator& gen,
                     PositionOptions positions = {});
  Tensor forward(const Tensor& x) override;
  Tensor forward_cached(const Tensor& x, KVCache& cache, int64_t layer) override;
  CacheLayout cache_layout() const override { return {}; }
  // Draws the next projection now (draw n + 1), as redraw=N does on its own.
  void redraw();
  const Tensor& projection() const { return *projection_; }
  int64_t draws() const { return draw_; }  // the draw the projection holds now

 private:
  PerformerOptions options_;
  uint64_t key_;  // the layer's projection key: options.seed mixed with the model's generator
  Tensor* projection_ = nullptr;
  // Training forwards so far, as a float32 [1] buffer (exact to 2^24).
  Tensor* training_forwards_ = nullptr;
  int64_t draw_ = 0;
};

// Bidirectional Linformer attention: q [B, H, T, d], k, v [B, H, T, d],
// e, f [k, Tmax] with T <= Tmax (a shorter sequence uses the first T
// columns) -> [B, H, T, d]. Every query sees a mix of every position.
Tensor linformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e,
                           const Tensor& f);

}  // namespace attn
