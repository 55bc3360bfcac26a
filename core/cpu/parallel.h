// The CPU thread pool, as one function: parallel_for.
//
// The pool is ours (core/cpu/thread_pool.cpp says why not OpenMP): workers
// claim chunks from a shared counter, and the calling thread works too.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/threads.h"

namespace attn::cpu {

// The pool's entry point: fn(ctx, c) for every chunk c in [0, chunks), on up
// to `threads` threads (the caller is one of them). Runs inline for one
// thread, one chunk, or when called from inside a chunk. An exception a
// chunk throws reaches the caller once every chunk has finished.
using ChunkFn = void (*)(void* ctx, int64_t chunk);
void run_chunks(int64_t chunks, int threads, ChunkFn fn, void* ctx);

// Calls f(begin, end) for the chunks [0, grain), [grain, 2 grain), ... of
// [0, n), on up to num_threads() threads. The chunks depend only on n and
// grain, never on the thread count, so a kernel that keeps one partial
// result per chunk and combines them in chunk order computes bitwise the
// same thing on any number of threads. Pick grain so a chunk is worth
// tens of microseconds: waking the pool costs a few.
template <class F>
void parallel_for(int64_t n, int64_t grain, F&& f) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  struct Range {
    F& f;
    int64_t n, grain;
  } range{f, n, grain};
  run_chunks(chunks, num_threads(), [](void* ctx, int64_t c) {
    Range& r = *static_cast<Range*>(ctx);
    r.f(c * r.grain, std::min(r.n, (c + 1) * r.grain));
  }, &range);
}

// The number of chunks parallel_for(n, grain, ...) makes: the size of the
// array that holds one partial result per chunk.
inline int64_t chunk_count(int64_t n, int64_t grain) {
  grain = std::max<int64_t>(grain, 1);
  return n <= 0 ? 0 : (n + grain - 1) / grain;
}

// Elements in a chunk of elementwise work: about 64 KB of floats, tens of
// microseconds of work.
constexpr int64_t kElementGrain = 16384;

// Rows of `row_len` elements in such a chunk (at least one).
inline int64_t rows_per_chunk(int64_t row_len) {
  return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(row_len, 1));
}

}  // namespace attn::cpu
