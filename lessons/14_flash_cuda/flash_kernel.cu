// Chapter 14 — your CUDA flash attention forward. Read README.md first; the
// contract is in flash_kernel.h. A suggested shape (the README explains it):
//
//   __global__ void flash_forward_kernel(attn::FlashArgs a) { ... }
//
//   void flash_forward_launch(const attn::FlashArgs& a) {
//     dim3 grid(...), block(...);
//     flash_forward_kernel<<<grid, block, shared_bytes>>>(a);
//     check cudaGetLastError() and throw attn::Error if the launch failed
//   }
#include <cuda_runtime.h>

#include "core/error.h"
#include "flash_kernel.h"

namespace lesson14 {

void flash_forward_launch(const attn::FlashArgs& a) {
  (void)a;
  throw attn::NotImplemented(
      "lesson 14 (flash attention in CUDA): flash_forward_launch is not implemented yet - see "
      "lessons/14_flash_cuda/README.md");
}

}  // namespace lesson14
