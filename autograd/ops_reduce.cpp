// Reductions and their gradients.
//
// The kernel reduces the trailing dims of a view, so each op first permutes
// (for free: it only reorders strides) the kept dims to the front and the
// reduced dims to the back.
#include <algorithm>

#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

std::vector<bool> reduced_mask(const char* op, const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) {
    const int nd = normalize_dim(d, x.dim(), op);
    check(!reduced[nd], op, ": dim ", d, " appears twice in the list of dims");
    reduced[nd] = true;
  }
  return reduced;
}

Shape keepdim_shape(const Tensor& x, const std::vector<bool>& reduced) {
  Shape s = x.shape();
  for (int i = 0; i < x.dim(); ++i)
    if (reduced[i]) s[i] = 1;
  return s;
}

// Runs the kernel; the result has the keepdim shape.
Tensor reduce_kernel(ReduceOp op, const char* name, const Tensor& x,
                     const std::vector<bool>& reduced) {
  require_float(name, x);
  std::vector<int64_t> order;
  Shape out_shape;
  for (int i = 0; i < x.dim(); ++i)
    if (!reduced[i]) order.push_back(i);
  const int outer_dims = static_cast<int>(order.size());
  for (int i = 0; i < x.dim(); ++i)
    if (reduced[i]) order.push_back(i);
  View in = x.view_desc();
  for (int i = 0; i < x.dim(); ++i) {
    in.shape[i] = x.shape()[order[i]];
    in.strides[i] = x.strides()[order[i]];
  }
  const bool is_arg = op == ReduceOp::ArgMax || op == ReduceOp::ArgMin;
  Tensor out = empty(keepdim_shape(x, reduced), is_arg ? DType::Int64 : DType::Float32, x.device());
  if (op != ReduceOp::Sum)
    for (int i = 0; i < x.dim(); ++i)
      check(!reduced[i] || x.shape()[i] > 0, name, ": cannot reduce over dim ", i,
            " of size 0 (shape ", shape_str(x.shape()), ")");
  if (out.numel() > 0) backend_for(x.device()).reduce(op, out.view_desc(), in, outer_dims);
  return out;
}

Tensor drop_dims(const Tensor& t, const std::vector<bool>& reduced, bool keepdim) {
  if (keepdim) return t;
  Shape s;
  for (size_t i = 0; i < reduced.size(); ++i)
    if (!reduced[i]) s.push_back(t.shape()[i]);
  return reshape(t, s);
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.dim());
  for (int i = 0; i < x.dim(); ++i) d[i] = i;
  return d;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  require_defined("sum", x);
  const auto reduced = reduced_mask("sum", x, dims);
  Tensor out = reduce_kernel(ReduceOp::Sum, "sum", x, reduced);
  // Every input element contributed once: its gradient is g, broadcast back.
  out = record(out, "sum", {x}, [shape = x.shape()](const Tensor& g) {
    return std::vector<Tensor>{expand(g, shape)};
  });
  return drop_dims(out, reduced, keepdim);
}

Tensor sum(const Tensor& x) { return sum(x, all_dims(x), false); }

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  require_defined("mean", x);
  const auto reduced = reduced_mask("mean", x, dims);
  int64_t n = 1;
  for (int i = 0; i < x.dim(); ++i)
    if (reduced[i]) n *= x.shape()[i];
  return mul(sum(x, dims, keepdim), 1.0f / static_cast<float>(n));
}

Tensor mean(const Tensor& x) { return mean(x, all_dims(x), false); }

namespace {
// max/min over one dim: the gradient goes to the position the kernel picked
// (the first one on ties), found by comparing with the argmax indices.
Tensor extreme(bool is_max, const char* name, const Tensor& x, int64_t dim, bool keepdim) {
  require_defined(name, x);
  const int d = normalize_dim(dim, x.dim(), name);
  const auto reduced = reduced_mask(name, x, {d});
  Tensor values = reduce_kernel(is_max ? ReduceOp::Max : ReduceOp::Min, name, x, reduced);
  values = record(values, name, {x}, [x, d, is_max, name, reduced](const Tensor& g) {
    const Tensor idx = reduce_kernel(is_max ? ReduceOp::ArgMax : ReduceOp::ArgMin, name, x, reduced);
    Shape pos_shape(x.dim(), 1);
    pos_shape[d] = x.shape()[d];
    const Tensor positions = reshape(arange(x.shape()[d], DType::Int64, x.device()), pos_shape);
    const Tensor zero = zeros({}, DType::Float32, x.device());
    return std::vector<Tensor>{where(eq(positions, idx), expand(g, x.shape()), zero)};
  });
  return drop_dims(values, reduced, keepdim);
}
}  // namespace

Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return extreme(true, "max", x, dim, keepdim); }
Tensor min(const Tensor& x, int64_t dim, bool keepdim) { return extreme(false, "min", x, dim, keepdim); }

Tensor max(const Tensor& x) {
  require_defined("max", x);
  check(x.numel() > 0, "max: cannot take the max of an empty tensor");
  return reshape(max(reshape(x, {-1}), 0), {});
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  require_defined("argmax", x);
  const auto reduced = reduced_mask("argmax", x, {dim});
  return drop_dims(reduce_kernel(ReduceOp::ArgMax, "argmax", x, reduced), reduced, keepdim);
}

Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  require_defined("var", x);
  const auto reduced = reduced_mask("var", x, dims);
  int64_t n = 1;
  for (int i = 0; i < x.dim(); ++i)
    if (reduced[i]) n *= x.shape()[i];
  check(n - correction > 0, "var: ", n, " elements with correction ", correction,
        " leave no degrees of freedom; expected more than ", correction, " elements");
  // Written with differentiable ops, so its gradient comes for free.
  const Tensor centered = sub(x, mean(x, dims, true));
  return mul(sum(square(centered), dims, keepdim), 1.0f / static_cast<float>(n - correction));
}

}  // namespace attn
