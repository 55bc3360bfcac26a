// Finds and opens NCCL (nccl_library.h says where it looks and why).
#include "core/comm/nccl_library.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include "core/error.h"

namespace attn::comm {

namespace {

namespace fs = std::filesystem;

// nvidia/nccl/lib/libnccl.so.2 under each prefix's lib/python3.*/{site,dist}-packages.
std::vector<std::string> python_environment_candidates() {
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"})
    if (const char* v = std::getenv(var); v && *v) prefixes.push_back(v);
  if (const char* home = std::getenv("HOME"); home && *home) prefixes.push_back(std::string(home) + "/.local");
  prefixes.push_back("/usr/local");
  prefixes.push_back("/usr");
  std::vector<std::string> found;
  for (const std::string& prefix : prefixes) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(prefix + "/lib", ec)) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("python3", 0) != 0) continue;
      for (const char* packages : {"site-packages", "dist-packages"}) {
        const fs::path lib = entry.path() / packages / "nvidia/nccl/lib/libnccl.so.2";
        if (fs::exists(lib, ec)) found.push_back(lib.string());
      }
    }
  }
  return found;
}

// The first candidate that opens; `tried` lists each failure.
void* open_nccl(std::string& path, std::string& tried) {
  auto attempt = [&](const std::string& p) -> void* {
    void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (h) path = p;
    else tried += "\n  " + p + ": " + dlerror();
    return h;
  };
  if (const char* override_path = std::getenv("ATTNLAB_NCCL_LIBRARY"); override_path && *override_path) {
    void* h = attempt(override_path);
    if (!h)
      fail("NCCL could not be opened from ATTNLAB_NCCL_LIBRARY='", override_path, "':", tried,
           "\nset it to the path of libnccl.so.2, or unset it to search the usual places");
    return h;
  }
  if (void* h = attempt("libnccl.so.2")) return h;
  for (const std::string& p : python_environment_candidates())
    if (void* h = attempt(p)) return h;
  tried += "\n  (no nvidia/nccl/lib/libnccl.so.2 in the Python environments under $VIRTUAL_ENV, "
           "$CONDA_PREFIX, ~/.local, /usr/local, /usr)";
  return nullptr;
}

}  // namespace

std::unique_ptr<NcclLibrary> open_nccl_library() {
  std::string path, tried;
  void* handle = open_nccl(path, tried);
  if (!handle)
    fail("NCCL, which several GPUs exchange data through, was not found:", tried,
         "\nget it with PyTorch's CUDA wheels or on its own (pip install nvidia-nccl-cu13; "
         "Debian/Ubuntu: apt-get install libnccl2), or point ATTNLAB_NCCL_LIBRARY at libnccl.so.2");
  auto lib = std::make_unique<NcclLibrary>();
  lib->path = path;
#define ATTN_NCCL_LOAD(fn)                                                       \
  lib->fn = reinterpret_cast<decltype(lib->fn)>(dlsym(handle, #fn));             \
  if (!lib->fn) fail("NCCL: ", path, " has no ", #fn, " (an NCCL older than 2.7?)");
  ATTN_NCCL_LOAD(ncclGetVersion) ATTN_NCCL_LOAD(ncclGetUniqueId) ATTN_NCCL_LOAD(ncclCommInitRank)
  ATTN_NCCL_LOAD(ncclCommDestroy) ATTN_NCCL_LOAD(ncclCommAbort) ATTN_NCCL_LOAD(ncclCommGetAsyncError)
  ATTN_NCCL_LOAD(ncclGetErrorString) ATTN_NCCL_LOAD(ncclAllReduce) ATTN_NCCL_LOAD(ncclAllGather)
  ATTN_NCCL_LOAD(ncclReduceScatter) ATTN_NCCL_LOAD(ncclSend) ATTN_NCCL_LOAD(ncclRecv)
  ATTN_NCCL_LOAD(ncclGroupStart) ATTN_NCCL_LOAD(ncclGroupEnd)
#undef ATTN_NCCL_LOAD
  return lib;
}

const NcclLibrary& nccl_library() {
  // Loaded once; a failure is reported again on every call (the message
  // matters more than the cost of looking twice).
  static std::mutex mutex;
  static std::unique_ptr<NcclLibrary> library;
  std::lock_guard<std::mutex> lock(mutex);
  if (!library) library = open_nccl_library();
  return *library;
}

bool nccl_available() {
  try {
    nccl_library();
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::string nccl_version(const NcclLibrary& lib) {
  int v = 0;
  lib.ncclGetVersion(&v);
  // NCCL >= 2.9 encodes major * 10000 + minor * 100 + patch.
  return str(v / 10000, ".", (v / 100) % 100, ".", v % 100);
}

}  // namespace attn::comm
