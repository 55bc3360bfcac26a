// Vectorisable float math: exp, expm1, tanh, sigmoid and GELU.
//
// libm's expf/tanhf are accurate but scalar: a loop that calls them runs one
// element at a time, and in a training step GELU alone spent a third of the
// time in them. These versions are plain arithmetic with no branches (every
// special case is a select), so the compiler turns a loop over them into
// SIMD code: 4 floats at a time at baseline x86-64 (SSE2), 8 with AVX2, 16
// with AVX-512 (see ATTN_VECTOR_CLONES below).
//
// How to check that a loop vectorises: build with
//   g++ -O3 -std=c++20 -fopt-info-vec-optimized -c core/cpu/elementwise.cpp -I.
// and look for "loop vectorized using 64 byte vectors" at the loop's line
// (the avx512 clone), or read the assembly for `vfmadd`/`vmulps` on zmm registers.
//
// Error bounds, tested against double-precision libm over the whole float
// range (testcases/core/vmath_test.cpp):
//   exp    <= 1.5 ulp;  exp(x) = +inf for x > 88.72, 0 for x < -103.97,
//          denormal results where the true value is denormal
//   expm1  <= 2.5 ulp
//   tanh   <= 3 ulp   (exactly +-1 for |x| >= 9, where float tanh rounds to 1)
// NaN in gives NaN out; +-inf give the limits.
#pragma once
#include <bit>
#include <cstdint>

// Loops that call these functions are compiled three times, for AVX-512,
// AVX2+FMA and baseline x86-64, and the loader picks the best one the CPU
// has (GCC function multiversioning): a binary built for any x86-64 still
// runs everywhere. The AVX clones may fuse a * b + c into one FMA, so two
// machines of different vector width can differ in the last bit, as their
// OpenBLAS kernels do anyway; on one machine the result never depends on
// the thread count (core/threads.h).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ATTN_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ATTN_VECTOR_CLONES
#endif

namespace attn::vmath {

// Rounds to the nearest integer (ties to even) without a library call:
// adding 1.5 * 2^23 pushes the fraction bits out of the float, subtracting
// it back leaves the rounded value. Valid for |x| < 2^22.
inline float round_nearest(float x) {
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23
  return (x + kShift) - kShift;
}

// 2^n for an integer-valued n in [-126, 127], built from its exponent bits.
inline float pow2(float n) {
  return std::bit_cast<float>(static_cast<int32_t>(n + 127.0f) << 23);
}

// e^x. Range reduction: x = n ln2 + r with |r| <= ln2 / 2, so
// e^x = 2^n e^r. ln2 is split in a high part with few bits (n * hi is exact)
// and a low part, so r keeps its precision (Cody and Waite). e^r is a
// degree-7 polynomial (Taylor; its remainder at |r| = 0.347 is 4e-9 of e^r,
// a thirtieth of an ulp). 2^n is applied as two halves so that n down to -150 (denormal
// results) and up to 128 (overflow to inf) need no branch.
inline float exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;        // 8 significant bits
  constexpr float kLn2Lo = -2.12194440e-4f;     // ln2 - kLn2Hi
  // Clamped so that 2^n stays within pow2's reach; written so that a NaN
  // becomes -104 (both comparisons are false for NaN) and never reaches
  // the float-to-int conversion, where it would be undefined behaviour.
  const float lower = x > -104.0f ? x : -104.0f;
  const float xc = lower < 89.0f ? lower : 89.0f;
  const float n = round_nearest(xc * kLog2e);
  const float r = (xc - n * kLn2Hi) - n * kLn2Lo;
  float q = 1.0f / 5040;
  q = q * r + 1.0f / 720;
  q = q * r + 1.0f / 120;
  q = q * r + 1.0f / 24;
  q = q * r + 1.0f / 6;
  q = q * r + 0.5f;
  const float p = 1.0f + (r + r * r * q);  // the large terms added last, once
  const float n1 = round_nearest(n * 0.5f);  // n = n1 + n2, both within pow2's range
  const float result = p * pow2(n1) * pow2(n - n1);
  return x != x ? x : result;  // NaN stays NaN (the clamp above would lose it)
}

// e^x - 1, accurate where it is small: for |x| < 0.5 the Taylor series
// (to x^10 / 10!, remainder below 3e-10 relative), elsewhere exp(x) - 1,
// which loses at most a bit or two to the subtraction there.
inline float expm1(float x) {
  float p = 1.0f / 3628800;
  p = p * x + 1.0f / 362880;
  p = p * x + 1.0f / 40320;
  p = p * x + 1.0f / 5040;
  p = p * x + 1.0f / 720;
  p = p * x + 1.0f / 120;
  p = p * x + 1.0f / 24;
  p = p * x + 1.0f / 6;
  p = p * x + 0.5f;
  const float small = x + x * x * p;
  const float large = exp(x) - 1.0f;
  const bool is_small = x > -0.5f && x < 0.5f;
  return is_small ? small : large;
}

// tanh(x) = expm1(2x) / (expm1(2x) + 2): no cancellation near 0, where the
// textbook 1 - 2 / (e^2x + 1) would lose every digit. |x| is clamped at 9,
// past which tanh rounds to +-1 in float (and e^18 cannot overflow).
inline float tanh(float x) {
  const float lower = x > -9.0f ? x : -9.0f;  // NaN becomes -9, then is put back
  const float xc = lower < 9.0f ? lower : 9.0f;
  const float e = expm1(2.0f * xc);
  const float t = e / (e + 2.0f);
  return x != x ? x : t;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp(-x)); }

// GELU, tanh form (as in GPT-2): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// Since 0.5 (1 + tanh(u)) = sigmoid(2u), it takes one exp and one division
// instead of tanh's two, and loses nothing: what GELU needs of tanh is its
// absolute error, which this form keeps at an ulp. The exp is always of
// -2|u| (at most 1, never overflowing): for u < 0,
// sigmoid(2u) = e / (1 + e) with e = exp(2u), for u >= 0 1 / (1 + e).
constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline float gelu_u(float x) { return kSqrt2OverPi * (x + 0.044715f * x * x * x); }
inline float gelu(float x) {
  const float u = gelu_u(x);
  const float e = exp(-2.0f * (u < 0 ? -u : u));
  const float s = (u < 0 ? e : 1.0f) / (1.0f + e);
  return x * s;
}
// d gelu / dx = s + 2 x s (1 - s) du/dx with s = sigmoid(2u), because
// 0.5 (1 - tanh(u)^2) = 2 s (1 - s); and s (1 - s) = e / (1 + e)^2 for
// either sign of u.
inline float gelu_grad(float x) {
  const float u = gelu_u(x);
  const float e = exp(-2.0f * (u < 0 ? -u : u));
  const float inv = 1.0f / (1.0f + e);
  const float s = (u < 0 ? e : 1.0f) * inv;
  const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
  return s + 2.0f * x * (e * inv * inv) * du;
}

}  // namespace attn::vmath
