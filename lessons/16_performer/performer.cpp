// Chapter 16 — your code. Replace each `throw` with an implementation.
// Read lessons/16_performer/README.md first; the shapes are in performer.h.
// The given code (you do not write it) is in performer_glue.cpp.
#include "performer.h"

#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "core/error.h"
#include "core/random.h"

namespace lesson16 {

using namespace attn;

Tensor gaussian_projection(int64_t features, int64_t dim, bool orthogonal, uint64_t seed) {
  (void)features, (void)dim, (void)orthogonal, (void)seed;
  throw NotImplemented("16 performer: implement gaussian_projection in lessons/16_performer/performer.cpp");
}

Tensor favor_features(const Tensor& x, const Tensor& w, bool is_query) {
  (void)x, (void)w, (void)is_query;
  throw NotImplemented("16 performer: implement favor_features in lessons/16_performer/performer.cpp");
}

Tensor favor_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& w, bool causal) {
  (void)q, (void)k, (void)v, (void)w, (void)causal;
  throw NotImplemented("16 performer: implement favor_attention in lessons/16_performer/performer.cpp");
}

Tensor linformer_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& e,
                           const Tensor& f) {
  (void)q, (void)k, (void)v, (void)e, (void)f;
  throw NotImplemented("16 performer: implement linformer_attention in lessons/16_performer/performer.cpp");
}

}  // namespace lesson16
