// Flash attention forward on the tensor cores (the tiling is explained in
// flash_attention.cuh).
//
// A block owns 64 query rows of one (batch, head); warp w owns rows
// 16w .. 16w + 15 and keeps, per row, the running max m, the running sum l
// and the output accumulator O (16 x d per warp: d / 2 floats a lane). For
// each tile of 64 keys staged in shared memory:
//   S = Q K^T                 16 x 64 scores per warp, in registers
//   m' = max(m, rowmax S)     4 lanes share a row: two shuffles
//   P = exp(S - m'), O = O exp(m - m') + P V, l likewise
// Scores are kept in log2 units (scale * log2 e folded in) so every
// exponential is one exp2. With attention dropout (DROP), P is summed into l
// as it is and then multiplied by Z before O += P V.
#include "core/cuda/flash_attention.cuh"

namespace attn {
namespace cuda {
namespace {

using namespace flash;

// Shared memory: Q and K read as [g][2t, 2t + 1] pairs, V as [2t, 2t + 1][g],
// then the tile's dropout decisions (512 bytes, unused without dropout).
template <int DP>
struct ForwardSmem {
  static constexpr int kLdQK = ld_pairs(DP), kLdV = ld_for(DP);
  static constexpr int kFloats = 2 * kRows * kLdQK + kCols * kLdV;
  static constexpr int kBytes = kFloats * static_cast<int>(sizeof(float)) +
                                kKeepWords * static_cast<int>(sizeof(uint32_t));
};

// One tile of 64 keys for one warp. MASKED tests every (query, key) pair;
// DROP applies the tile's dropout decisions `keep_bits`; GATHER: the keys
// were gathered and stand at mask.key_position (only a block list's
// kernels are compiled with it, so the others carry none of its code);
// MMA: how the products multiply (Products, flash_attention.cuh).
template <int DP, bool MASKED, bool DROP, bool GATHER, int MMA>
__device__ __forceinline__ void forward_tile(const FlashArgs& a, const TileMask& mask, const float* Qs,
                                             const float* Ks, const float* Vs,
                                             const uint32_t* keep_bits, float keep_scale, int64_t j0,
                                             int64_t i_row0, float scale2, float slope2,
                                             float (&m)[2], float (&l)[2], float (&o)[DP / 8][4]) {
  using P = Products<MMA>;
  constexpr int ld = ForwardSmem<DP>::kLdQK, ldv = ForwardSmem<DP>::kLdV;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = (threadIdx.x / 32) * 16;
  const int chunks = (static_cast<int>(a.dim) + 7) / 8;

  // S = Q K^T: 8 column blocks of 8 keys, summed over d in chunks of 8. The
  // sum over d does not care about order either: k = t stands for dim 2t and
  // k = t + 4 for 2t + 1, so each lane loads its Q and K values in pairs.
  float s[8][4];
#pragma unroll
  for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
  for (int kc = 0; kc < DP / 8; ++kc) {
    if (kc >= chunks) break;
    const float* q = Qs + (warp_row + g) * ld + kc * 8 + 2 * t;
    const float2 q0 = *reinterpret_cast<const float2*>(q);
    const float2 q1 = *reinterpret_cast<const float2*>(q + 8 * ld);
    const typename P::Frag qa = P::frag(q0.x, q1.x, q0.y, q1.y);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      const float2 k = *reinterpret_cast<const float2*>(Ks + (n * 8 + g) * ld + kc * 8 + 2 * t);
      P::mma(s[n], qa, k.x, k.y);
    }
  }

  // Scale, bias, mask; row maxima. Entry e of block n: row g (e < 2) or g + 8,
  // key 8n + 2t + (e & 1).
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t i = i_row0 + (e >> 1) * 8, j = j0 + n * 8 + 2 * t + (e & 1);
      float x = s[n][e] * scale2;
      if (slope2 != 0.0f) x -= alibi_bias2(slope2, a.offset + i, GATHER ? key_position(mask, j, a.tk) : j);
      if (MASKED && !allowed(a, mask, i_row0 - warp_row - g, j0, i, j)) x = -INFINITY;
      s[n][e] = x;
      mx[e >> 1] = max_keep(mx[e >> 1], x);
    }
  float rescale[2], base[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = max_keep(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = max_keep(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float m_new = max_keep(m[r], mx[r]);
    // While a row has seen no allowed key, m stays -inf; subtracting 0
    // instead keeps exp2(-inf - -inf) = NaN out.
    base[r] = m_new == -INFINITY ? 0.0f : m_new;
    rescale[r] = fast_exp2(m[r] - base[r]);
    m[r] = m_new;
    l[r] *= rescale[r];  // each lane sums its own columns; the quad adds up at the end
  }
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[n][e] = fast_exp2(s[n][e] - base[e >> 1]);
      l[e >> 1] += s[n][e];
      if (DROP)  // after l has summed it: the softmax normalises the undropped P
        s[n][e] = kept(keep_bits, warp_row + g + (e >> 1) * 8, n * 8 + 2 * t + (e & 1))
                      ? s[n][e] * keep_scale
                      : 0.0f;
    }
#pragma unroll
  for (int c = 0; c < DP / 8; ++c)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[c][e] *= rescale[e >> 1];

  // O += P V: chunk kc of 8 keys is score block kc, keys in the order
  // 2t, 2t + 1 (see the header), so the A fragment is c0, c2, c1, c3.
#pragma unroll
  for (int kc = 0; kc < 8; ++kc) {
    const typename P::Frag pa = P::frag(s[kc][0], s[kc][2], s[kc][1], s[kc][3]);
    const float* v = Vs + (kc * 8 + 2 * t) * ldv + g;
#pragma unroll
    for (int c = 0; c < DP / 8; ++c) {
      if (c >= chunks) break;
      P::mma(o[c], pa, v[c * 8], v[ldv + c * 8]);
    }
  }
}

// Occupancy: left alone, d = 64 takes 240 registers a thread, so 2 blocks
// (8 warps) share an SM and little hides the latency of the MMAs and loads.
// Capping it at 128 registers (4 blocks, 16 warps; the shared tiles of 4
// blocks still fit in an H100's 228 KB) spills 24 bytes and measured
// 1.25x faster at T = 256..4096. d = 128 would spill 200 bytes: left as is.
template <int DP, bool DROP, int LIST, int MMA>
__global__ void __launch_bounds__(kBlock, DP <= 64 ? 4 : 1)
    flash_forward_kernel(FlashArgs a, AttentionDropoutArgs drop, DeviceBlocks blocks) {
  extern __shared__ float smem[];
  constexpr int ld = ForwardSmem<DP>::kLdQK, ldv = ForwardSmem<DP>::kLdV;
  float* Qs = smem;
  float* Ks = Qs + kRows * ld;
  float* Vs = Ks + kCols * ld;
  uint32_t* keep_bits = reinterpret_cast<uint32_t*>(smem + ForwardSmem<DP>::kFloats);
  const float keep_scale = DROP ? attention_dropout::keep_scale(drop) : 1.0f;
  const int d = static_cast<int>(a.dim);
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = (threadIdx.x / 32) * 16;
  // Causal blocks further down have more keys: start those first.
  const int64_t i0 = int64_t{gridDim.x - 1 - blockIdx.x} * kRows;
  const int64_t h = blockIdx.y % a.heads, b = blockIdx.y / a.heads;
  const int64_t kvh = h / (a.heads / a.kv_heads);  // GQA: the shared K/V head, no copies
  const int64_t qrow0 = (b * a.heads + h) * a.tq;  // of lse, always [B, H, Tq]
  const int64_t q_head = head_start(a.q_at, b, h);    // of q and out
  const float* k = a.k + head_start(a.k_at, b, kvh);
  const float* v = a.v + head_start(a.v_at, b, kvh);
  const float scale2 = a.scale * kLog2e;
  const float slope2 = a.alibi ? a.alibi[h] * kLog2e : 0.0f;
  stage_tile<DP, ld>(Qs, a.q + q_head, a.q_at.row, i0, a.tq, d);

  int64_t j_begin, j_end, unused;
  key_range(a, i0, j_begin, unused);
  key_range(a, min(a.tq, i0 + kRows) - 1, unused, j_end);

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[DP / 8][4];
#pragma unroll
  for (int c = 0; c < DP / 8; ++c) o[c][0] = o[c][1] = o[c][2] = o[c][3] = 0.0f;

  const int64_t i_row0 = i0 + warp_row + g;
  // One key tile, folded into m, l and O; then the tiles to visit: the
  // span's, or those the query block's list names (`if constexpr`: the span
  // kernels compile to the loop they had before block lists existed).
  constexpr bool listed = LIST != kSpan, GATHER = LIST == kListedGathered;
  auto visit = [&](int64_t j0, const TileMask& mask) {
    __syncthreads();  // the previous tile is consumed
    stage_tile<DP, ld>(Ks, k, a.k_at.row, j0, a.tk, d);
    stage_tile<DP, ldv>(Vs, v, a.v_at.row, j0, a.tk, d);
    if (DROP && GATHER)
      draw_keep_bits_at(keep_bits, drop, a, mask, blocks.key_span, b, h, i0, j0);
    else if (DROP)
      draw_keep_bits(keep_bits, drop, a, b, h, i0, j0);
    __syncthreads();
    if (!mask.bits && tile_is_full(a, i0, j0))
      forward_tile<DP, false, DROP, GATHER, MMA>(a, mask, Qs, Ks, Vs, keep_bits, keep_scale, j0, i_row0,
                                                 scale2, slope2, m, l, o);
    else
      forward_tile<DP, true, DROP, GATHER, MMA>(a, mask, Qs, Ks, Vs, keep_bits, keep_scale, j0, i_row0,
                                                scale2, slope2, m, l, o);
  };
  if constexpr (listed) {  // the key tiles the query block's list names
    const int64_t qb = i0 / kRows;
    for (int64_t e = blocks.row_begin[qb]; e < blocks.row_begin[qb + 1]; ++e)
      visit(blocks.row_key[e] * kCols, TileMask{blocks.bits(blocks.row_mask[e]), blocks.key_position});
  } else {
    for (int64_t j0 = j_begin; j0 < j_end; j0 += kCols) visit(j0, TileMask{nullptr, nullptr});
  }

  // out = O / l, lse = m + log l (back to natural log units).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int64_t i = i_row0 + r * 8;
    if (i >= a.tq) continue;
    const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;  // no allowed key: zeros
    float* out = a.out + q_head + i * a.q_at.row;
#pragma unroll
    for (int c = 0; c < DP / 8; ++c) {
      const int col = c * 8 + 2 * t;
      if (col < d) out[col] = o[c][2 * r] * inv;
      if (col + 1 < d) out[col + 1] = o[c][2 * r + 1] * inv;
    }
    if (t == 0) a.lse[qrow0 + i] = l[r] > 0 ? (m[r] + log2f(l[r])) / kLog2e : -INFINITY;
  }
}

template <int DP, bool DROP, int LIST, int MMA>
void launch_kernel(const FlashArgs& a, const AttentionDropoutArgs& drop, const DeviceBlocks& blocks) {
  const int shared = ForwardSmem<DP>::kBytes;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<DP, DROP, LIST, MMA>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
  const dim3 grid(static_cast<unsigned>((a.tq + kRows - 1) / kRows),
                  static_cast<unsigned>(a.batch * a.heads));
  flash_forward_kernel<DP, DROP, LIST, MMA><<<grid, kBlock, shared, stream()>>>(a, drop, blocks);
  ATTN_CUDA_LAUNCHED("flash_forward_kernel");
}

// The bfloat16 kernels exist for the span only (no block list), so that
// the list kernels are not compiled twice.
template <int DP, int LIST, int MMA>
void launch(const FlashArgs& a, const AttentionDropoutArgs* drop, const DeviceBlocks& blocks) {
  if (drop && drop->p > 0)
    launch_kernel<DP, true, LIST, MMA>(a, *drop, blocks);
  else
    launch_kernel<DP, false, LIST, MMA>(a, AttentionDropoutArgs{}, blocks);
}

template <int DP>
void launch(const FlashArgs& a, const AttentionDropoutArgs* drop, const DeviceBlocks& blocks,
            FlashProducts products) {
  if (blocks.row_begin && !blocks.key_position)
    launch<DP, kListed, kFp32>(a, drop, blocks);
  else if (blocks.row_begin)
    launch<DP, kListedGathered, kFp32>(a, drop, blocks);
  else if (products == FlashProducts::BFloat16)
    launch<DP, kSpan, kBf16>(a, drop, blocks);
  else
    launch<DP, kSpan, kFp32>(a, drop, blocks);
}

}  // namespace

void flash_forward_launch(const FlashArgs& a, const AttentionDropoutArgs* drop,
                          const DeviceBlocks& blocks, FlashProducts products) {
  if (a.dim <= 64)
    launch<64>(a, drop, blocks, products);
  else
    launch<128>(a, drop, blocks, products);
}

}  // namespace cuda
}  // namespace attn
