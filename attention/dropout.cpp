// Attention dropout: where an attention layer gets its random numbers, and
// dropping a block of attention weights (see attention.h).
//
// Like nanoGPT, training drops attention probabilities after the softmax:
// out = (P * Z) V with Z = keep / (1 - p), so a query reads a random subset
// of the values it attends to. The softmax's normaliser is the undropped
// P's, which is why every path drops the weights, never the scores.
#include "attention/attention.h"
#include "attention/kernel.h"
#include "autograd/checks.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "nn/layers.h"

namespace attn {

Attention::Attention(float dropout) : dropout_(dropout) {
  check(dropout >= 0 && dropout < 1, "attention: dropout must be in [0, 1), got ", dropout);
}

AttentionDropoutArgs Attention::next_dropout() {
  if (!training() || dropout_ <= 0 || dropout_source_ == nullptr) return {};
  const philox::Stream s = dropout_source_->next();
  return {s.seed, s.offset, dropout_source_->first_sample, dropout_};
}

namespace {

// A block that is not the whole matrix (the banded window path's chunks):
// the device's attention_dropout kernel, which knows where the block sits.
// The backward applies the same decisions to the gradient, regenerated.
Tensor drop_block(const Tensor& w_in, const AttentionDropoutArgs& d, int64_t tq, int64_t tk,
                  int64_t row0, int64_t col0) {
  const char* op = "attention_dropout";
  require_float(op, w_in);
  check(w_in.dim() == 4, op, ": expected weights [B, H, rows, cols], got ", shape_str(w_in.shape()));
  const Shape& s = w_in.shape();
  check(row0 >= 0 && col0 >= 0 && row0 + s[2] <= tq && col0 + s[3] <= tk, op, ": rows ", row0, "..",
        row0 + s[2], " and keys ", col0, "..", col0 + s[3], " are not inside a ", tq, " x ", tk,
        " attention matrix");
  const ProbabilityBlock blk{s[0], s[1], tq, tk, row0, s[2], col0, s[3]};
  const Tensor w = w_in.detach().contiguous();
  Tensor y = empty(s, DType::Float32, w.device());
  backend_for(w.device()).attention_dropout(y.data<float>(), w.data<float>(), blk, d);
  return record(y, op, {w_in}, [blk, d](const Tensor& g_in) {
    const Tensor g = g_in.contiguous();
    Tensor dw = empty(g.shape(), DType::Float32, g.device());
    backend_for(g.device()).attention_dropout(dw.data<float>(), g.data<float>(), blk, d);
    return std::vector<Tensor>{dw};
  });
}

}  // namespace

Tensor drop_attention_weights(const Tensor& w, const AttentionDropoutArgs& d, int64_t tq, int64_t tk,
                              int64_t row0, int64_t col0) {
  if (d.p <= 0) return w;
  const bool whole = row0 == 0 && col0 == 0 && w.dim() == 4 && w.shape()[2] == tq && w.shape()[3] == tk;
  // The whole [B, H, Tq, Tk] matrix, rows along dim 0 as samples: element
  // (h Tq + i) Tk + j of sample first_sample + b, the keying itself.
  if (whole) return dropout(w, d.p, {d.seed, d.offset}, d.first_sample);
  return drop_block(w, d, tq, tk, row0, col0);
}

Tensor AttentionCall::drop(const Tensor& w, int64_t row0, int64_t col0) const {
  return drop_attention_weights(w, dropout, q.shape()[2], k.shape()[2], row0, col0);
}

}  // namespace attn
