// Flash attention on the GPU: what the forward (flash_forward.cu) and the
// backward (flash_backward.cu) share. The host side is flash_attention.cu.
//
// HOW THE WORK IS CUT (read this first)
//
// The CPU twin (core/cpu/flash_attention.cpp) walks one query row at a time
// over tiles of keys. The GPU does the same walk for a 64 x 64 block of
// (query, key) pairs at a time, and the two products inside it, S = Q K^T
// and O += P V, run on the tensor cores:
//
//   * A CUDA block (4 warps, 128 threads) owns 64 rows: query rows in the
//     forward, key rows in the backward. Each warp owns 16 of them.
//   * The other side (64 keys in the forward, 64 queries in the backward)
//     streams through shared memory, one tile after another.
//   * Kernels are compiled for head-dim buckets DP = 64 and 128; a smaller d
//     is zero-padded in shared memory (zeros add nothing to a dot product)
//     and products over the empty 8-column chunks are skipped.
//   * A warp multiplies with `mma.sync.m16n8k8` (16 x 8 outputs, 8 terms
//     deep). Each of its 32 lanes holds a fixed piece of every operand and
//     result: with g = lane / 4 and t = lane % 4,
//         A (16 x 8, row-major)  a0 = A[g][t]   a1 = A[g+8][t]
//                                a2 = A[g][t+4] a3 = A[g+8][t+4]
//         B (8 x 8)              b0 = B[t][g]   b1 = B[t+4][g]
//         C (16 x 8)             c0 = C[g][2t]  c1 = C[g][2t+1]
//                                c2 = C[g+8][2t] c3 = C[g+8][2t+1]
//     So the lane owning score S[g][2t] keeps it in a register, the softmax
//     runs on registers (a row is spread over the 4 lanes of a quad, which
//     combine with two shuffles), and the scores never touch memory.
//   * P V reuses the score registers as the A operand without moving them:
//     the sum over keys does not care about their order, so k = t stands for
//     key 2t and k = t + 4 for key 2t + 1; then a0..a3 are exactly c0, c2,
//     c1, c3, and V's rows are read in the same order (2t, 2t + 1). The
//     same freedom over d lets a lane read its Q and K values as pairs
//     (dims 2t, 2t + 1): one 8-byte load instead of two.
//
// FP32 ON TENSOR CORES (3xTF32)
//
// The tensor cores multiply tf32 (fp32 with 10 mantissa bits). Splitting
// x = hi + lo, both tf32, and summing hi*hi + hi*lo + lo*hi (lo*lo is below
// fp32's rounding) gives products within ~1e-6 of fp32's, at three MMAs a
// product: the trick CUTLASS calls OpMultiplyAddFastF32, which PyTorch's fp32
// memory-efficient attention uses too. Accumulation is in fp32. (Against
// the fp32 CPU twin the outputs and gradients differ by 0.05-3e-6 relative.)
// Three MMAs at the tensor cores' rate still beat one FMA per lane.
//
// ATTENTION DROPOUT (optional; a kernel template flag, so the kernels
// without it are unchanged)
//
// out = (P * Z) V with Z = keep / (1 - p), the softmax summed over the
// undropped P (core/attention_dropout.h has the keying). Per 64 x 64 tile,
// the block first draws the tile's 4096 decisions into shared memory as
// bits: thread x takes query row x / 2 and keys 32 (x % 2) .. + 31, which
// are consecutive elements of the sample, so 8 Philox evaluations (9 when
// unaligned) give its 32 bits. Each lane then reads the bits of the
// entries it holds. The backward draws the same tiles again: the same
// decisions, never a stored T x T mask.
//
// MASKING
//
// Key j is allowed for query i when j <= offset + i (causal) and
// j > offset + i - window (window > 0). A tile where every pair is allowed
// skips the test; fully disallowed tiles are never visited; only the tiles
// on the diagonal (and the window's edge, and the ragged last tile) test
// each pair. A row with no allowed key ends with output 0 and lse = -inf.
//
// BLOCK LISTS (block-sparse attention; BlockList in core/backend.h, copied
// to the device as DeviceBlocks)
//
// The list's blocks are these 64 x 64 tiles. A forward block walks the key
// tiles its query block lists instead of a span, a backward block the query
// tiles listed for its keys, or a piece of them where that column is long
// (core/column_pieces.h: the pieces of one key block add their dK and dV
// into zeroed rows with atomics). A partial entry's bits (a 64-bit word per query
// row, read from global memory, where every lane of a quad reads the same
// word) join the MASKED test; gathered keys (key_position) take their
// position for ALiBi and draw their dropout decisions one by one.
#pragma once
#include <cstdint>

#include "core/cuda/cuda_internal.cuh"

namespace attn {
namespace cuda {
namespace flash {

constexpr int kRows = 64;              // rows a block owns (queries fwd, keys bwd)
constexpr int kCols = 64;              // rows of the streamed tile
constexpr int kWarps = 4;              // 16 rows each
constexpr int kBlock = kWarps * 32;
constexpr int kMaxDim = 128;
constexpr float kLog2e = 1.4426950408889634f;

// Shared-memory row strides. A warp reads a tile in one of two patterns:
//   [8 rows g][cols 2t, 2t + 1] as one 8-byte load: stride 8 mod 32 puts a
//     half-warp's 16 loads on 32 different banks (8g + 2t);
//   [rows 2t, 2t + 1][8 cols g] one float at a time: stride 4 mod 32 does
//     (8t + g), as it does for [8 rows g][col t] (4g + t).
__host__ __device__ constexpr int ld_pairs(int dp) { return dp + 8; }
__host__ __device__ constexpr int ld_for(int dp) { return dp + 4; }

// ---- 3xTF32 tensor-core product ----

// x = hi + lo: hi is x rounded to tf32 (add half a tf32 unit, clear the 13
// low bits), lo = x - hi is exact in fp32. The tensor core reads only the
// top 19 bits of lo, which drops ~2^-21 |x|: fp32-class accuracy for three
// integer/float operations (cvt.rna.tf32 costs more).
struct Split {
  uint32_t hi, lo;
};
__device__ __forceinline__ Split split(float x) {
  const uint32_t hi = (__float_as_uint(x) + 0x1000u) & 0xffffe000u;
  return {hi, __float_as_uint(x - __uint_as_float(hi))};
}

// 2^x in one instruction (inputs are <= 0 here, results in [0, 1]).
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// An A fragment, already split.
struct FragA {
  Split x[4];
};
__device__ __forceinline__ FragA frag_a(float a0, float a1, float a2, float a3) {
  return {{split(a0), split(a1), split(a2), split(a3)}};
}

// c += a * b with fp32 accuracy: the small cross terms first, then hi * hi.
__device__ __forceinline__ void mma3(float (&c)[4], const FragA& a, float b0, float b1) {
  const Split p = split(b0), q = split(b1);
  mma_tf32(c, a.x[0].lo, a.x[1].lo, a.x[2].lo, a.x[3].lo, p.hi, q.hi);
  mma_tf32(c, a.x[0].hi, a.x[1].hi, a.x[2].hi, a.x[3].hi, p.lo, q.lo);
  mma_tf32(c, a.x[0].hi, a.x[1].hi, a.x[2].hi, a.x[3].hi, p.hi, q.hi);
}

// ---- bfloat16 products (autocast) ----
//
// The m16n8k8 shape exists in bfloat16 too, with another lane layout: a lane
// holds A[g][2t], A[g][2t+1] packed in one register and A[g+8][2t..2t+1] in
// a second, and B[2t][g], B[2t+1][g] in one. Rename the tf32 shape's k = t
// as 2t and k = t + 4 as 2t + 1, on A and B alike, and the product is the
// same sum: so every product site above keeps its loads, and its a0..a3,
// b0, b1 pack as (a0, a2), (a1, a3), (b0, b1). The float32 values in shared
// memory are rounded to the nearest bfloat16 as they are packed; one MMA
// replaces three, at twice the tf32 rate.

// lo in the low half, hi in the high half, each rounded to nearest even.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

// How a kernel multiplies (FlashProducts): kFp32 in 3xTF32 (above), at
// float32's accuracy whatever the GPU's TF32 setting; kBf16 in bfloat16
// (below). Each takes an A fragment as the tf32 layout's a0..a3 and B as
// its b0, b1.
enum Mma : int { kFp32 = 0, kBf16 = 1 };

template <int MMA>
struct Products {
  using Frag = FragA;
  static __device__ __forceinline__ Frag frag(float a0, float a1, float a2, float a3) {
    return frag_a(a0, a1, a2, a3);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const Frag& a, float b0, float b1) {
    mma3(c, a, b0, b1);
  }
};

template <>
struct Products<kBf16> {
  struct Frag {
    uint32_t row_g, row_g8;  // A[g][2t..2t+1], A[g+8][2t..2t+1]
  };
  static __device__ __forceinline__ Frag frag(float a0, float a1, float a2, float a3) {
    return {pack_bf16(a0, a2), pack_bf16(a1, a3)};
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const Frag& a, float b0, float b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a.row_g), "r"(a.row_g8), "r"(pack_bf16(b0, b1)));
  }
};

// ---- masks, biases, staging ----

// How a kernel finds its tiles, fixed at compile time so that the dense
// kernels carry none of the block lists' code: the span (0), a block list
// (1), a block list over gathered keys (2).
enum ListMode : int { kSpan = 0, kListed = 1, kListedGathered = 2 };

// A block list in device memory (all null: none). See BlockList.
struct DeviceBlocks {
  const int64_t* row_begin = nullptr;
  const int64_t* row_key = nullptr;
  const int64_t* row_mask = nullptr;
  const int64_t* col_begin = nullptr;
  const int64_t* col_query = nullptr;
  const int64_t* col_mask = nullptr;
  const uint64_t* masks = nullptr;
  const int64_t* key_position = nullptr;
  int64_t key_span = 0;
  // The backward's work: (key block, first entry, end) triples, a CUDA block
  // each (ColumnPiece, core/column_pieces.h), and how many.
  const int64_t* pieces = nullptr;
  int64_t piece_count = 0;
  __device__ bool on() const { return row_begin != nullptr; }
  // The bits of entry mask m (null: the entry allows every pair).
  __device__ const uint64_t* bits(int64_t m) const { return m < 0 ? nullptr : masks + m * kRows; }
};

// One visited tile's pattern: its bits (a word per row of the tile, a bit
// per key) and where its keys stand (both null: every pair the span rule
// allows, key j at j). Two pointers only: the kernels are short of
// registers, and the tile's corner (i0, j0) they already hold.
struct TileMask {
  const uint64_t* bits;
  const int64_t* key_position;
};

// Key j's position: what ALiBi measures and dropout draws at.
__device__ __forceinline__ int64_t key_position(const TileMask& m, int64_t j, int64_t tk) {
  return m.key_position && j < tk ? m.key_position[j] : j;
}

__device__ __forceinline__ bool allowed(const FlashArgs& a, int64_t i, int64_t j) {
  const int64_t pos = a.offset + i;
  return j < a.tk && (!a.causal || j <= pos) && (a.window <= 0 || j > pos - a.window);
}

// The same under the pattern bits of the tile whose corner is (i0, j0).
__device__ __forceinline__ bool allowed(const FlashArgs& a, const TileMask& m, int64_t i0,
                                        int64_t j0, int64_t i, int64_t j) {
  return allowed(a, i, j) && (!m.bits || ((m.bits[i - i0] >> (j - j0)) & 1u));
}

// The keys query i may see: [lo, hi) (see the CPU's allowed_keys). Both
// ends grow with i, so a block of rows sees [lo(first), hi(last)).
__device__ __forceinline__ void key_range(const FlashArgs& a, int64_t i, int64_t& lo, int64_t& hi) {
  const int64_t pos = a.offset + i;
  hi = a.causal ? min(a.tk, pos + 1) : a.tk;
  lo = a.window > 0 ? max(int64_t{0}, pos - a.window + 1) : 0;
  if (hi < lo) hi = lo;
}

// Whether every (query, key) pair of a query block [i0, i0 + kRows) and a
// key tile [j0, j0 + kCols) is allowed and in range, so no test is needed.
__device__ __forceinline__ bool tile_is_full(const FlashArgs& a, int64_t i0, int64_t j0) {
  if (i0 + kRows > a.tq || j0 + kCols > a.tk) return false;
  int64_t lo_first, hi_first, lo_last, hi_last;
  key_range(a, i0, lo_first, hi_first);
  key_range(a, i0 + kRows - 1, lo_last, hi_last);
  return j0 >= lo_last && j0 + kCols <= hi_first;
}

// ---- attention dropout ----

// Shared words holding one tile's decisions: 2 per query row.
constexpr int kKeepWords = 2 * kRows;

// Draws the decisions of query rows [i0, i0 + 64) x keys [j0, j0 + 64) of
// query head h, batch row b, into bits[2 * row + key / 32], bit key % 32.
// Rows and keys past the end get bits too; they are never used (those
// entries are masked to 0 anyway).
__device__ __forceinline__ void draw_keep_bits(uint32_t* bits, const AttentionDropoutArgs& d,
                                               const FlashArgs& a, int64_t b, int64_t h, int64_t i0,
                                               int64_t j0) {
  static_assert(kBlock == kKeepWords, "one thread per word of decisions");
  const int row = threadIdx.x / 2, half = threadIdx.x % 2;
  const uint64_t e0 = attention_dropout::element(d, h, i0 + row, j0 + 32 * half, a.tq, a.tk);
  bits[threadIdx.x] = attention_dropout::keep_bits32(d, b, e0);
}

// The same for gathered keys: each key draws at its position, one by one.
static __device__ __noinline__ void draw_keep_bits_at(uint32_t* bits, const AttentionDropoutArgs& d,
                                                  const FlashArgs& a, const TileMask& m, int64_t span,
                                                  int64_t b, int64_t h, int64_t i0, int64_t j0) {
  const int row = threadIdx.x / 2, half = threadIdx.x % 2;
  uint32_t word = 0;
  for (int k = 0; k < 32; ++k) {
    const int64_t j = j0 + 32 * half + k;
    if (j >= a.tk) break;
    const uint64_t e = attention_dropout::element(d, h, i0 + row, key_position(m, j, a.tk), a.tq, span);
    if (attention_dropout::keep(d, b, e)) word |= 1u << k;
  }
  bits[threadIdx.x] = word;
}

// Whether the entry (row, key) of the tile (both counted from the tile's
// first) was kept.
__device__ __forceinline__ bool kept(const uint32_t* bits, int row, int key) {
  return (bits[2 * row + (key >> 5)] >> (key & 31)) & 1u;
}

// ALiBi's -slope * |pos - j|, in the log2 units the kernels use.
__device__ __forceinline__ float alibi_bias2(float slope2, int64_t pos, int64_t j) {
  const int64_t dist = pos > j ? pos - j : j - pos;
  return slope2 * static_cast<float>(dist);
}

// Where head h of batch b starts in an operand of layout `at`.
__device__ __forceinline__ int64_t head_start(const FlashLayout& at, int64_t b, int64_t h) {
  return b * at.batch + h * at.head;
}

// Copies rows [first, first + kCols) of a [rows, d] matrix whose rows are
// `stride` floats apart into a shared [kCols][LD] tile, zero-filling rows
// past `rows` and columns past d (zeros add nothing to the dot products, and
// no garbage can be NaN). float4 loads when rows are 16-byte aligned.
template <int DP, int LD>
__device__ __forceinline__ void stage_tile(float* dst, const float* src, int64_t stride,
                                           int64_t first, int64_t rows, int d) {
  constexpr int ld = LD;
  const bool vec = (d % 4 == 0) && (stride % 4 == 0) && (reinterpret_cast<uintptr_t>(src) % 16 == 0);
  if (vec) {
    constexpr int per_row = DP / 4;
    for (int e = threadIdx.x; e < kCols * per_row; e += kBlock) {
      const int r = e / per_row, c = (e % per_row) * 4;
      float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
      if (first + r < rows && c < d) x = *reinterpret_cast<const float4*>(src + (first + r) * stride + c);
      *reinterpret_cast<float4*>(dst + r * ld + c) = x;
    }
  } else {
    for (int e = threadIdx.x; e < kCols * DP; e += kBlock) {
      const int r = e / DP, c = e % DP;
      dst[r * ld + c] = (first + r < rows && c < d) ? src[(first + r) * stride + c] : 0.0f;
    }
  }
}

}  // namespace flash

// Launchers (flash_forward.cu, flash_backward.cu). `a.alibi` is a device
// pointer here.
// `drop` (null = none) is attention dropout; `blocks` a block list (default: none).
// `products`: FlashProducts::BFloat16 runs the bfloat16 kernels (span
// kernels only: with a block list the products stay 3xTF32).
void flash_forward_launch(const FlashArgs& a, const AttentionDropoutArgs* drop = nullptr,
                          const flash::DeviceBlocks& blocks = {},
                          FlashProducts products = FlashProducts::Float32);
void flash_backward_launch(const FlashArgs& a, const float* dout, float* delta, float* dq,
                           float* dk, float* dv, const AttentionDropoutArgs* drop = nullptr,
                           const flash::DeviceBlocks& blocks = {},
                           FlashProducts products = FlashProducts::Float32);

}  // namespace cuda
}  // namespace attn
