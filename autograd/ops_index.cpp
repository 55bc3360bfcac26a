// Indexing and masking: index_select / embedding (gather, with scatter-add
// as the gradient), where / masked_fill, tril / triu, and cumsum.
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  require_defined("index_select", x);
  require_defined("index_select", index);
  require_float("index_select", x);
  common_device("index_select", {x, index});
  check(index.dtype() == DType::Int64, "index_select: index must be int64, got ",
        dtype_name(index.dtype()));
  check(index.dim() == 1, "index_select: index must be 1-D, got shape ", shape_str(index.shape()));
  const int d = normalize_dim(dim, x.dim(), "index_select");
  // Gather whole rows: move `d` to the front, so each index picks one
  // contiguous row of `row` elements.
  const Tensor table = transpose(x.detach(), 0, d).contiguous();
  const Tensor idx = index.contiguous();
  const int64_t rows = x.shape()[d], n = idx.numel();
  const int64_t row = rows == 0 ? 0 : table.numel() / rows;
  Shape out_shape = table.shape();
  out_shape[0] = n;
  Tensor out = empty(out_shape, DType::Float32, x.device());
  Backend& be = backend_for(x.device());
  if (n > 0) {
    const int64_t bad = be.gather_rows(out.data<float>(), table.data<float>(),
                                       idx.data<int64_t>(), n, row, rows);
    if (bad >= 0)
      fail("index_select: index ", idx.to_int_vector()[bad], " at position ", bad,
           " is out of range for dim ", d, " with size ", rows);
  }
  Tensor result = transpose(out, 0, d);
  return record(result, "index_select", {x}, [d, idx, table_shape = table.shape(), n, row](const Tensor& g) {
    // Each gathered row sends its gradient back to the row it came from;
    // rows picked twice receive both gradients.
    const Tensor gt = transpose(g, 0, d).contiguous();
    Tensor gx = zeros(table_shape, DType::Float32, g.device());
    if (n > 0)
      backend_for(g.device()).scatter_add_rows(gx.data<float>(), idx.data<int64_t>(),
                                               gt.data<float>(), n, row);
    return std::vector<Tensor>{transpose(gx, 0, d)};
  });
}

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check(weight.defined() && weight.dim() == 2, "embedding: weight must be 2-D [vocab, dim], got ",
        weight.defined() ? shape_str(weight.shape()) : "undefined");
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.shape()[1]);
  return reshape(index_select(weight, 0, reshape(ids, {-1})), out_shape);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  require_defined("where", cond);
  require_defined("where", a);
  require_defined("where", b);
  const Device d = common_device("where", {cond, a, b});
  check(cond.dtype() == DType::Bool, "where: condition must be bool, got ",
        dtype_name(cond.dtype()));
  check(a.dtype() == DType::Float32 && b.dtype() == DType::Float32,
        "where: dtype mismatch: expected float32 values, got ", dtype_name(a.dtype()), " and ",
        dtype_name(b.dtype()));
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"),
                                       b.shape(), "where");
  Tensor out = empty(shape, DType::Float32, d);
  if (out.numel() > 0)
    backend_for(d).where(out.view_desc(), cond.view_desc(shape), a.view_desc(shape),
                         b.view_desc(shape));
  // The gradient needs only the condition and the shapes, not a's or b's values.
  return record(out, "where", {a, b},
                [cond, sa = a.shape(), sb = b.shape(), ga = a.requires_grad(),
                 gb = b.requires_grad()](const Tensor& g) {
    const Tensor zero = zeros({}, DType::Float32, g.device());
    return std::vector<Tensor>{ga ? sum_to(where(cond, g, zero), sa) : Tensor(),
                               gb ? sum_to(where(cond, zero, g), sb) : Tensor()};
  });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, float value) {
  require_defined("masked_fill", x);
  require_defined("masked_fill", mask);
  check(mask.dtype() == DType::Bool, "masked_fill: mask must be bool, got ",
        dtype_name(mask.dtype()), " (compare first, e.g. eq(mask, 0))");
  const Shape shape = broadcast_shapes(x.shape(), mask.shape(), "masked_fill");
  check(shape == x.shape(), "masked_fill: mask of shape ", shape_str(mask.shape()),
        " would grow the input of shape ", shape_str(x.shape()), "; it must broadcast to it");
  return where(mask, full({}, value, DType::Float32, x.device()), x);
}

namespace {
// keep[i, j] = (j - i <= k) for tril, (j - i >= k) for triu.
Tensor triangle(const char* name, const Tensor& x, int64_t k, bool lower) {
  require_defined(name, x);
  check(x.dim() >= 2, name, ": expected at least 2 dims, got shape ", shape_str(x.shape()));
  const int64_t rows = x.shape()[x.dim() - 2], cols = x.shape()[x.dim() - 1];
  const Tensor i = reshape(arange(rows, DType::Int64, x.device()), {rows, 1});
  const Tensor j = reshape(arange(0, static_cast<double>(cols), 1, DType::Int64, x.device()), {1, cols});
  const Tensor diff = sub(j.to(DType::Float32), i.to(DType::Float32));
  const Tensor keep = lower ? logical_not(gt(diff, static_cast<double>(k)))
                            : logical_not(lt(diff, static_cast<double>(k)));
  return where(keep, x, zeros({}, DType::Float32, x.device()));
}
}  // namespace

Tensor tril(const Tensor& x, int64_t k) { return triangle("tril", x, k, true); }
Tensor triu(const Tensor& x, int64_t k) { return triangle("triu", x, k, false); }

Tensor cumsum(const Tensor& x, int64_t dim) {
  require_defined("cumsum", x);
  require_float("cumsum", x);
  const int d = normalize_dim(dim, x.dim(), "cumsum");
  const int last = std::max(x.dim() - 1, 0);
  const Tensor xt = (d == last ? x.detach() : transpose(x.detach(), d, last)).contiguous();
  const int64_t cols = x.dim() == 0 ? 1 : x.shape()[d];
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor yt = empty(xt.shape(), DType::Float32, x.device());
  if (yt.numel() > 0) backend_for(x.device()).cumsum(yt.data<float>(), xt.data<float>(), rows, cols, false);
  const Tensor y = d == last ? yt : transpose(yt, d, last);
  // y_j = sum_{i<=j} x_i, so dx_i = sum_{j>=i} dy_j: a cumsum from the right.
  return record(y, "cumsum", {x}, [d, last, rows, cols](const Tensor& g) {
    const Tensor gt = (d == last ? g : transpose(g, d, last)).contiguous();
    Tensor gx = empty(gt.shape(), DType::Float32, g.device());
    if (gx.numel() > 0)
      backend_for(g.device()).cumsum(gx.data<float>(), gt.data<float>(), rows, cols, true);
    return std::vector<Tensor>{d == last ? gx : transpose(gx, d, last)};
  });
}

}  // namespace attn
