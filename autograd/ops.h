// The differentiable ops: attnlab's public tensor API.
//
// Names and argument order follow PyTorch, so course code translates line by
// line:  `scores.masked_fill(mask == 0, -1e9)`  becomes
//        `masked_fill(scores, eq(mask, 0), -1e9f)`.
// Each op checks its inputs, computes the forward with the device's kernels,
// and records its backward right beside it (see the ops_*.cpp files).
#pragma once
#include <vector>

#include "core/attention_dropout.h"
#include "core/philox.h"
#include "core/tensor.h"

namespace attn {

// ---- elementwise (ops_elementwise.cpp); tensor-tensor forms broadcast ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float s);
Tensor mul(const Tensor& a, float s);
Tensor pow(const Tensor& a, float exponent);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor square(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor gelu(const Tensor& a);  // tanh approximation, as in GPT-2
Tensor silu(const Tensor& a);
Tensor elu(const Tensor& a);   // alpha = 1
Tensor sin(const Tensor& a);
Tensor cos(const Tensor& a);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a);
Tensor operator+(const Tensor& a, float s);
Tensor operator+(float s, const Tensor& a);
Tensor operator-(const Tensor& a, float s);
Tensor operator-(float s, const Tensor& a);
Tensor operator*(const Tensor& a, float s);
Tensor operator*(float s, const Tensor& a);
Tensor operator/(const Tensor& a, float s);

// Comparisons and logic give bool tensors; they have no gradient.
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor logical_not(const Tensor& a);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);

// ---- reductions (ops_reduce.cpp); dims may be negative ----
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor max(const Tensor& x);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);  // values
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance with Bessel's correction by default (divide by n - correction).
Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction = 1,
           bool keepdim = false);

// ---- views and shape (ops_shape.cpp) ----
Tensor reshape(const Tensor& x, Shape shape);  // one -1 is inferred
Tensor view(const Tensor& x, Shape shape);     // like reshape, but never copies
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, std::vector<int64_t> dims);
// Python-style slice x[start:end:step] along dim (negative and out-of-range
// bounds clamp, as in Python).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
// x[start : start+length] along dim; out-of-range is an error.
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor expand(const Tensor& x, Shape shape);  // -1 keeps a size
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
Tensor repeat_interleave(const Tensor& x, int64_t repeats, int64_t dim);
Tensor to(const Tensor& x, const Device& device);

// ---- products and normalisers ----
Tensor matmul(const Tensor& a, const Tensor& b);  // ops_matmul.cpp
// A Linear layer in one op: y = act(x @ w^T + b), x [..., in], w [out, in],
// b [out] or undefined. One matrix product whose epilogue adds the bias and
// applies GELU (tanh form) in the same pass (ops_matmul.cpp).
enum class LinearActivation { None, Gelu };
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b,
              LinearActivation act = LinearActivation::None);
Tensor softmax(const Tensor& x, int64_t dim);     // ops_softmax.cpp
Tensor log_softmax(const Tensor& x, int64_t dim);
// Attention weights from raw scores [B, H, Tq, Tk] in one fused op:
// softmax over keys j <= offset + i of scale * scores - slope[h] * (offset + i - j)
// (no ALiBi term when alibi_slopes is empty); masked keys get 0, a row with
// no key is all zeros. Equals softmax(masked_fill(scale * s + bias, !causal, -inf)).
Tensor causal_softmax(const Tensor& scores, float scale, int64_t offset = 0,
                      const std::vector<float>& alibi_slopes = {});
// The same weights with attention dropout (training), in the same pass:
// returns y * Z, Z = keep / (1 - p) with the decisions of
// core/attention_dropout.h; equals dropout of causal_softmax's weights as a
// whole [B, H, Tq, Tk] matrix, bit for bit.
Tensor causal_softmax_dropout(const Tensor& scores, float scale, int64_t offset,
                              const std::vector<float>& alibi_slopes, const AttentionDropoutArgs& dropout);

// ---- fused layers (ops_norm.cpp, ops_loss.cpp): one kernel forward, one backward ----
// Normalise over the last dim. weight/bias may be undefined Tensors (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-5f);
// Mean over rows of -log softmax(logits)[target]; logits [..., V], targets
// int64 [...] (the same leading shape).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets);

// ---- dropout (ops_dropout.cpp) ----
// Each element kept with probability 1 - p and scaled by 1 / (1 - p), the
// rest zeroed; the decisions come from Philox (core/philox.h): stream
// (seed, offset), sample first_sample + row for each row along dim 0, and
// the element's index within its row. Same inputs, same mask, on any device.
Tensor dropout(const Tensor& x, float p, const philox::Stream& stream, int64_t first_sample);
// residual + dropout(x) in one pass (a transformer block's residual branch).
Tensor dropout_add(const Tensor& residual, const Tensor& x, float p, const philox::Stream& stream,
                   int64_t first_sample);

// ---- indexing and masks (ops_index.cpp) ----
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// weight [V, D], ids int64 of any shape -> [*ids.shape, D].
Tensor embedding(const Tensor& weight, const Tensor& ids);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, float value);
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);
Tensor cumsum(const Tensor& x, int64_t dim);

}  // namespace attn
