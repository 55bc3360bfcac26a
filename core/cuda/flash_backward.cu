// Flash attention backward on the tensor cores (the tiling is explained in
// flash_attention.cuh): the FlashAttention-2 schedule.
//
//   1. D_i = dout_i . out_i per query row (= sum_j p_ij dp_ij, the softmax
//      backward's row term, without the row of probabilities).
//   2. A block owns 64 keys of one (batch, K/V head); warp w owns keys
//      16w .. 16w + 15 and keeps their dK and dV (16 x d each) in registers.
//      It walks every query tile that can see its keys, for every query
//      head sharing the K/V head (GQA), recomputing in registers
//        S^T  = K Q^T                  P^T = exp(S^T - lse)
//        dP^T = V dO^T                 dS^T = P^T (dP^T - D) scale
//        dV  += P^T dO                 dK  += dS^T Q
//      Then dS^T goes through shared memory so each warp can take 16 of the
//      tile's queries for dQ += dS K, added into dq with atomicAdd (dq is
//      zeroed first; the order of additions varies, within fp32 rounding).
//   With attention dropout (DROP), each query tile first redraws its
//   decisions Z (the forward's, from the same indices), and
//        dV += (P^T * Z^T) dO          dS^T = P^T (dP^T * Z^T - D) scale
//   D stays dout_i . out_i: out is the dropped output, and
//   sum_j P_ij (dP_ij Z_ij) = dout_i . sum_j P_ij Z_ij v_j = dout_i . out_i.
#include "core/cuda/flash_attention.cuh"

namespace attn {
namespace cuda {
namespace {

using namespace flash;

// D_i = dout_i . out_i, a warp per row (r runs over [B, H, Tq] in order).
__global__ void flash_delta_kernel(float* D, const float* dout, const float* out, FlashArgs a) {
  const int64_t r = int64_t{blockIdx.x} * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= a.batch * a.heads * a.tq) return;
  const int64_t i = r % a.tq, h = (r / a.tq) % a.heads, b = r / (a.tq * a.heads);
  const int64_t at = head_start(a.q_at, b, h) + i * a.q_at.row;
  const int lane = threadIdx.x % 32, d = static_cast<int>(a.dim);
  float s = 0;
  for (int c = lane; c < d; c += 32) s += dout[at + c] * out[at + c];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) D[r] = s;
}

// Shared memory: the block's keys and values, the query tile, its dout
// rows, and the tile's lse (log2 units) and D, then its dropout decisions
// (512 bytes, unused without dropout). dS^T takes the dout tile's place once
// every warp is done with it: 70 KB instead of 87 KB at d = 64, so three
// blocks fit an SM instead of two.
template <int DP>
struct BackwardSmem {
  static constexpr int kLd = ld_for(DP);
  static constexpr int kLdS = kCols + 4;  // dS^T [key][query], read as [2t, 2t+1][g]
  static_assert(kLdS <= kLd, "dS^T must fit in the dout tile it replaces");
  static constexpr int kFloats = 4 * kRows * kLd + 2 * kCols;
  static constexpr int kBytes = kFloats * static_cast<int>(sizeof(float)) +
                                kKeepWords * static_cast<int>(sizeof(uint32_t));
};

// One query tile against the warp's 16 keys: updates dK, dV in registers and
// writes dS^T to shared memory. MASKED tests every (query, key) pair; DROP
// applies the tile's dropout decisions `keep_bits` ([query][key] bits);
// MMA: how the products multiply (Products, flash_attention.cuh).
template <int DP, bool MASKED, bool DROP, bool GATHER, int MMA>
__device__ __forceinline__ void backward_tile(const FlashArgs& a, const float* Ks, const float* Vs,
                                              const float* Qs, const float* Gs, const float* Ls,
                                              const float* Ds, const TileMask& mask,
                                              const uint32_t* keep_bits,
                                              float keep_scale, float* dSs, int64_t i0, int64_t j0,
                                              float scale2, float slope2, float (&dk)[DP / 8][4],
                                              float (&dv)[DP / 8][4]) {
  using P = Products<MMA>;
  constexpr int ld = ld_for(DP), lds = BackwardSmem<DP>::kLdS;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = (threadIdx.x / 32) * 16;
  const int chunks = (static_cast<int>(a.dim) + 7) / 8;

  // S^T = K Q^T and dP^T = V dO^T: 16 keys x 64 queries, over d.
  float s[8][4], dp[8][4];
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
  for (int kc = 0; kc < DP / 8; ++kc) {
    if (kc >= chunks) break;
    const float* kr = Ks + (warp_row + g) * ld + kc * 8 + t;
    const float* vr = Vs + (warp_row + g) * ld + kc * 8 + t;
    const typename P::Frag ka = P::frag(kr[0], kr[8 * ld], kr[4], kr[8 * ld + 4]);
    const typename P::Frag va = P::frag(vr[0], vr[8 * ld], vr[4], vr[8 * ld + 4]);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      const float* q = Qs + (n * 8 + g) * ld + kc * 8 + t;
      const float* go = Gs + (n * 8 + g) * ld + kc * 8 + t;
      P::mma(s[n], ka, q[0], q[4]);
      P::mma(dp[n], va, go[0], go[4]);
    }
  }

  // P^T and dS^T. Entry e of block n: key g (e < 2) or g + 8, query 8n + 2t + (e & 1).
  // Ls holds +inf for rows with no key (and past tq), so their p is 0.
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int qi = n * 8 + 2 * t + (e & 1);
      const int64_t i = i0 + qi, j = j0 + warp_row + g + (e >> 1) * 8;
      float x = s[n][e] * scale2;
      if (slope2 != 0.0f) x -= alibi_bias2(slope2, a.offset + i, GATHER ? key_position(mask, j, a.tk) : j);
      float p = fast_exp2(x - Ls[qi]);
      if (MASKED && !allowed(a, mask, i0, j0, i, j)) p = 0.0f;
      if (DROP) {  // z = Z_ij: 1 / (1 - p) kept, 0 dropped
        const float z = kept(keep_bits, qi, warp_row + g + (e >> 1) * 8) ? keep_scale : 0.0f;
        s[n][e] = p * z;
        dp[n][e] = p * (dp[n][e] * z - Ds[qi]) * a.scale;
      } else {
        s[n][e] = p;
        dp[n][e] = p * (dp[n][e] - Ds[qi]) * a.scale;
      }
    }

  // dV += P^T dO and dK += dS^T Q: the sum runs over the tile's queries,
  // in the order 2t, 2t + 1 (see the header).
#pragma unroll
  for (int kc = 0; kc < 8; ++kc) {
    const typename P::Frag pa = P::frag(s[kc][0], s[kc][2], s[kc][1], s[kc][3]);
    const typename P::Frag sa = P::frag(dp[kc][0], dp[kc][2], dp[kc][1], dp[kc][3]);
    const float* go = Gs + (kc * 8 + 2 * t) * ld + g;
    const float* q = Qs + (kc * 8 + 2 * t) * ld + g;
#pragma unroll
    for (int c = 0; c < DP / 8; ++c) {
      if (c >= chunks) break;
      P::mma(dv[c], pa, go[c * 8], go[ld + c * 8]);
      P::mma(dk[c], sa, q[c * 8], q[ld + c * 8]);
    }
  }

  // dS^T to shared memory, [key][query], over the dout tile: wait until
  // every warp has finished its dV products with it.
  __syncthreads();
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      dSs[(warp_row + g + (e >> 1) * 8) * lds + n * 8 + 2 * t + (e & 1)] = dp[n][e];
}

// dQ for 16 of the tile's queries per warp: dS (queries x 64 keys) K, summed
// over keys in the order 2t, 2t + 1, then added into dq.
template <int DP, int MMA>
__device__ __forceinline__ void backward_dq(const FlashArgs& a, const float* Ks, const float* dSs,
                                            int64_t i0, float* dq_rows) {
  using P = Products<MMA>;
  constexpr int ld = ld_for(DP), lds = BackwardSmem<DP>::kLdS;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = (threadIdx.x / 32) * 16;
  const int d = static_cast<int>(a.dim), chunks = (d + 7) / 8;
  float acc[DP / 8][4];
#pragma unroll
  for (int c = 0; c < DP / 8; ++c) acc[c][0] = acc[c][1] = acc[c][2] = acc[c][3] = 0.0f;
#pragma unroll
  for (int kc = 0; kc < 8; ++kc) {
    // A[m = query g][k = key 2t] = dS^T[key][query].
    const float* sa = dSs + (kc * 8 + 2 * t) * lds + warp_row + g;
    const typename P::Frag da = P::frag(sa[0], sa[8], sa[lds], sa[lds + 8]);
    const float* kr = Ks + (kc * 8 + 2 * t) * ld + g;
#pragma unroll
    for (int c = 0; c < DP / 8; ++c) {
      if (c >= chunks) break;
      P::mma(acc[c], da, kr[c * 8], kr[ld + c * 8]);
    }
  }
  const int64_t stride = a.q_at.row;
  const bool pairs = d % 2 == 0 && stride % 2 == 0 && reinterpret_cast<uintptr_t>(dq_rows) % 8 == 0;
  (void)pairs;  // older GPUs have no 8-byte float atomics: only the scalar path below
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t i = i0 + warp_row + g + r * 8;
    if (i >= a.tq) continue;
    float* row = dq_rows + i * stride;
#pragma unroll
    for (int c = 0; c < DP / 8; ++c) {
      const int col = c * 8 + 2 * t;
#if __CUDA_ARCH__ >= 900
      if (pairs) {  // one 8-byte atomic for the lane's two columns (sm_90 and newer)
        if (col < d) atomicAdd(reinterpret_cast<float2*>(row + col), make_float2(acc[c][2 * r], acc[c][2 * r + 1]));
      } else
#endif
      {
        if (col < d) atomicAdd(row + col, acc[c][2 * r]);
        if (col + 1 < d) atomicAdd(row + col + 1, acc[c][2 * r + 1]);
      }
    }
  }
}

// d <= 64: at most 168 registers a thread, so that three blocks (12 warps)
// share an SM, as their shared memory allows.
template <int DP, bool DROP, int LIST, int MMA>
__global__ void __launch_bounds__(kBlock, DP <= 64 ? 3 : 1)
    flash_backward_kernel(FlashArgs a, const float* dout, const float* delta, float* dq, float* dk,
                          float* dv, AttentionDropoutArgs drop, DeviceBlocks blocks) {
  extern __shared__ float smem[];
  constexpr int ld = ld_for(DP);
  float* Ks = smem;
  float* Vs = Ks + kRows * ld;
  float* Qs = Vs + kRows * ld;
  float* Gs = Qs + kCols * ld;
  float* dSs = Gs;  // see BackwardSmem
  float* Ls = Gs + kCols * ld;
  float* Ds = Ls + kCols;
  uint32_t* keep_bits = reinterpret_cast<uint32_t*>(smem + BackwardSmem<DP>::kFloats);
  constexpr bool listed = LIST != kSpan, GATHER = LIST == kListedGathered;
  const float keep_scale = DROP ? attention_dropout::keep_scale(drop) : 1.0f;
  const int d = static_cast<int>(a.dim);
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int warp_row = (threadIdx.x / 32) * 16;
  // The span: key block blockIdx.x. A list: the piece blockIdx.x of a
  // column, entries [e_begin, e_end) of its key block (core/column_pieces.h).
  int64_t key_block = blockIdx.x, e_begin = 0, e_end = 0;
  if constexpr (listed) {
    const int64_t* piece = blocks.pieces + 3 * int64_t{blockIdx.x};
    key_block = piece[0], e_begin = piece[1], e_end = piece[2];
  }
  const int64_t j0 = key_block * kRows;
  const int64_t kvh = blockIdx.y % a.kv_heads, b = blockIdx.y / a.kv_heads;
  const int64_t group = a.heads / a.kv_heads;
  const int64_t k_head = head_start(a.k_at, b, kvh), v_head = head_start(a.v_at, b, kvh);
  stage_tile<DP, ld>(Ks, a.k + k_head, a.k_at.row, j0, a.tk, d);
  stage_tile<DP, ld>(Vs, a.v + v_head, a.v_at.row, j0, a.tk, d);

  // Queries that may see a key of this block: causal needs pos >= j0,
  // a window needs pos < j_last + window.
  const int64_t j_last = min(a.tk, j0 + kRows) - 1;
  int64_t i_begin = a.causal ? max(int64_t{0}, j0 - a.offset) : 0;
  int64_t i_end = a.window > 0 ? min(a.tq, j_last - a.offset + a.window) : a.tq;
  i_begin = min(i_begin, a.tq);
  if (i_end < i_begin) i_end = i_begin;

  float dk_acc[DP / 8][4], dv_acc[DP / 8][4];
#pragma unroll
  for (int c = 0; c < DP / 8; ++c)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[c][e] = dv_acc[c][e] = 0.0f;

  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const int64_t qrow0 = (b * a.heads + h) * a.tq;  // of lse and delta
    const int64_t q_head = head_start(a.q_at, b, h);  // of q, dout and dq
    const float scale2 = a.scale * kLog2e;
    const float slope2 = a.alibi ? a.alibi[h] * kLog2e : 0.0f;
    // One query tile against this block's keys; then the tiles to visit:
    // the span's, or those listed for this block's keys (`if constexpr`: the
    // span kernels compile to the loop they had before block lists existed).
    auto visit = [&](int64_t i0, const TileMask& mask) {
      __syncthreads();  // the previous tile (and its dS^T) is consumed
      stage_tile<DP, ld>(Qs, a.q + q_head, a.q_at.row, i0, a.tq, d);
      stage_tile<DP, ld>(Gs, dout + q_head, a.q_at.row, i0, a.tq, d);
      if (threadIdx.x < kCols) {
        const int64_t i = i0 + threadIdx.x;
        const float lse = i < a.tq ? a.lse[qrow0 + i] : -INFINITY;
        Ls[threadIdx.x] = lse == -INFINITY ? INFINITY : lse * kLog2e;
        Ds[threadIdx.x] = i < a.tq ? delta[qrow0 + i] : 0.0f;
      }
      if (DROP && GATHER)
        draw_keep_bits_at(keep_bits, drop, a, mask, blocks.key_span, b, h, i0, j0);
      else if (DROP)
        draw_keep_bits(keep_bits, drop, a, b, h, i0, j0);
      __syncthreads();
      if (!mask.bits && tile_is_full(a, i0, j0))
        backward_tile<DP, false, DROP, GATHER, MMA>(a, Ks, Vs, Qs, Gs, Ls, Ds, mask, keep_bits, keep_scale,
                                                    dSs, i0, j0, scale2, slope2, dk_acc, dv_acc);
      else
        backward_tile<DP, true, DROP, GATHER, MMA>(a, Ks, Vs, Qs, Gs, Ls, Ds, mask, keep_bits, keep_scale,
                                                   dSs, i0, j0, scale2, slope2, dk_acc, dv_acc);
      __syncthreads();  // all of dS^T is written
      backward_dq<DP, MMA>(a, Ks, dSs, i0, dq + q_head);
    };
    if constexpr (listed) {  // this piece of the query tiles listed for this block's keys
      for (int64_t e = e_begin; e < e_end; ++e)
        visit(blocks.col_query[e] * kCols, TileMask{blocks.bits(blocks.col_mask[e]), blocks.key_position});
    } else {
      for (int64_t i0 = i_begin; i0 < i_end; i0 += kCols) visit(i0, TileMask{nullptr, nullptr});
    }
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t j = j0 + warp_row + g + r * 8;
    if (j >= a.tk) continue;
    float* dkr = dk + k_head + j * a.k_at.row;
    float* dvr = dv + v_head + j * a.v_at.row;
#pragma unroll
    for (int c = 0; c < DP / 8; ++c) {
      const int col = c * 8 + 2 * t;
      if constexpr (listed) {  // a column's pieces sum into rows zeroed by the launcher
        if (col < d) atomicAdd(dkr + col, dk_acc[c][2 * r]), atomicAdd(dvr + col, dv_acc[c][2 * r]);
        if (col + 1 < d)
          atomicAdd(dkr + col + 1, dk_acc[c][2 * r + 1]), atomicAdd(dvr + col + 1, dv_acc[c][2 * r + 1]);
      } else {
        if (col < d) dkr[col] = dk_acc[c][2 * r], dvr[col] = dv_acc[c][2 * r];
        if (col + 1 < d) dkr[col + 1] = dk_acc[c][2 * r + 1], dvr[col + 1] = dv_acc[c][2 * r + 1];
      }
    }
  }
}

template <int DP, bool DROP, int LIST, int MMA>
void launch_kernel(const FlashArgs& a, const float* dout, const float* delta, float* dq, float* dk,
                   float* dv, const AttentionDropoutArgs& drop, const DeviceBlocks& blocks) {
  const int shared = BackwardSmem<DP>::kBytes;
  auto* kernel = flash_backward_kernel<DP, DROP, LIST, MMA>;
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
  ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       cudaSharedmemCarveoutMaxShared));
  const int64_t x = LIST == kSpan ? (a.tk + kRows - 1) / kRows : blocks.piece_count;
  const dim3 grid(static_cast<unsigned>(x), static_cast<unsigned>(a.batch * a.kv_heads));
  kernel<<<grid, kBlock, shared, stream()>>>(a, dout, delta, dq, dk, dv, drop, blocks);
  ATTN_CUDA_LAUNCHED("flash_backward_kernel");
}

// As in the forward, bfloat16 kernels exist for the span only.
template <int DP, int LIST, int MMA>
void launch(const FlashArgs& a, const float* dout, const float* delta, float* dq, float* dk,
            float* dv, const AttentionDropoutArgs* drop, const DeviceBlocks& blocks) {
  if (drop && drop->p > 0)
    launch_kernel<DP, true, LIST, MMA>(a, dout, delta, dq, dk, dv, *drop, blocks);
  else
    launch_kernel<DP, false, LIST, MMA>(a, dout, delta, dq, dk, dv, AttentionDropoutArgs{}, blocks);
}

template <int DP>
void launch(const FlashArgs& a, const float* dout, const float* delta, float* dq, float* dk,
            float* dv, const AttentionDropoutArgs* drop, const DeviceBlocks& blocks,
            FlashProducts products) {
  if (blocks.row_begin && !blocks.key_position)
    launch<DP, kListed, kFp32>(a, dout, delta, dq, dk, dv, drop, blocks);
  else if (blocks.row_begin)
    launch<DP, kListedGathered, kFp32>(a, dout, delta, dq, dk, dv, drop, blocks);
  else if (products == FlashProducts::BFloat16)
    launch<DP, kSpan, kBf16>(a, dout, delta, dq, dk, dv, drop, blocks);
  else
    launch<DP, kSpan, kFp32>(a, dout, delta, dq, dk, dv, drop, blocks);
}

}  // namespace

void flash_backward_launch(const FlashArgs& a, const float* dout, float* delta, float* dq,
                           float* dk, float* dv, const AttentionDropoutArgs* drop,
                           const DeviceBlocks& blocks, FlashProducts products) {
  const int64_t q_rows = a.batch * a.heads * a.tq;
  const int d = static_cast<int>(a.dim);
  // dq is dense (its B*H*Tq*d floats from dq on, in q's layout) and summed into.
  ATTN_CUDA_CHECK(cudaMemsetAsync(dq, 0, q_rows * d * sizeof(float), stream()));
  if (blocks.row_begin) {  // a list's column pieces sum into dk and dv (dense, as dq is)
    const int64_t kv_floats = a.batch * a.kv_heads * a.tk * d;
    ATTN_CUDA_CHECK(cudaMemsetAsync(dk, 0, kv_floats * sizeof(float), stream()));
    ATTN_CUDA_CHECK(cudaMemsetAsync(dv, 0, kv_floats * sizeof(float), stream()));
  }
  if (q_rows > 0) {
    const int per_block = kThreads / 32;
    flash_delta_kernel<<<static_cast<unsigned>((q_rows + per_block - 1) / per_block), kThreads, 0,
                         stream()>>>(delta, dout, a.out, a);
    ATTN_CUDA_LAUNCHED("flash_delta_kernel");
  }
  if (a.tk <= 0) return;
  if (d <= 64)
    launch<64>(a, dout, delta, dq, dk, dv, drop, blocks, products);
  else
    launch<128>(a, dout, delta, dq, dk, dv, drop, blocks, products);
}

}  // namespace cuda
}  // namespace attn
