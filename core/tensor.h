// The Tensor: a cheap handle onto shared storage plus view metadata.
//
// Storage is a block of device memory. A Tensor looks at it through a shape,
// strides (in elements) and an offset, so transpose, slice, expand and
// friends are free: they make a new handle onto the same storage. Copying a
// Tensor copies the handle, not the data (like PyTorch).
//
// Core knows nothing of autograd. It keeps two opaque slots that autograd
// fills in (the node that made the tensor, and its gradient); the
// differentiable ops and the backward engine live in autograd/.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <vector>

#include "core/backend.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/random.h"
#include "core/shape.h"

namespace attn {

struct Node;  // autograd/node.h

struct Storage {
  Storage(std::size_t bytes, Device device);
  // Borrowed memory: used as is and never freed by attnlab.
  Storage(void* borrowed, std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data = nullptr;
  std::size_t bytes = 0;
  Device device;
  bool owned = true;
};

class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  // Autograd's slots (see autograd/engine.h).
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;
  std::shared_ptr<TensorImpl> grad;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- metadata ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl_->shape; }
  const Shape& strides() const { return impl_->strides; }
  int64_t offset() const { return impl_->offset; }
  int dim() const { return static_cast<int>(impl_->shape.size()); }
  int64_t size(int64_t d) const;
  int64_t numel() const { return attn::numel(impl_->shape); }
  DType dtype() const { return impl_->dtype; }
  Device device() const { return impl_->storage->device; }
  bool is_contiguous() const;
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same_storage(const Tensor& o) const { return impl_->storage == o.impl_->storage; }

  // --- raw data (CPU tensors) ---
  template <class T>
  T* data() const {
    return static_cast<T*>(impl_->storage->data) + impl_->offset;
  }
  // The kernel-interface description of this tensor (optionally broadcast
  // to `as`, giving stride 0 to the repeated dims).
  View view_desc() const;
  View view_desc(const Shape& as) const;

  // Copies to the host and returns the values in row-major order.
  std::vector<float> to_vector() const;
  std::vector<int64_t> to_int_vector() const;
  float item() const;

  // --- raw (non-differentiable) helpers; autograd/ has differentiable ones ---
  Tensor contiguous() const;          // returns *this if already contiguous
  Tensor to(const Device& d) const;   // copies across devices
  Tensor to(DType t) const;           // converts element type
  Tensor clone() const;               // always copies

  // --- autograd (defined in autograd/engine.cpp) ---
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const;
  void zero_grad();
  Tensor detach() const;
  // Backpropagates from this tensor. Without a gradient it must be a scalar.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// --- creation ---
Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
            Device device = Device::cpu());
// start, start+step, ... < end (like torch.arange).
Tensor arange(double start, double end, double step = 1, DType dtype = DType::Float32,
              Device device = Device::cpu());
inline Tensor arange(int64_t end, DType dtype = DType::Int64, Device device = Device::cpu()) {
  return arange(0, static_cast<double>(end), 1, dtype, device);
}
// Uniform in [0, 1) / standard normal, drawn on the host so that every
// device sees the same numbers for the same seed.
Tensor rand(const Shape& shape, Generator& gen = default_generator(), Device device = Device::cpu());
Tensor randn(const Shape& shape, Generator& gen = default_generator(), Device device = Device::cpu());
Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                   Device device = Device::cpu());
Tensor from_ints(const std::vector<int64_t>& values, const Shape& shape,
                 Device device = Device::cpu());
Tensor from_bools(const std::vector<bool>& values, const Shape& shape,
                  Device device = Device::cpu());
// A tensor over memory that belongs to someone else (no copy, never freed),
// contiguous, on `device`.
Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device = Device::cpu());
// A tensor that looks at `base`'s storage through new metadata (a view).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace attn
