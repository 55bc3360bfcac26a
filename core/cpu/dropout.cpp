// Dropout on the CPU, from Philox (core/philox.h). One Philox evaluation
// gives the numbers of four consecutive elements of a sample, so the loop
// walks the elements in aligned groups of four and hashes once per group.
// Chunks of elements go to the thread pool; since every element's number
// depends only on (stream, sample, element), any cut gives the same mask.
#include <algorithm>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"
#include "core/philox.h"

namespace attn {
using namespace cpu;

namespace {

// Elements [begin, end) of the flat tensor.
void dropout_range(float* out, const float* in, const float* add, int64_t begin, int64_t end,
                   const DropoutArgs& a) {
  const philox::Stream stream{a.seed, a.offset};
  const float scale = 1.0f / (1.0f - a.p);
  int64_t i = begin;
  while (i < end) {
    const int64_t row = i / a.sample_size, e = i % a.sample_size;
    const uint64_t sample = static_cast<uint64_t>(a.first_sample + row);
    // The group of four that holds e, cut short at the sample's or the range's end.
    const int64_t group = e & ~int64_t{3};
    const int64_t stop = std::min({group + 4, a.sample_size, e + (end - i)});
    const philox::Words r = philox::group_at(stream, sample, static_cast<uint64_t>(group) >> 2);
    for (int64_t k = e; k < stop; ++k, ++i) {
      const bool kept = philox::uniform(r.w[k & 3]) >= a.p;
      out[i] = (add ? add[i] : 0.0f) + (kept ? in[i] * scale : 0.0f);
    }
  }
}

}  // namespace

void CpuBackend::dropout(float* out, const float* in, const float* add, int64_t n,
                         const DropoutArgs& a) {
  parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) { dropout_range(out, in, add, b, e, a); });
}

}  // namespace attn
