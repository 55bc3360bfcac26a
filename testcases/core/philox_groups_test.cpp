// The CPU's batched Philox (core/cpu/philox_groups.h) against the one
// definition (core/philox.h): every vector path this CPU can run must give
// the scalar generator's words, bit for bit, at any start and count,
// including counts that end inside a vector, group indices whose low word
// wraps into the high word, and large seeds and offsets. A path that
// swapped the even and odd lanes, lost a product's high half or carried the
// group index wrongly fails here.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/attention_dropout.h"
#include "core/cpu/philox_groups.h"
#include "core/philox.h"

namespace {

using namespace attn;

TEST(PhiloxGroups, EveryPathGivesTheScalarWords) {
  const auto paths = cpu::philox_groups_paths();
  ASSERT_EQ(std::string(paths.back().name), "scalar");
  const philox::Stream streams[] = {{0, 0}, {1234, 7}, {0xFEDCBA9876543210ull, 0xFFFFFFFFull}};
  const uint64_t starts[] = {0, 5, 0xFFFFFFF8ull, (uint64_t{3} << 32) + 11};  // 0xFFFFFFF8: wraps mid-vector
  for (const auto& path : paths)
    for (const auto& s : streams)
      for (uint64_t g0 : starts)
        for (int64_t n : {1, 7, 8, 15, 16, 17, 33, 64}) {
          std::vector<uint32_t> words(4 * n + 1, 0xABCDABCDu);  // one guard word past the end
          path.fill(s, 99, g0, n, words.data());
          for (int64_t k = 0; k < n; ++k) {
            const philox::Words w = philox::group_at(s, 99, g0 + static_cast<uint64_t>(k));
            for (int m = 0; m < 4; ++m)
              ASSERT_EQ(words[4 * k + m], w.w[m]) << path.name << " g0 " << g0 << " n " << n << " group " << k;
          }
          EXPECT_EQ(words[4 * n], 0xABCDABCDu) << path.name << " wrote past the last group";
        }
}

TEST(PhiloxGroups, KeepScalesMatchTheSharedDefinition) {
  AttentionDropoutArgs a;
  a.seed = 42;
  a.offset = 3;
  a.first_sample = 17;
  for (float p : {0.1f, 0.5f, 0.9f}) {
    a.p = p;
    const float kept = attention_dropout::keep_scale(a);
    for (uint64_t e0 : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{253}, (uint64_t{1} << 34) + 1})
      for (int64_t n : {1, 31, 32, 33, 255, 256, 257, 700}) {
        std::vector<float> z(n + 1, -1.0f);  // one guard past the end
        cpu::keep_scales(a, 2, e0, n, z.data());
        for (int64_t t = 0; t < n; ++t)
          ASSERT_EQ(z[t], attention_dropout::keep(a, 2, e0 + static_cast<uint64_t>(t)) ? kept : 0.0f)
              << "p " << p << " e0 " << e0 << " n " << n << " t " << t;
        EXPECT_EQ(z[n], -1.0f) << "wrote past n = " << n;
      }
  }
}

}  // namespace
