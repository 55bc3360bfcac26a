// NCCL, the library GPUs exchange gradients and K/V blocks through, opened
// at run time like cuBLAS (core/cuda/cublas_library.h says why a library is
// opened rather than linked). NCCL does not come with the CUDA toolkit: it
// comes with PyTorch's CUDA wheels (the nvidia-nccl-cu13 package, inside
// PyTorch's Python environment, off the loader's path), or as a system
// package. So it is looked for, in order:
//   1. ATTNLAB_NCCL_LIBRARY, the path of the library file, when set;
//   2. libnccl.so.2 through the dynamic loader (LD_LIBRARY_PATH, the
//      system folders);
//   3. nvidia/nccl/lib/libnccl.so.2 in the Python environments PyTorch is
//      installed in: $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local,
//      /usr (their lib/python3.*/{site,dist}-packages).
// A build and a run without it work: only a call that needs NCCL fails,
// saying where it looked and how to get it.
//
// The declarations are the few of NCCL's stable C interface that attnlab
// calls, written out here so that building needs no NCCL header.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace attn::comm {

using NcclComm = struct NcclCommOpaque*;
struct NcclUniqueId {
  char bytes[128];
};
enum NcclResult : int { kNcclSuccess = 0, kNcclInProgress = 7 };
enum NcclType : int { kNcclFloat32 = 7, kNcclFloat64 = 8 };
enum NcclOp : int { kNcclSum = 0, kNcclMax = 2 };
using CudaStream = void*;  // cudaStream_t

struct NcclLibrary {
  std::string path;  // the file that was opened
  int (*ncclGetVersion)(int* version) = nullptr;
  int (*ncclGetUniqueId)(NcclUniqueId* id) = nullptr;
  int (*ncclCommInitRank)(NcclComm* comm, int nranks, NcclUniqueId id, int rank) = nullptr;
  int (*ncclCommDestroy)(NcclComm comm) = nullptr;
  int (*ncclCommAbort)(NcclComm comm) = nullptr;
  int (*ncclCommGetAsyncError)(NcclComm comm, int* error) = nullptr;
  const char* (*ncclGetErrorString)(int result) = nullptr;
  int (*ncclAllReduce)(const void* in, void* out, std::size_t count, int type, int op, NcclComm comm,
                       CudaStream stream) = nullptr;
  int (*ncclAllGather)(const void* in, void* out, std::size_t count, int type, NcclComm comm,
                       CudaStream stream) = nullptr;
  int (*ncclReduceScatter)(const void* in, void* out, std::size_t count, int type, int op,
                           NcclComm comm, CudaStream stream) = nullptr;
  int (*ncclSend)(const void* data, std::size_t count, int type, int peer, NcclComm comm,
                  CudaStream stream) = nullptr;
  int (*ncclRecv)(void* data, std::size_t count, int type, int peer, NcclComm comm,
                  CudaStream stream) = nullptr;
  int (*ncclGroupStart)() = nullptr;
  int (*ncclGroupEnd)() = nullptr;
};

// Opens NCCL on the first call (thread-safe; it stays open) and returns
// its table; fails with every place it looked and how to get it.
const NcclLibrary& nccl_library();
// The search itself, run afresh (nccl_library() keeps its first success).
std::unique_ptr<NcclLibrary> open_nccl_library();
// Whether nccl_library() would succeed (never fails).
bool nccl_available();
// "2.27.3"
std::string nccl_version(const NcclLibrary& lib);

}  // namespace attn::comm
