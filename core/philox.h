// Philox4x32-10: the counter-based random numbers behind dropout.
//
// A counter-based generator is a keyed hash: random = philox(counter, key).
// There is no state to carry from one number to the next, so any element's
// number is computed on its own, by whichever CPU thread or GPU thread
// handles that element, and every one of them gets the same value. That is
// what makes dropout masks identical on 1 thread, 8 threads and the GPU,
// and lets the backward pass regenerate the mask instead of storing it.
// (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as
// 1, 2, 3", SC'11; also what cuRAND and PyTorch's CUDA dropout use.)
//
// One evaluation: 10 rounds of two 32x32 -> 64-bit multiplications that mix
// the four counter words, the key added in between (bumped by two Weyl
// constants every round). It gives four 32-bit numbers.
//
// This header is compiled by the host compiler and by nvcc alike: one
// implementation on both devices.
#pragma once
#include <cstdint>

#include "core/host_device.h"

namespace attn::philox {

struct Words {
  uint32_t w[4];
};

// The high and low halves of a * b.
ATTN_HOST_DEVICE void mul_hi_lo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds, on counter c and key (k0, k1).
ATTN_HOST_DEVICE Words philox4x32_10(Words c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;    // the round multipliers
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule: golden ratio, sqrt(3) - 1
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mul_hi_lo(kMul0, c.w[0], hi0, lo0);
    mul_hi_lo(kMul1, c.w[2], hi1, lo1);
    c = Words{{hi1 ^ c.w[1] ^ k0, lo1, hi0 ^ c.w[3] ^ k1, lo0}};
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return c;
}

// A float uniform in [0, 1) from 32 random bits: the top 24 bits (a float's
// precision) times 2^-24, so every value is exact and 1 is never reached.
ATTN_HOST_DEVICE float uniform(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// Where a random number lives: a stream (seed, offset) and, within it, one
// sample's elements. The offset moves on by one for each random op of a
// training step, so no two ops, and no two steps, reuse numbers. A sample is
// named by its index in the order the data was drawn (step x global batch
// + row), not by its row in a local tensor, so that N data-parallel
// processes, each holding some rows, draw what one process would.
struct Stream {
  uint64_t seed = 0;
  uint64_t offset = 0;
};

// The numbers of elements 4g .. 4g + 3 (64-bit: B H T^2 passes 2^32) of
// sample `sample` of a stream, in one evaluation: counter = (g: 64 bits,
// sample: 32 bits, offset: 32 bits), key = the seed.
ATTN_HOST_DEVICE Words group_at(const Stream& s, uint64_t sample, uint64_t g) {
  const Words c{{static_cast<uint32_t>(g), static_cast<uint32_t>(g >> 32),
                 static_cast<uint32_t>(sample), static_cast<uint32_t>(s.offset)}};
  return philox4x32_10(c, static_cast<uint32_t>(s.seed), static_cast<uint32_t>(s.seed >> 32));
}

// The number of one element.
ATTN_HOST_DEVICE uint32_t bits_at(const Stream& s, uint64_t sample, uint64_t element) {
  return group_at(s, sample, element >> 2).w[element & 3];
}

// Dropout's decision for one element: kept when its uniform number is at
// least p (probability 1 - p).
ATTN_HOST_DEVICE bool keep(const Stream& s, uint64_t sample, uint64_t element, float p) {
  return uniform(bits_at(s, sample, element)) >= p;
}

}  // namespace attn::philox
