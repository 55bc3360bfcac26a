// Reductions on the GPU: sum / max / min / argmax / argmin over the
// trailing dims of a strided view, one output per index of the leading dims.
//
// Semantics follow core/cpu/reduce.cpp exactly: sums accumulate in double;
// NaN wins max/min (the first NaN, for argmax/argmin); ties go to the first
// index; an empty reduction gives 0 / -inf / +inf / index 0.
//
// Max/min/arg are a "best of" under a total order (NaN first, then the
// value, then the lower index), so threads may reduce in any grouping and
// still agree with the CPU's left-to-right scan.
//
// Two layouts:
//  - rows: the reduced elements of one output are contiguous (stride 1):
//    a warp (short rows) or a block (long rows) per output, coalesced.
//  - columns: otherwise (e.g. summing [N, C] over N, viewed as [C, N] with
//    strides [1, C]): a thread per output, neighbouring threads reading
//    neighbouring outputs.
//  - dense columns: sums down a dense [rows, cols] matrix (every Linear
//    layer's bias gradient) get a path of their own, below.
// Either can split long reductions across blockIdx.y into partials that a
// second kernel combines in order: the result is deterministic.
#include <algorithm>

#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

enum Kind : int { kSum = 0, kMax = 1, kMin = 2 };

struct Acc {
  double v;
  long long idx;
  int any;
};

__device__ __forceinline__ Acc acc_empty() { return Acc{0.0, 0, 0}; }

template <int K>
__device__ __forceinline__ Acc combine(const Acc& a, const Acc& b) {
  if constexpr (K == kSum) {
    return Acc{a.v + b.v, 0, a.any | b.any};
  } else {
    if (!a.any) return b;
    if (!b.any) return a;
    const bool an = isnan(a.v), bn = isnan(b.v);
    if (an || bn) {
      if (an && bn) return a.idx <= b.idx ? a : b;
      return an ? a : b;
    }
    const bool b_better = K == kMax ? b.v > a.v : b.v < a.v;
    const bool a_better = K == kMax ? a.v > b.v : a.v < b.v;
    if (b_better) return b;
    if (a_better) return a;
    return a.idx <= b.idx ? a : b;
  }
}

template <int K>
__device__ __forceinline__ Acc add_element(const Acc& a, float x, long long k) {
  if constexpr (K == kSum) {
    return Acc{a.v + static_cast<double>(x), 0, 1};
  } else {
    return combine<K>(a, Acc{static_cast<double>(x), k, 1});
  }
}

template <int K>
__device__ __forceinline__ Acc shfl_combine(const Acc& a, int offset) {
  Acc o;
  o.v = __shfl_xor_sync(0xffffffffu, a.v, offset);
  o.idx = __shfl_xor_sync(0xffffffffu, a.idx, offset);
  o.any = __shfl_xor_sync(0xffffffffu, a.any, offset);
  // Keep the lower lane's value first so sums add in a fixed order.
  return (threadIdx.x & offset) ? combine<K>(o, a) : combine<K>(a, o);
}

template <int G, int K>
__device__ __forceinline__ Acc group_reduce(Acc a) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) a = shfl_combine<K>(a, o);
  if constexpr (G == 32) {
    return a;
  } else {
    __shared__ Acc part[G / 32];
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = a;
    __syncthreads();
    Acc t = part[0];
#pragma unroll
    for (int w = 1; w < G / 32; ++w) t = combine<K>(t, part[w]);
    return t;
  }
}

// Writes one finished result. `arg`: the output is int64 indices.
template <int K>
__device__ __forceinline__ void write_result(void* out, int64_t j, const Acc& a, bool arg) {
  if (arg) {
    static_cast<int64_t*>(out)[j] = a.any ? a.idx : 0;
  } else {
    float v;
    if (a.any) v = static_cast<float>(a.v);
    else v = K == kSum ? 0.0f : (K == kMax ? -INFINITY : INFINITY);
    static_cast<float*>(out)[j] = v;
  }
}

struct ReduceArgs {
  View outer;  // the kept dims of the input (collapsed), ndim >= 1
  View inner;  // the reduced dims (collapsed), ndim >= 1
  const float* in;
  int64_t n_out, n_red, chunk;  // outputs, reduced elements per output, per split
  void* out;                    // final output, or
  Acc* partial;                 // [splits, n_out] when gridDim.y > 1
  bool arg;
};

template <int G, int K>
__global__ void reduce_rows_kernel(ReduceArgs a) {
  const int per_block = blockDim.x / G;
  const int64_t j = int64_t{blockIdx.x} * per_block + threadIdx.x / G;
  if (j >= a.n_out) return;  // whole groups only (G = 32), or never (G = block)
  const int lane = threadIdx.x % G;
  const int64_t begin = int64_t{blockIdx.y} * a.chunk;
  const int64_t end = min(a.n_red, begin + a.chunk);
  const float* base = a.in + view_offset(a.outer, j);
  const int64_t step = a.inner.strides[a.inner.ndim - 1];  // 1 here
  Acc acc = acc_empty();
  if (a.inner.ndim == 1) {
    for (int64_t k = begin + lane; k < end; k += G) acc = add_element<K>(acc, base[k * step], k);
  } else {
    for (int64_t k = begin + lane; k < end; k += G)
      acc = add_element<K>(acc, base[view_offset(a.inner, k)], k);
  }
  acc = group_reduce<G, K>(acc);
  if (lane != 0) return;
  if (gridDim.y == 1) write_result<K>(a.out, j, acc, a.arg);
  else a.partial[int64_t{blockIdx.y} * a.n_out + j] = acc;
}

template <int K>
__global__ void reduce_cols_kernel(ReduceArgs a) {
  const int64_t j = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (j >= a.n_out) return;
  const int64_t begin = int64_t{blockIdx.y} * a.chunk;
  const int64_t end = min(a.n_red, begin + a.chunk);
  const float* base = a.in + view_offset(a.outer, j);
  Acc acc = acc_empty();
  if (a.inner.ndim == 1) {
    const int64_t step = a.inner.strides[0];
    for (int64_t k = begin; k < end; ++k) acc = add_element<K>(acc, base[k * step], k);
  } else {
    for (int64_t k = begin; k < end; ++k) acc = add_element<K>(acc, base[view_offset(a.inner, k)], k);
  }
  if (gridDim.y == 1) write_result<K>(a.out, j, acc, a.arg);
  else a.partial[int64_t{blockIdx.y} * a.n_out + j] = acc;
}

// Second pass: combines the [splits, n_out] partials. A block of
// kFinishWarps warps takes 32 neighbouring outputs; warp w combines splits
// w, w + kFinishWarps, ... (each load reads 32 neighbouring partials:
// coalesced), then warp 0 combines the warps' results in warp order. The
// grouping is fixed, so every run gives the same bits. (One thread walking
// all splits of its output was ~100 us per call for a bias gradient: a few
// hundred dependent loads on a handful of SMs.)
constexpr int kFinishWarps = 32;

template <int K>
__global__ void reduce_finish_kernel(const Acc* partial, int splits, int64_t n_out, void* out,
                                     bool arg) {
  __shared__ Acc part[kFinishWarps][32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t j = int64_t{blockIdx.x} * 32 + lane;
  Acc acc = acc_empty();
  if (j < n_out) {
#pragma unroll 4
    for (int s = warp; s < splits; s += kFinishWarps)
      acc = combine<K>(acc, partial[int64_t{s} * n_out + j]);
  }
  part[warp][lane] = acc;
  __syncthreads();
  if (warp != 0 || j >= n_out) return;
  Acc total = part[0][lane];
  for (int w = 1; w < kFinishWarps; ++w) total = combine<K>(total, part[w][lane]);
  write_result<K>(out, j, total, arg);
}

inline unsigned finish_blocks(int64_t n_out) { return static_cast<unsigned>((n_out + 31) / 32); }

// ---- sums down the columns of a dense [rows, cols] matrix ----
//
// The column path above reads one float per thread per row and keeps
// 24-byte partials for max/argmax's sake. A plain sum down a dense matrix
// (a bias gradient: [B*T, C] summed over B*T) does better: a thread adds 4
// neighbouring columns with one 16-byte load per row, 8 row lanes of a
// block share a slice of the rows, and each block leaves one double per
// column; sum_partials adds the slices in order.
constexpr int kGroup = 4, kColThreads = 32, kRowLanes = 8;
constexpr int kBlockCols = kGroup * kColThreads;  // 128 columns a block
constexpr int64_t kRowsPerLane = 8;               // rows a thread adds per slice

template <bool VEC>
__global__ void dense_col_sums_kernel(double* part, const float* in, int64_t rows, int64_t cols,
                                      int64_t chunk) {
  const int64_t c0 = int64_t{blockIdx.x} * kBlockCols + threadIdx.x * kGroup;
  const int64_t begin = int64_t{blockIdx.y} * chunk;
  const int64_t end = min(rows, begin + chunk);
  double acc[kGroup] = {0, 0, 0, 0};
  if (c0 < cols) {
#pragma unroll 4  // four rows' loads in flight before their adds
    for (int64_t r = begin + threadIdx.y; r < end; r += kRowLanes) {
      const float* row = in + r * cols + c0;
      if constexpr (VEC) {
        const float4 v = *reinterpret_cast<const float4*>(row);
        acc[0] += v.x, acc[1] += v.y, acc[2] += v.z, acc[3] += v.w;
      } else {
#pragma unroll
        for (int e = 0; e < kGroup; ++e)
          if (c0 + e < cols) acc[e] += row[e];
      }
    }
  }
  __shared__ double lanes[kRowLanes][kBlockCols];
#pragma unroll
  for (int e = 0; e < kGroup; ++e) lanes[threadIdx.y][threadIdx.x * kGroup + e] = acc[e];
  __syncthreads();
  const int t = threadIdx.y * kColThreads + threadIdx.x;  // one column each, lanes in order
  const int64_t c = int64_t{blockIdx.x} * kBlockCols + t;
  if (t < kBlockCols && c < cols) {
    double s = 0;
    for (int y = 0; y < kRowLanes; ++y) s += lanes[y][t];
    part[int64_t{blockIdx.y} * cols + c] = s;
  }
}

void dense_col_sums(CudaBackend& be, float* out, const float* in, int64_t rows, int64_t cols) {
  const int64_t slices = std::clamp<int64_t>((rows + kRowLanes * kRowsPerLane - 1) /
                                                 (kRowLanes * kRowsPerLane),
                                             1, 1024);
  const int64_t chunk = (rows + slices - 1) / slices;
  CudaBackend::Buffer part(&be, slices * cols * sizeof(double));
  const dim3 grid(static_cast<unsigned>((cols + kBlockCols - 1) / kBlockCols),
                  static_cast<unsigned>(slices));
  const dim3 block(kColThreads, kRowLanes);
  if (cols % kGroup == 0 && reinterpret_cast<uintptr_t>(in) % 16 == 0)
    dense_col_sums_kernel<true>
        <<<grid, block, 0, stream()>>>(part.as<double>(), in, rows, cols, chunk);
  else
    dense_col_sums_kernel<false>
        <<<grid, block, 0, stream()>>>(part.as<double>(), in, rows, cols, chunk);
  ATTN_CUDA_LAUNCHED("dense_col_sums_kernel");
  sum_partials(out, part.as<double>(), slices, cols);
}

// sum_partials: a block takes 32 neighbouring outputs; split lane y adds
// slices y, y + 32, ..., then lane 0 adds the 32 lane sums in order.
constexpr int kSplitLanes = 32;

__global__ void sum_partials_kernel(float* out, const double* part, int64_t splits, int64_t n) {
  const int64_t j = int64_t{blockIdx.x} * kColThreads + threadIdx.x;
  double s = 0;
  if (j < n) {
#pragma unroll 4
    for (int64_t k = threadIdx.y; k < splits; k += kSplitLanes) s += part[k * n + j];
  }
  __shared__ double lanes[kSplitLanes][kColThreads];
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || j >= n) return;
  double total = 0;
  for (int y = 0; y < kSplitLanes; ++y) total += lanes[y][threadIdx.x];
  out[j] = static_cast<float>(total);
}

View sub_view(const View& in, int first, int count) {
  View v;
  v.data = in.data;
  v.dtype = in.dtype;
  v.ndim = count;
  for (int d = 0; d < count; ++d) {
    v.shape[d] = in.shape[first + d];
    v.strides[d] = in.strides[first + d];
  }
  return v;
}

template <int K>
void run_reduce(CudaBackend& be, ReduceArgs a) {
  // A sum over the rows of a dense matrix: outputs are neighbouring columns
  // and each reduced step moves one whole row.
  // (Narrow matrices keep the general path: most of a 128-column block would idle.)
  if (K == kSum && !a.arg && a.n_red > 0 && a.n_out >= 64 && a.outer.ndim == 1 &&
      a.outer.strides[0] == 1 &&
      a.inner.ndim == 1 && a.inner.strides[0] == a.n_out) {
    dense_col_sums(be, static_cast<float*>(a.out), a.in, a.n_red, a.n_out);
    return;
  }
  const int64_t target_threads = int64_t{be.sm_count()} * 2048;
  const bool rows = a.inner.strides[a.inner.ndim - 1] == 1 && a.n_red >= 32;
  int64_t splits = 1;
  if (rows) {
    const bool block_per_row = a.n_red > 1024;
    if (block_per_row) {
      // Long rows and few of them: split each row across several blocks.
      const int64_t want = (target_threads / kThreads + a.n_out - 1) / a.n_out;
      splits = std::max<int64_t>(1, std::min<int64_t>(want, a.n_red / (kThreads * 8)));
    }
    splits = std::min<int64_t>(splits, 1024);
    a.chunk = (a.n_red + splits - 1) / splits;
    splits = (a.n_red + a.chunk - 1) / a.chunk;
    CudaBackend::Buffer part(&be, splits > 1 ? splits * a.n_out * sizeof(Acc) : 1);
    a.partial = part.as<Acc>();
    if (block_per_row) {
      reduce_rows_kernel<kThreads, K>
          <<<dim3(static_cast<unsigned>(a.n_out), splits), kThreads, 0, stream()>>>(a);
    } else {
      const int per_block = kThreads / 32;
      const unsigned blocks = static_cast<unsigned>((a.n_out + per_block - 1) / per_block);
      reduce_rows_kernel<32, K><<<dim3(blocks, splits), kThreads, 0, stream()>>>(a);
    }
    ATTN_CUDA_LAUNCHED("reduce_rows_kernel");
    if (splits > 1) {
      reduce_finish_kernel<K><<<finish_blocks(a.n_out), kFinishWarps * 32, 0, stream()>>>(
          a.partial, static_cast<int>(splits), a.n_out, a.out, a.arg);
      ATTN_CUDA_LAUNCHED("reduce_finish_kernel");
    }
    return;
  }
  // Columns: enough threads to fill the GPU, at least 32 elements each.
  const int64_t want = (target_threads + a.n_out - 1) / a.n_out;
  splits = std::max<int64_t>(1, std::min<int64_t>(want, a.n_red / 32));
  splits = std::min<int64_t>(splits, 1024);
  a.chunk = std::max<int64_t>(1, (a.n_red + splits - 1) / splits);
  splits = std::max<int64_t>(1, (a.n_red + a.chunk - 1) / a.chunk);
  CudaBackend::Buffer part(&be, splits > 1 ? splits * a.n_out * sizeof(Acc) : 1);
  a.partial = part.as<Acc>();
  const unsigned blocks = static_cast<unsigned>((a.n_out + kThreads - 1) / kThreads);
  reduce_cols_kernel<K><<<dim3(blocks, splits), kThreads, 0, stream()>>>(a);
  ATTN_CUDA_LAUNCHED("reduce_cols_kernel");
  if (splits > 1) {
    reduce_finish_kernel<K><<<finish_blocks(a.n_out), kFinishWarps * 32, 0, stream()>>>(
        a.partial, static_cast<int>(splits), a.n_out, a.out, a.arg);
    ATTN_CUDA_LAUNCHED("reduce_finish_kernel");
  }
}

}  // namespace

void cuda::sum_partials(float* out, const double* part, int64_t splits, int64_t n) {
  if (n <= 0) return;
  sum_partials_kernel<<<static_cast<unsigned>((n + kColThreads - 1) / kColThreads),
                        dim3(kColThreads, kSplitLanes), 0, stream()>>>(out, part, splits, n);
  ATTN_CUDA_LAUNCHED("sum_partials_kernel");
}

void CudaBackend::reduce(ReduceOp op, const View& out, const View& in, int outer_dims) {
  activate();
  ReduceArgs a;
  a.outer = sub_view(in, 0, outer_dims);
  a.inner = sub_view(in, outer_dims, in.ndim - outer_dims);
  a.n_out = numel_of(a.outer);
  a.n_red = numel_of(a.inner);
  if (a.n_out == 0) return;
  {
    View* o[1] = {&a.outer};
    collapse<1>(o);
  }
  if (a.n_red > 0) {
    View* i[1] = {&a.inner};
    collapse<1>(i);
  } else {  // nothing to reduce: every output is the empty result
    a.inner.ndim = 1;
    a.inner.shape[0] = 0;
    a.inner.strides[0] = 1;
  }
  a.in = static_cast<const float*>(in.data);
  a.out = out.data;
  a.partial = nullptr;
  a.chunk = a.n_red;
  a.arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
  switch (op) {
    case ReduceOp::Sum: return run_reduce<kSum>(*this, a);
    case ReduceOp::Max:
    case ReduceOp::ArgMax: return run_reduce<kMax>(*this, a);
    case ReduceOp::Min:
    case ReduceOp::ArgMin: return run_reduce<kMin>(*this, a);
  }
  fail("cuda reduce: unknown op ", static_cast<int>(op));
}

}  // namespace attn
