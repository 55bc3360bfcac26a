// Chapter 07 — your code. Replace each `throw` with an implementation.
// Read lessons/07_alibi/README.md first; the shapes are in alibi.h.
#include "alibi.h"

#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson07 {

using namespace attn;

std::vector<float> alibi_slopes(int64_t heads) {
  (void)heads;
  throw NotImplemented("lesson 07 (ALiBi): alibi_slopes is not implemented yet - see lessons/07_alibi/README.md");
}

Tensor alibi_bias(int64_t heads, int64_t tq, int64_t tk, int64_t offset) {
  (void)heads, (void)tq, (void)tk, (void)offset;
  throw NotImplemented("lesson 07 (ALiBi): alibi_bias is not implemented yet - see lessons/07_alibi/README.md");
}

Tensor alibi_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t offset,
                       Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)offset, (void)weights_out;
  throw NotImplemented("lesson 07 (ALiBi): alibi_attention is not implemented yet - see lessons/07_alibi/README.md");
}

std::unique_ptr<GPT> extend_context(GPT& model, int64_t block_size) {
  (void)model, (void)block_size;
  throw NotImplemented("lesson 07 (ALiBi): extend_context is not implemented yet - see lessons/07_alibi/README.md");
}

}  // namespace lesson07

// ---- glue, nothing to change here ----------------------------------------
// Registers the variant "student:alibi": the library's multi-head module
// running YOUR alibi_attention on its heads. It is built with the alibi
// position option so that the model knows positions live in the attention
// and adds no learned position table (that is what lets extend_context
// work); the slopes the library would pass along are ignored: your
// alibi_attention makes its own. The advanced suite trains a tiny GPT with
// it and runs it past its training length.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:alibi", "chapter 07: multi-head attention running your alibi_attention",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        attn::PositionOptions positions;
        positions.alibi = true;
        auto kernel = [](const attn::AttentionCall& call) {
          attn::Tensor weights;
          const attn::Tensor out = lesson07::alibi_attention(call.q, call.k, call.v, call.offset,
                                                             call.want_weights ? &weights : nullptr);
          if (call.want_weights) call.weights = weights;
          return out;
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen, positions,
                                                          kernel);
      });
  return true;
}();
}  // namespace
