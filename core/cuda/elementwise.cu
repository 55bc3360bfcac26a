// Elementwise kernels on the GPU: fill, copy (with dtype conversion),
// unary, binary and where over strided views with broadcasting (stride 0).
//
// The host first collapses the views (drops size-1 dims, merges dims that
// are contiguous in every view). When all views are then one dense run the
// kernel indexes memory directly; otherwise each thread turns its linear
// index into per-view offsets (32-bit index math when the sizes allow).
// The math mirrors core/cpu/elementwise.cpp op for op.
#include "core/cuda/cuda_internal.cuh"

namespace attn {
using namespace cuda;

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;

// ---- the ops ----

template <UnaryOp OP>
struct UnaryF {
  float s;
  __device__ __forceinline__ float operator()(float x) const {
    if constexpr (OP == UnaryOp::Neg) return -x;
    else if constexpr (OP == UnaryOp::Exp) return expf(x);
    else if constexpr (OP == UnaryOp::Log) return logf(x);
    else if constexpr (OP == UnaryOp::Sqrt) return sqrtf(x);
    else if constexpr (OP == UnaryOp::Rsqrt) return 1.0f / sqrtf(x);
    else if constexpr (OP == UnaryOp::Abs) return fabsf(x);
    else if constexpr (OP == UnaryOp::Sign) return static_cast<float>((x > 0) - (x < 0));
    else if constexpr (OP == UnaryOp::Relu) return x > 0 ? x : 0.0f;
    else if constexpr (OP == UnaryOp::Step) return x > 0 ? 1.0f : 0.0f;
    else if constexpr (OP == UnaryOp::Sigmoid) return 1.0f / (1.0f + expf(-x));
    else if constexpr (OP == UnaryOp::Tanh) return tanhf(x);
    else if constexpr (OP == UnaryOp::Gelu) {
      return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
    } else if constexpr (OP == UnaryOp::GeluGrad) {
      const float u = kSqrt2OverPi * (x + 0.044715f * x * x * x);
      const float t = tanhf(u);
      const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    } else if constexpr (OP == UnaryOp::Silu) {
      return x * (1.0f / (1.0f + expf(-x)));
    } else if constexpr (OP == UnaryOp::SiluGrad) {
      const float sg = 1.0f / (1.0f + expf(-x));
      return sg * (1.0f + x * (1.0f - sg));
    } else if constexpr (OP == UnaryOp::Elu) return x > 0 ? x : expm1f(x);
    else if constexpr (OP == UnaryOp::EluGrad) return x > 0 ? 1.0f : expf(x);
    else if constexpr (OP == UnaryOp::Sin) return sinf(x);
    else if constexpr (OP == UnaryOp::Cos) return cosf(x);
    else if constexpr (OP == UnaryOp::Square) return x * x;
    else if constexpr (OP == UnaryOp::Reciprocal) return 1.0f / x;
    else if constexpr (OP == UnaryOp::AddScalar) return x + s;
    else if constexpr (OP == UnaryOp::MulScalar) return x * s;
    else if constexpr (OP == UnaryOp::PowScalar) return powf(x, s);
    else return x;
  }
};

template <BinaryOp OP>
struct BinaryF {
  __device__ __forceinline__ float operator()(float x, float y) const {
    if constexpr (OP == BinaryOp::Add) return x + y;
    else if constexpr (OP == BinaryOp::Sub) return x - y;
    else if constexpr (OP == BinaryOp::Mul) return x * y;
    else if constexpr (OP == BinaryOp::Div) return x / y;
    else if constexpr (OP == BinaryOp::Max) return x >= y || x != x ? x : y;  // NaN wins
    else if constexpr (OP == BinaryOp::Min) return x <= y || x != x ? x : y;
    else if constexpr (OP == BinaryOp::GeluBackward) return x * UnaryF<UnaryOp::GeluGrad>{0}(y);
    else return powf(x, y);  // Pow
  }
};

// Comparisons and logic read any dtype (as double, like the CPU; two int64
// inputs as int64) and write bools.
template <BinaryOp OP, class T>
__device__ __forceinline__ bool compare(T x, T y) {
  if constexpr (OP == BinaryOp::Gt) return x > y;
  else if constexpr (OP == BinaryOp::Ge) return x >= y;
  else if constexpr (OP == BinaryOp::Lt) return x < y;
  else if constexpr (OP == BinaryOp::Le) return x <= y;
  else if constexpr (OP == BinaryOp::Eq) return x == y;
  else if constexpr (OP == BinaryOp::Ne) return x != y;
  else if constexpr (OP == BinaryOp::And) return x != 0 && y != 0;
  else return x != 0 || y != 0;  // Or
}

#define GRID_STRIDE(i, n)                                                      \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); \
       i += int64_t{gridDim.x} * blockDim.x)

// ---- kernels ----
// The float kernels also run on float4 (V): f is then applied to each of
// the four lanes (see to_vec4 below for when the views allow it).

template <class F>
__device__ __forceinline__ float apply(const F& f, float a) { return f(a); }
template <class F>
__device__ __forceinline__ float4 apply(const F& f, float4 a) {
  return make_float4(f(a.x), f(a.y), f(a.z), f(a.w));
}
template <class F>
__device__ __forceinline__ float apply(const F& f, float a, float b) { return f(a, b); }
template <class F>
__device__ __forceinline__ float4 apply(const F& f, float4 a, float4 b) {
  return make_float4(f(a.x, b.x), f(a.y, b.y), f(a.z, b.z), f(a.w, b.w));
}

template <class V, class F>
__global__ void unary_dense(V* out, const V* in, int64_t n, F f) {
  GRID_STRIDE(i, n) out[i] = apply(f, in[i]);
}

template <class I, class V, class F>
__global__ void unary_strided(Views<2> vs, int64_t n, F f) {
  V* o = static_cast<V*>(vs.v[0].data);
  const V* a = static_cast<const V*>(vs.v[1].data);
  GRID_STRIDE(i, n) {
    int64_t off[2];
    view_offsets<I>(vs, i, off);
    o[off[0]] = apply(f, a[off[1]]);
  }
}

template <class V, class F>
__global__ void binary_dense(V* out, const V* a, const V* b, int64_t n, F f) {
  GRID_STRIDE(i, n) out[i] = apply(f, a[i], b[i]);
}

template <class I, class V, class F>
__global__ void binary_strided(Views<3> vs, int64_t n, F f) {
  V* o = static_cast<V*>(vs.v[0].data);
  const V* a = static_cast<const V*>(vs.v[1].data);
  const V* b = static_cast<const V*>(vs.v[2].data);
  GRID_STRIDE(i, n) {
    int64_t off[3];
    view_offsets<I>(vs, i, off);
    o[off[0]] = apply(f, a[off[1]], b[off[2]]);
  }
}

template <class I, BinaryOp OP>
__global__ void compare_strided(Views<3> vs, int64_t n) {
  uint8_t* o = static_cast<uint8_t*>(vs.v[0].data);
  GRID_STRIDE(i, n) {
    int64_t off[3];
    view_offsets<I>(vs, i, off);
    o[off[0]] = compare<OP>(load_any(vs.v[1], off[1]), load_any(vs.v[2], off[2]));
  }
}

// Two int64 inputs compare as int64 (ids above 2^53 would round as double).
template <class I, BinaryOp OP>
__global__ void compare_i64_strided(Views<3> vs, int64_t n) {
  uint8_t* o = static_cast<uint8_t*>(vs.v[0].data);
  const int64_t* a = static_cast<const int64_t*>(vs.v[1].data);
  const int64_t* b = static_cast<const int64_t*>(vs.v[2].data);
  GRID_STRIDE(i, n) {
    int64_t off[3];
    view_offsets<I>(vs, i, off);
    o[off[0]] = compare<OP>(a[off[1]], b[off[2]]);
  }
}

template <class I>
__global__ void logical_not_strided(Views<2> vs, int64_t n) {
  uint8_t* o = static_cast<uint8_t*>(vs.v[0].data);
  GRID_STRIDE(i, n) {
    int64_t off[2];
    view_offsets<I>(vs, i, off);
    o[off[0]] = load_any(vs.v[1], off[1]) == 0;
  }
}

template <class I>
__global__ void where_strided(Views<4> vs, int64_t n) {
  float* o = static_cast<float*>(vs.v[0].data);
  const uint8_t* c = static_cast<const uint8_t*>(vs.v[1].data);
  const float* a = static_cast<const float*>(vs.v[2].data);
  const float* b = static_cast<const float*>(vs.v[3].data);
  GRID_STRIDE(i, n) {
    int64_t off[4];
    view_offsets<I>(vs, i, off);
    o[off[0]] = c[off[1]] ? a[off[2]] : b[off[3]];
  }
}

__global__ void fill_dense_f32(float* out, int64_t n, float v) {
  GRID_STRIDE(i, n) out[i] = v;
}

template <class I>
__global__ void fill_strided(Views<1> vs, int64_t n, double v) {
  GRID_STRIDE(i, n) {
    int64_t off[1];
    view_offsets<I>(vs, i, off);
    store_any(vs.v[0], off[0], v);
  }
}

// Same dtype: move T-sized elements.
template <class I, class T>
__global__ void copy_strided(Views<2> vs, int64_t n) {
  T* o = static_cast<T*>(vs.v[0].data);
  const T* a = static_cast<const T*>(vs.v[1].data);
  GRID_STRIDE(i, n) {
    int64_t off[2];
    view_offsets<I>(vs, i, off);
    o[off[0]] = a[off[1]];
  }
}

// Different dtypes: through double, like the CPU's load/store.
template <class I>
__global__ void convert_strided(Views<2> vs, int64_t n) {
  GRID_STRIDE(i, n) {
    int64_t off[2];
    view_offsets<I>(vs, i, off);
    store_any(vs.v[0], off[0], load_any(vs.v[1], off[1]));
  }
}

// ---- host side ----

// Collapsed copies of N views sharing out's shape, and their element count.
template <int N>
struct Prepared {
  Views<N> vs;
  int64_t n = 0;
  bool dense = false;  // every view is one dense run after collapsing
  bool small = false;  // 32-bit index math is enough
};

template <int N>
Prepared<N> prepare(const View* const (&in)[N]) {
  Prepared<N> p;
  View* ptrs[N];
  for (int k = 0; k < N; ++k) {
    p.vs.v[k] = *in[k];
    p.vs.v[k].ndim = in[0]->ndim;
    for (int d = 0; d < in[0]->ndim; ++d) p.vs.v[k].shape[d] = in[0]->shape[d];
    ptrs[k] = &p.vs.v[k];
  }
  p.n = numel_of(p.vs.v[0]);
  if (p.n == 0) return p;
  collapse<N>(ptrs);
  p.dense = true;
  for (int k = 0; k < N; ++k) p.dense = p.dense && dense_after_collapse(p.vs.v[k]);
  p.small = p.n < (int64_t{1} << 31);
  return p;
}

// Memory-bound kernels need 16-byte accesses to come near the bandwidth
// (a head transpose's copy ran at ~1 TB/s one float at a time). Where every
// view's innermost dim is contiguous, a multiple of 4 long, and every other
// stride and every address keep 16-byte alignment, the views are rescaled
// in place to count 4-element units (broadcast dims keep stride 0): a
// quarter of the threads and of the index math. Returns false, changing
// nothing, where they do not.
template <int N>
bool to_vec4(Prepared<N>& p, std::size_t elem_bytes) {
  const int inner = p.vs.v[0].ndim - 1;
  if (p.vs.v[0].shape[inner] % 4 != 0) return false;
  for (int k = 0; k < N; ++k) {
    const View& v = p.vs.v[k];
    if (v.strides[inner] != 1 || reinterpret_cast<uintptr_t>(v.data) % (4 * elem_bytes) != 0)
      return false;
    for (int d = 0; d < inner; ++d)
      if (v.strides[d] % 4 != 0) return false;
  }
  for (int k = 0; k < N; ++k) {
    p.vs.v[k].shape[inner] /= 4;
    for (int d = 0; d < inner; ++d) p.vs.v[k].strides[d] /= 4;
  }
  p.n /= 4;
  return true;
}

template <UnaryOp OP, class V>
void launch_unary(const Prepared<2>& p, float s) {
  const unsigned blocks = blocks_for(p.n);
  const UnaryF<OP> f{s};
  if (p.dense) {
    unary_dense<<<blocks, kThreads, 0, stream()>>>(static_cast<V*>(p.vs.v[0].data),
                                                   static_cast<const V*>(p.vs.v[1].data), p.n, f);
  } else if (p.small) {
    unary_strided<uint32_t, V><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n, f);
  } else {
    unary_strided<int64_t, V><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n, f);
  }
}

template <UnaryOp OP>
void run_unary(const View& out, const View& in, float s) {
  const View* v[2] = {&out, &in};
  Prepared<2> p = prepare<2>(v);
  if (p.n == 0) return;
  if (to_vec4(p, sizeof(float))) launch_unary<OP, float4>(p, s);
  else launch_unary<OP, float>(p, s);
  ATTN_CUDA_LAUNCHED("unary");
}

template <BinaryOp OP, class V>
void launch_binary(const Prepared<3>& p) {
  const unsigned blocks = blocks_for(p.n);
  const BinaryF<OP> f{};
  if (p.dense) {
    binary_dense<<<blocks, kThreads, 0, stream()>>>(static_cast<V*>(p.vs.v[0].data),
                                                    static_cast<const V*>(p.vs.v[1].data),
                                                    static_cast<const V*>(p.vs.v[2].data), p.n, f);
  } else if (p.small) {
    binary_strided<uint32_t, V><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n, f);
  } else {
    binary_strided<int64_t, V><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n, f);
  }
}

template <BinaryOp OP>
void run_binary(const View& out, const View& a, const View& b) {
  const View* v[3] = {&out, &a, &b};
  Prepared<3> p = prepare<3>(v);
  if (p.n == 0) return;
  if (to_vec4(p, sizeof(float))) launch_binary<OP, float4>(p);
  else launch_binary<OP, float>(p);
  ATTN_CUDA_LAUNCHED("binary");
}

template <BinaryOp OP>
void run_compare(const View& out, const View& a, const View& b) {
  const View* v[3] = {&out, &a, &b};
  Prepared<3> p = prepare<3>(v);
  if (p.n == 0) return;
  const int i64 = static_cast<int>(DType::Int64);
  if (a.dtype == i64 && b.dtype == i64) {
    if (p.small)
      compare_i64_strided<uint32_t, OP><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
    else
      compare_i64_strided<int64_t, OP><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
  } else if (p.small) {
    compare_strided<uint32_t, OP><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
  } else {
    compare_strided<int64_t, OP><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
  }
  ATTN_CUDA_LAUNCHED("compare");
}

}  // namespace

void CudaBackend::fill(const View& out, double value) {
  activate();
  const View* v[1] = {&out};
  Prepared<1> p = prepare<1>(v);
  if (p.n == 0) return;
  if (p.dense && out.dtype == static_cast<int>(DType::Float32)) {
    fill_dense_f32<<<blocks_for(p.n), kThreads, 0, stream()>>>(static_cast<float*>(p.vs.v[0].data),
                                                               p.n, static_cast<float>(value));
  } else if (p.small) {
    fill_strided<uint32_t><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n, value);
  } else {
    fill_strided<int64_t><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n, value);
  }
  ATTN_CUDA_LAUNCHED("fill");
}

void CudaBackend::copy(const View& out, const View& in) {
  activate();
  const View* v[2] = {&out, &in};
  Prepared<2> p = prepare<2>(v);
  if (p.n == 0) return;
  const unsigned blocks = blocks_for(p.n);
  if (out.dtype != in.dtype) {
    if (p.small)
      convert_strided<uint32_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
    else
      convert_strided<int64_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
    ATTN_CUDA_LAUNCHED("copy (convert)");
    return;
  }
  const std::size_t size = dtype_size(static_cast<DType>(out.dtype));
  if (p.dense) {
    ATTN_CUDA_CHECK(cudaMemcpyAsync(p.vs.v[0].data, p.vs.v[1].data, p.n * size,
                                    cudaMemcpyDeviceToDevice, stream()));
    return;
  }
  if (size == 4 && to_vec4(p, size)) {  // float and int32 copies, 16 bytes at a time
    if (p.small)
      copy_strided<uint32_t, uint4><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
    else
      copy_strided<int64_t, uint4><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
    ATTN_CUDA_LAUNCHED("copy");
    return;
  }
  switch (size) {
    case 1:
      if (p.small)
        copy_strided<uint32_t, uint8_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      else
        copy_strided<int64_t, uint8_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      break;
    case 2:
      if (p.small)
        copy_strided<uint32_t, uint16_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      else
        copy_strided<int64_t, uint16_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      break;
    case 4:
      if (p.small)
        copy_strided<uint32_t, uint32_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      else
        copy_strided<int64_t, uint32_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      break;
    default:
      if (p.small)
        copy_strided<uint32_t, uint64_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      else
        copy_strided<int64_t, uint64_t><<<blocks, kThreads, 0, stream()>>>(p.vs, p.n);
      break;
  }
  ATTN_CUDA_LAUNCHED("copy");
}

void CudaBackend::unary(UnaryOp op, const View& out, const View& in, float s) {
  activate();
  switch (op) {
#define ATTN_UNARY(NAME) \
  case UnaryOp::NAME: return run_unary<UnaryOp::NAME>(out, in, s);
    ATTN_UNARY(Neg) ATTN_UNARY(Exp) ATTN_UNARY(Log) ATTN_UNARY(Sqrt) ATTN_UNARY(Rsqrt)
    ATTN_UNARY(Abs) ATTN_UNARY(Sign) ATTN_UNARY(Relu) ATTN_UNARY(Step) ATTN_UNARY(Sigmoid)
    ATTN_UNARY(Tanh) ATTN_UNARY(Gelu) ATTN_UNARY(GeluGrad) ATTN_UNARY(Silu) ATTN_UNARY(SiluGrad)
    ATTN_UNARY(Elu) ATTN_UNARY(EluGrad) ATTN_UNARY(Sin) ATTN_UNARY(Cos) ATTN_UNARY(Square)
    ATTN_UNARY(Reciprocal) ATTN_UNARY(AddScalar) ATTN_UNARY(MulScalar) ATTN_UNARY(PowScalar)
#undef ATTN_UNARY
    case UnaryOp::LogicalNot: {
      const View* v[2] = {&out, &in};
      Prepared<2> p = prepare<2>(v);
      if (p.n == 0) return;
      if (p.small)
        logical_not_strided<uint32_t><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
      else
        logical_not_strided<int64_t><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
      ATTN_CUDA_LAUNCHED("logical_not");
      return;
    }
  }
  fail("cuda unary: unknown op ", static_cast<int>(op));
}

void CudaBackend::binary(BinaryOp op, const View& out, const View& a, const View& b) {
  activate();
  switch (op) {
    case BinaryOp::Add: return run_binary<BinaryOp::Add>(out, a, b);
    case BinaryOp::Sub: return run_binary<BinaryOp::Sub>(out, a, b);
    case BinaryOp::Mul: return run_binary<BinaryOp::Mul>(out, a, b);
    case BinaryOp::Div: return run_binary<BinaryOp::Div>(out, a, b);
    case BinaryOp::Max: return run_binary<BinaryOp::Max>(out, a, b);
    case BinaryOp::Min: return run_binary<BinaryOp::Min>(out, a, b);
    case BinaryOp::Pow: return run_binary<BinaryOp::Pow>(out, a, b);
    case BinaryOp::GeluBackward: return run_binary<BinaryOp::GeluBackward>(out, a, b);
    case BinaryOp::Gt: return run_compare<BinaryOp::Gt>(out, a, b);
    case BinaryOp::Ge: return run_compare<BinaryOp::Ge>(out, a, b);
    case BinaryOp::Lt: return run_compare<BinaryOp::Lt>(out, a, b);
    case BinaryOp::Le: return run_compare<BinaryOp::Le>(out, a, b);
    case BinaryOp::Eq: return run_compare<BinaryOp::Eq>(out, a, b);
    case BinaryOp::Ne: return run_compare<BinaryOp::Ne>(out, a, b);
    case BinaryOp::And: return run_compare<BinaryOp::And>(out, a, b);
    case BinaryOp::Or: return run_compare<BinaryOp::Or>(out, a, b);
  }
  fail("cuda binary: unknown op ", static_cast<int>(op));
}

void CudaBackend::where(const View& out, const View& cond, const View& a, const View& b) {
  activate();
  const View* v[4] = {&out, &cond, &a, &b};
  Prepared<4> p = prepare<4>(v);
  if (p.n == 0) return;
  if (p.small)
    where_strided<uint32_t><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
  else
    where_strided<int64_t><<<blocks_for(p.n), kThreads, 0, stream()>>>(p.vs, p.n);
  ATTN_CUDA_LAUNCHED("where");
}

}  // namespace attn
