// Many Philox evaluations at once, on the CPU (core/philox.h is the one
// definition of the generator; this computes exactly its numbers, faster).
//
// Dropout draws one number per element: millions per training step. One
// Philox evaluation is 10 rounds of two 32x32 -> 64-bit products, which the
// compiler leaves scalar (it does not vectorise the widening product from a
// plain loop), so a scalar evaluation per four elements made dropout the
// most expensive elementwise op of the CPU step. Consecutive groups are
// independent, so 16 of them (AVX-512) or 8 (AVX2) go through the rounds
// side by side, one counter word per vector lane. The products are integer
// arithmetic: every path gives the same bits as the scalar definition,
// whichever the CPU runs (tests/core/philox_groups_test.cpp checks each
// path this CPU has against philox::group_at).
#pragma once
#include <cstdint>
#include <vector>

#include "core/attention_dropout.h"
#include "core/philox.h"

namespace attn::cpu {

// The words of groups g0 .. g0 + n - 1 of one sample of a stream:
// words[4 k + m] = philox::group_at(s, sample, g0 + k).w[m].
void philox_groups(const philox::Stream& s, uint64_t sample, uint64_t g0, int64_t n, uint32_t* words);

// Attention dropout's decisions (core/attention_dropout.h) for elements
// e0 .. e0 + n - 1 of batch row b, as multipliers: z[t] = 1 / (1 - p) where
// element e0 + t is kept, 0 where it is dropped, so that a kernel drops
// with one product per element in a loop that vectorises.
void keep_scales(const AttentionDropoutArgs& a, int64_t b, uint64_t e0, int64_t n, float* z);

// One implementation of philox_groups, for the tests: every one this CPU
// can run, the one philox_groups uses first.
struct PhiloxGroupsPath {
  const char* name;
  void (*fill)(const philox::Stream&, uint64_t, uint64_t, int64_t, uint32_t*);
};
std::vector<PhiloxGroupsPath> philox_groups_paths();

}  // namespace attn::cpu
