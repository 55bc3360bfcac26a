// ATTN_HOST_DEVICE marks a small function that the host compiler and nvcc
// both compile from one source (core/philox.h, core/bfloat16.h): one
// implementation, so both devices compute the same bits.
#pragma once

#if defined(__CUDACC__)
#define ATTN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ATTN_HOST_DEVICE inline
#endif
