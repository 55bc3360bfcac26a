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
//
// Streams. A GPU runs work from several queues (streams): in order within
// one, in any order across them. A block freed while work queued on its
// stream may still use it can go at once to the next request *on that
// stream* (the new user's work queues behind the old), but not to another
// stream, whose work may run first. So free blocks are kept per stream; and
// a block that work on other streams also used (record_use) waits, in no
// free list, until an event recorded on each of those streams when it was
// freed has passed. The CPU's work is done when its call returns: it
// allocates on stream 0 and none of this costs it anything.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace attn {

struct MemoryStats {
  std::size_t current = 0;  // bytes in live blocks (rounded sizes)
  std::size_t peak = 0;     // largest `current` since the last reset_peak()
  std::size_t cached = 0;   // bytes sitting in free lists, ready for reuse
  std::size_t waiting = 0;  // bytes freed but still in use by another stream's work
  std::size_t allocations = 0;       // blocks handed out
  std::size_t system_allocations = 0;  // of those, the ones the cache could not serve
};

// A stream as the allocator sees it: a number (0: work done on return).
using StreamId = std::uintptr_t;

// How the allocator asks a device about its streams' progress.
struct StreamEvents {
  std::function<void*(StreamId)> record;  // an event after the work queued on the stream so far
  std::function<bool(void*)> passed;      // whether that work is done (never waits)
  std::function<void(void*)> destroy;
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(std::size_t)>;
  using RawFree = std::function<void(void*)>;
  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free, StreamEvents events = {});
  ~CachingAllocator();

  // A block for work queued on `stream`.
  void* allocate(std::size_t bytes, StreamId stream = 0);
  void deallocate(void* ptr, std::size_t bytes);
  // Work queued on `stream` (not the block's own) uses the block: once
  // freed, it is reused only after that work is done. Memory this allocator
  // did not hand out is ignored.
  void record_use(void* ptr, StreamId stream);

  MemoryStats stats() const;
  void reset_peak();
  // Gives every cached block back to the system (those still waiting for
  // another stream stay until it is done).
  void empty_cache();
  // Refuses (std::bad_alloc) any request that would take `current` above
  // `bytes`; 0 = no limit. Makes running out of memory reproducible
  // (ATTNLAB_TEST_CPU_MEMORY_CAP, below).
  void set_limit(std::size_t bytes);
  std::size_t limit() const;

  // Sizes are rounded up so that nearly equal requests share a free list.
  static std::size_t round_size(std::size_t bytes);

 private:
  // A freed block waiting for other streams' events.
  struct Waiting {
    void* ptr;
    std::size_t size;
    StreamId stream;
    std::vector<void*> events;
  };
  // Live blocks of streams other than 0: their stream and the other
  // streams that used them.
  struct Live {
    StreamId stream;
    std::vector<StreamId> used_on;
  };
  void collect_passed();       // waiting blocks whose events have passed -> free lists
  void release_free_lists();   // free lists -> the system

  RawAlloc raw_alloc_;
  RawFree raw_free_;
  StreamEvents events_;
  mutable std::mutex mutex_;
  std::map<std::pair<StreamId, std::size_t>, std::vector<void*>> free_;  // (stream, size)
  std::unordered_map<void*, Live> live_;
  std::vector<Waiting> waiting_;
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
