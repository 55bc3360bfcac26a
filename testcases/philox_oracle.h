// An independent Philox4x32-10 and the documented keying of dropout, for
// the tests: written again from the paper's description (Salmon et al.,
// SC'11), not from core/philox.h, so that a wrong counter layout, a swapped
// key, an off-by-one group or a wrong float mapping in the library fails.
#pragma once
#include <cstdint>
#include <vector>

#include "core/attention_dropout.h"

namespace philox_oracle {

// Ten rounds on counter words c with key (k0, k1).
inline std::vector<uint32_t> philox(std::vector<uint32_t> c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{0xD2511F53u} * c[0], p1 = uint64_t{0xCD9E8D57u} * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k0, static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k1, static_cast<uint32_t>(p0)};
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c;
}

// Element e of sample `sample` in stream (seed, offset) is word e % 4 of
// philox(counter (e / 4 low, e / 4 high, sample, offset), key seed), kept
// when its top 24 bits / 2^24 >= p.
inline bool keep(uint64_t seed, uint64_t offset, uint64_t sample, uint64_t e, float p) {
  const uint64_t g = e / 4;
  const auto w = philox({static_cast<uint32_t>(g), static_cast<uint32_t>(g >> 32), static_cast<uint32_t>(sample),
                         static_cast<uint32_t>(offset)},
                        static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return static_cast<double>(w[e % 4] >> 8) / 16777216.0 >= p;
}

// Attention dropout: P[b, h, i, j] of a [B, H, Tq, Tk] matrix is element
// (h Tq + i) Tk + j of sample first_sample + b.
inline bool keep(const attn::AttentionDropoutArgs& d, int64_t b, int64_t h, int64_t i, int64_t j, int64_t tq,
                 int64_t tk) {
  const uint64_t e = (static_cast<uint64_t>(h) * tq + i) * tk + j;
  return keep(d.seed, d.offset, static_cast<uint64_t>(d.first_sample + b), e, d.p);
}

}  // namespace philox_oracle
