// cuBLAS opened at run time (core/cuda/cublas_library.h). None of this needs
// a GPU: the library opens on any machine with the toolkit, and cuBLASLt's
// descriptor functions run on the host. So CI checks what matters here: no
// process maps libcublas until it asks for it, every name in the table is a
// real symbol, and calls reach the library through it.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#ifdef ATTNLAB_WITH_CUDA
#include "core/cuda/cublas_library.h"
#endif

namespace {

#ifdef ATTNLAB_WITH_CUDA
bool cublas_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::stringstream text;
  text << maps.rdbuf();
  return text.str().find("libcublas") != std::string::npos;
}

// Read before main(), before any test could have opened the library.
const bool g_mapped_at_start = cublas_mapped();

TEST(CublasLibrary, NotLoadedUntilAskedForThenEveryFunctionFound) {
  EXPECT_FALSE(g_mapped_at_start) << "the program links libcublas: every process pays for it";
  const attn::cuda::CublasLibrary& lib = attn::cuda::cublas_library();
  EXPECT_TRUE(cublas_mapped());
  EXPECT_EQ(&lib, &attn::cuda::cublas_library()) << "opened twice";
#define EXPECT_FOUND(fn) EXPECT_NE(lib.fn, nullptr) << #fn;
  ATTN_CUBLAS_FUNCTIONS(EXPECT_FOUND)
#undef EXPECT_FOUND
}

TEST(CublasLibrary, HostSideCallsReachTheLibrary) {
  const attn::cuda::CublasLibrary& lib = attn::cuda::cublas_library();
  cublasLtMatmulDesc_t op = nullptr;
  ASSERT_EQ(lib.cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
            CUBLAS_STATUS_SUCCESS);
  const cublasOperation_t trans = CUBLAS_OP_T;
  EXPECT_EQ(lib.cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans,
                                               sizeof(trans)),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lib.cublasLtMatmulDescDestroy(op), CUBLAS_STATUS_SUCCESS);

  cublasLtMatrixLayout_t layout = nullptr;
  ASSERT_EQ(lib.cublasLtMatrixLayoutCreate(&layout, CUDA_R_32F, 4, 3, 4), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lib.cublasLtMatrixLayoutDestroy(layout), CUBLAS_STATUS_SUCCESS);
  // The library's own checks answer too: an attribute of the wrong size.
  ASSERT_EQ(lib.cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(lib.cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans, 1),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(lib.cublasLtMatmulDescDestroy(op), CUBLAS_STATUS_SUCCESS);
}
#else
TEST(CublasLibrary, NeedsACudaBuild) { GTEST_SKIP() << "attnlab was built without CUDA"; }
#endif

}  // namespace
