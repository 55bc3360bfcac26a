// Fuzz target: the --attention text, e.g. "gqa:kv_heads=2,rope".
//
// The text goes through parse_variant; when it parses, its canonical form
// (VariantSpec::str) must parse back to the same spec. Then make_attention
// builds the variant for a tiny model and runs a forward and a backward pass
// on a short sequence, so option values that get past the parser reach the
// kernels they configure. attn::Error is the expected refusal; everything
// else (sanitizer reports, crashes, other exceptions, huge allocations) is a
// bug.
#include <cstdint>
#include <string>

#include "attention/registry.h"
#include "autograd/ops.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  attn::VariantSpec spec;
  try {
    spec = attn::parse_variant(text);
  } catch (const attn::Error&) {
    return 0;
  }
  const attn::VariantSpec again = attn::parse_variant(spec.str());
  if (again.name != spec.name || again.options != spec.options) __builtin_trap();

  attn::AttentionConfig config;  // 4 heads of width 4
  config.embd = 16;
  config.heads = 4;
  config.block_size = 8;
  try {
    attn::Generator gen(0);
    auto attention = attn::make_attention(text, config, gen);
    const attn::Tensor x = attn::randn({1, 5, config.embd}, gen).set_requires_grad();
    attn::sum(attention->forward(x)).backward();
  } catch (const attn::Error&) {
  }
  return 0;
}
