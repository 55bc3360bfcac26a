// A caching allocator with byte counters.
//
// Training allocates the same sizes step after step. Returning a freed block
// to a free list keyed by its (rounded) size and handing it out again avoids
// asking the system for memory on every op. The same class serves every
// device: it is built around a pair of raw allocate/free functions.
//
// The counters are how attnlab *measures* memory: `current` is the bytes held
// by live tensors, `peak` the most it has been since the last reset_peak().
// Tests read them to prove claims such as "flash attention never allocates a
// T x T buffer".
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace attn {

struct MemoryStats {
  std::size_t current = 0;  // bytes in live blocks (rounded sizes)
  std::size_t peak = 0;     // largest `current` since the last reset_peak()
  std::size_t cached = 0;   // bytes sitting in free lists, ready for reuse
  std::size_t allocations = 0;       // blocks handed out
  std::size_t system_allocations = 0;  // of those, the ones the cache could not serve
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(std::size_t)>;
  using RawFree = std::function<void(void*)>;
  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free);
  ~CachingAllocator();

  void* allocate(std::size_t bytes);
  void deallocate(void* ptr, std::size_t bytes);

  MemoryStats stats() const;
  void reset_peak();
  // Gives every cached block back to the system.
  void empty_cache();
  // Refuses (std::bad_alloc) any request that would take `current` above
  // `bytes`; 0 = no limit. Makes running out of memory reproducible
  // (ATTNLAB_TEST_CPU_MEMORY_CAP, below).
  void set_limit(std::size_t bytes);
  std::size_t limit() const;

  // Sizes are rounded up so that nearly equal requests share a free list.
  static std::size_t round_size(std::size_t bytes);

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  MemoryStats stats_;
  std::size_t limit_ = 0;
};

// The CPU's allocator. For tests only: the environment variable
// ATTNLAB_TEST_CPU_MEMORY_CAP=<bytes> sets its limit, so that a test can
// make training run out of memory on a machine that has plenty.
CachingAllocator& cpu_allocator();

// The one-line report of a refused request, the same on every device:
// "device <device>: out of memory: asked for N bytes (R rounded) with C
// bytes in use by tensors and K cached". Devices append what they know.
std::string out_of_memory_message(const std::string& device, std::size_t bytes, const MemoryStats& s);

}  // namespace attn
