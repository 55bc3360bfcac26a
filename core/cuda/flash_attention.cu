// Flash attention on the GPU: the same online-softmax schedule as
// core/cpu/flash_attention.cpp, never holding a Tq x Tk matrix.
//
// Forward: a block of 8 warps takes 8 query rows of one (batch, head); the
// block walks over tiles of 32 keys, staging K and V in shared memory. In a
// tile, lane t scores key t against the warp's query row; the warp then
// updates its running max m, denominator l and accumulator (each lane owns
// columns lane, lane+32, ... of the output row). Head dims up to 256.
//
// Backward (FlashAttention-2 split, no atomics):
//   1. D_i = dout_i . out_i per query row;
//   2. dq: like the forward, a warp per query row, recomputing
//      p_ij = exp(s_ij - lse_i) and ds_ij = p_ij (dout_i . v_j - D_i) scale;
//   3. dk, dv: a warp per key row, walking the query tiles of every query
//      head that shares the key's K/V head, so dk/dv are written once.
#include <vector>

#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

constexpr int kTile = 32;      // keys (forward, dq) or queries (dk/dv) per tile
constexpr int kWarps = 8;      // rows per block
constexpr int kMaxDim = 256;   // head dim limit: 8 columns per lane
constexpr int kMaxPerLane = kMaxDim / 32;

__device__ __forceinline__ float warp_sum_f(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The keys query i may see: [lo, hi) (see the CPU's allowed_keys).
__device__ __forceinline__ void key_range(const FlashArgs& a, int64_t i, int64_t& lo, int64_t& hi) {
  const int64_t pos = a.offset + i;
  hi = a.causal ? min(a.tk, pos + 1) : a.tk;
  lo = a.window > 0 ? max(int64_t{0}, pos - a.window + 1) : 0;
  if (hi < lo) hi = lo;
}

__device__ __forceinline__ float alibi_bias(float slope, int64_t pos, int64_t j) {
  const int64_t dist = pos > j ? pos - j : j - pos;
  return slope * static_cast<float>(dist);
}

// Copies rows [first, first + n) of a [rows, d] matrix into shared memory
// with row stride `ld`, zero-filling rows past `rows`.
__device__ __forceinline__ void stage_rows(float* dst, int ld, const float* src, int64_t first,
                                           int n, int64_t rows, int d) {
  for (int e = threadIdx.x; e < n * d; e += blockDim.x) {
    const int t = e / d, c = e - t * d;
    const int64_t r = first + t;
    dst[t * ld + c] = r < rows ? src[r * d + c] : 0.0f;
  }
}

__global__ void flash_forward_kernel(FlashArgs a) {
  extern __shared__ float smem[];
  const int d = static_cast<int>(a.dim), ldk = d + 1;
  float* Ks = smem;               // [kTile][d+1]
  float* Vs = Ks + kTile * ldk;   // [kTile][d]
  float* Qs = Vs + kTile * d;     // [kWarps][d]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t h = blockIdx.y % a.heads, b = blockIdx.y / a.heads;
  const int64_t kvh = h / (a.heads / a.kv_heads);
  const float* q = a.q + (b * a.heads + h) * a.tq * d;
  const float* k = a.k + (b * a.kv_heads + kvh) * a.tk * d;
  const float* v = a.v + (b * a.kv_heads + kvh) * a.tk * d;
  const int64_t i0 = int64_t{blockIdx.x} * kWarps, i = i0 + warp;
  const bool active = i < a.tq;
  const int64_t pos = a.offset + i;
  const float slope = a.alibi ? a.alibi[h] : 0.0f;
  stage_rows(Qs, d, q, i0, kWarps, a.tq, d);

  int64_t lo_block, hi_block, lo, hi, unused;
  key_range(a, i0, lo_block, unused);
  key_range(a, min(a.tq - 1, i0 + kWarps - 1), unused, hi_block);
  key_range(a, active ? i : i0, lo, hi);

  float m = -INFINITY, l = 0;
  float acc[kMaxPerLane];
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) acc[u] = 0;

  for (int64_t j0 = lo_block; j0 < hi_block; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and Qs is staged)
    stage_rows(Ks, ldk, k, j0, kTile, a.tk, d);
    stage_rows(Vs, d, v, j0, kTile, a.tk, d);
    __syncthreads();
    if (!active) continue;
    const int64_t j = j0 + lane;
    float s = -INFINITY;
    if (j >= lo && j < hi) {
      const float* qr = Qs + warp * d;
      const float* kr = Ks + lane * ldk;
      float dot = 0;
      for (int c = 0; c < d; ++c) dot += qr[c] * kr[c];
      s = dot * a.scale - alibi_bias(slope, pos, j);
    }
    const float m_new = max_keep(m, warp_max(s));
    if (m_new == -INFINITY) continue;  // no allowed key yet
    const float rescale = expf(m - m_new);  // 0 on the first live tile
    const float p = expf(s - m_new);
    l = l * rescale + warp_sum_f(p);
#pragma unroll
    for (int u = 0; u < kMaxPerLane; ++u) acc[u] *= rescale;
    for (int t = 0; t < kTile; ++t) {
      const float pt = __shfl_sync(0xffffffffu, p, t);
      const float* vr = Vs + t * d;
#pragma unroll
      for (int u = 0; u < kMaxPerLane; ++u) {
        const int c = lane + 32 * u;
        if (c < d) acc[u] += pt * vr[c];
      }
    }
    m = m_new;
  }
  if (!active) return;
  float* out = a.out + ((b * a.heads + h) * a.tq + i) * d;
  const float inv = l > 0 ? 1.0f / l : 0.0f;  // a row with no allowed key outputs zeros
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    if (c < d) out[c] = acc[u] * inv;
  }
  if (lane == 0) a.lse[(b * a.heads + h) * a.tq + i] = l > 0 ? m + logf(l) : -INFINITY;
}

// D_i = dout_i . out_i, a warp per row.
__global__ void flash_delta_kernel(float* D, const float* dout, const float* out, int64_t rows,
                                   int d) {
  const int64_t r = int64_t{blockIdx.x} * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int lane = threadIdx.x % 32;
  float s = 0;
  for (int c = lane; c < d; c += 32) s += dout[r * d + c] * out[r * d + c];
  s = warp_sum_f(s);
  if (lane == 0) D[r] = s;
}

__global__ void flash_dq_kernel(FlashArgs a, const float* dout, const float* D, float* dq) {
  extern __shared__ float smem[];
  const int d = static_cast<int>(a.dim), ld = d + 1;
  float* Ks = smem;               // [kTile][d+1]
  float* Vs = Ks + kTile * ld;    // [kTile][d+1]
  float* Qs = Vs + kTile * ld;    // [kWarps][d]
  float* Gs = Qs + kWarps * d;    // [kWarps][d]  (dout rows)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t h = blockIdx.y % a.heads, b = blockIdx.y / a.heads;
  const int64_t kvh = h / (a.heads / a.kv_heads);
  const int64_t qoff = (b * a.heads + h) * a.tq;
  const float* k = a.k + (b * a.kv_heads + kvh) * a.tk * d;
  const float* v = a.v + (b * a.kv_heads + kvh) * a.tk * d;
  const int64_t i0 = int64_t{blockIdx.x} * kWarps, i = i0 + warp;
  const bool active = i < a.tq;
  const int64_t pos = a.offset + i;
  const float slope = a.alibi ? a.alibi[h] : 0.0f;
  stage_rows(Qs, d, a.q + qoff * d, i0, kWarps, a.tq, d);
  stage_rows(Gs, d, dout + qoff * d, i0, kWarps, a.tq, d);
  const float lse = active ? a.lse[qoff + i] : -INFINITY;
  const float Di = active ? D[qoff + i] : 0.0f;

  int64_t lo_block, hi_block, lo, hi, unused;
  key_range(a, i0, lo_block, unused);
  key_range(a, min(a.tq - 1, i0 + kWarps - 1), unused, hi_block);
  key_range(a, active ? i : i0, lo, hi);

  float acc[kMaxPerLane];
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) acc[u] = 0;

  for (int64_t j0 = lo_block; j0 < hi_block; j0 += kTile) {
    __syncthreads();
    stage_rows(Ks, ld, k, j0, kTile, a.tk, d);
    stage_rows(Vs, ld, v, j0, kTile, a.tk, d);
    __syncthreads();
    if (!active || lse == -INFINITY) continue;  // no keys: no gradient
    const int64_t j = j0 + lane;
    float ds = 0;
    if (j >= lo && j < hi) {
      const float* qr = Qs + warp * d;
      const float* gr = Gs + warp * d;
      const float* kr = Ks + lane * ld;
      const float* vr = Vs + lane * ld;
      float dot = 0, dp = 0;
      for (int c = 0; c < d; ++c) {
        dot += qr[c] * kr[c];
        dp += gr[c] * vr[c];
      }
      const float p = expf(dot * a.scale - alibi_bias(slope, pos, j) - lse);
      ds = p * (dp - Di) * a.scale;
    }
    for (int t = 0; t < kTile; ++t) {
      const float dst = __shfl_sync(0xffffffffu, ds, t);
      const float* kr = Ks + t * ld;
#pragma unroll
      for (int u = 0; u < kMaxPerLane; ++u) {
        const int c = lane + 32 * u;
        if (c < d) acc[u] += dst * kr[c];
      }
    }
  }
  if (!active) return;
  float* out = dq + (qoff + i) * d;
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    if (c < d) out[c] = acc[u];
  }
}

__global__ void flash_dkdv_kernel(FlashArgs a, const float* dout, const float* D, float* dk,
                                  float* dv) {
  extern __shared__ float smem[];
  const int d = static_cast<int>(a.dim), ld = d + 1;
  float* Qs = smem;                 // [kTile][d+1]
  float* Gs = Qs + kTile * ld;      // [kTile][d+1] (dout rows)
  float* Ks = Gs + kTile * ld;      // [kWarps][d]
  float* Vs = Ks + kWarps * d;      // [kWarps][d]
  float* Ls = Vs + kWarps * d;      // [kTile] lse
  float* Ds = Ls + kTile;           // [kTile] D
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kvh = blockIdx.y % a.kv_heads, b = blockIdx.y / a.kv_heads;
  const int64_t group = a.heads / a.kv_heads;
  const int64_t kvoff = (b * a.kv_heads + kvh) * a.tk;
  const int64_t j0 = int64_t{blockIdx.x} * kWarps, j = j0 + warp;
  const bool active = j < a.tk;
  stage_rows(Ks, d, a.k + kvoff * d, j0, kWarps, a.tk, d);
  stage_rows(Vs, d, a.v + kvoff * d, j0, kWarps, a.tk, d);

  // Queries that may see a key of this block: causal needs pos >= key,
  // a window needs pos < key + window.
  const int64_t j_last = min(a.tk - 1, j0 + kWarps - 1);
  int64_t i_begin = a.causal ? max(int64_t{0}, j0 - a.offset) : 0;
  int64_t i_end = a.window > 0 ? min(a.tq, j_last - a.offset + a.window) : a.tq;
  i_begin = min(i_begin, a.tq);
  if (i_end < i_begin) i_end = i_begin;

  float dk_acc[kMaxPerLane], dv_acc[kMaxPerLane];
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) dk_acc[u] = dv_acc[u] = 0;

  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const int64_t qoff = (b * a.heads + h) * a.tq;
    const float slope = a.alibi ? a.alibi[h] : 0.0f;
    for (int64_t t0 = i_begin; t0 < i_end; t0 += kTile) {
      __syncthreads();
      stage_rows(Qs, ld, a.q + qoff * d, t0, kTile, a.tq, d);
      stage_rows(Gs, ld, dout + qoff * d, t0, kTile, a.tq, d);
      if (threadIdx.x < kTile) {
        const int64_t i = t0 + threadIdx.x;
        Ls[threadIdx.x] = i < a.tq ? a.lse[qoff + i] : -INFINITY;
        Ds[threadIdx.x] = i < a.tq ? D[qoff + i] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      const int64_t i = t0 + lane;
      float p = 0, ds = 0;
      if (i < a.tq && Ls[lane] != -INFINITY) {
        int64_t lo, hi;
        key_range(a, i, lo, hi);
        if (j >= lo && j < hi) {
          const float* qr = Qs + lane * ld;
          const float* gr = Gs + lane * ld;
          const float* kr = Ks + warp * d;
          const float* vr = Vs + warp * d;
          float dot = 0, dp = 0;
          for (int c = 0; c < d; ++c) {
            dot += qr[c] * kr[c];
            dp += gr[c] * vr[c];
          }
          p = expf(dot * a.scale - alibi_bias(slope, a.offset + i, j) - Ls[lane]);
          ds = p * (dp - Ds[lane]) * a.scale;
        }
      }
      for (int t = 0; t < kTile; ++t) {
        const float pt = __shfl_sync(0xffffffffu, p, t);
        const float dst = __shfl_sync(0xffffffffu, ds, t);
        const float* qr = Qs + t * ld;
        const float* gr = Gs + t * ld;
#pragma unroll
        for (int u = 0; u < kMaxPerLane; ++u) {
          const int c = lane + 32 * u;
          if (c < d) {
            dv_acc[u] += pt * gr[c];
            dk_acc[u] += dst * qr[c];
          }
        }
      }
    }
  }
  if (!active) return;
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    if (c < d) {
      dk[(kvoff + j) * d + c] = dk_acc[u];
      dv[(kvoff + j) * d + c] = dv_acc[u];
    }
  }
}

void check_flash(const FlashArgs& a) {
  check(a.dim <= kMaxDim, "flash_attention: head dim ", a.dim, " is more than the ", kMaxDim,
        " the CUDA kernel supports");
  check(a.kv_heads > 0 && a.heads % a.kv_heads == 0, "flash_attention: ", a.kv_heads,
        " K/V heads do not divide ", a.heads, " query heads");
  check(a.batch * a.heads <= 65535 && a.batch * a.kv_heads <= 65535,
        "flash_attention: batch x heads = ", a.batch * a.heads,
        " is more than the 65535 the CUDA kernel supports");
}

template <class Kernel>
void allow_shared(Kernel kernel, std::size_t bytes) {
  if (bytes > 48 * 1024)
    ATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes)));
}

}  // namespace

void CudaBackend::flash_attention_forward(const FlashArgs& args) {
  if (args.batch <= 0 || args.heads <= 0 || args.tq <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  FlashArgs a = args;
  // ALiBi slopes arrive in host memory.
  Buffer slopes(this, a.alibi ? a.heads * sizeof(float) : 1);
  if (a.alibi) {
    ATTN_CUDA_CHECK(cudaMemcpy(slopes.ptr, a.alibi, a.heads * sizeof(float), cudaMemcpyHostToDevice));
    a.alibi = slopes.as<float>();
  }
  const int d = static_cast<int>(a.dim);
  const std::size_t shared = sizeof(float) * (kTile * (d + 1) + kTile * d + kWarps * d);
  allow_shared(flash_forward_kernel, shared);
  const dim3 grid(static_cast<unsigned>((a.tq + kWarps - 1) / kWarps),
                  static_cast<unsigned>(a.batch * a.heads));
  flash_forward_kernel<<<grid, kWarps * 32, shared>>>(a);
  ATTN_CUDA_LAUNCHED("flash_forward_kernel");
}

void CudaBackend::flash_attention_backward(const FlashArgs& args, const float* dout, float* dq,
                                           float* dk, float* dv) {
  if (args.batch <= 0 || args.heads <= 0 || args.dim <= 0) return;
  check_flash(args);
  activate();
  FlashArgs a = args;
  Buffer slopes(this, a.alibi ? a.heads * sizeof(float) : 1);
  if (a.alibi) {
    ATTN_CUDA_CHECK(cudaMemcpy(slopes.ptr, a.alibi, a.heads * sizeof(float), cudaMemcpyHostToDevice));
    a.alibi = slopes.as<float>();
  }
  const int d = static_cast<int>(a.dim);
  const int64_t q_rows = a.batch * a.heads * a.tq;
  Buffer delta(this, (q_rows > 0 ? q_rows : 1) * sizeof(float));
  if (q_rows > 0) {
    const int per_block = kThreads / 32;
    flash_delta_kernel<<<static_cast<unsigned>((q_rows + per_block - 1) / per_block), kThreads>>>(
        delta.as<float>(), dout, a.out, q_rows, d);
    ATTN_CUDA_LAUNCHED("flash_delta_kernel");
    const std::size_t shared = sizeof(float) * (2 * kTile * (d + 1) + 2 * kWarps * d);
    allow_shared(flash_dq_kernel, shared);
    const dim3 grid(static_cast<unsigned>((a.tq + kWarps - 1) / kWarps),
                    static_cast<unsigned>(a.batch * a.heads));
    flash_dq_kernel<<<grid, kWarps * 32, shared>>>(a, dout, delta.as<float>(), dq);
    ATTN_CUDA_LAUNCHED("flash_dq_kernel");
  }
  if (a.tk > 0) {
    const std::size_t shared = sizeof(float) * (2 * kTile * (d + 1) + 2 * kWarps * d + 2 * kTile);
    allow_shared(flash_dkdv_kernel, shared);
    const dim3 grid(static_cast<unsigned>((a.tk + kWarps - 1) / kWarps),
                    static_cast<unsigned>(a.batch * a.kv_heads));
    flash_dkdv_kernel<<<grid, kWarps * 32, shared>>>(a, dout, delta.as<float>(), dk, dv);
    ATTN_CUDA_LAUNCHED("flash_dkdv_kernel");
  }
}

}  // namespace attn
