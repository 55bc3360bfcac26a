// cuBLAS, opened the first time a GPU matrix product needs it.
//
// Why not link it like any other library: libcublasLt is over 500 MB, and
// loading it costs about a third of a second in every process that links
// it, whether or not that process ever touches a GPU. The test suite starts
// some 500 processes, almost all of them CPU-only. So the backend opens
// libcublas with dlopen when it makes its first cuBLAS handle, and calls it
// through this table of function pointers; a CPU-only process never loads it.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

namespace attn {
namespace cuda {

// Every cuBLAS and cuBLASLt function the backend calls. cublas_v2.h turns
// some of these names into macros for their `_v2` symbols (cublasSgemm is
// cublasSgemm_v2); the table is spelled through the same macros, so a call
// written `lib.cublasSgemm(...)` reaches the right symbol.
#define ATTN_CUBLAS_FUNCTIONS(X)                                                              \
  X(cublasCreate) X(cublasDestroy) X(cublasSetStream) X(cublasSetMathMode) X(cublasSgemm)      \
  X(cublasSgemmStridedBatched) X(cublasSgemmBatched) X(cublasLtCreate) X(cublasLtDestroy)      \
  X(cublasLtMatmulDescCreate) X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute)   \
  X(cublasLtMatrixLayoutCreate) X(cublasLtMatrixLayoutDestroy) X(cublasLtMatmulPreferenceCreate) \
  X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)                   \
  X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)

struct CublasLibrary {
#define ATTN_CUBLAS_POINTER(fn) decltype(&::fn) fn = nullptr;
  ATTN_CUBLAS_FUNCTIONS(ATTN_CUBLAS_POINTER)
#undef ATTN_CUBLAS_POINTER
  // The mixed-type product (bfloat16 operands). cublas_api.h overloads its
  // name with an inline C++ wrapper, so the exported function's type is
  // spelled out.
  cublasStatus_t (*cublasGemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                 const void*, const void*, cudaDataType, int, const void*, cudaDataType,
                                 int, const void*, void*, cudaDataType, int, cublasComputeType_t,
                                 cublasGemmAlgo_t) = nullptr;
};

// Opens libcublas on the first call (thread-safe; it stays open until the
// process ends) and returns the table. Fails, naming the library and the
// loader's reason, when it cannot be opened or lacks a function.
const CublasLibrary& cublas_library();

}  // namespace cuda
}  // namespace attn
