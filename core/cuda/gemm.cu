// Matrix products on the GPU: cuBLAS, and cuBLASLt where a Linear layer's
// bias (and GELU) can ride in the product's epilogue or its operands are
// bfloat16. Everything is queued on the thread's stream (cuda::stream()).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/cuda/cublas_library.h"
#include "core/cuda/cuda_internal.cuh"
#include "core/cuda/cuda_settings.h"

namespace attn {

// ---- matrix products ----
//
// cuBLAS is column-major. A row-major M x N matrix C with leading dimension
// N is, read column-major, the N x M matrix C^T; so C = op(A) op(B) is
// computed as C^T = op(B)^T op(A)^T, i.e. cuBLAS gets B first, then A, with
// the same trans flags and leading dimensions, and m and n swapped.

namespace {

__global__ void scale_kernel(float* c, int64_t n, float beta) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    c[i] = beta == 0.0f ? 0.0f : beta * c[i];
}

bool arithmetic(const int64_t* off, int64_t n, int64_t& step) {
  step = n > 1 ? off[1] - off[0] : 0;
  for (int64_t i = 2; i < n; ++i)
    if (off[i] - off[i - 1] != step) return false;
  return true;
}

}  // namespace

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.batch <= 0 || g.m <= 0 || g.n <= 0) return;
  activate();
  const bool epilogue = g.bias || g.gelu_aux;
  check(!epilogue || g.batch == 1, "gemm: a bias or GELU epilogue needs batch 1, got ", g.batch);
  const bool bf16 = g.a_bf16 || g.b_bf16;
  check(!bf16 || (g.a_bf16 && g.b_bf16 && g.batch == 1), "gemm: bfloat16 operands come in pairs, batch 1");
  if ((epilogue || bf16) && g.k > 0 && gemm_lt(g)) return;
  if (bf16 && g.k > 0)
    gemm_bf16(g);
  else
    gemm_blas(g);
  if (epilogue) gemm_epilogue_passes(g);
}

// bfloat16 operands where cuBLASLt has no kernel for the layout: cuBLAS's
// mixed-type product, float32 sums and output.
void CudaBackend::gemm_bf16(const GemmArgs& g) {
  cublasHandle_t h = blas();
  const cuda::CublasLibrary& lib = cuda::cublas_library();
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = static_cast<int>(g.n), n = static_cast<int>(g.m), k = static_cast<int>(g.k);
  ATTN_CUBLAS_CHECK(lib.cublasGemmEx(h, op_b, op_a, m, n, k, &g.alpha, g.b_bf16 + g.b_offsets[0], CUDA_R_16BF,
                                     static_cast<int>(g.ldb), g.a_bf16 + g.a_offsets[0], CUDA_R_16BF,
                                     static_cast<int>(g.lda), &g.beta, g.c, CUDA_R_32F, m,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void CudaBackend::gemm_blas(const GemmArgs& g) {
  if (g.k <= 0) {  // an empty sum: C = beta * C
    const int64_t n = g.batch * g.m * g.n;
    scale_kernel<<<cuda::blocks_for(n), cuda::kThreads, 0, cuda::stream()>>>(g.c, n, g.beta);
    ATTN_CUDA_LAUNCHED("scale_kernel");
    return;
  }
  cublasHandle_t h = blas();
  const cuda::CublasLibrary& lib = cuda::cublas_library();
  ATTN_CUBLAS_CHECK(lib.cublasSetMathMode(h, cuda_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH
                                                         : CUBLAS_DEFAULT_MATH));
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int m = static_cast<int>(g.n), n = static_cast<int>(g.m), k = static_cast<int>(g.k);
  const int ldb = static_cast<int>(g.ldb), lda = static_cast<int>(g.lda), ldc = m;
  const float alpha = g.alpha, beta = g.beta;
  const int64_t c_step = g.m * g.n;
  constexpr int64_t kChunk = 65535;  // batches per cuBLAS call

  if (g.batch == 1) {
    ATTN_CUBLAS_CHECK(lib.cublasSgemm(h, op_b, op_a, m, n, k, &alpha, g.b + g.b_offsets[0],
                                      ldb, g.a + g.a_offsets[0], lda, &beta, g.c, ldc));
    return;
  }
  int64_t sa = 0, sb = 0;
  if (arithmetic(g.a_offsets, g.batch, sa) && arithmetic(g.b_offsets, g.batch, sb)) {
    for (int64_t b0 = 0; b0 < g.batch; b0 += kChunk) {
      const int count = static_cast<int>(std::min(kChunk, g.batch - b0));
      ATTN_CUBLAS_CHECK(lib.cublasSgemmStridedBatched(
          h, op_b, op_a, m, n, k, &alpha, g.b + g.b_offsets[0] + b0 * sb, ldb, sb,
          g.a + g.a_offsets[0] + b0 * sa, lda, sa, &beta, g.c + b0 * c_step, ldc, c_step, count));
    }
    return;
  }
  // Irregular batch offsets (e.g. a broadcast batch dim in the middle): one
  // pointer per batch entry, copied to the device.
  std::vector<const float*> ptrs(3 * g.batch);
  for (int64_t b = 0; b < g.batch; ++b) {
    ptrs[b] = g.b + g.b_offsets[b];
    ptrs[g.batch + b] = g.a + g.a_offsets[b];
    ptrs[2 * g.batch + b] = g.c + b * c_step;
  }
  Buffer dev(this, ptrs.size() * sizeof(float*));
  copy_from_host(dev.ptr, ptrs.data(), ptrs.size() * sizeof(float*));
  const float* const* dptrs = dev.as<const float*>();
  for (int64_t b0 = 0; b0 < g.batch; b0 += kChunk) {
    const int count = static_cast<int>(std::min(kChunk, g.batch - b0));
    ATTN_CUBLAS_CHECK(lib.cublasSgemmBatched(h, op_b, op_a, m, n, k, &alpha, dptrs + b0, ldb,
                                             dptrs + g.batch + b0, lda, &beta,
                                             const_cast<float* const*>(dptrs + 2 * g.batch + b0),
                                             ldc, count));
  }
}

// ---- the epilogue: a Linear layer's bias and GELU ----
//
// cuBLASLt adds the bias to each output tile while it is still in
// registers: the product's result is written once instead of being read back
// and rewritten by a bias-add pass. With GELU the product (plus bias) is
// written to the pre-activation buffer the backward needs, and one GELU pass
// reads it and writes the output. (cuBLASLt's own GELU_AUX epilogue ran as a
// separate kernel on these fp32/tf32 products, at 110 us against our 64 us
// pass for the MLP's [16384, 1536].)

namespace {

constexpr std::size_t kLtWorkspace = std::size_t{4} << 20;

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// A product's m x n row-major output (or a buffer of that shape) as a View.
View output_view(const GemmArgs& g, float* data) {
  View v;
  v.data = data;
  v.dtype = static_cast<int>(DType::Float32);
  v.ndim = 2;
  v.shape[0] = g.m, v.shape[1] = g.n;
  v.strides[0] = g.n, v.strides[1] = 1;
  return v;
}

// The descriptors of one cuBLASLt call, destroyed on every path out.
struct LtCall {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtCall() {
    const cuda::CublasLibrary& lib = cuda::cublas_library();
    if (pref) lib.cublasLtMatmulPreferenceDestroy(pref);
    if (c) lib.cublasLtMatrixLayoutDestroy(c);
    if (b) lib.cublasLtMatrixLayoutDestroy(b);
    if (a) lib.cublasLtMatrixLayoutDestroy(a);
    if (op) lib.cublasLtMatmulDescDestroy(op);
  }
};

template <class T>
void set_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const T& value) {
  ATTN_CUBLAS_CHECK(
      cuda::cublas_library().cublasLtMatmulDescSetAttribute(d, attr, &value, sizeof(value)));
}

}  // namespace

bool CudaBackend::gemm_lt(const GemmArgs& g) {
  // Column-major as in gemm_blas: D (n x m here) = op(B) op(A), so cuBLASLt's
  // "A" is our B and its "B" our A. Its kernels load 16 bytes at a time:
  // other alignments take the plain path.
  // bfloat16 operands: 2-byte elements (16 bytes = 8 of them), float32 sums.
  const bool bf16 = g.a_bf16 != nullptr;
  const void* lt_a = bf16 ? static_cast<const void*>(g.b_bf16 + g.b_offsets[0]) : g.b + g.b_offsets[0];
  const void* lt_b = bf16 ? static_cast<const void*>(g.a_bf16 + g.a_offsets[0]) : g.a + g.a_offsets[0];
  const int64_t per16 = bf16 ? 8 : 4;
  const cudaDataType_t ab_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
  if (!aligned16(lt_a) || !aligned16(lt_b) || !aligned16(g.c) || g.lda % per16 || g.ldb % per16 ||
      g.n % 4 || (g.bias && !aligned16(g.bias)) ||
      (g.gelu_aux && !aligned16(g.gelu_aux)))
    return false;
  const cublasOperation_t op_a = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const uint64_t m = g.n, n = g.m, k = g.k;
  const cuda::CublasLibrary& lib = cuda::cublas_library();
  LtCall call;
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmulDescCreate(
      &call.op, cuda_tf32() && !bf16 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F));
  set_attr(call.op, CUBLASLT_MATMUL_DESC_TRANSA, op_a);
  set_attr(call.op, CUBLASLT_MATMUL_DESC_TRANSB, op_b);
  set_attr(call.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
           g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
  if (g.bias) set_attr(call.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, g.bias);
  float* d = g.gelu_aux ? g.gelu_aux : g.c;  // with GELU, the product goes to the pre-activation
  const bool ta = op_a == CUBLAS_OP_T, tb = op_b == CUBLAS_OP_T;
  ATTN_CUBLAS_CHECK(
      lib.cublasLtMatrixLayoutCreate(&call.a, ab_type, ta ? k : m, ta ? m : k, g.ldb));
  ATTN_CUBLAS_CHECK(
      lib.cublasLtMatrixLayoutCreate(&call.b, ab_type, tb ? n : k, tb ? k : n, g.lda));
  ATTN_CUBLAS_CHECK(lib.cublasLtMatrixLayoutCreate(&call.c, CUDA_R_32F, m, n, m));
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmulPreferenceCreate(&call.pref));
  const uint64_t workspace = kLtWorkspace;
  const uint32_t align = 16;
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmulPreferenceSetAttribute(
      call.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
  for (const auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    ATTN_CUBLAS_CHECK(
        lib.cublasLtMatmulPreferenceSetAttribute(call.pref, attr, &align, sizeof(align)));
  cublasLtMatmulHeuristicResult_t best = {};
  int found = 0;
  if (lib.cublasLtMatmulAlgoGetHeuristic(blas_lt(), call.op, call.a, call.b, call.c, call.c,
                                         call.pref, 1, &best, &found) != CUBLAS_STATUS_SUCCESS ||
      found == 0)
    return false;
  Buffer ws(this, std::max<std::size_t>(best.workspaceSize, 16));
  ATTN_CUBLAS_CHECK(lib.cublasLtMatmul(blas_lt(), call.op, &g.alpha, lt_a, call.a, lt_b, call.b,
                                       &g.beta, g.c, call.c, d, call.c, &best.algo, ws.ptr,
                                       best.workspaceSize, cuda::stream()));
  if (g.gelu_aux) unary(UnaryOp::Gelu, output_view(g, g.c), output_view(g, g.gelu_aux), 0.0f);
  return true;
}

void CudaBackend::gemm_epilogue_passes(const GemmArgs& g) {
  const View c = output_view(g, g.c);
  if (g.bias) {
    View bias = c;  // each row reads the same n values
    bias.data = const_cast<float*>(g.bias);
    bias.strides[0] = 0;
    binary(BinaryOp::Add, c, c, bias);
  }
  if (g.gelu_aux) {
    const View aux = output_view(g, g.gelu_aux);
    copy(aux, c);
    unary(UnaryOp::Gelu, c, aux, 0.0f);
  }
}

}  // namespace attn
