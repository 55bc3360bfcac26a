// Streams: the queues a device runs its work from.
//
// A GPU runs the kernels queued on one stream in order; kernels on
// different streams may run at the same time. attnlab queues every op a
// thread asks of a device on that device's compute stream, so one thread's
// ops run in the order it called them, whatever runs beside them. A second
// stream lets other work overlap with it: sending gradients to other GPUs
// while the backward pass still runs. The program then says where the two
// meet:
//   - wait_for: work queued on one stream from now on starts after what the
//     other has queued so far (the host does not wait);
//   - record_stream: memory that another stream's work uses is not handed
//     out again before that work is done (core/allocator.h says how).
//
// On the CPU an op's work is done when its call returns: every stream is
// the same one, and each call here is a no-op.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"

namespace attn {

class Tensor;

class Stream {
 public:
  // A new stream on `device`, beside its compute stream; destroyed (after
  // its work is done) with its last copy.
  static Stream create(const Device& device);
  // The stream this thread's ops on `device` are queued on now.
  static Stream current(const Device& device);

  const Device& device() const { return device_; }
  std::uintptr_t id() const { return id_; }
  bool operator==(const Stream& other) const {
    return device_ == other.device_ && id_ == other.id_;
  }

  // Work queued here after this call starts once everything queued on
  // `other` so far is done.
  void wait_for(const Stream& other) const;
  // The host waits until everything queued here so far is done.
  void synchronize() const;
  // Calls fn on a host thread once everything queued here so far is done;
  // work queued here later waits until fn returns. fn must not touch a
  // device (the driver runs it, from a thread of its own).
  void then_on_host(std::function<void()> fn) const;

 private:
  Stream(Device device, std::uintptr_t id, std::shared_ptr<void> owner)
      : device_(device), id_(id), owner_(std::move(owner)) {}
  Device device_;
  std::uintptr_t id_ = 0;
  std::shared_ptr<void> owner_;  // set for created streams
};

// While it lives, this thread's ops on the stream's device are queued on
// that stream; then on the one before.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& stream);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream stream_;  // kept alive while chosen
  std::uintptr_t previous_ = 0;
};

// `t` is read or written by work queued on `stream`, not only on the stream
// it was made on: when the last tensor on its memory goes, the memory waits
// for the work queued on `stream` until then before it is reused.
void record_stream(const Tensor& t, const Stream& stream);

// Runs code that queues device work on CUDA's legacy default stream (code
// written without streams, like chapter 14's kernel launcher) in order with
// this thread's stream: it starts after the work queued so far, and work
// queued later starts after it. On the CPU: just calls fn.
void call_on_default_stream(const Device& device, const std::function<void()>& fn);

}  // namespace attn
