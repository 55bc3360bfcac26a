// Opens libcublas (see cublas_library.h for why it is not linked).
#include "core/cuda/cublas_library.h"

#include <dlfcn.h>

#include <memory>
#include <string>

#include "core/error.h"

// Where CMake found libcublas, for when the dynamic loader's search (the
// program's run path, LD_LIBRARY_PATH, the system folders) misses it.
#ifndef ATTNLAB_CUBLAS_PATH
#define ATTNLAB_CUBLAS_PATH ""
#endif

// The symbol a name stands for, after cublas_v2.h's macros: "cublasSgemm_v2".
#define ATTN_SYMBOL_TEXT(name) #name
#define ATTN_SYMBOL_OF(name) ATTN_SYMBOL_TEXT(name)

namespace attn {
namespace cuda {

namespace {

// By its versioned name first (the one the toolkit's headers were made
// for), then by the path CMake saw at build time.
void* open_cublas(std::string& tried) {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* handle = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle) return handle;
  tried = soname + " (" + dlerror() + ")";
  const std::string path = ATTNLAB_CUBLAS_PATH;
  if (path.empty()) return nullptr;
  handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) tried += " and " + path + " (" + dlerror() + ")";
  return handle;
}

}  // namespace

const CublasLibrary& cublas_library() {
  // Never unloaded: cuBLAS handles are destroyed at exit (cuda_backend.cu).
  static const CublasLibrary* library = [] {
    std::string tried;
    void* handle = open_cublas(tried);
    if (!handle) fail("cuBLAS could not be loaded: tried ", tried);
    auto lib = std::make_unique<CublasLibrary>();
    // libcublas loads libcublasLt beside it, so one handle finds both.
#define ATTN_CUBLAS_LOAD(fn)                                                      \
  lib->fn = reinterpret_cast<decltype(lib->fn)>(dlsym(handle, ATTN_SYMBOL_OF(fn))); \
  if (!lib->fn) fail("cuBLAS: the loaded libcublas has no ", ATTN_SYMBOL_OF(fn));
    ATTN_CUBLAS_FUNCTIONS(ATTN_CUBLAS_LOAD)
    ATTN_CUBLAS_LOAD(cublasGemmEx)
#undef ATTN_CUBLAS_LOAD
    return lib.release();
  }();
  return *library;
}

}  // namespace cuda
}  // namespace attn
