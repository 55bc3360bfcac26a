// Matrix products on the CPU: OpenBLAS sgemm on pieces of the product, the
// pieces spread over our thread pool. Transposed views are passed to BLAS
// as "transposed" flags, never copied.
//
// How a product is cut: a batch of products runs one entry per piece; a
// single product is cut along the longer side of C into blocks of rows (or
// columns) of kBlock. Each element of C is one dot product over k either
// way, so the cut never changes its value — but OpenBLAS picks a different
// kernel for small products than for large ones, and those may round
// differently. So the cut depends on the shape alone, never on the thread
// count: one thread and eight compute the same pieces, bitwise.
//
// The epilogue (bias, GELU) runs on each block right after its product,
// while the block is still in cache: the CPU twin of the fused cuBLASLt
// epilogue of the CUDA backend.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/bfloat16.h"
#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"
#include "core/cpu/vmath.h"
#include "core/error.h"

namespace attn {
using namespace cpu;

namespace {

// Rows or columns per block. Each block packs the whole other operand
// again, which costs about 15 / kBlock of the product's time: 128 keeps that
// near a tenth while a [768, 512] output still makes 6 blocks to share.
constexpr int64_t kBlock = 128;
// Below this many multiply-adds a product is one piece: waking threads and
// packing operands twice would cost more than it saves.
constexpr int64_t kMinSplitWork = 1 << 21;

// c (rows x cols, leading dimension ldc) += bias; then gelu_aux = c and
// c = gelu(c), one row at a time while it is in cache.
ATTN_VECTOR_CLONES void epilogue(float* c, int64_t ldc, float* aux, const float* bias,
                                 int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = c + i * ldc;
    if (bias)
      for (int64_t j = 0; j < cols; ++j) row[j] += bias[j];
    if (aux) {
      float* a = aux + i * ldc;
      for (int64_t j = 0; j < cols; ++j) {
        a[j] = row[j];
        row[j] = vmath::gelu(row[j]);
      }
    }
  }
}

void sgemm(const GemmArgs& g, int64_t m, int64_t n, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans,
              g.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(g.k), g.alpha, a, static_cast<int>(g.lda), b,
              static_cast<int>(g.ldb), g.beta, c, static_cast<int>(g.n));
}

// A bfloat16 operand widened to float32 (exactly: bfloat16 is float32's
// top half), over the span its layout touches: `rows` stored rows of
// `cols` values, `ld` apart. The product is then float32 sgemm on the same
// values, which is what bfloat16 tensor cores compute too.
std::vector<float> widen(const uint16_t* from, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t n = rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
  std::vector<float> out(static_cast<std::size_t>(n));
  parallel_for(n, int64_t{1} << 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) out[i] = bf16_to_float(from[i]);
  });
  return out;
}

}  // namespace

void CpuBackend::gemm(const GemmArgs& g) {
  const bool has_epilogue = g.bias || g.gelu_aux;
  check(g.batch == 1 || !has_epilogue, "gemm: a bias or GELU epilogue needs batch 1, got ", g.batch);
  if (g.a_bf16 || g.b_bf16) {
    check(g.a_bf16 && g.b_bf16 && g.batch == 1, "gemm: bfloat16 operands come in pairs, batch 1");
    const std::vector<float> a = widen(g.a_bf16 + g.a_offsets[0], g.trans_a ? g.k : g.m,
                                       g.trans_a ? g.m : g.k, g.lda);
    const std::vector<float> b = widen(g.b_bf16 + g.b_offsets[0], g.trans_b ? g.n : g.k,
                                       g.trans_b ? g.k : g.n, g.ldb);
    GemmArgs f = g;
    f.a = a.data(), f.b = b.data(), f.a_bf16 = f.b_bf16 = nullptr;
    const int64_t zero = 0;
    f.a_offsets = f.b_offsets = &zero;
    return gemm(f);
  }
  const int64_t work = g.m * g.n * g.k;
  if (g.batch > 1) {
    // Small products (attention's per-head ones) are grouped so a piece is
    // still worth a thread's wake-up.
    const int64_t per_piece = std::max<int64_t>(1, kMinSplitWork / std::max<int64_t>(work, 1));
    parallel_for(g.batch, per_piece, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        sgemm(g, g.m, g.n, g.a + g.a_offsets[b], g.b + g.b_offsets[b], g.c + b * g.m * g.n);
    });
    return;
  }
  const float* a = g.a + g.a_offsets[0];
  const float* b = g.b + g.b_offsets[0];
  // Row block [i0, i1) of C needs rows i0.. of op(A): A's rows, or its
  // columns when A is transposed. Likewise columns of op(B).
  auto rows_block = [&](int64_t i0, int64_t i1) {
    sgemm(g, i1 - i0, g.n, a + i0 * (g.trans_a ? 1 : g.lda), b, g.c + i0 * g.n);
    epilogue(g.c + i0 * g.n, g.n, g.gelu_aux ? g.gelu_aux + i0 * g.n : nullptr, g.bias, i1 - i0, g.n);
  };
  auto cols_block = [&](int64_t j0, int64_t j1) {
    sgemm(g, g.m, j1 - j0, a, b + j0 * (g.trans_b ? g.ldb : 1), g.c + j0);
    epilogue(g.c + j0, g.n, g.gelu_aux ? g.gelu_aux + j0 : nullptr, g.bias ? g.bias + j0 : nullptr,
             g.m, j1 - j0);
  };
  if (work < kMinSplitWork)
    rows_block(0, g.m);
  else if (g.m >= g.n)
    parallel_for(g.m, kBlock, rows_block);
  else
    parallel_for(g.n, kBlock, cols_block);
}

}  // namespace attn
