// Chapter 08 — your code. Replace each `throw` with an implementation.
// Read lessons/08_sliding_window/README.md first; the shapes are in
// sliding_window.h.
#include "sliding_window.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "attention/multi_head.h"
#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace lesson08 {

using namespace attn;

Tensor window_mask(int64_t tq, int64_t tk, int64_t window, int64_t offset) {
  (void)tq, (void)tk, (void)window, (void)offset;
  throw NotImplemented(
      "08 sliding_window: implement window_mask in lessons/08_sliding_window/sliding_window.cpp");
}

Tensor window_attention_masked(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                               int64_t offset, Tensor* weights_out) {
  (void)q, (void)k, (void)v, (void)window, (void)offset, (void)weights_out;
  throw NotImplemented(
      "08 sliding_window: implement window_attention_masked in "
      "lessons/08_sliding_window/sliding_window.cpp");
}

Tensor window_attention_banded(const Tensor& q, const Tensor& k, const Tensor& v, int64_t window,
                               int64_t chunk, int64_t offset) {
  (void)q, (void)k, (void)v, (void)window, (void)chunk, (void)offset;
  throw NotImplemented(
      "08 sliding_window: implement window_attention_banded in "
      "lessons/08_sliding_window/sliding_window.cpp");
}

}  // namespace lesson08

// ---- glue, nothing to change here ----------------------------------------
// Registers the variant "student:window:size=W": the library's multi-head
// module running YOUR window_attention_banded on its heads (chunks of about
// W rows, like the library). The advanced suite trains a tiny GPT with it.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:window",
      "chapter 08: multi-head attention running your window_attention_banded; option size=W",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {"size"});
        const int64_t w = attn::option_int(spec, "size", 0);
        attn::check(w >= 1, "attention student:window: needs size=W with W >= 1, e.g. "
                            "student:window:size=16");
        auto kernel = [w](const attn::AttentionCall& call) {
          return lesson08::window_attention_banded(call.q, call.k, call.v, w,
                                                   std::clamp<int64_t>(w, 16, 256), call.offset);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
