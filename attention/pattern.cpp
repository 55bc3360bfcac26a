// Attention through a bool pattern: see pattern.h.
#include "attention/pattern.h"

#include "attention/attention.h"
#include "attention/flash.h"
#include "autograd/ops.h"
#include "core/error.h"

namespace attn {

Tensor attention_with_pattern(const AttentionCall& c, const Tensor& keep) {
  const int64_t heads = c.q.shape()[1], tq = c.q.shape()[2], tk = c.k.shape()[2];
  check(keep.dim() == 2 && keep.shape()[0] == tq && keep.shape()[1] == tk,
        "attention pattern: expected a [", tq, ", ", tk, "] mask, got ", shape_str(keep.shape()));
  const Tensor weights = attention_weights(c.q, repeat_kv(c.k, heads), keep, c.scale, c.bias());
  if (c.want_weights) c.weights = weights;
  return matmul(c.drop(weights), repeat_kv(c.v, heads));
}

double pattern_density(const Tensor& keep) {
  check(keep.dtype() == DType::Bool, "pattern_density: expected a bool mask, got ",
        dtype_name(keep.dtype()));
  if (keep.numel() == 0) return 0.0;
  // Counted on the host in integers: exact for any size (a float sum of
  // ones stops being exact past 2^24 pairs).
  int64_t allowed = 0;
  for (int64_t flag : keep.to_int_vector()) allowed += flag != 0;
  return static_cast<double>(allowed) / static_cast<double>(keep.numel());
}

AttentionKernel pattern_kernel(BlockSparsityCache::Compile compile, MaskOf mask, GatherKeys gather) {
  auto cache = std::make_shared<BlockSparsityCache>(std::move(compile));
  return [cache, mask, gather](const AttentionCall& c) {
    // The flash kernels read one head dim for q, k and v (the CUDA one up to 128).
    const int64_t d = c.q.shape()[3];
    const bool flash_fits = !c.want_weights && c.v.shape()[3] == d && (c.q.device().is_cpu() || d <= 128);
    if (!flash_fits) return attention_with_pattern(c, mask(c));
    FlashOptions o;
    o.offset = c.offset;
    o.alibi = c.alibi;
    o.scale = c.scale;
    o.dropout = c.dropout;
    o.blocks = cache->get(c.q.shape()[2], c.k.shape()[2], c.offset);
    if (!gather) return flash_attention(c.q, c.k, c.v, o);
    return flash_attention(c.q, gather(c.k), gather(c.v), o);
  };
}

}  // namespace attn
