// Performer's FAVOR+ and bidirectional Linformer: see performer.h.
#include "attention/performer.h"

#include <cmath>
#include <vector>

#include "attention/linear.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "core/random.h"

namespace attn {

namespace {

// Only guards 0/0 (a query whose every feature underflowed): the features
// are positive, so a real denominator is never 0, and a larger eps would
// bias small denominators.
constexpr float kEps = 1e-12f;

// SplitMix64's finaliser: spreads a seed's bits so that seeds 0, 1, 2 give
// unrelated generators.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One block of `rows` (<= d) orthogonal directions of R^d, each scaled to the
// norm of an independent N(0, I_d) vector. Gram-Schmidt on the rows of a
// Gaussian matrix gives a uniformly random orthonormal set; the chi norms
// make every row, on its own, distributed exactly like an iid Gaussian row.
void orthogonal_block(int64_t rows, int64_t d, Generator& gen, std::vector<float>& out) {
  std::vector<std::vector<double>> basis;
  for (int64_t r = 0; r < d; ++r) {
    std::vector<double> g(d);
    for (double& x : g) x = gen.normal();
    for (const std::vector<double>& u : basis) {  // remove what the earlier rows already span
      double dot = 0;
      for (int64_t i = 0; i < d; ++i) dot += g[i] * u[i];
      for (int64_t i = 0; i < d; ++i) g[i] -= dot * u[i];
    }
    double norm = 0;
    for (double x : g) norm += x * x;
    norm = std::sqrt(norm);
    for (double& x : g) x /= norm;
    basis.push_back(g);
  }
  for (int64_t r = 0; r < rows; ++r) {
    double chi = 0;
    for (int64_t i = 0; i < d; ++i) {
      const double z = gen.normal();
      chi += z * z;
    }
    chi = std::sqrt(chi);
    for (int64_t i = 0; i < d; ++i) out.push_back(static_cast<float>(basis[r][i] * chi));
  }
}

}  // namespace

uint64_t performer_draw_seed(uint64_t seed, int64_t draw) {
  return mix(mix(seed) ^ static_cast<uint64_t>(draw));
}

Tensor performer_projection(int64_t features, int64_t dim, bool orthogonal, uint64_t seed) {
  check(features >= 1, "performer: features=", features, ": expected a positive count");
  check(dim >= 1, "performer: dim=", dim, ": expected a positive head size");
  Generator gen(seed);
  std::vector<float> w;
  w.reserve(static_cast<std::size_t>(features * dim));
  if (orthogonal) {
    for (int64_t first = 0; first < features; first += dim)
      orthogonal_block(std::min(dim, features - first), dim, gen, w);
  } else {
    for (int64_t i = 0; i < features * dim; ++i) w.push_back(gen.normal());
  }
  return from_vector(w, {features, dim});
}

// The stabiliser. exp(w.x - |x|^2/2) overflows float for |x| of a few tens
// (e^89 is the limit), so a constant c is taken out of every exponent. It
// must cancel in out_i = sum_j phi(q_i).phi(k_j) v_j / sum_j phi(q_i).phi(k_j):
//   - a query's c_i multiplies its numerator and denominator alike, so each
//     query row may take its own maximum (over the M features);
//   - a key's c multiplies the term of key j only: a per-key c_j would
//     reweight the keys by exp(-c_j) and change the attention. Keys take one
//     c for all of them (the maximum over the whole [T, M] slice of a head).
// Then every exponent is <= 0: no overflow, and the largest feature is
// exactly 1/sqrt(M). c is a constant to autograd (detach): it cancels, so
// its gradient is zero. The price: a key whose exponent lies ~100 below the
// largest key's underflows to 0 (in a causal model, so do early queries'
// whole prefixes when a later key dominates).
Tensor performer_features(const Tensor& x, const Tensor& w, FeatureRole role) {
  check(x.dim() >= 2 && w.dim() == 2 && x.shape().back() == w.shape()[1],
        "performer_features: expected x [..., T, d] and w [M, d] with the same d, got ",
        shape_str(x.shape()), " and ", shape_str(w.shape()));
  const int64_t d = x.shape().back(), m = w.shape()[0];
  // d^(-1/4) on both q and k: (q/d^(1/4)) . (k/d^(1/4)) = q.k / sqrt(d).
  const Tensor xs = mul(x, static_cast<float>(std::pow(static_cast<double>(d), -0.25)));
  const Tensor projected = matmul(xs, transpose(w.to(x.device()), 0, 1));  // [..., T, M]
  const Tensor exponent = sub(projected, mul(sum(square(xs), {-1}, true), 0.5f));
  const Tensor c = role == FeatureRole::Query ? max(exponent, -1, true)
                                              : max(max(exponent, -1, true), -2, true);
  return mul(exp(sub(exponent, c.detach())), static_cast<float>(1.0 / std::sqrt(static_cast<double>(m))));
}

Tensor performer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w,
                           bool causal) {
  const Tensor fq = performer_features(q, w, FeatureRole::Query);
  const Tensor fk = performer_features(k, w, FeatureRole::Key);
  return causal ? linear_attention_causal_features(fq, fk, v, 64, kEps)
                : linear_attention_noncausal_features(fq, fk, v, kEps);
}

Tensor performer_weights(const Tensor& q, const Tensor& k, const Tensor& w, bool causal) {
  const Tensor fq = performer_features(q, w, FeatureRole::Query);
  const Tensor fk = repeat_kv(performer_features(k, w, FeatureRole::Key), q.shape()[1]);
  Tensor a = matmul(fq, transpose(fk, -2, -1));  // [B, H, T, T], every entry > 0
  if (causal) a = tril(a);
  return div(a, add(sum(a, {-1}, true), kEps));
}

// ---- the module ------------------------------------------------------------

PerformerAttention::PerformerAttention(const AttentionConfig& config, const PerformerOptions& options,
                                       Generator& gen, PositionOptions positions)
    : MultiHeadAttention(config, config.heads, gen, positions,
                         [this](const AttentionCall& c) {
                           check(c.alibi.empty(), "attention performer: ALiBi biases scores, and "
                                 "Performer never forms them");
                           check(c.offset == 0 && c.k.shape()[2] == c.q.shape()[2],
                                 "attention performer: no K/V cache (offset ", c.offset,
                                 "); run it on the whole sequence");
                           return performer_attention(c.q, c.k, c.v, *projection_, true);
                         }),
      options_(options) {
  check(config.dropout == 0, "attention performer: has no attention probabilities to drop; "
        "--attn-dropout must be 0 for it, got ", config.dropout);
  // Each layer its own features: the option's seed mixed with a number from
  // the model's generator (itself seeded), so the whole model is
  // reproducible and two layers never share a draw.
  key_ = mix(options.seed ^ mix(gen.next_u64()));
  projection_ = &register_buffer(
      "projection", performer_projection(options.features, head_dim(), options.orthogonal,
                                         performer_draw_seed(key_, 0)));
  training_forwards_ = &register_buffer("training_forwards", zeros({1}));
}

void PerformerAttention::redraw() {
  ++draw_;
  *projection_ = performer_projection(options_.features, head_dim(), options_.orthogonal,
                                      performer_draw_seed(key_, draw_))
                     .to(projection_->device());
}

Tensor PerformerAttention::forward(const Tensor& x) {
  if (training() && options_.redraw > 0) {
    const auto t = static_cast<int64_t>(training_forwards_->to(Device::cpu()).item());
    check(t < (int64_t{1} << 24), "attention performer: ", t, " training forwards; the redraw count is exact to 2^24");
    if (t > 0 && t % options_.redraw == 0) {
      draw_ = t / options_.redraw - 1;  // redraw() draws the next one: t / N
      redraw();
    }
    *training_forwards_ = full({1}, static_cast<double>(t + 1), DType::Float32, training_forwards_->device());
  }
  return MultiHeadAttention::forward(x);
}

Tensor PerformerAttention::forward_cached(const Tensor&, KVCache&, int64_t) {
  fail("attention performer: no K/V cache (its state is sum phi(k) v^T, not K and V); ",
       "generate without a cache");
}

// ---- Linformer ---------------------------------------------------------------

Tensor linformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e,
                           const Tensor& f) {
  check(q.dim() == 4 && k.shape() == q.shape() && v.shape() == q.shape(),
        "linformer: expected q, k, v of one shape [B, H, T, d], got ", shape_str(q.shape()), ", ",
        shape_str(k.shape()), ", ", shape_str(v.shape()));
  const int64_t t = q.shape()[2], d = q.shape()[3];
  check(e.dim() == 2 && f.shape() == e.shape() && e.shape()[1] >= t,
        "linformer: expected E and F of one shape [k, Tmax] with Tmax >= T = ", t, ", got ",
        shape_str(e.shape()), " and ", shape_str(f.shape()));
  // Along the sequence: [k, T] x [B, H, T, d] -> [B, H, k, d]. Row r of K'
  // sums every position of K, future ones included: no causal mask can
  // undo that, which is why Linformer is bidirectional.
  const Tensor kp = matmul(narrow(e, 1, 0, t), k);
  const Tensor vp = matmul(narrow(f, 1, 0, t), v);
  const Tensor scores = mul(matmul(q, transpose(kp, -2, -1)), 1.0f / std::sqrt(static_cast<float>(d)));
  return matmul(softmax(scores, -1), vp);  // [B, H, T, k] x [B, H, k, d]
}

}  // namespace attn
