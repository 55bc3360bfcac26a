// Matrix products on the CPU: one OpenBLAS sgemm per batch entry. Transposed
// views are passed to BLAS as "transposed" flags, never copied. The epilogue
// (bias, GELU) runs as plain passes after the product: the reference for
// the fused cuBLASLt epilogue of the CUDA backend.
#include <cblas.h>

#include <algorithm>

#include "core/cpu/cpu_backend.h"
#include "core/dtype.h"
#include "core/error.h"

namespace attn {

void CpuBackend::gemm(const GemmArgs& g) {
  for (int64_t b = 0; b < g.batch; ++b) {
    cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
                g.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(g.m),
                static_cast<int>(g.n), static_cast<int>(g.k), g.alpha, g.a + g.a_offsets[b],
                static_cast<int>(g.lda), g.b + g.b_offsets[b], static_cast<int>(g.ldb), g.beta,
                g.c + b * g.m * g.n, static_cast<int>(g.n));
  }
  if (!g.bias && !g.gelu_aux) return;
  check(g.batch == 1, "gemm: a bias or GELU epilogue needs batch 1, got ", g.batch);
  const int64_t count = g.m * g.n;
  if (g.bias)
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) g.c[i * g.n + j] += g.bias[j];
  if (g.gelu_aux) {
    std::copy(g.c, g.c + count, g.gelu_aux);
    View v;
    v.data = g.c;
    v.dtype = static_cast<int>(DType::Float32);
    v.ndim = 1;
    v.shape[0] = count;
    v.strides[0] = 1;
    unary(UnaryOp::Gelu, v, v, 0.0f);
  }
}

}  // namespace attn
