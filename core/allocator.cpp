#include "core/allocator.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "core/error.h"

namespace attn {

CachingAllocator::CachingAllocator(RawAlloc raw_alloc, RawFree raw_free, StreamEvents events)
    : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)), events_(std::move(events)) {}

CachingAllocator::~CachingAllocator() { empty_cache(); }

std::size_t CachingAllocator::round_size(std::size_t bytes) {
  // 512-byte granules for small blocks; above 1 MiB, steps of 1/8 of the
  // next power of two, so a cached block wastes less than 1/8 of that power
  // of two: under 25% of the request (just above a power of two) and under
  // 12.5% once the request is past 3/4 of it.
  if (bytes == 0) return 512;
  if (bytes <= (1u << 20)) return (bytes + 511) / 512 * 512;
  std::size_t pow2 = 1u << 20;
  while (pow2 < bytes) pow2 <<= 1;
  const std::size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t bytes, StreamId stream) {
  const std::size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  if (limit_ > 0 && stats_.current + size > limit_) throw std::bad_alloc();
  if (!waiting_.empty()) collect_passed();
  void* ptr = nullptr;
  auto it = free_.find({stream, size});
  if (it != free_.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    stats_.cached -= size;
  } else {
    ptr = raw_alloc_(size);
    if (!ptr) {
      // Drop the cache and try once more before giving up.
      release_free_lists();
      ptr = raw_alloc_(size);
      if (!ptr) throw std::bad_alloc();
    }
    ++stats_.system_allocations;
  }
  if (stream != 0) live_[ptr] = Live{stream, {}};
  ++stats_.allocations;
  stats_.current += size;
  if (stats_.current > stats_.peak) stats_.peak = stats_.current;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, std::size_t bytes) {
  if (!ptr) return;
  const std::size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.current -= size;
  Live live{0, {}};
  if (auto it = live_.find(ptr); it != live_.end()) {
    live = std::move(it->second);
    live_.erase(it);
  }
  if (live.used_on.empty()) {
    free_[{live.stream, size}].push_back(ptr);
    stats_.cached += size;
    return;
  }
  Waiting w{ptr, size, live.stream, {}};
  for (StreamId s : live.used_on) w.events.push_back(events_.record(s));
  waiting_.push_back(std::move(w));
  stats_.waiting += size;
}

void CachingAllocator::record_use(void* ptr, StreamId stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  if (it == live_.end() || it->second.stream == stream) return;
  check(static_cast<bool>(events_.record), "record_use: this allocator has no stream events");
  auto& used = it->second.used_on;
  if (std::find(used.begin(), used.end(), stream) == used.end()) used.push_back(stream);
}

void CachingAllocator::collect_passed() {
  auto done = [this](Waiting& w) {
    for (void* e : w.events)
      if (!events_.passed(e)) return false;
    for (void* e : w.events) events_.destroy(e);
    free_[{w.stream, w.size}].push_back(w.ptr);
    stats_.waiting -= w.size;
    stats_.cached += w.size;
    return true;
  };
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), done), waiting_.end());
}

void CachingAllocator::release_free_lists() {
  for (auto& [key, blocks] : free_)
    for (void* p : blocks) raw_free_(p);
  free_.clear();
  stats_.cached = 0;
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak = stats_.current;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!waiting_.empty()) collect_passed();
  release_free_lists();
}

void CachingAllocator::set_limit(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  limit_ = bytes;
}

std::size_t CachingAllocator::limit() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return limit_;
}

namespace {

// ATTNLAB_TEST_CPU_MEMORY_CAP: unset or empty = no limit.
std::size_t test_memory_cap() {
  const char* text = std::getenv("ATTNLAB_TEST_CPU_MEMORY_CAP");
  if (text == nullptr || *text == '\0') return 0;
  const std::string s = text;
  const bool digits = s.size() <= 19 && s.find_first_not_of("0123456789") == std::string::npos;
  check(digits && std::stoull(s) > 0, "ATTNLAB_TEST_CPU_MEMORY_CAP must be a whole number of bytes >= 1, got '",
        s, "'");
  return std::stoull(s);
}

}  // namespace

CachingAllocator& cpu_allocator() {
  // 64-byte alignment keeps SIMD loads and BLAS happy. Never destroyed, so
  // tensors that outlive main() can still give their memory back.
  static auto* alloc = [] {
    const std::size_t cap = test_memory_cap();  // checked first: a bad value leaks nothing
    auto* a = new CachingAllocator([](std::size_t n) { return std::aligned_alloc(64, (n + 63) / 64 * 64); },
                                   [](void* p) { std::free(p); });
    a->set_limit(cap);
    return a;
  }();
  return *alloc;
}

std::string out_of_memory_message(const std::string& device, std::size_t bytes, const MemoryStats& s) {
  return str("device ", device, ": out of memory: asked for ", bytes, " bytes (", CachingAllocator::round_size(bytes),
             " rounded) with ", s.current, " bytes in use by tensors and ", s.cached, " cached");
}

}  // namespace attn
