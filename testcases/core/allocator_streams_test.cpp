// The caching allocator's streams (core/allocator.h): blocks are reused at
// once on the stream that freed them, never handed to another stream while
// that stream's work might still run, and a block that other streams used
// waits for their events. Streams and events are simulated here: an event
// passes when the test says the stream it was recorded on has finished.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"

namespace {

using attn::CachingAllocator;
using attn::StreamEvents;
using attn::StreamId;

struct FakeStreams {
  struct Event {
    StreamId stream;
    bool passed = false;
    bool destroyed = false;
  };
  std::vector<Event> events;
  int raw_frees = 0;

  CachingAllocator make() {
    StreamEvents hooks;
    hooks.record = [this](StreamId s) -> void* {
      events.push_back({s});
      return reinterpret_cast<void*>(events.size());  // 1-based index
    };
    hooks.passed = [this](void* e) { return at(e).passed; };
    hooks.destroy = [this](void* e) { at(e).destroyed = true; };
    return CachingAllocator([](std::size_t n) { return std::malloc(n); },
                            [this](void* p) {
                              ++raw_frees;
                              std::free(p);
                            },
                            hooks);
  }
  Event& at(void* e) { return events.at(reinterpret_cast<std::uintptr_t>(e) - 1); }
  // Everything queued on `s` so far is done.
  void finish(StreamId s) {
    for (Event& e : events)
      if (e.stream == s) e.passed = true;
  }
};

constexpr StreamId kCompute = 7, kSide = 9;

TEST(AllocatorStreams, TheSameStreamReusesAFreedBlockAtOnce) {
  FakeStreams fake;
  CachingAllocator alloc = fake.make();
  void* p = alloc.allocate(1000, kCompute);
  alloc.deallocate(p, 1000);
  EXPECT_EQ(alloc.allocate(1000, kCompute), p) << "its next user queues behind its last";
  EXPECT_TRUE(fake.events.empty()) << "no other stream used it: nothing to wait for";
  alloc.deallocate(p, 1000);
}

TEST(AllocatorStreams, AnotherStreamGetsAnotherBlock) {
  FakeStreams fake;
  CachingAllocator alloc = fake.make();
  void* p = alloc.allocate(1000, kCompute);
  alloc.deallocate(p, 1000);
  void* q = alloc.allocate(1000, kSide);
  EXPECT_NE(q, p) << "the side stream's work may run before the compute stream's last use of p";
  void* r = alloc.allocate(1000, kCompute);
  EXPECT_EQ(r, p) << "the block is still the compute stream's";
  alloc.deallocate(q, 1000);
  alloc.deallocate(r, 1000);
  EXPECT_EQ(alloc.stats().cached, 2 * CachingAllocator::round_size(1000));
}

TEST(AllocatorStreams, ABlockUsedOnAnotherStreamWaitsForItsEvent) {
  FakeStreams fake;
  CachingAllocator alloc = fake.make();
  const std::size_t size = CachingAllocator::round_size(4096);
  void* p = alloc.allocate(4096, kCompute);
  alloc.record_use(p, kSide);
  alloc.record_use(p, kSide);      // twice: still one stream to wait for
  alloc.record_use(p, kCompute);   // its own stream: nothing more
  alloc.deallocate(p, 4096);
  ASSERT_EQ(fake.events.size(), 1u);
  EXPECT_EQ(fake.events[0].stream, kSide) << "the event goes on the stream that used the block";
  EXPECT_EQ(alloc.stats().waiting, size);
  EXPECT_EQ(alloc.stats().cached, 0u);
  EXPECT_EQ(alloc.stats().current, 0u);

  void* q = alloc.allocate(4096, kCompute);
  EXPECT_NE(q, p) << "not even its own stream may have it: the side stream may still read it";
  fake.finish(kSide);
  void* r = alloc.allocate(4096, kCompute);
  EXPECT_EQ(r, p) << "once the side stream's event passed, the block is back in its stream's list";
  EXPECT_TRUE(fake.events[0].destroyed);
  EXPECT_EQ(alloc.stats().waiting, 0u);
  alloc.deallocate(q, 4096);
  alloc.deallocate(r, 4096);
}

TEST(AllocatorStreams, EveryStreamThatUsedABlockMustFinish) {
  FakeStreams fake;
  CachingAllocator alloc = fake.make();
  constexpr StreamId kThird = 11;
  void* p = alloc.allocate(512, kCompute);
  alloc.record_use(p, kSide);
  alloc.record_use(p, kThird);
  alloc.deallocate(p, 512);
  ASSERT_EQ(fake.events.size(), 2u);
  fake.finish(kSide);
  void* q = alloc.allocate(512, kCompute);
  EXPECT_NE(q, p) << "the third stream has not finished";
  fake.finish(kThird);
  void* r = alloc.allocate(512, kCompute);
  EXPECT_EQ(r, p);
  alloc.deallocate(q, 512);
  alloc.deallocate(r, 512);
}

TEST(AllocatorStreams, EmptyCacheKeepsWhatStillWaits) {
  FakeStreams fake;
  {
    CachingAllocator alloc = fake.make();
    void* p = alloc.allocate(512, kCompute);
    void* q = alloc.allocate(512, kCompute);
    alloc.record_use(p, kSide);
    alloc.deallocate(p, 512);
    alloc.deallocate(q, 512);
    alloc.empty_cache();
    EXPECT_EQ(fake.raw_frees, 1) << "q goes back to the system; p is still in use on the side stream";
    EXPECT_EQ(alloc.stats().waiting, 512u);
    fake.finish(kSide);
    alloc.empty_cache();
    EXPECT_EQ(fake.raw_frees, 2);
    EXPECT_EQ(alloc.stats().waiting + alloc.stats().cached, 0u);
  }
}

TEST(AllocatorStreams, TheCpuStreamAndForeignMemoryNeedNothing) {
  FakeStreams fake;
  CachingAllocator alloc = fake.make();
  void* p = alloc.allocate(512);  // stream 0: done when the call returns
  alloc.record_use(p, kSide);      // not a tracked block: nothing to wait for
  int outside = 0;
  alloc.record_use(&outside, kSide);  // not this allocator's
  alloc.deallocate(p, 512);
  EXPECT_TRUE(fake.events.empty());
  EXPECT_EQ(alloc.allocate(512), p);
  alloc.deallocate(p, 512);
}

TEST(AllocatorStreams, AnAllocatorWithoutEventsRefusesCrossStreamUse) {
  CachingAllocator alloc([](std::size_t n) { return std::malloc(n); }, [](void* p) { std::free(p); });
  void* p = alloc.allocate(512, kCompute);
  try {
    alloc.record_use(p, kSide);
    ADD_FAILURE() << "expected an error";
  } catch (const attn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("record_use"), std::string::npos) << e.what();
  }
  alloc.deallocate(p, 512);
  EXPECT_EQ(alloc.allocate(512, kCompute), p);
  alloc.deallocate(p, 512);
}

}  // namespace
