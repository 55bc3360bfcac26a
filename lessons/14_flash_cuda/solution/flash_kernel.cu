// Chapter 14 — reference solution: the flash forward with one warp per query
// row.
//
// A block takes kRowsPerBlock consecutive query rows of one (batch, head).
// The keys those rows may see are streamed through shared memory in tiles of
// 32, one key per lane:
//
//   1. the whole block loads K and V of the tile into shared memory
//   2. each warp scores its row against the tile: lane j computes q . k_j
//   3. online softmax, per row: the tile's max (a warp reduction) updates
//      the running max m; everything accumulated so far is rescaled by
//      exp(m_old - m_new), the running sum l included
//   4. acc += sum_j p_j v_j: lane f owns output features f, f+32, f+64, f+96
//      and receives each p_j from lane j by a warp shuffle
//
// After the last tile: out = acc / l and lse = m + log l. Scores only ever
// live in registers, so memory stays O(T d) whatever T is.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/error.h"
#include "flash_kernel.h"

namespace lesson14 {
namespace {

constexpr int kRowsPerBlock = 8;                // warps per block, one query row each
constexpr int kKeysPerTile = 32;                // one key per lane when scoring
constexpr int kMaxDim = 128;
constexpr int kFeaturesPerLane = kMaxDim / 32;  // output features a lane owns
constexpr unsigned kAllLanes = 0xffffffffu;

__device__ float warp_max(float x) {
  for (int step = 16; step > 0; step /= 2) x = fmaxf(x, __shfl_xor_sync(kAllLanes, x, step));
  return x;
}

__device__ float warp_sum(float x) {
  for (int step = 16; step > 0; step /= 2) x += __shfl_xor_sync(kAllLanes, x, step);
  return x;
}

__global__ void flash_forward_kernel(attn::FlashArgs a) {
  const int d = static_cast<int>(a.dim);
  // Lane j reads row j of the K tile at the same feature f as every other
  // lane. With an even row length all 32 rows would start in banks that
  // collide; an odd stride puts the 32 reads in 32 different banks.
  const int k_stride = d | 1;
  extern __shared__ float shared[];
  float* sk = shared;                          // [kKeysPerTile][k_stride]
  float* sv = sk + kKeysPerTile * k_stride;    // [kKeysPerTile][d]
  float* sq = sv + kKeysPerTile * d;           // [kRowsPerBlock][d]

  const int lane = threadIdx.x, warp = threadIdx.y;
  const int64_t bh = blockIdx.y, b = bh / a.heads, h = bh % a.heads;
  const int64_t kv_head = h / (a.heads / a.kv_heads);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const int64_t row = row0 + warp;
  const bool active = row < a.tq;  // the last block may run past Tq
  const int64_t pos = a.offset + row;
  const float* k = a.k + (b * a.kv_heads + kv_head) * a.tk * d;
  const float* v = a.v + (b * a.kv_heads + kv_head) * a.tk * d;

  if (active)
    for (int f = lane; f < d; f += 32) sq[warp * d + f] = a.q[(bh * a.tq + row) * d + f];

  // The keys that at least one row of this block may see: tiles outside
  // [key_begin, key_end) are never loaded (that is the causal 2x).
  const int64_t last_row = (row0 + kRowsPerBlock < a.tq ? row0 + kRowsPerBlock : a.tq) - 1;
  int64_t key_end = a.tk, key_begin = 0;
  if (a.causal && a.offset + last_row + 1 < key_end) key_end = a.offset + last_row + 1;
  if (a.window > 0 && a.offset + row0 - a.window + 1 > 0) key_begin = a.offset + row0 - a.window + 1;

  float m = -INFINITY, l = 0.0f, acc[kFeaturesPerLane] = {};
  const int threads = 32 * kRowsPerBlock, me = warp * 32 + lane;
  for (int64_t t0 = key_begin; t0 < key_end; t0 += kKeysPerTile) {
    const int n = static_cast<int>(key_end - t0 < kKeysPerTile ? key_end - t0 : kKeysPerTile);
    __syncthreads();  // every warp is done with the previous tile
    for (int i = me; i < n * d; i += threads) {
      const int j = i / d, f = i % d;
      sk[j * k_stride + f] = k[(t0 + j) * d + f];
      sv[j * d + f] = v[(t0 + j) * d + f];
    }
    __syncthreads();  // the tile is complete
    if (!active) continue;  // idle warps still take part in loading and syncing

    const int64_t key = t0 + lane;
    const bool allowed = lane < n && (!a.causal || key <= pos) &&
                         (a.window <= 0 || key > pos - a.window);
    float s = -INFINITY;
    if (allowed) {
      float dot = 0.0f;
      for (int f = 0; f < d; ++f) dot += sq[warp * d + f] * sk[lane * k_stride + f];
      s = dot * a.scale;
    }
    const float m_new = fmaxf(m, warp_max(s));
    if (m_new == -INFINITY) continue;  // no allowed key so far in this row
    const float rescale = expf(m - m_new);  // exp(-inf) = 0 on the first tile
    const float p = allowed ? expf(s - m_new) : 0.0f;
    l = l * rescale + warp_sum(p);
    for (float& x : acc) x *= rescale;
    for (int j = 0; j < n; ++j) {
      const float pj = __shfl_sync(kAllLanes, p, j);
      for (int r = 0; r < kFeaturesPerLane; ++r) {
        const int f = lane + 32 * r;
        if (f < d) acc[r] += pj * sv[j * d + f];
      }
    }
    m = m_new;
  }
  if (!active) return;

  const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;  // no allowed key: zeros
  for (int r = 0; r < kFeaturesPerLane; ++r) {
    const int f = lane + 32 * r;
    if (f < d) a.out[(bh * a.tq + row) * d + f] = acc[r] * inv_l;
  }
  if (lane == 0) a.lse[bh * a.tq + row] = l > 0.0f ? m + logf(l) : -INFINITY;
}

}  // namespace

void flash_forward_launch(const attn::FlashArgs& a) {
  attn::check(a.dim >= 1 && a.dim <= kMaxDim, "lesson 14: flash_forward_launch supports head dims 1..",
              kMaxDim, ", got ", a.dim);
  attn::check(a.alibi == nullptr, "lesson 14: flash_forward_launch does not do ALiBi");
  const int d = static_cast<int>(a.dim);
  const std::size_t shared_bytes =
      sizeof(float) * (kKeysPerTile * ((d | 1) + d) + kRowsPerBlock * d);
  const dim3 block(32, kRowsPerBlock);
  const dim3 grid(static_cast<unsigned>((a.tq + kRowsPerBlock - 1) / kRowsPerBlock),
                  static_cast<unsigned>(a.batch * a.heads));
  flash_forward_kernel<<<grid, block, shared_bytes>>>(a);
  const cudaError_t err = cudaGetLastError();
  attn::check(err == cudaSuccess, "lesson 14: launching flash_forward_kernel failed: ",
              cudaGetErrorString(err));
}

}  // namespace lesson14
