// Streams (core/stream.h) on the GPU: ops go to the stream a StreamGuard
// chose, wait_for orders two streams, and memory another stream used is not
// reused before that stream's work is done. A "gate" holds a stream still:
// a host function queued on it that returns only when the test opens it,
// so the order of events below is fixed, not left to timing.
//
// A gate needs the GPU to run two streams side by side. Under
// compute-sanitizer it does not: the tool runs the GPU's work one piece at
// a time, so one held stream holds them all and a gated test would wait
// forever. A probe finds that out first (those tests then skip, saying
// why), and a gate never stays shut longer than a minute.
//
// On the CPU every call is a no-op and ops run as before (checked too).
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/stream.h"

namespace {

using attn::Device;
using attn::DType;
using attn::Stream;
using attn::StreamGuard;
using attn::Tensor;

// Work queued on `stream` after the gate waits until open() (or the end of
// the test, so that a failed assertion never leaves the GPU waiting).
class Gate {
 public:
  explicit Gate(const Stream& stream) : opened_(promise_.get_future().share()) {
    stream.then_on_host([f = opened_] { f.wait_for(std::chrono::minutes(1)); });
  }
  ~Gate() { open(); }
  void open() {
    if (!open_) promise_.set_value();
    open_ = true;
  }

 private:
  std::promise<void> promise_;
  std::shared_future<void> opened_;
  bool open_ = false;
};

std::vector<float> values(const Tensor& t) { return t.to_vector(); }

#define REQUIRE_GPU() \
  if (!attn::cuda_available()) GTEST_SKIP() << "no CUDA device: streams are the GPU's (the CPU test runs here)"

// Whether a fill and a host function on one created stream finish while
// another created stream is held at a gate. The compute stream takes no
// part, so a bug that makes it wait for other streams cannot hide here.
bool streams_run_side_by_side() {
  static const bool answer = [] {
    const Device gpu = Device::cuda();
    const Stream held = Stream::create(gpu), other = Stream::create(gpu);
    Tensor x = attn::full({16}, 0.0, DType::Float32, gpu);
    other.wait_for(Stream::current(gpu));
    Gate gate(held);
    {
      StreamGuard guard(other);
      attn::backend_for(gpu).fill(x.view_desc(), 1.0);
    }
    std::promise<void> done;
    std::future<void> finished = done.get_future();
    other.then_on_host([&done] { done.set_value(); });
    const bool ran = finished.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    gate.open();
    other.synchronize();  // `done` outlives the host function that sets it
    return ran;
  }();
  return answer;
}

// For the tests that hold a stream at a gate.
#define REQUIRE_SIDE_BY_SIDE_STREAMS()                                                          \
  REQUIRE_GPU();                                                                                \
  if (!streams_run_side_by_side())                                                              \
  GTEST_SKIP() << "this GPU runs its streams one after another here (as under compute-sanitizer)" \
                  ": a stream held at a gate would hold the test's own reads"

TEST(Streams, OnTheCpuEveryCallIsANoOp) {
  const Device cpu = Device::cpu();
  const Stream s = Stream::create(cpu);
  EXPECT_EQ(s, Stream::current(cpu));
  Tensor x = attn::full({4}, 1.0, DType::Float32, cpu);
  {
    StreamGuard guard(s);
    x = x + 1.0f;
  }
  s.wait_for(Stream::current(cpu));
  attn::record_stream(x, s);
  bool called = false;
  s.then_on_host([&called] { called = true; });
  EXPECT_TRUE(called) << "the CPU's work is done: the host function runs at once";
  s.synchronize();
  EXPECT_EQ(values(x), (std::vector<float>{2, 2, 2, 2}));
}

TEST(Streams, OpsGoToTheStreamTheGuardChose) {
  REQUIRE_SIDE_BY_SIDE_STREAMS();
  const Device gpu = Device::cuda();
  const Stream side = Stream::create(gpu);
  EXPECT_FALSE(side == Stream::current(gpu)) << "a created stream is not the compute stream";
  Tensor x = attn::full({1000}, 1.0, DType::Float32, gpu);
  side.wait_for(Stream::current(gpu));  // x is filled before the side stream reads it
  Gate gate(side);
  {
    StreamGuard guard(side);
    EXPECT_EQ(Stream::current(gpu), side);
    attn::backend_for(gpu).fill(x.view_desc(), 5.0);  // queued behind the closed gate
  }
  EXPECT_FALSE(Stream::current(gpu) == side) << "the guard gave the compute stream back";
  // The compute stream does not wait for the side stream: x still holds 1.
  EXPECT_EQ(values(x)[999], 1.0f) << "the fill ran on the compute stream, not behind the gate";
  gate.open();
  side.synchronize();
  EXPECT_EQ(values(x)[0], 5.0f);
}

TEST(Streams, WaitForOrdersTwoStreams) {
  REQUIRE_SIDE_BY_SIDE_STREAMS();
  const Device gpu = Device::cuda();
  const Stream compute = Stream::current(gpu);
  const Stream side = Stream::create(gpu);
  Tensor x = attn::full({1000}, 1.0, DType::Float32, gpu);
  side.wait_for(compute);
  Gate gate(side);
  {
    StreamGuard guard(side);
    attn::backend_for(gpu).fill(x.view_desc(), 5.0);
  }
  compute.wait_for(side);   // what the compute stream queues next reads the 5s
  Tensor y = x + 1.0f;      // queued now, runs after the gate opens
  gate.open();
  EXPECT_EQ(values(y), std::vector<float>(1000, 6.0f));
}

TEST(Streams, MemoryAnotherStreamUsesWaitsForIt) {
  REQUIRE_SIDE_BY_SIDE_STREAMS();
  const Device gpu = Device::cuda();
  const Stream side = Stream::create(gpu);
  constexpr int64_t n = 1 << 20;
  Tensor x = attn::full({n}, 3.0, DType::Float32, gpu);
  Tensor y = attn::zeros({n}, DType::Float32, gpu);
  side.wait_for(Stream::current(gpu));
  Gate gate(side);
  {
    StreamGuard guard(side);
    attn::backend_for(gpu).copy(y.view_desc(), x.view_desc());  // y = x, behind the gate
  }
  attn::record_stream(x, side);
  attn::record_stream(y, side);
  const void* x_memory = x.data<float>();
  x = Tensor();  // the last reference: its memory waits for the side stream
  Tensor z = attn::full({n}, 7.0, DType::Float32, gpu);  // same size, compute stream
  EXPECT_NE(static_cast<const void*>(z.data<float>()), x_memory)
      << "x's memory went to new work while the side stream still had to read it";
  gate.open();
  side.synchronize();
  const std::vector<float> got = values(y);
  EXPECT_EQ(got.front(), 3.0f);
  EXPECT_EQ(got.back(), 3.0f);

  // Once the side stream is done, the memory comes back.
  Tensor w = attn::full({n}, 1.0, DType::Float32, gpu);
  EXPECT_EQ(static_cast<const void*>(w.data<float>()), x_memory);
}

TEST(Streams, WithoutRecordStreamTheComputeStreamReusesAtOnce) {
  // The control for the test above: the same steps without record_stream
  // hand x's memory straight back to the compute stream.
  REQUIRE_GPU();
  const Device gpu = Device::cuda();
  constexpr int64_t n = (1 << 20) + 512;  // a size no other test here leaves cached
  Tensor x = attn::full({n}, 3.0, DType::Float32, gpu);
  const void* x_memory = x.data<float>();
  x = Tensor();
  Tensor z = attn::full({n}, 7.0, DType::Float32, gpu);
  EXPECT_EQ(static_cast<const void*>(z.data<float>()), x_memory);
}

TEST(Streams, BadArguments) {
  const Stream cpu = Stream::current(Device::cpu());
  Tensor t = attn::zeros({2});
  if (attn::cuda_available()) {
    const Stream gpu = Stream::current(Device::cuda());
    try {
      attn::record_stream(t, gpu);
      ADD_FAILURE() << "expected an error";
    } catch (const attn::Error& e) {
      EXPECT_NE(std::string(e.what()).find("record_stream: a tensor on cpu and a stream of cuda:0"),
                std::string::npos) << e.what();
    }
  }
  try {
    attn::record_stream(Tensor(), cpu);
    ADD_FAILURE() << "expected an error";
  } catch (const attn::Error& e) {
    EXPECT_NE(std::string(e.what()).find("record_stream: the tensor is undefined"), std::string::npos)
        << e.what();
  }
}

}  // namespace
