// Chapter 01 — your code. Replace each `throw` with an implementation.
// Read lessons/01_softmax_attention/README.md first; the shapes are in
// softmax_attention.h.
#include "softmax_attention.h"

#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson01 {

using namespace attn;

Tensor softmax(const Tensor& x) {
  (void)x;
  throw NotImplemented(
      "01 softmax_attention: implement softmax in lessons/01_softmax_attention/softmax_attention.cpp");
}

Tensor causal_mask(int64_t t) {
  (void)t;
  throw NotImplemented(
      "01 softmax_attention: implement causal_mask in lessons/01_softmax_attention/softmax_attention.cpp");
}

Tensor padding_mask(const Tensor& lengths, int64_t t) {
  (void)lengths;
  (void)t;
  throw NotImplemented(
      "01 softmax_attention: implement padding_mask in lessons/01_softmax_attention/softmax_attention.cpp");
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& keep, Tensor* weights_out) {
  (void)q;
  (void)k;
  (void)v;
  (void)keep;
  (void)weights_out;
  throw NotImplemented(
      "01 softmax_attention: implement scaled_dot_product_attention in "
      "lessons/01_softmax_attention/softmax_attention.cpp");
}

}  // namespace lesson01

// ---- glue, nothing to change here ----------------------------------------
// Registers a multi-head attention that runs YOUR scaled_dot_product_attention
// on its heads, as the variant "student:sdpa" (see attention/registry.h).
// The advanced suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:sdpa", "chapter 01: multi-head attention running your scaled_dot_product_attention",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        auto kernel = [](const attn::AttentionCall& call) {
          const int64_t tq = call.q.shape()[2], tk = call.k.shape()[2];
          return lesson01::scaled_dot_product_attention(
              call.q, call.k, call.v, attn::causal_mask(tq, tk, call.offset, call.q.device()));
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
