// The caching allocator: its byte counters (which tests elsewhere use to
// prove memory claims), block reuse, empty_cache and the size rounding; both
// through tensors on the global CPU allocator and on a standalone instance
// built over counting malloc/free functions.
//
// The CPU allocator is shared by every test in this binary, so the checks
// on it compare before/after differences, never absolute values.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "autograd/ops.h"
#include "core/allocator.h"

namespace {

using attn::CachingAllocator;
using attn::DType;
using attn::MemoryStats;
using attn::Tensor;

TEST(Allocator, RoundSize) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
  EXPECT_EQ(CachingAllocator::round_size(4000), 4096u);
  EXPECT_EQ(CachingAllocator::round_size(1u << 20), 1u << 20);
  // Above 1 MiB: steps of 1/8 of the next power of two.
  EXPECT_EQ(CachingAllocator::round_size((1u << 20) + 1), (1u << 20) + (1u << 18));
  EXPECT_EQ(CachingAllocator::round_size(3u << 20), 3u << 20);
  EXPECT_EQ(CachingAllocator::round_size((3u << 20) + 1), (3u << 20) + (1u << 19));
  EXPECT_EQ(CachingAllocator::round_size(5u << 20), 5u << 20);
  EXPECT_EQ(CachingAllocator::round_size((std::size_t{1} << 33) + 1), (std::size_t{1} << 33) + (std::size_t{1} << 31));
  // Properties over a sweep: never smaller, monotone, waste under 1/8 of
  // the next power of two above 1 MiB (so under 1/4 of the request), and
  // under 512 bytes below.
  std::size_t prev = 0;
  for (std::size_t b = 1; b < (std::size_t{40} << 20); b += b / 7 + 37) {
    const std::size_t r = CachingAllocator::round_size(b);
    EXPECT_GE(r, b);
    EXPECT_GE(r, prev) << "not monotone at " << b;
    std::size_t pow2 = 1;
    while (pow2 < b) pow2 <<= 1;
    if (b > (1u << 20)) {
      EXPECT_LT(r - b, pow2 / 8) << "too much waste at " << b;
      EXPECT_EQ(r % (pow2 / 8), 0u) << "not a step of 1/8 of the power of two at " << b;
    } else {
      EXPECT_LT(r - b, 512u) << "at " << b;
      EXPECT_EQ(r % 512, 0u) << "at " << b;
    }
    EXPECT_EQ(CachingAllocator::round_size(r), r) << "a rounded size must round to itself";
    prev = r;
  }
}

TEST(Allocator, CurrentFollowsTensorLifetimes) {
  auto& alloc = attn::cpu_allocator();
  const MemoryStats s0 = alloc.stats();
  {
    const Tensor t = attn::empty({1000});  // 4000 bytes -> 4096
    const MemoryStats s1 = alloc.stats();
    EXPECT_EQ(s1.current, s0.current + 4096);
    EXPECT_EQ(s1.allocations, s0.allocations + 1);
    // Views share the block: no new memory.
    const Tensor v = attn::transpose(attn::view(t, {10, 100}), 0, 1);
    const Tensor s = attn::slice(v, 0, 0, 100, 3);
    EXPECT_EQ(alloc.stats().current, s1.current);
    EXPECT_EQ(alloc.stats().allocations, s1.allocations);
    {
      const Tensor z = attn::empty({2, 0});  // even an empty tensor takes a 512-byte block
      EXPECT_EQ(alloc.stats().current, s1.current + 512);
    }
    EXPECT_EQ(alloc.stats().current, s1.current);
    const Tensor i = attn::empty({100}, DType::Int64);  // 800 bytes -> 1024
    EXPECT_EQ(alloc.stats().current, s1.current + 1024);
  }
  const MemoryStats s2 = alloc.stats();
  EXPECT_EQ(s2.current, s0.current) << "every block is given back when its tensors die";
  EXPECT_GE(s2.cached, 4096u + 1024u);
}

TEST(Allocator, StorageLivesWhileAnyViewDoes) {
  auto& alloc = attn::cpu_allocator();
  const std::size_t before = alloc.stats().current;
  Tensor view;
  {
    const Tensor base = attn::arange(0, 2048, 1, DType::Float32);  // 8192 bytes
    view = attn::slice(base, 0, 100, 200);
  }
  EXPECT_EQ(alloc.stats().current, before + 8192) << "the view keeps the whole block";
  EXPECT_EQ(view.to_vector()[0], 100.0f);
  view = Tensor();
  EXPECT_EQ(alloc.stats().current, before);
}

TEST(Allocator, PeakAndResetPeak) {
  auto& alloc = attn::cpu_allocator();
  alloc.reset_peak();
  const MemoryStats s0 = alloc.stats();
  EXPECT_EQ(s0.peak, s0.current);
  {
    const Tensor a = attn::empty({1 << 18});  // 1 MiB
    const Tensor b = attn::empty({1 << 16});  // 256 KiB
    EXPECT_EQ(alloc.stats().peak, s0.current + (1u << 20) + (1u << 18));
  }
  // The peak remembers the high-water mark after the tensors are gone...
  EXPECT_EQ(alloc.stats().current, s0.current);
  EXPECT_EQ(alloc.stats().peak, s0.current + (1u << 20) + (1u << 18));
  {
    const Tensor small = attn::empty({10});
    EXPECT_EQ(alloc.stats().peak, s0.current + (1u << 20) + (1u << 18)) << "a smaller use does not move it";
  }
  // ...until reset_peak() brings it down to the current use.
  alloc.reset_peak();
  EXPECT_EQ(alloc.stats().peak, alloc.stats().current);
}

TEST(Allocator, FreedBlocksAreReused) {
  auto& alloc = attn::cpu_allocator();
  alloc.empty_cache();
  const MemoryStats s0 = alloc.stats();
  EXPECT_EQ(s0.cached, 0u);
  const float* first = nullptr;
  {
    const Tensor a = attn::empty({12345});  // 49380 bytes -> 49664
    first = a.data<float>();
  }
  const MemoryStats s1 = alloc.stats();
  EXPECT_EQ(s1.system_allocations, s0.system_allocations + 1);
  EXPECT_EQ(s1.cached, 49664u);
  {
    const Tensor b = attn::empty({12345});
    EXPECT_EQ(b.data<float>(), first) << "the cached block is handed out again";
    const MemoryStats s2 = alloc.stats();
    EXPECT_EQ(s2.system_allocations, s1.system_allocations) << "no new system allocation";
    EXPECT_EQ(s2.allocations, s1.allocations + 1);
    EXPECT_EQ(s2.cached, 0u);
  }
  {
    // A slightly different size that rounds to the same block shares it.
    const Tensor c = attn::empty({12300});  // 49200 bytes -> 49664
    EXPECT_EQ(c.data<float>(), first);
    EXPECT_EQ(alloc.stats().system_allocations, s1.system_allocations);
  }
  // empty_cache() gives cached blocks back; the next request goes to the system.
  EXPECT_EQ(alloc.stats().cached, 49664u);
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().cached, 0u);
  {
    const Tensor d = attn::empty({12345});
    EXPECT_EQ(alloc.stats().system_allocations, s1.system_allocations + 1);
  }
  // Alignment: blocks are 64-byte aligned for SIMD and BLAS.
  const Tensor e = attn::empty({3});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(e.data<float>()) % 64, 0u);
}

// A standalone allocator over malloc/free that records every raw call.
struct Counting {
  std::vector<std::size_t> allocs;
  int frees = 0;
  int fail_next = 0;  // make the next N raw allocations fail
  CachingAllocator make() {
    return CachingAllocator(
        [this](std::size_t n) -> void* {
          if (fail_next > 0) {
            --fail_next;
            return nullptr;
          }
          allocs.push_back(n);
          return std::malloc(n);
        },
        [this](void* p) {
          ++frees;
          std::free(p);
        });
  }
};

TEST(Allocator, StandaloneCountsAndReuses) {
  Counting raw;
  {
    CachingAllocator alloc = raw.make();
    void* p = alloc.allocate(100);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(raw.allocs, (std::vector<std::size_t>{512})) << "raw sizes are rounded";
    MemoryStats s = alloc.stats();
    EXPECT_EQ(s.current, 512u);
    EXPECT_EQ(s.peak, 512u);
    EXPECT_EQ(s.allocations, 1u);
    EXPECT_EQ(s.system_allocations, 1u);
    alloc.deallocate(p, 100);
    s = alloc.stats();
    EXPECT_EQ(s.current, 0u);
    EXPECT_EQ(s.cached, 512u);
    EXPECT_EQ(raw.frees, 0) << "a freed block is cached, not returned";
    // 200 bytes rounds to the same 512: the cached block comes back.
    void* q = alloc.allocate(200);
    EXPECT_EQ(q, p);
    EXPECT_EQ(raw.allocs.size(), 1u);
    void* r = alloc.allocate(1000);  // -> 1024, a new block
    EXPECT_EQ(raw.allocs.back(), 1024u);
    s = alloc.stats();
    EXPECT_EQ(s.current, 1536u);
    EXPECT_EQ(s.peak, 1536u);
    EXPECT_EQ(s.cached, 0u);
    EXPECT_EQ(s.allocations, 3u);
    EXPECT_EQ(s.system_allocations, 2u);
    alloc.deallocate(q, 200);
    alloc.deallocate(r, 1000);
    EXPECT_EQ(alloc.stats().cached, 1536u);
    alloc.reset_peak();
    EXPECT_EQ(alloc.stats().peak, 0u);
    // deallocate(nullptr) is a no-op.
    alloc.deallocate(nullptr, 64);
    EXPECT_EQ(alloc.stats().current, 0u);
    alloc.empty_cache();
    EXPECT_EQ(raw.frees, 2);
    EXPECT_EQ(alloc.stats().cached, 0u);
    // Blocks cached at destruction are freed by the destructor.
    alloc.deallocate(alloc.allocate(5000), 5000);
    EXPECT_EQ(raw.frees, 2);
  }
  EXPECT_EQ(raw.frees, 3) << "the destructor empties the cache";
}

TEST(Allocator, StandaloneRetriesAfterDroppingTheCache) {
  Counting raw;
  CachingAllocator alloc = raw.make();
  alloc.deallocate(alloc.allocate(512), 512);
  alloc.deallocate(alloc.allocate(2048), 2048);
  EXPECT_EQ(alloc.stats().cached, 2560u);
  // The system refuses once: the allocator frees its cache and tries again.
  raw.fail_next = 1;
  void* p = alloc.allocate(4096);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(raw.frees, 2);
  EXPECT_EQ(alloc.stats().cached, 0u);
  EXPECT_EQ(alloc.stats().current, 4096u);
  // Refusing twice is out of memory; the counters are unchanged.
  raw.fail_next = 2;
  const MemoryStats before = alloc.stats();
  EXPECT_THROW(alloc.allocate(8192), std::bad_alloc);
  const MemoryStats after = alloc.stats();
  EXPECT_EQ(after.current, before.current);
  EXPECT_EQ(after.allocations, before.allocations);
  EXPECT_EQ(after.system_allocations, before.system_allocations);
  alloc.deallocate(p, 4096);
}

}  // namespace
