// softmax and log_softmax over one dim, and the causal softmax of attention
// scores, as fused kernels.
//
// Forward subtracts the row max before exponentiating (stability). Backward,
// with y = softmax(x):      dx = y * (dy - sum(dy * y))
//           y = log_softmax: dx = dy - softmax(x) * sum(dy)
// The kernels work on contiguous rows, so another dim is first swapped to
// the end (a free view) and made contiguous.
#include <optional>

#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"

namespace attn {

namespace {

Tensor softmax_impl(bool log, const char* name, const Tensor& x, int64_t dim) {
  require_defined(name, x);
  require_float(name, x);
  const int d = normalize_dim(dim, x.dim(), name);
  const int last = std::max(x.dim() - 1, 0);
  // Work on rows: move `d` to the end. Every view below is free.
  const Tensor xt = (d == last ? x.detach() : transpose(x.detach(), d, last)).contiguous();
  const int64_t cols = x.dim() == 0 ? 1 : x.shape()[d];
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor yt = empty(xt.shape(), DType::Float32, x.device());
  if (yt.numel() > 0) backend_for(x.device()).softmax(log, yt.data<float>(), xt.data<float>(), rows, cols);
  const Tensor y = d == last ? yt : transpose(yt, d, last);
  // The closure keeps the output (detached: a tensor must not own itself).
  return record(y, name, {x}, [log, d, last, rows, cols, yt = yt.detach()](const Tensor& g) {
    const Tensor gt = (d == last ? g : transpose(g, d, last)).contiguous();
    Tensor gx = empty(gt.shape(), DType::Float32, g.device());
    if (gx.numel() > 0)
      backend_for(g.device()).softmax_backward(log, gx.data<float>(), yt.data<float>(),
                                               gt.data<float>(), rows, cols);
    return std::vector<Tensor>{d == last ? gx : transpose(gx, d, last)};
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(false, "softmax", x, dim); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(true, "log_softmax", x, dim); }

// Causal attention weights from raw scores [B, H, Tq, Tk], fused: the steps
// scale -> + ALiBi bias -> mask keys j > offset + i -> softmax, which would
// each write (and autograd keep) a full [B, H, Tq, Tk] tensor, are one pass
// here, and only the weights y are kept for the backward:
//   x' = scale * x + bias,  y = softmax(x'),  dx = scale * y * (dy - sum(dy * y))
// (the bias is a constant; masked keys have y = 0 and so get no gradient).
//
// With attention dropout the same pass also writes the op's output y * Z
// (Z = keep / (1 - p)); y is kept for the backward, which regenerates Z and
// takes dy * Z into the softmax backward. Dropping in a separate op would
// read and write the T x T weights once more each way, and draw numbers for
// the masked half of the matrix too.
namespace {

Tensor causal_softmax_impl(const Tensor& scores, float scale, int64_t offset,
                           const std::vector<float>& alibi_slopes, const AttentionDropoutArgs* dropout) {
  const char* name = dropout ? "causal_softmax_dropout" : "causal_softmax";
  require_defined(name, scores);
  require_float(name, scores);
  check(scores.dim() == 4, name, ": expected scores of shape [B, H, Tq, Tk], got ",
        shape_str(scores.shape()));
  const int64_t heads = scores.shape()[1], tq = scores.shape()[2], tk = scores.shape()[3];
  check(alibi_slopes.empty() || static_cast<int64_t>(alibi_slopes.size()) == heads, name, ": ",
        alibi_slopes.size(), " ALiBi slopes for ", heads, " heads");
  const Tensor x = scores.detach().contiguous();
  const int64_t rows = tk == 0 ? 0 : x.numel() / tk;
  Tensor y = empty(x.shape(), DType::Float32, x.device());
  Tensor out = dropout ? empty(x.shape(), DType::Float32, x.device()) : y;
  if (rows > 0)
    backend_for(x.device()).causal_softmax(y.data<float>(), x.data<float>(), rows, heads, tq, tk, offset,
                                           scale, alibi_slopes.empty() ? nullptr : alibi_slopes.data(),
                                           dropout, dropout ? out.data<float>() : nullptr);
  std::optional<AttentionDropoutArgs> d;
  if (dropout) d = *dropout;
  return record(out, name, {scores}, [y = y.detach(), rows, heads, tq, tk, offset, scale, d](const Tensor& g) {
    const Tensor gc = g.contiguous();
    Tensor dx = empty(gc.shape(), DType::Float32, g.device());
    if (rows > 0)
      backend_for(g.device()).causal_softmax_backward(dx.data<float>(), y.data<float>(), gc.data<float>(),
                                                      rows, heads, tq, tk, offset, scale,
                                                      d ? &*d : nullptr);
    return std::vector<Tensor>{dx};
  });
}

}  // namespace

Tensor causal_softmax(const Tensor& scores, float scale, int64_t offset,
                      const std::vector<float>& alibi_slopes) {
  return causal_softmax_impl(scores, scale, offset, alibi_slopes, nullptr);
}

Tensor causal_softmax_dropout(const Tensor& scores, float scale, int64_t offset,
                              const std::vector<float>& alibi_slopes, const AttentionDropoutArgs& dropout) {
  check(dropout.p >= 0 && dropout.p < 1, "causal_softmax_dropout: p must be in [0, 1), got ", dropout.p);
  if (dropout.p == 0) return causal_softmax(scores, scale, offset, alibi_slopes);
  return causal_softmax_impl(scores, scale, offset, alibi_slopes, &dropout);
}

}  // namespace attn
