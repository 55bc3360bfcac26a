// Views and shape ops. A view only rewrites (shape, strides, offset); its
// gradient undoes the rewrite: transpose back, reshape back, sum what expand
// repeated, place a slice's gradient into zeros of the full shape.
#include <algorithm>

#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

Shape infer_shape(const char* op, const Tensor& x, Shape shape) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      check(infer < 0, op, ": only one dim can be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      check(shape[i] >= 0, op, ": invalid size ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    check(known > 0 && x.numel() % known == 0, op, ": cannot reshape ", shape_str(x.shape()),
          " (", x.numel(), " elements) into ", shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  check(numel(shape) == x.numel(), op, ": cannot reshape ", shape_str(x.shape()), " (",
        x.numel(), " elements) into ", shape_str(shape), " (", numel(shape), " elements)");
  return shape;
}

// Writes `src` into the region of a fresh zero tensor that `region` selects
// from a tensor shaped like `full_shape`: the backward of every slicing view.
Tensor scatter_into_zeros(const Tensor& src, const Shape& full_shape,
                          const std::function<Tensor(const Tensor&)>& region) {
  Tensor out = zeros(full_shape, DType::Float32, src.device());
  Tensor dst = region(out);
  if (dst.numel() > 0) backend_for(src.device()).copy(dst.view_desc(), src.view_desc());
  return out;
}

}  // namespace

Tensor view(const Tensor& x, Shape shape) {
  require_defined("view", x);
  check(x.is_contiguous(), "view: tensor of shape ", shape_str(x.shape()), " and strides ",
        shape_str(x.strides()), " is not contiguous; use reshape() (which copies) or contiguous()");
  shape = infer_shape("view", x, shape);
  Tensor out = make_view(x, shape, contiguous_strides(shape), x.offset());
  return record(out, "view", {x}, [in_shape = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{reshape(g, in_shape)};
  });
}

Tensor reshape(const Tensor& x, Shape shape) {
  require_defined("reshape", x);
  return view(contiguous(x), infer_shape("reshape", x, shape));
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  const int s = normalize_dim(start_dim, x.dim(), "flatten");
  const int e = normalize_dim(end_dim, x.dim(), "flatten");
  check(s <= e, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + s);
  shape.push_back(-1);
  shape.insert(shape.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  require_defined("transpose", x);
  const int a = normalize_dim(dim0, x.dim(), "transpose");
  const int b = normalize_dim(dim1, x.dim(), "transpose");
  if (x.dim() == 0) return x;
  Shape shape = x.shape(), strides = x.strides();
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return record(make_view(x, shape, strides, x.offset()), "transpose", {x}, [a, b](const Tensor& g) {
    return std::vector<Tensor>{transpose(g, a, b)};
  });
}

Tensor permute(const Tensor& x, std::vector<int64_t> dims) {
  require_defined("permute", x);
  check(static_cast<int>(dims.size()) == x.dim(), "permute: got ", dims.size(),
        " dims for a tensor with ", x.dim(), " dims");
  std::vector<int64_t> inverse(dims.size(), -1);
  Shape shape(dims.size()), strides(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    const int d = normalize_dim(dims[i], x.dim(), "permute");
    check(inverse[d] < 0, "permute: dim ", dims[i], " appears twice in ", shape_str(dims));
    inverse[d] = static_cast<int64_t>(i);
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  return record(make_view(x, shape, strides, x.offset()), "permute", {x},
                [inverse](const Tensor& g) { return std::vector<Tensor>{permute(g, inverse)}; });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  require_defined("slice", x);
  const int d = normalize_dim(dim, x.dim(), "slice");
  check(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = x.shape()[d];
  auto clamp = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  start = clamp(start);
  end = std::max(clamp(end), start);
  Shape shape = x.shape(), strides = x.strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  auto region = [d, start, end, step](const Tensor& t) { return slice(t, d, start, end, step); };
  Tensor out = make_view(x, shape, strides, x.offset() + start * x.strides()[d]);
  return record(out, "slice", {x}, [region, full = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{scatter_into_zeros(g, full, region)};
  });
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  require_defined("narrow", x);
  const int d = normalize_dim(dim, x.dim(), "narrow");
  const int64_t n = x.shape()[d];
  check(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ",
        start + length, ") is outside dim ", dim, " of size ", n);
  return slice(x, d, start, start + length);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  require_defined("select", x);
  const int d = normalize_dim(dim, x.dim(), "select");
  const int64_t n = x.shape()[d];
  check(index >= -n && index < n, "select: index ", index, " is out of range for dim ", dim,
        " of size ", n);
  if (index < 0) index += n;
  return squeeze(slice(x, d, index, index + 1), d);
}

Tensor expand(const Tensor& x, Shape shape) {
  require_defined("expand", x);
  check(shape.size() >= static_cast<size_t>(x.dim()), "expand: cannot expand ",
        shape_str(x.shape()), " to fewer dims ", shape_str(shape));
  const size_t lead = shape.size() - x.dim();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      check(shape[i] >= 0, "expand: size -1 is not allowed for a new leading dim in ",
            shape_str(shape));
      continue;
    }
    const int64_t have = x.shape()[i - lead];
    if (shape[i] == -1) shape[i] = have;
    check(have == shape[i] || have == 1, "expand: cannot expand ", shape_str(x.shape()), " to ",
          shape_str(shape), ": size ", have, " at dim ", i - lead, " is not 1");
    strides[i] = have == shape[i] ? x.strides()[i - lead] : 0;
  }
  if (shape == x.shape()) return x;
  return record(make_view(x, shape, strides, x.offset()), "expand", {x},
                [in_shape = x.shape()](const Tensor& g) {
                  return std::vector<Tensor>{sum_to(g, in_shape)};
                });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  require_defined("squeeze", x);
  const int d = normalize_dim(dim, x.dim(), "squeeze");
  if (x.dim() == 0 || x.shape()[d] != 1) return x;
  Shape shape = x.shape(), strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return record(make_view(x, shape, strides, x.offset()), "squeeze", {x},
                [in_shape = x.shape()](const Tensor& g) {
                  return std::vector<Tensor>{reshape(g, in_shape)};
                });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  require_defined("unsqueeze", x);
  const int d = normalize_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape(), strides = x.strides();
  const int64_t stride = d < x.dim() ? x.strides()[d] * x.shape()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return record(make_view(x, shape, strides, x.offset()), "unsqueeze", {x},
                [d](const Tensor& g) { return std::vector<Tensor>{squeeze(g, d)}; });
}

Tensor contiguous(const Tensor& x) {
  require_defined("contiguous", x);
  if (x.is_contiguous()) return x;
  return record(x.clone(), "contiguous", {x},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  check(!xs.empty(), "cat: expected at least one tensor");
  for (const Tensor& x : xs) require_defined("cat", x);
  const Tensor& first = xs.front();
  const int d = normalize_dim(dim, first.dim(), "cat");
  const Device device = common_device("cat", xs);
  Shape shape = first.shape();
  shape[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check(xs[i].dtype() == first.dtype(), "cat: dtype mismatch: tensor 0 is ",
          dtype_name(first.dtype()), ", tensor ", i, " is ", dtype_name(xs[i].dtype()));
    bool same = xs[i].dim() == first.dim();
    for (int k = 0; same && k < first.dim(); ++k)
      same = k == d || xs[i].shape()[k] == first.shape()[k];
    check(same, "cat: tensor ", i, " has shape ", shape_str(xs[i].shape()),
          " but tensor 0 has shape ", shape_str(first.shape()),
          "; all dims except the cat dim ", d, " must match");
    shape[d] += xs[i].shape()[d];
  }
  Tensor out = empty(shape, first.dtype(), device);
  std::vector<int64_t> starts;  // where each input begins along d; one extra for the end
  int64_t at = 0;
  for (const Tensor& x : xs) {
    starts.push_back(at);
    Tensor dst = slice(out.detach(), d, at, at + x.shape()[d]);
    if (x.numel() > 0) backend_for(device).copy(dst.view_desc(), x.view_desc());
    at += x.shape()[d];
  }
  starts.push_back(at);
  return record(out, "cat", xs, [d, starts](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t i = 0; i + 1 < starts.size(); ++i)
      grads.push_back(slice(g, d, starts[i], starts[i + 1]));
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  check(!xs.empty(), "stack: expected at least one tensor");
  const int d = normalize_dim(dim, xs.front().dim() + 1, "stack");
  std::vector<Tensor> parts;
  for (size_t i = 0; i < xs.size(); ++i) {
    check(xs[i].shape() == xs.front().shape(), "stack: tensor ", i, " has shape ",
          shape_str(xs[i].shape()), " but tensor 0 has shape ", shape_str(xs.front().shape()));
    parts.push_back(unsqueeze(xs[i], d));
  }
  return cat(parts, d);
}

Tensor repeat_interleave(const Tensor& x, int64_t repeats, int64_t dim) {
  require_defined("repeat_interleave", x);
  check(repeats >= 1, "repeat_interleave: repeats must be >= 1, got ", repeats);
  const int d = normalize_dim(dim, x.dim(), "repeat_interleave");
  // [.., n, ..] -> [.., n, 1, ..] -> expand [.., n, r, ..] -> [.., n*r, ..]:
  // each slice is repeated `repeats` times in place (a a b b, not a b a b).
  Shape expanded = x.shape();
  expanded.insert(expanded.begin() + d + 1, repeats);
  Shape merged = x.shape();
  merged[d] *= repeats;
  return reshape(expand(unsqueeze(x, d + 1), expanded), merged);
}

Tensor to(const Tensor& x, const Device& device) {
  require_defined("to", x);
  if (x.device() == device) return x;
  return record(x.to(device), "to", {x}, [from = x.device()](const Tensor& g) {
    return std::vector<Tensor>{g.to(from)};
  });
}

}  // namespace attn
