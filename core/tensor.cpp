#include "core/tensor.h"

#include <cmath>
#include <cstring>
#include <iomanip>

#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

Storage::Storage(std::size_t n, Device d) : bytes(n), device(d) {
  data = backend_for(d).allocate(n);
}

Storage::Storage(void* borrowed, std::size_t n, Device d)
    : data(borrowed), bytes(n), device(d), owned(false) {}

Storage::~Storage() {
  if (owned) backend_for(device).deallocate(data, bytes);
}

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

View Tensor::view_desc() const { return view_desc(shape()); }

View Tensor::view_desc(const Shape& as) const {
  check(static_cast<int>(as.size()) <= kMaxDims, "tensor: ", as.size(),
        " dims is more than the ", kMaxDims, " that kernels support");
  View v;
  v.data = static_cast<char*>(impl_->storage->data) + impl_->offset * dtype_size(dtype());
  v.dtype = static_cast<int>(dtype());
  v.ndim = static_cast<int>(as.size());
  const int lead = v.ndim - dim();
  for (int i = 0; i < v.ndim; ++i) {
    v.shape[i] = as[i];
    // Leading dims that this tensor lacks, and its size-1 dims that are
    // stretched, repeat the same element: stride 0.
    v.strides[i] = (i < lead || shape()[i - lead] != as[i]) ? 0 : strides()[i - lead];
  }
  return v;
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = to(Device::cpu()).to(DType::Float32).contiguous();
  const float* p = host.data<float>();
  return std::vector<float>(p, p + numel());
}

std::vector<int64_t> Tensor::to_int_vector() const {
  Tensor host = to(Device::cpu()).to(DType::Int64).contiguous();
  const int64_t* p = host.data<int64_t>();
  return std::vector<int64_t>(p, p + numel());
}

float Tensor::item() const {
  check(numel() == 1, "item: expected a tensor with one element, got shape ", shape_str(shape()));
  return to_vector()[0];
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  if (numel() > 0) backend_for(device()).copy(out.view_desc(), view_desc());
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(shape(), t, device());
  if (numel() > 0) backend_for(device()).copy(out.view_desc(), view_desc());
  return out;
}

Tensor Tensor::to(const Device& d) const {
  if (d == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), d);
  const std::size_t bytes = numel() * dtype_size(dtype());
  if (bytes == 0) return out;
  if (device().is_cpu()) {
    backend_for(d).copy_from_host(out.view_desc().data, src.view_desc().data, bytes);
  } else if (d.is_cpu()) {
    backend_for(device()).copy_to_host(out.view_desc().data, src.view_desc().data, bytes);
  } else {  // device to device, through the host
    return to(Device::cpu()).to(d);
  }
  return out;
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape)
    check(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (t.numel() > 0) backend_for(device).fill(t.view_desc(), value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  check(step != 0, "arange: step must be nonzero");
  const double span = std::ceil((end - start) / step);
  const int64_t n = span > 0 ? static_cast<int64_t>(span) : 0;
  Tensor t = empty({n}, dtype, Device::cpu());
  for (int64_t i = 0; i < n; ++i) {
    const double v = start + static_cast<double>(i) * step;
    if (dtype == DType::Int64) t.data<int64_t>()[i] = static_cast<int64_t>(v);
    else if (dtype == DType::Float32) t.data<float>()[i] = static_cast<float>(v);
    else t.data<uint8_t>()[i] = v != 0;
  }
  return t.to(device);
}

Tensor rand(const Shape& shape, Generator& gen, Device device) {
  Tensor t = empty(shape, DType::Float32, Device::cpu());
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = gen.uniform();
  return t.to(device);
}

Tensor randn(const Shape& shape, Generator& gen, Device device) {
  Tensor t = empty(shape, DType::Float32, Device::cpu());
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = gen.normal();
  return t.to(device);
}

namespace {
template <class T, class V>
Tensor from_host(const std::vector<V>& values, const Shape& shape, DType dtype, Device device,
                 const char* op) {
  check(static_cast<int64_t>(values.size()) == numel(shape), op, ": ", values.size(),
        " values do not fill shape ", shape_str(shape), " (", numel(shape), " elements)");
  Tensor t = empty(shape, dtype, Device::cpu());
  T* p = t.data<T>();
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  return t.to(device);
}
}  // namespace

Tensor from_vector(const std::vector<float>& v, const Shape& s, Device d) {
  return from_host<float>(v, s, DType::Float32, d, "from_vector");
}
Tensor from_ints(const std::vector<int64_t>& v, const Shape& s, Device d) {
  return from_host<int64_t>(v, s, DType::Int64, d, "from_ints");
}
Tensor from_bools(const std::vector<bool>& v, const Shape& s, Device d) {
  return from_host<uint8_t>(v, s, DType::Bool, d, "from_bools");
}

Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(data, numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype())
     << ", device=" << t.device().str() << ", values=[";
  const auto v = t.to_vector();
  const std::size_t shown = std::min<std::size_t>(v.size(), 16);
  for (std::size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << std::setprecision(6) << v[i];
  if (shown < v.size()) os << ", ...";
  return os << "])";
}

}  // namespace attn
