// Matrix products on the CPU: one OpenBLAS sgemm per batch entry. Transposed
// views are passed to BLAS as "transposed" flags, never copied.
#include <cblas.h>

#include "core/cpu/cpu_backend.h"

namespace attn {

void CpuBackend::gemm(const GemmArgs& g) {
  for (int64_t b = 0; b < g.batch; ++b) {
    cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
                g.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(g.m),
                static_cast<int>(g.n), static_cast<int>(g.k), g.alpha, g.a + g.a_offsets[b],
                static_cast<int>(g.lda), g.b + g.b_offsets[b], static_cast<int>(g.ldb), g.beta,
                g.c + b * g.m * g.n, static_cast<int>(g.n));
  }
}

}  // namespace attn
