// bfloat16: the upper half of a float32 — its sign, its 8 exponent bits and
// the top 7 of its 23 mantissa bits. Same range as float32 (a product that
// fits in one fits in the other), about 3 significant decimal digits. That
// trade is why it replaced float16 for training: no loss scaling is needed.
//
// Converting down rounds to the nearest bfloat16, ties to even (as IEEE
// rounding does), NaN stays NaN, and values past the largest finite
// bfloat16 (3.39e38) become infinity. Converting up is exact. Host and
// device code share these two functions, so both devices round alike.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/host_device.h"

namespace attn {

ATTN_HOST_DEVICE uint16_t bf16_from_float(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  // A NaN: keep its sign and set a mantissa bit, so that truncation cannot
  // turn it into infinity (a NaN whose payload sits in the low 16 bits).
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  // Round to nearest even: add just under half a unit of the last kept bit,
  // plus one when that bit is odd, and let the carry do the rest.
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

ATTN_HOST_DEVICE float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

}  // namespace attn
