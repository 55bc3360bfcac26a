// Regression tests for what fuzzing the variant parser found (fuzz/variant.cpp,
// libFuzzer): each test keeps the reported input verbatim.
#include <gtest/gtest.h>

#include <string>

#include "attention/registry.h"
#include "core/allocator.h"
#include "core/error.h"

using namespace attn;

namespace {

AttentionConfig tiny() {  // the fuzz target's model: 4 heads of width 4
  AttentionConfig c;
  c.embd = 16;
  c.heads = 4;
  c.block_size = 8;
  return c;
}

std::string error_of(const std::string& spec) {
  Generator g(0);
  try {
    make_attention(spec, tiny(), g);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// fuzz_variant, out-of-memory: "mla:latent=125555551" asked for 2 x 16 x 125555551
// floats (16 GB) of projection weights for a 16-wide model. The latent is now
// bounded by the K and V width it compresses (2 x embd), the RoPE key by two
// heads, and both are checked before any weight is allocated.
TEST(RegistryFuzz, MlaOptionsWiderThanTheModelAreRefusedBeforeAllocating) {
  cpu_allocator().reset_peak();
  const std::size_t before = cpu_allocator().stats().current;
  const std::string latent = error_of("mla:latent=125555551");
  EXPECT_NE(latent.find("attention mla: latent=125555551 must be at most 32"), std::string::npos) << latent;
  const std::string rope = error_of("mla:rope_dim=999999998");
  EXPECT_NE(rope.find("attention mla: rope_dim=999999998 must be at most 8"), std::string::npos) << rope;
  EXPECT_LT(cpu_allocator().stats().peak, before + (1u << 20)) << "weights were allocated before the check";
  // The bounds themselves are allowed.
  EXPECT_EQ(error_of("mla:latent=32,rope_dim=8"), "");
  EXPECT_EQ(error_of("mla:latent=1,rope_dim=2"), "");
}
