// Philox for many consecutive groups at once (see philox_groups.h).
//
// The vector paths keep the four counter words of W groups in four vectors
// (lane l holds group g0 + l) and run philox4x32_10's rounds on all lanes at
// once. The one step that needs care is the 32x32 -> 64-bit product: the
// vector instruction for it (vpmuludq) multiplies the even 32-bit lanes
// only, giving 64-bit results. So the even lanes are multiplied as they
// are, the odd lanes after a shift down by 32 bits, and two blends put the
// high and the low halves back into 32-bit lanes.
//
// Each path is compiled for its instruction set with a target attribute and
// picked at run time from what the CPU reports, so a binary built for
// baseline x86-64 runs everywhere and uses AVX-512 where it exists.
#include "core/cpu/philox_groups.h"

#include <algorithm>

#include "core/cpu/vmath.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ATTN_PHILOX_X86 1
#endif

namespace attn::cpu {

namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

void groups_scalar(const philox::Stream& s, uint64_t sample, uint64_t g0, int64_t n, uint32_t* words) {
  for (int64_t k = 0; k < n; ++k) {
    const philox::Words w = philox::group_at(s, sample, g0 + static_cast<uint64_t>(k));
    std::copy(w.w, w.w + 4, words + 4 * k);
  }
}

// The lanes' counters for groups g0 .. g0 + W - 1: the group index's low and
// high words (the high word moves on where the low one wraps).
template <int W>
void group_counters(uint64_t g0, uint32_t* lo, uint32_t* hi) {
  for (int l = 0; l < W; ++l) {
    const uint64_t g = g0 + static_cast<uint64_t>(l);
    lo[l] = static_cast<uint32_t>(g);
    hi[l] = static_cast<uint32_t>(g >> 32);
  }
}

// Lane l of c[m] is word m of group l; the first `count` groups go out in
// words' order.
template <int W>
void interleave(const uint32_t (&c)[4][W], int64_t count, uint32_t* words) {
  for (int64_t l = 0; l < count; ++l)
    for (int m = 0; m < 4; ++m) words[4 * l + m] = c[m][l];
}

#if ATTN_PHILOX_X86

// GCC 12's AVX-512 intrinsics start from a deliberately undefined vector
// that its own -Wmaybe-uninitialized then reports (GCC bug 105593, fixed
// in 13); the warning is about the header, not this code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

__attribute__((target("avx512f"))) void mul_hi_lo_16(__m512i a, __m512i x, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(a, x);                         // lanes 0, 2, ...: 64-bit products
  const __m512i odd = _mm512_mul_epu32(a, _mm512_srli_epi64(x, 32));  // lanes 1, 3, ...
  constexpr __mmask16 kOdd = 0xAAAA;
  lo = _mm512_mask_blend_epi32(kOdd, even, _mm512_slli_epi64(odd, 32));
  hi = _mm512_mask_blend_epi32(kOdd, _mm512_srli_epi64(even, 32), odd);
}

__attribute__((target("avx512f"))) void groups_avx512(const philox::Stream& s, uint64_t sample, uint64_t g0,
                                                      int64_t n, uint32_t* words) {
  const __m512i mul0 = _mm512_set1_epi32(static_cast<int>(kMul0));
  const __m512i mul1 = _mm512_set1_epi32(static_cast<int>(kMul1));
  for (int64_t k = 0; k < n; k += 16) {
    alignas(64) uint32_t c[4][16];
    group_counters<16>(g0 + static_cast<uint64_t>(k), c[0], c[1]);
    __m512i c0 = _mm512_load_si512(c[0]), c1 = _mm512_load_si512(c[1]);
    __m512i c2 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(sample)));
    __m512i c3 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(s.offset)));
    uint32_t k0 = static_cast<uint32_t>(s.seed), k1 = static_cast<uint32_t>(s.seed >> 32);
    for (int round = 0; round < 10; ++round) {
      __m512i hi0, lo0, hi1, lo1;
      mul_hi_lo_16(mul0, c0, hi0, lo0);
      mul_hi_lo_16(mul1, c2, hi1, lo1);
      const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0)), key1 = _mm512_set1_epi32(static_cast<int>(k1));
      c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), key0);
      c1 = lo1;
      c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), key1);
      c3 = lo0;
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    _mm512_store_si512(c[0], c0);
    _mm512_store_si512(c[1], c1);
    _mm512_store_si512(c[2], c2);
    _mm512_store_si512(c[3], c3);
    interleave<16>(c, std::min<int64_t>(16, n - k), words + 4 * k);
  }
}

__attribute__((target("avx2"))) void mul_hi_lo_8(__m256i a, __m256i x, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(a, x);
  const __m256i odd = _mm256_mul_epu32(a, _mm256_srli_epi64(x, 32));
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

__attribute__((target("avx2"))) void groups_avx2(const philox::Stream& s, uint64_t sample, uint64_t g0,
                                                 int64_t n, uint32_t* words) {
  const __m256i mul0 = _mm256_set1_epi32(static_cast<int>(kMul0));
  const __m256i mul1 = _mm256_set1_epi32(static_cast<int>(kMul1));
  for (int64_t k = 0; k < n; k += 8) {
    alignas(32) uint32_t c[4][8];
    group_counters<8>(g0 + static_cast<uint64_t>(k), c[0], c[1]);
    __m256i c0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[0]));
    __m256i c1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(c[1]));
    __m256i c2 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(sample)));
    __m256i c3 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(s.offset)));
    uint32_t k0 = static_cast<uint32_t>(s.seed), k1 = static_cast<uint32_t>(s.seed >> 32);
    for (int round = 0; round < 10; ++round) {
      __m256i hi0, lo0, hi1, lo1;
      mul_hi_lo_8(mul0, c0, hi0, lo0);
      mul_hi_lo_8(mul1, c2, hi1, lo1);
      const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0)), key1 = _mm256_set1_epi32(static_cast<int>(k1));
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), key0);
      c1 = lo1;
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), key1);
      c3 = lo0;
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    _mm256_store_si256(reinterpret_cast<__m256i*>(c[0]), c0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(c[1]), c1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(c[2]), c2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(c[3]), c3);
    interleave<8>(c, std::min<int64_t>(8, n - k), words + 4 * k);
  }
}

#pragma GCC diagnostic pop

#endif  // ATTN_PHILOX_X86

}  // namespace

std::vector<PhiloxGroupsPath> philox_groups_paths() {
  std::vector<PhiloxGroupsPath> paths;
#if ATTN_PHILOX_X86
  if (__builtin_cpu_supports("avx512f")) paths.push_back({"avx512", groups_avx512});
  if (__builtin_cpu_supports("avx2")) paths.push_back({"avx2", groups_avx2});
#endif
  paths.push_back({"scalar", groups_scalar});
  return paths;
}

void philox_groups(const philox::Stream& s, uint64_t sample, uint64_t g0, int64_t n, uint32_t* words) {
  static const auto best = philox_groups_paths().front().fill;
  best(s, sample, g0, n, words);
}

namespace {

// One piece's decisions as multipliers.
ATTN_VECTOR_CLONES void scales_of(const uint32_t* numbers, int64_t n, float p, float keep_scale, float* z) {
  for (int64_t t = 0; t < n; ++t) z[t] = philox::uniform(numbers[t]) >= p ? keep_scale : 0.0f;
}

}  // namespace

void keep_scales(const AttentionDropoutArgs& a, int64_t b, uint64_t e0, int64_t n, float* z) {
  constexpr int64_t kPiece = 256;  // elements whose numbers are made at once
  uint32_t numbers[kPiece + 4];
  const philox::Stream stream{a.seed, a.offset};
  const uint64_t sample = static_cast<uint64_t>(a.first_sample + b);
  const float keep_scale = attention_dropout::keep_scale(a);
  for (int64_t t0 = 0; t0 < n; t0 += kPiece) {
    const int64_t count = std::min(kPiece, n - t0);
    const uint64_t first = e0 + static_cast<uint64_t>(t0);
    const int64_t skip = static_cast<int64_t>(first & 3);  // elements of the first group before `first`
    philox_groups(stream, sample, first >> 2, (skip + count + 3) / 4, numbers);
    scales_of(numbers + skip, count, a.p, keep_scale, z + t0);
  }
}

}  // namespace attn::cpu
