// Chapter 14 glue: the Tensor op around your kernel and the "student:flash_cuda"
// attention variant. You do not need to change this file.
#include "flash_cuda.h"

#include <memory>

#include "attention/flash.h"
#include "attention/multi_head.h"
#include "attention/registry.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "flash_kernel.h"

namespace lesson14 {

attn::Tensor flash_attention_cuda(const attn::Tensor& q, const attn::Tensor& k,
                                  const attn::Tensor& v, const FlashCudaOptions& options,
                                  attn::Tensor* lse_out) {
  attn::check(q.defined() && q.device().is_cuda(),
              "lesson 14: flash_attention_cuda runs on the GPU; move q, k and v there first "
              "(tensor.to(attn::Device::cuda())), got q on ",
              q.defined() ? q.device().str() : std::string("nothing"));
  attn::FlashOptions o;
  o.causal = options.causal;
  o.offset = options.offset;
  o.window = options.window;
  o.scale = options.scale;
  const attn::Tensor out = attn::flash_attention(q, k, v, o, lse_out, flash_forward_launch);
  attn::device_synchronize(q.device());
  return out;
}

}  // namespace lesson14

// ---- glue: your kernel as an attention variant ------------------------------
// "student:flash_cuda" is the library's multi-head module running
// flash_attention_cuda on its heads: train it with --device cuda.
namespace {
[[maybe_unused]] const bool registered = [] {
  attn::register_attention(
      "student:flash_cuda", "chapter 14: multi-head attention running your CUDA flash kernel (--device cuda)",
      [](const attn::VariantSpec& spec, const attn::AttentionConfig& config, attn::Generator& gen) {
        attn::check_options(spec, {});
        auto kernel = [](const attn::AttentionCall& call) {
          lesson14::FlashCudaOptions o;
          o.offset = call.offset;
          o.scale = call.scale;
          return lesson14::flash_attention_cuda(call.q, call.k, call.v, o);
        };
        return std::make_shared<attn::MultiHeadAttention>(config, config.heads, gen,
                                                          attn::PositionOptions{}, kernel);
      });
  return true;
}();
}  // namespace
