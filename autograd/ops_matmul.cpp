// Batched matrix product with batch broadcasting, and its gradient.
//
//   C = A @ B        A [..., M, K], B [..., K, N], C [..., M, N]
//   dA = dC @ B^T    dB = A^T @ dC   (summed over broadcast batch dims)
//
// The transposes in the backward are free views: the kernel hands
// "transposed" to BLAS instead of copying.
#include "autograd/autocast.h"
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

// How BLAS should read the last two dims of t: rows contiguous (ld = row
// stride), or columns contiguous (a transposed view; ld = column stride).
struct MatrixLayout {
  bool ok = false, trans = false;
  int64_t ld = 0;
};

MatrixLayout layout_of(const Tensor& t) {
  const int n = t.dim();
  const int64_t rows = t.shape()[n - 2], cols = t.shape()[n - 1];
  // Strides of size-1 dims are arbitrary; pretend they are the natural ones.
  const int64_t sc = cols == 1 ? 1 : t.strides()[n - 1];
  const int64_t sr = rows == 1 ? std::max<int64_t>(cols, 1) : t.strides()[n - 2];
  if (sc == 1 && sr >= std::max<int64_t>(cols, 1)) return {true, false, sr};
  const int64_t sr2 = rows == 1 ? 1 : t.strides()[n - 2];
  const int64_t sc2 = cols == 1 ? std::max<int64_t>(rows, 1) : t.strides()[n - 1];
  if (sr2 == 1 && sc2 >= std::max<int64_t>(rows, 1)) return {true, true, sc2};
  return {};
}

// Element offsets of each batch entry of t (broadcast to `batch`).
std::vector<int64_t> batch_offsets(const Tensor& t, const Shape& batch) {
  const int nb = static_cast<int>(batch.size());
  Shape t_batch(t.shape().begin(), t.shape().end() - 2);
  Tensor as_batch = make_view(t, t_batch, Shape(t.strides().begin(), t.strides().end() - 2), 0);
  const View v = as_batch.view_desc(batch);
  std::vector<int64_t> offsets(numel(batch));
  std::vector<int64_t> idx(nb, 0);
  for (size_t b = 0; b < offsets.size(); ++b) {
    int64_t off = 0;
    for (int d = 0; d < nb; ++d) off += idx[d] * v.strides[d];
    offsets[b] = off;
    for (int d = nb - 1; d >= 0; --d) {
      if (++idx[d] < batch[d]) break;
      idx[d] = 0;
    }
  }
  return offsets;
}

Tensor matmul_forward(Tensor a, Tensor b) {
  const int64_t m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1];
  const int64_t n = b.shape()[b.dim() - 1];
  const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                       Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor out = empty(out_shape, DType::Float32, a.device());
  if (out.numel() == 0) return out;
  Backend& be = backend_for(a.device());
  if (k == 0) {
    be.fill(out.view_desc(), 0.0);
    return out;
  }
  MatrixLayout la = layout_of(a), lb = layout_of(b);
  if (!la.ok) a = a.contiguous(), la = layout_of(a);
  if (!lb.ok) b = b.contiguous(), lb = layout_of(b);
  const std::vector<int64_t> a_off = batch_offsets(a, batch), b_off = batch_offsets(b, batch);
  GemmArgs args;
  args.batch = numel(batch);
  args.m = m, args.n = n, args.k = k;
  args.a = a.data<float>(), args.b = b.data<float>(), args.c = out.data<float>();
  args.lda = la.ld, args.ldb = lb.ld;
  args.trans_a = la.trans, args.trans_b = lb.trans;
  args.a_offsets = a_off.data(), args.b_offsets = b_off.data();
  be.gemm(args);
  return out;
}

// C [m, n] = op(A) op(B) for two contiguous 2-D bfloat16 tensors, op a
// transpose where asked; C is float32, summed in float32. A raw product
// (linear's backward under bfloat16 autocast), not a recorded op.
Tensor product_bf16(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b) {
  const int64_t m = a.shape()[trans_a ? 1 : 0], k = a.shape()[trans_a ? 0 : 1];
  const int64_t n = b.shape()[trans_b ? 0 : 1];
  Tensor c = empty({m, n}, DType::Float32, a.device());
  if (c.numel() == 0) return c;
  const int64_t zero = 0;
  GemmArgs g;
  g.m = m, g.n = n, g.k = k;
  g.a_bf16 = a.data<uint16_t>(), g.lda = a.shape()[1], g.trans_a = trans_a;
  g.b_bf16 = b.data<uint16_t>(), g.ldb = b.shape()[1], g.trans_b = trans_b;
  g.a_offsets = g.b_offsets = &zero;
  g.c = c.data<float>();
  backend_for(a.device()).gemm(g);
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  require_defined("matmul", a_in);
  require_defined("matmul", b_in);
  common_device("matmul", {a_in, b_in});
  check(a_in.dtype() == DType::Float32 && b_in.dtype() == DType::Float32,
        "matmul: dtype mismatch: expected float32 inputs, got ", dtype_name(a_in.dtype()), " and ",
        dtype_name(b_in.dtype()));
  check(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: inputs must have at least 1 dim, got shapes ",
        shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  // [..., M, K] @ [K, N] with contiguous rows is one big [(...*M), K] @ [K, N]
  // product: one BLAS call instead of one per batch entry (every Linear layer).
  // Not for K = 0: reshape cannot infer the -1 of [-1, 0]; the general path
  // below gives the zeros.
  if (a_in.dim() > 2 && b_in.dim() == 2 && a_in.is_contiguous() &&
      a_in.shape().back() == b_in.shape()[0] && a_in.shape().back() > 0) {
    Shape out_shape = a_in.shape();
    out_shape.back() = b_in.shape()[1];
    return reshape(matmul(reshape(a_in, {-1, a_in.shape().back()}), b_in), out_shape);
  }
  // Vectors act as a 1-row (left) or 1-column (right) matrix, as in PyTorch.
  const Tensor a = a_in.dim() == 1 ? unsqueeze(a_in, 0) : a_in;
  const Tensor b = b_in.dim() == 1 ? unsqueeze(b_in, 1) : b_in;
  const int64_t ka = a.shape()[a.dim() - 1], kb = b.shape()[b.dim() - 2];
  check(ka == kb, "matmul: shapes ", shape_str(a_in.shape()), " and ", shape_str(b_in.shape()),
        " do not match: ", ka, " != ", kb);
  Tensor out = record(matmul_forward(a, b), "matmul", {a, b}, [a, b](const Tensor& g) {
    return std::vector<Tensor>{
        a.requires_grad() ? sum_to(matmul(g, transpose(b, -1, -2)), a.shape()) : Tensor(),
        b.requires_grad() ? sum_to(matmul(transpose(a, -1, -2), g), b.shape()) : Tensor()};
  });
  if (a_in.dim() == 1) out = squeeze(out, -2);
  if (b_in.dim() == 1) out = squeeze(out, -1);
  return out;
}

// ---- linear: y = act(x @ w^T + b) ----
//
// Forward: one product of the rows of x, [N, in], with w^T (a free
// transposed view), its epilogue adding b and applying GELU while the tile
// is in registers; with GELU the pre-activation z = x w^T + b is kept.
// Backward, for the upstream gradient g [N, out]:
//   dz = g * gelu'(z)   (one pass; dz = g without GELU)
//   dx = dz @ w         dw = dz^T @ x   (already [out, in]: nothing to transpose back)
//   db = sum of dz over rows
// Under bfloat16 autocast (autograd/autocast.h) the three products take
// bfloat16 operands, x, w and dz rounded, as bfloat16 tensors: the tensor
// cores' format on a GPU, half the bytes kept for the backward. Their
// gradients pass straight through the rounding, and are not themselves
// differentiable (no second derivatives under autocast).

namespace {

// dz from the upstream gradient: g, or g * gelu'(z) when z was kept.
Tensor pre_activation_grad(const Tensor& g, const Tensor& z) {
  if (!z.defined()) return g;
  Tensor dz = empty(g.shape(), DType::Float32, g.device());
  backend_for(g.device()).binary(BinaryOp::GeluBackward, dz.view_desc(), g.view_desc(), z.view_desc());
  return dz;
}

// linear's node under bfloat16 autocast: it keeps the bfloat16 copies of x
// and w, and rounds dz before the two products.
Tensor record_linear_bf16(const Tensor& y, const Tensor& x_in, const Tensor& w_in, const Tensor& b_in,
                          const Tensor& x16, const Tensor& w16, const Tensor& z) {
  const bool need_dx = x_in.requires_grad(), need_dw = w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  return record(y, "linear", {x_in, w_in, b_in},
                [x16, w16, z, x_shape = x_in.shape(), need_dx, need_dw, need_db](const Tensor& g_in) {
    const Tensor g = reshape(g_in.contiguous(), {x16.shape()[0], w16.shape()[0]});
    const Tensor dz = pre_activation_grad(g, z);
    const Tensor dz16 = need_dx || need_dw ? dz.to(DType::BFloat16) : Tensor();
    return std::vector<Tensor>{
        need_dx ? reshape(product_bf16(dz16, false, w16, false), x_shape) : Tensor(),
        need_dw ? product_bf16(dz16, true, x16, false) : Tensor(),
        need_db ? sum(dz, {0}) : Tensor()};
  });
}

}  // namespace

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, LinearActivation act) {
  require_defined("linear", x_in);
  require_defined("linear", w_in);
  common_device("linear", b_in.defined() ? std::vector<Tensor>{x_in, w_in, b_in}
                                          : std::vector<Tensor>{x_in, w_in});
  check(x_in.dtype() == DType::Float32 && w_in.dtype() == DType::Float32 &&
            (!b_in.defined() || b_in.dtype() == DType::Float32),
        "linear: expected float32 inputs");
  check(w_in.dim() == 2, "linear: weight must be [out, in], got shape ", shape_str(w_in.shape()));
  const int64_t in = w_in.shape()[1], out = w_in.shape()[0];
  check(in > 0, "linear: in_features must be positive, got weight of shape ",
        shape_str(w_in.shape()));
  check(x_in.dim() >= 1 && x_in.shape().back() == in, "linear: input of shape ",
        shape_str(x_in.shape()), " does not end in in_features=", in);
  check(!b_in.defined() || b_in.shape() == Shape{out}, "linear: bias must have shape [", out,
        "], got ", b_in.defined() ? shape_str(b_in.shape()) : "");
  Shape y_shape = x_in.shape();
  y_shape.back() = out;
  const int64_t rows = x_in.numel() / in;
  const Tensor x = reshape(x_in.detach().contiguous(), {rows, in});
  const Tensor w = w_in.detach().contiguous();
  const Tensor b = b_in.defined() ? b_in.detach().contiguous() : Tensor();
  const bool gelu = act == LinearActivation::Gelu;
  const bool bf16 = autocast_dtype() == DType::BFloat16;
  const Tensor x16 = bf16 ? x.to(DType::BFloat16) : Tensor();
  const Tensor w16 = bf16 ? w.to(DType::BFloat16) : Tensor();
  Backend& be = backend_for(x.device());
  Tensor y = empty({rows, out}, DType::Float32, x.device());
  Tensor z = gelu ? empty({rows, out}, DType::Float32, x.device()) : Tensor();
  if (rows > 0 && out > 0) {
    const int64_t zero = 0;
    GemmArgs args;
    args.m = rows, args.n = out, args.k = in;
    args.a = x.data<float>(), args.lda = in;
    args.b = w.data<float>(), args.ldb = in, args.trans_b = true;
    args.c = y.data<float>();
    args.a_offsets = &zero, args.b_offsets = &zero;
    args.bias = b.defined() ? b.data<float>() : nullptr;
    args.gelu_aux = gelu ? z.data<float>() : nullptr;
    if (bf16) args.a_bf16 = x16.data<uint16_t>(), args.b_bf16 = w16.data<uint16_t>();
    be.gemm(args);
  }
  if (bf16) return record_linear_bf16(reshape(y, y_shape), x_in, w_in, b_in, x16, w16, z);
  const bool need_dx = x_in.requires_grad(), need_dw = w_in.requires_grad();
  const bool need_db = b_in.defined() && b_in.requires_grad();
  y = record(reshape(y, y_shape), "linear", {x_in, w_in, b_in},
             [x, w, z, x_shape = x_in.shape(), need_dx, need_dw, need_db](const Tensor& g_in) {
    const Tensor g = reshape(g_in.contiguous(), {x.shape()[0], w.shape()[0]});
    const Tensor dz = pre_activation_grad(g, z);
    return std::vector<Tensor>{
        need_dx ? reshape(matmul(dz, w), x_shape) : Tensor(),
        need_dw ? matmul(transpose(dz, 0, 1), x) : Tensor(),
        need_db ? sum(dz, {0}) : Tensor()};
  });
  return y;
}

}  // namespace attn
