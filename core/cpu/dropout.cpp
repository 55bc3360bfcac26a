// Dropout on the CPU, from Philox (core/philox.h). One Philox evaluation
// gives the numbers of four consecutive elements of a sample; the numbers of
// a run of elements come a piece at a time from philox_groups (many
// evaluations side by side in vector lanes), and a plain loop over the piece
// applies them. Chunks of elements go to the thread pool; since every
// element's number depends only on (stream, sample, element), any cut gives
// the same mask.
#include <algorithm>

#include "core/cpu/cpu_backend.h"
#include "core/cpu/parallel.h"
#include "core/cpu/philox_groups.h"
#include "core/cpu/vmath.h"

namespace attn {
using namespace cpu;

namespace {

// out = add + (kept ? in * scale : 0) over one piece; `numbers` holds each
// element's 32 random bits. Kept when its uniform number is at least p (as
// philox::keep). Vectorises (no calls, no branches the compiler cannot
// turn into selects). This file is compiled with -ffp-contract=off (see
// CMakeLists.txt): add + in * scale rounds twice, as on the GPU, so both
// devices give the same bits.
ATTN_VECTOR_CLONES void apply_piece(float* out, const float* in, const float* add, const uint32_t* numbers,
                                    int64_t n, float p, float scale) {
  if (add) {
    for (int64_t t = 0; t < n; ++t) out[t] = add[t] + (philox::uniform(numbers[t]) >= p ? in[t] * scale : 0.0f);
  } else {
    for (int64_t t = 0; t < n; ++t) out[t] = philox::uniform(numbers[t]) >= p ? in[t] * scale : 0.0f;
  }
}

// Elements [begin, end) of the flat tensor.
void dropout_range(float* out, const float* in, const float* add, int64_t begin, int64_t end,
                   const DropoutArgs& a) {
  constexpr int64_t kPiece = 512;  // elements whose numbers are made at once
  uint32_t numbers[kPiece + 4];
  const philox::Stream stream{a.seed, a.offset};
  const float scale = 1.0f / (1.0f - a.p);
  int64_t i = begin;
  while (i < end) {
    const int64_t row = i / a.sample_size, e = i % a.sample_size;
    const uint64_t sample = static_cast<uint64_t>(a.first_sample + row);
    // Up to a piece of elements, stopping at the sample's or the range's end.
    const int64_t count = std::min({kPiece, a.sample_size - e, end - i});
    const int64_t skip = e & 3;  // elements of the first group before e
    philox_groups(stream, sample, static_cast<uint64_t>(e) >> 2, (skip + count + 3) / 4, numbers);
    apply_piece(out + i, in + i, add ? add + i : nullptr, numbers + skip, count, a.p, scale);
    i += count;
  }
}

}  // namespace

void CpuBackend::dropout(float* out, const float* in, const float* add, int64_t n,
                         const DropoutArgs& a) {
  parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) { dropout_range(out, in, add, b, e, a); });
}

}  // namespace attn
