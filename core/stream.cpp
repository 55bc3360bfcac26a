#include "core/stream.h"

#include "core/dispatch.h"
#include "core/error.h"
#include "core/tensor.h"

namespace attn {

#ifdef ATTNLAB_WITH_CUDA
// core/cuda/streams.cu: streams are numbers here (cudaStream_t underneath).
std::uintptr_t cuda_stream_create(int device);
void cuda_stream_destroy(int device, std::uintptr_t stream);
std::uintptr_t cuda_stream_current(int device);
std::uintptr_t cuda_stream_choose(int device, std::uintptr_t stream);
void cuda_stream_wait(int device, std::uintptr_t waiter, std::uintptr_t on);
void cuda_stream_synchronize(int device, std::uintptr_t stream);
void cuda_stream_then_on_host(int device, std::uintptr_t stream, std::function<void()> fn);
void cuda_call_on_default_stream(int device, const std::function<void()>& fn);
#define ATTN_ON_CUDA(device, call)                                                 \
  do {                                                                             \
    if ((device).is_cuda()) {                                                      \
      backend_for(device); /* a missing GPU fails here, as any op on it would */ \
      call;                                                                        \
    }                                                                              \
  } while (0)
#else
// Without CUDA a GPU stream fails as every op on a GPU does.
#define ATTN_ON_CUDA(device, call) \
  do {                             \
    if ((device).is_cuda()) backend_for(device); \
  } while (0)
#endif

Stream Stream::create(const Device& device) {
  std::uintptr_t id = 0;
  ATTN_ON_CUDA(device, id = cuda_stream_create(device.index));
  if (id == 0) return Stream(device, 0, nullptr);
  const int index = device.index;
  std::shared_ptr<void> owner(reinterpret_cast<void*>(id), [index](void* s) {
#ifdef ATTNLAB_WITH_CUDA
    cuda_stream_destroy(index, reinterpret_cast<std::uintptr_t>(s));
#else
    (void)index, (void)s;
#endif
  });
  return Stream(device, id, std::move(owner));
}

Stream Stream::current(const Device& device) {
  std::uintptr_t id = 0;
  ATTN_ON_CUDA(device, id = cuda_stream_current(device.index));
  return Stream(device, id, nullptr);
}

void Stream::wait_for(const Stream& other) const {
  check(other.device_ == device_, "Stream::wait_for: a stream of ", device_.str(),
        " cannot wait for one of ", other.device_.str());
  if (other.id_ == id_) return;
  ATTN_ON_CUDA(device_, cuda_stream_wait(device_.index, id_, other.id_));
}

void Stream::synchronize() const { ATTN_ON_CUDA(device_, cuda_stream_synchronize(device_.index, id_)); }

void Stream::then_on_host(std::function<void()> fn) const {
  if (!device_.is_cuda()) return fn();
  ATTN_ON_CUDA(device_, cuda_stream_then_on_host(device_.index, id_, std::move(fn)));
}

StreamGuard::StreamGuard(const Stream& stream) : stream_(stream) {
  ATTN_ON_CUDA(stream_.device(), previous_ = cuda_stream_choose(stream_.device().index, stream_.id()));
}

StreamGuard::~StreamGuard() {
  ATTN_ON_CUDA(stream_.device(), cuda_stream_choose(stream_.device().index, previous_));
}

void record_stream(const Tensor& t, const Stream& stream) {
  check(t.defined(), "record_stream: the tensor is undefined");
  check(t.device() == stream.device(), "record_stream: a tensor on ", t.device().str(),
        " and a stream of ", stream.device().str());
  backend_for(t.device()).record_stream(t.impl()->storage->data, stream.id());
}

void call_on_default_stream(const Device& device, const std::function<void()>& fn) {
  if (!device.is_cuda()) return fn();
  ATTN_ON_CUDA(device, cuda_call_on_default_stream(device.index, fn));
}

}  // namespace attn
