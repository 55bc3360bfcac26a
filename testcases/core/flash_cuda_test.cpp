// CUDA parity of flash attention: the tensor-core kernels
// (core/cuda/flash_*.cu) against the CPU twin (core/cpu/flash_attention.cpp),
// both driven through the Backend. Output, lse and the three gradients must
// agree within fp32 rounding (the GPU multiplies in 3xTF32, which is as
// accurate as fp32 FMAs, and adds dq up with atomics in varying order).
//
// The cases aim at the kernels' edges: head dims that are not a multiple of
// 8 or fill a bucket (64, 128), lengths that are not a multiple of the
// 64-row tile, tiles that are fully allowed next to ones that need the mask
// (causal diagonal, window edge), ALiBi, GQA/MQA, decode offsets and rows
// with no allowed key. Without a GPU every test skips, saying why.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/bfloat16.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/random.h"
#include "core/tensor.h"

namespace {

using namespace attn;

const Device kCuda = Device::cuda(0);
const Device kCpu = Device::cpu();

std::string cuda_reason() {
  try {
    backend_for(kCuda);
    return "cuda_available() is false";
  } catch (const Error& e) {
    return e.what();
  }
}

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << cuda_reason()

Tensor normal(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g);
}

// Every element within atol + rtol |cpu| (inf must match inf: empty rows' lse).
::testing::AssertionResult close(const Tensor& cpu, const Tensor& cuda, double rtol, double atol) {
  const auto a = cpu.to_vector(), b = cuda.to_vector();
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    if (std::isinf(x) || std::isinf(y) || std::isnan(x) || std::isnan(y)) {
      if (x == y) continue;
      return ::testing::AssertionFailure() << "element " << i << ": cuda " << y << " vs CPU " << x;
    }
    if (std::fabs(x - y) > atol + rtol * std::fabs(x))
      return ::testing::AssertionFailure() << "element " << i << " of " << a.size() << ": cuda " << y
                                           << " vs CPU " << x << " (diff " << std::fabs(x - y) << ")";
  }
  return ::testing::AssertionSuccess();
}

struct Case {
  int64_t B, H, Hkv, Tq, Tk, d, offset, window;
  bool causal, alibi;
};

std::string describe(const Case& c) {
  std::ostringstream s;
  s << "B" << c.B << " H" << c.H << " Hkv" << c.Hkv << " Tq" << c.Tq << " Tk" << c.Tk << " d" << c.d
    << " offset" << c.offset << " window" << c.window << (c.causal ? " causal" : "")
    << (c.alibi ? " alibi" : "");
  return s.str();
}

struct FlashRun {
  Tensor out, lse, dq, dk, dv;
};

// x with every value rounded to the nearest bfloat16 (still float32).
Tensor bf16_rounded(const Tensor& x) {
  std::vector<float> v = x.to_vector();
  for (float& e : v) e = bf16_to_float(bf16_from_float(e));
  return from_vector(v, x.shape(), x.device());
}

// drop: attention dropout, or null. round_qkv: q, k and v rounded to
// bfloat16 first (what the bfloat16 products read, for the CPU reference).
FlashRun run_flash(const Case& c, const Device& dev, int seed, const AttentionDropoutArgs* drop = nullptr,
                   FlashProducts products = FlashProducts::Float32, bool round_qkv = false) {
  auto operand = [&](const Shape& s, int salt) {
    const Tensor x = normal(s, seed + salt);
    return (round_qkv ? bf16_rounded(x) : x).to(dev);
  };
  const Tensor q = operand({c.B, c.H, c.Tq, c.d}, 0), k = operand({c.B, c.Hkv, c.Tk, c.d}, 1),
               v = operand({c.B, c.Hkv, c.Tk, c.d}, 2),
               dout = normal({c.B, c.H, c.Tq, c.d}, seed + 3).to(dev);
  std::vector<float> slopes;
  for (int64_t h = 0; h < c.H; ++h) slopes.push_back(std::pow(2.0f, -8.0f * (h + 1) / c.H));
  FlashRun r{empty(q.shape(), DType::Float32, dev), empty({c.B, c.H, c.Tq}, DType::Float32, dev),
             empty(q.shape(), DType::Float32, dev), empty(k.shape(), DType::Float32, dev),
             empty(v.shape(), DType::Float32, dev)};
  FlashArgs a;
  a.q = q.data<float>(), a.k = k.data<float>(), a.v = v.data<float>();
  a.out = r.out.data<float>(), a.lse = r.lse.data<float>();
  a.batch = c.B, a.heads = c.H, a.kv_heads = c.Hkv, a.tq = c.Tq, a.tk = c.Tk, a.dim = c.d;
  a.offset = c.offset, a.window = c.window, a.causal = c.causal;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  a.alibi = c.alibi ? slopes.data() : nullptr;
  a.q_at = contiguous_layout(c.H, c.Tq, c.d);
  a.k_at = a.v_at = contiguous_layout(c.Hkv, c.Tk, c.d);
  backend_for(dev).flash_attention_forward(a, drop, products);
  backend_for(dev).flash_attention_backward(a, dout.data<float>(), r.dq.data<float>(),
                                            r.dk.data<float>(), r.dv.data<float>(), drop, products);
  return r;
}

// ||cuda - cpu|| / ||cpu|| over the finite entries: printed, so a run shows
// how far from fp32 rounding (~1e-7) the tensor-core products land.
double rel_error(const Tensor& cpu, const Tensor& cuda) {
  const auto a = cpu.to_vector(), b = cuda.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) {
      num += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
      den += double{a[i]} * a[i];
    }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

void expect_parity(const Case& c, int seed, const AttentionDropoutArgs* drop = nullptr) {
  const FlashRun rc = run_flash(c, kCpu, seed, drop), rg = run_flash(c, kCuda, seed, drop);
  const std::string what = describe(c) + (drop ? " dropout" : "");
  std::cout << "[ rel err  ] " << what << ": out " << rel_error(rc.out, rg.out) << " dq "
            << rel_error(rc.dq, rg.dq) << " dk " << rel_error(rc.dk, rg.dk) << " dv "
            << rel_error(rc.dv, rg.dv) << "\n";
  EXPECT_TRUE(close(rc.out, rg.out, 1e-4, 1e-5)) << what << ": out";
  EXPECT_TRUE(close(rc.lse, rg.lse, 1e-5, 1e-5)) << what << ": lse";
  EXPECT_TRUE(close(rc.dq, rg.dq, 1e-4, 1e-4)) << what << ": dq";
  EXPECT_TRUE(close(rc.dk, rg.dk, 1e-4, 1e-4)) << what << ": dk";
  EXPECT_TRUE(close(rc.dv, rg.dv, 1e-4, 1e-4)) << what << ": dv";
}

TEST(CudaParity, FlashAttentionSmallShapes) {
  REQUIRE_CUDA();
  const Case cases[] = {
      {2, 4, 2, 37, 53, 40, 16, 0, true, false},  // GQA, causal with an offset
      {1, 2, 2, 70, 70, 64, 0, 8, true, true},    // sliding window + ALiBi
      {2, 3, 1, 19, 45, 16, 0, 0, false, false},  // MQA, not causal
      {1, 2, 1, 33, 33, 128, 0, 0, true, false},  // d = 128
      {1, 1, 1, 5, 9, 80, 0, 3, false, true},     // d = 80, window without causal
      {1, 2, 2, 4, 4, 8, -2, 0, true, false},     // rows with no allowed key
      {1, 1, 1, 7, 5, 3, 0, 0, false, false},     // d = 3: odd widths
  };
  int seed = 130;
  for (const Case& c : cases) expect_parity(c, seed += 4);
}

// Several 64-row tiles: fully allowed tiles (no mask) next to diagonal and
// window-edge tiles, ragged last tiles, each head-dim bucket.
TEST(CudaParity, FlashAttentionTiledShapes) {
  REQUIRE_CUDA();
  const Case cases[] = {
      {1, 2, 2, 200, 200, 64, 0, 0, true, false},     // d = 64, causal, T = 3 tiles + 8
      {2, 2, 2, 150, 150, 16, 0, 0, true, false},     // d = 16
      {1, 4, 2, 190, 190, 80, 0, 0, true, true},      // d = 80, GQA, ALiBi
      {1, 2, 1, 130, 130, 128, 0, 70, true, false},   // d = 128, MQA, window across tiles
      {1, 2, 2, 129, 257, 64, 128, 0, true, false},   // offset: queries after 128 cached keys
      {1, 4, 1, 3, 300, 64, 297, 100, true, true},    // decode-like: 3 new rows, window, ALiBi
      {1, 2, 2, 160, 96, 128, 0, 0, false, true},     // not causal, Tq != Tk
      {1, 2, 2, 140, 140, 64, -70, 0, true, false},   // rows 0..69 see no key
      {1, 1, 1, 256, 256, 64, 0, 0, true, false},     // exact tiles
  };
  int seed = 500;
  for (const Case& c : cases) expect_parity(c, seed += 4);
}

// Attention dropout: each GPU block draws its tile's decisions into shared
// memory (core/cuda/flash_attention.cuh), the CPU twin row by row; both key
// them by (b, h, i, j), so they drop the same probabilities, forward and
// backward. Tiles that start at unaligned keys (windows, offsets), GQA,
// ragged tiles and both head-dim buckets.
TEST(CudaParity, FlashAttentionWithDropout) {
  REQUIRE_CUDA();
  const AttentionDropoutArgs drop{0x1234abcd5678ULL, 9, 77, 0.3f};
  const Case cases[] = {
      {2, 4, 2, 37, 53, 40, 16, 0, true, false},      // GQA, causal with an offset
      {1, 2, 2, 200, 200, 64, 0, 0, true, false},     // full tiles and the diagonal
      {1, 4, 2, 190, 190, 80, 0, 0, true, true},      // d = 80, ALiBi
      {1, 2, 1, 130, 130, 128, 0, 70, true, false},   // d = 128, window: unaligned first keys
      {1, 2, 2, 129, 257, 64, 128, 0, true, false},   // offset
      {2, 3, 1, 19, 45, 16, 0, 0, false, false},      // not causal, Tk not a multiple of 4
      {1, 2, 2, 140, 140, 64, -70, 0, true, false},   // rows with no key
  };
  int seed = 900;
  for (const Case& c : cases) expect_parity(c, seed += 4, &drop);
  // And the dropout does something: the output differs from the undropped one.
  const Case c = cases[1];
  EXPECT_GT(rel_error(run_flash(c, kCuda, 1).out, run_flash(c, kCuda, 1, &drop).out), 0.01);
}

// bfloat16 products (autocast): the kernels round Q, K, V, P, dout and dS to
// bfloat16 and accumulate in float32. Reference: the CPU's float32 kernel
// over Q, K, V rounded the same way, so what is left is the rounding of P,
// dout and dS, 2^-9 relative each: ~1e-3 on the outputs and gradients as
// norms. A wrong fragment packing (pairs swapped, rows mixed) is off by
// O(1); lse, from scores whose bfloat16 products are exact in float32,
// must agree as closely as float32's. And the products must really be
// bfloat16: the result differs from the float32 kernel's on the unrounded
// inputs.
TEST(CudaParity, FlashAttentionBfloat16Products) {
  REQUIRE_CUDA();
  const AttentionDropoutArgs drop{0x5eed5eedULL, 3, 11, 0.2f};
  const Case cases[] = {
      {1, 2, 2, 200, 200, 64, 0, 0, true, false},    // d = 64, causal, full and diagonal tiles
      {2, 4, 2, 37, 53, 40, 16, 0, true, false},     // GQA, offset, d = 40 (padded chunks)
      {1, 4, 2, 190, 190, 80, 0, 0, true, true},     // d = 80, ALiBi
      {1, 2, 1, 130, 130, 128, 0, 70, true, false},  // d = 128, MQA, window
      {2, 3, 1, 19, 45, 16, 0, 0, false, false},     // not causal
      {1, 2, 2, 140, 140, 64, -70, 0, true, false},  // rows with no key
  };
  int seed = 1300;
  for (const Case& c : cases)
    for (const AttentionDropoutArgs* d : {static_cast<const AttentionDropoutArgs*>(nullptr), &drop}) {
      seed += 4;
      const auto ref = run_flash(c, kCpu, seed, d, FlashProducts::Float32, /*round_qkv=*/true);
      const auto got = run_flash(c, kCuda, seed, d, FlashProducts::BFloat16);
      const std::string what = describe(c) + (d ? " dropout" : "");
      const double out = rel_error(ref.out, got.out), dq = rel_error(ref.dq, got.dq),
                   dk = rel_error(ref.dk, got.dk), dv = rel_error(ref.dv, got.dv);
      std::cout << "[ bf16 err ] " << what << ": out " << out << " dq " << dq << " dk " << dk << " dv " << dv
                << "\n";
      EXPECT_LT(out, 6e-3) << what;
      EXPECT_LT(dq, 1.2e-2) << what;
      EXPECT_LT(dk, 1.2e-2) << what;
      EXPECT_LT(dv, 1.2e-2) << what;
      EXPECT_TRUE(close(ref.lse, got.lse, 1e-4, 1e-4)) << what << ": lse";
      const auto fp32 = run_flash(c, kCuda, seed, d);
      EXPECT_GT(rel_error(fp32.out, got.out), 5e-4) << what << ": the bfloat16 kernel multiplied in float32";
    }
}

TEST(CudaParity, FlashAttentionHeadDimLimit) {
  REQUIRE_CUDA();
  try {
    run_flash({1, 1, 1, 4, 4, 256, 0, 0, true, false}, kCuda, 1);
    FAIL() << "d = 256 ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head dim 256"), std::string::npos) << e.what();
  }
}

}  // namespace
