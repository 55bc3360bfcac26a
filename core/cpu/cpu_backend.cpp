// Memory, fill and copy on the CPU.
#include "core/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "core/allocator.h"
#include "core/cpu/parallel.h"
#include "core/cpu/strided.h"
#include "core/error.h"

namespace attn {
using namespace cpu;

void* CpuBackend::allocate(std::size_t bytes) {
  try {
    return cpu_allocator().allocate(bytes);
  } catch (const std::bad_alloc&) {
    const std::size_t cap = cpu_allocator().limit();
    throw OutOfMemory(out_of_memory_message("cpu", bytes, cpu_allocator().stats()) +
                      (cap > 0 ? str("; ATTNLAB_TEST_CPU_MEMORY_CAP allows ", cap) : std::string()));
  }
}
void CpuBackend::deallocate(void* p, std::size_t bytes) { cpu_allocator().deallocate(p, bytes); }
void CpuBackend::copy_from_host(void* dst, const void* src, std::size_t n) { std::memcpy(dst, src, n); }
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t n) { std::memcpy(dst, src, n); }

void CpuBackend::fill(const View& out, double value) {
  if (out.dtype == static_cast<int>(DType::Float32) && is_dense(out)) {
    float* p = static_cast<float*>(out.data);
    const float v = static_cast<float>(value);
    for (int64_t i = 0, n = view_numel(out); i < n; ++i) p[i] = v;
    return;
  }
  strided_for_each<1>(out.ndim, out.shape, {out.strides},
                      [&](const auto& o) { store(out, o[0], value); });
}

void CpuBackend::copy(const View& out, const View& in) {
  if (out.dtype == in.dtype && is_dense(out) && is_dense(in)) {
    std::memcpy(out.data, in.data, view_numel(out) * dtype_size(static_cast<DType>(out.dtype)));
    return;
  }
  const int f32 = static_cast<int>(DType::Float32), bf16 = static_cast<int>(DType::BFloat16);
  if (is_dense(out) && is_dense(in) && ((out.dtype == bf16 && in.dtype == f32) || (out.dtype == f32 && in.dtype == bf16))) {
    // Mixed precision's conversions, over the pool: rounding down, or exact widening.
    const int64_t n = view_numel(out);
    parallel_for(n, 1 << 14, [&](int64_t i0, int64_t i1) {
      if (out.dtype == bf16) {
        const float* src = static_cast<const float*>(in.data);
        uint16_t* dst = static_cast<uint16_t*>(out.data);
        for (int64_t i = i0; i < i1; ++i) dst[i] = bf16_from_float(src[i]);
      } else {
        const uint16_t* src = static_cast<const uint16_t*>(in.data);
        float* dst = static_cast<float*>(out.data);
        for (int64_t i = i0; i < i1; ++i) dst[i] = bf16_to_float(src[i]);
      }
    });
    return;
  }
  if (out.dtype == in.dtype && out.dtype == f32 && out.ndim > 0) {
    // A transposing copy (contiguous() of a permuted view): rows over the pool.
    float* o = static_cast<float*>(out.data);
    const float* i = static_cast<const float*>(in.data);
    const int last = out.ndim - 1;
    const int64_t so = out.strides[last], si = in.strides[last];
    parallel_for(row_count(out.ndim, out.shape), rows_per_chunk(out.shape[last]),
                 [&](int64_t r0, int64_t r1) {
      for_each_row<2>(out.ndim, out.shape, {out.strides, in.strides}, r0, r1,
                      [&](const auto& off, int64_t n) {
                        float* po = o + off[0];
                        const float* pi = i + off[1];
                        for (int64_t k = 0; k < n; ++k) po[k * so] = pi[k * si];
                      });
    });
    return;
  }
  strided_for_each<2>(out.ndim, out.shape, {out.strides, in.strides},
                      [&](const auto& off) { store(out, off[0], load(in, off[1])); });
}

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace attn
