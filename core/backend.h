// The kernel interface: everything that touches tensor memory on a device.
//
// Each device implements this one class (core/cpu/, core/cuda/). It sees only
// pointers, sizes and strides, never the Tensor class, and it is plain C++17
// so that CUDA sources can include it. `backend_for(device)` (core/dispatch.h)
// is the single place that picks an implementation.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/attention_dropout.h"

namespace attn {

constexpr int kMaxDims = 8;

// A strided window onto memory: element (i0, i1, ...) lives at
// data + sum(i_k * strides[k]) elements. `dtype` is DType as an int.
struct View {
  void* data = nullptr;
  int dtype = 0;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
};

enum class UnaryOp : int {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Relu, Step, Sigmoid, Tanh, Gelu, GeluGrad, Silu,
  SiluGrad, Elu, EluGrad, Sin, Cos, Square, Reciprocal, AddScalar, MulScalar, PowScalar,
  LogicalNot
};
// GeluBackward: out = a * gelu'(b), GELU's backward in one pass (a = the
// upstream gradient, b = GELU's input).
enum class BinaryOp : int {
  Add, Sub, Mul, Div, Max, Min, Pow, GeluBackward, Gt, Ge, Lt, Le, Eq, Ne, And, Or
};
enum class ReduceOp : int { Sum, Max, Min, ArgMax, ArgMin };

// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for every batch b.
// A[b] is M x K (after op), B[b] is K x N, C[b] is M x N row-major with
// leading dimension N. A row-major matrix whose rows are contiguous has
// trans=false and ld = row stride; one whose columns are contiguous (a
// transposed view) has trans=true and ld = column stride: no copy needed.
struct GemmArgs {
  int64_t batch = 1, m = 0, n = 0, k = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t lda = 0, ldb = 0;
  bool trans_a = false, trans_b = false;
  // Per-batch element offsets into a and b (batch entries each); broadcast
  // batch dims simply repeat an offset. C is contiguous: batch b starts at b*m*n.
  const int64_t* a_offsets = nullptr;
  const int64_t* b_offsets = nullptr;
  float alpha = 1.0f, beta = 0.0f;
  // Epilogue (batch 1 only), applied to C after alpha and beta: a Linear
  // layer's bias and GELU in the same pass as the product (cuBLASLt on CUDA).
  //   bias (n floats, or null):  C[i, j] += bias[j]
  //   gelu_aux (m x n, or null): gelu_aux = C (the pre-activation, for the
  //                              backward), then C = gelu(C) (tanh form)
  const float* bias = nullptr;
  float* gelu_aux = nullptr;
  // bfloat16 operands (batch 1 only): when set, A and B are read from these
  // (same layout and offsets) instead of a and b; C stays float32 and the
  // products are summed in float32, as bfloat16 tensor cores do.
  const uint16_t* a_bf16 = nullptr;
  const uint16_t* b_bf16 = nullptr;
};

// Where the rows of a [B, H, T, d] operand of flash attention live, in
// elements: row i of head h in batch b starts at b * batch + h * head + i * row,
// and its d values are contiguous. A contiguous tensor has {H*T*d, T*d, d};
// a projection's output [B, T, H*d] seen as [B, H, T, d] has {T*H*d, d, H*d},
// and attention reads it there, with no transposing copy.
struct FlashLayout {
  int64_t batch = 0, head = 0, row = 0;
};
inline FlashLayout contiguous_layout(int64_t heads, int64_t t, int64_t d) {
  return {heads * t * d, t * d, d};
}

// What flash attention's products multiply; it travels beside FlashArgs, as
// dropout does (chapter 14's kernel implements FlashArgs alone). BFloat16
// (bfloat16 autocast): Q, K, V, the probabilities P, dout and dS are
// rounded to bfloat16 as the products read them, and every sum accumulates
// in float32, as FlashAttention-2 does in bfloat16; the softmax statistics,
// out, lse and the gradients stay float32. The CUDA kernels run it on
// bfloat16 tensor cores (without a block list; with one, float32), and
// Float32 in 3xTF32 whatever the TF32 setting. The CPU
// kernel multiplies in float32 whatever is asked: its caller rounds Q, K
// and V first (attention/flash.cpp), and P, dout, dS stay float32 there.
enum class FlashProducts { Float32, BFloat16 };

// Flash attention on q/out [B, H, Tq, d] and k/v [B, Hkv, Tk, d], each stored
// densely (exactly B*H*T*d floats from its pointer) in the layout given.
// Query head h reads K/V head h / (H / Hkv). Key j is allowed for query i
// when j <= offset + i (if causal) and j > offset + i - window (if window > 0).
struct FlashArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  float* out = nullptr;
  float* lse = nullptr;  // [B, H, Tq]: log of each row's softmax denominator (-inf if empty)
  int64_t batch = 0, heads = 0, kv_heads = 0, tq = 0, tk = 0, dim = 0;
  int64_t offset = 0, window = 0;
  bool causal = true;
  float scale = 1;
  const float* alibi = nullptr;  // slope per query head (host memory), or null
  // q's layout is also out's, dout's and dq's; k's is dk's, v's is dv's.
  FlashLayout q_at, k_at, v_at;
};

// Block-sparse attention: the key blocks each query block visits. Query
// rows and keys are cut into blocks of `block` (1..64); query block r
// visits key blocks row_key[row_begin[r] .. row_begin[r + 1]), ascending,
// and the same entries listed by key block (col_*, query blocks ascending)
// drive the backward's dK/dV pass. An entry's mask is -1 when the block
// allows every pair, else the index m of its bits: row t of the block
// allows key j0 + u when bit u of masks[m * block + t] is set. Pairs in no
// entry are not allowed; a row with none outputs zeros, as an empty causal
// row does. Host memory; attention/block_sparsity.h builds it.
struct BlockList {
  int64_t block = 0, query_blocks = 0, key_blocks = 0;
  const int64_t* row_begin = nullptr;  // [query_blocks + 1]
  const int64_t* row_key = nullptr;    // key block of each entry
  const int64_t* row_mask = nullptr;
  const int64_t* col_begin = nullptr;  // [key_blocks + 1]
  const int64_t* col_query = nullptr;  // query block of each entry
  const int64_t* col_mask = nullptr;
  const uint64_t* masks = nullptr;
  // Where the keys stand (null: key j at position j). A list may run over
  // keys gathered from elsewhere (strided attention's summary keys copied
  // beside the sequence): key j of the call is then key key_position[j] of
  // a [B, H, Tq, key_span] attention matrix, and ALiBi distances and
  // dropout numbers use that position, so the result equals the pattern
  // applied as a mask to the whole sequence.
  const int64_t* key_position = nullptr;
  int64_t key_span = 0;
};

// Dropout from counter-based random numbers (core/philox.h): element i of a
// tensor whose rows are samples of `sample_size` elements is element
// i % sample_size of sample first_sample + i / sample_size, and is kept when
// philox::keep(stream (seed, offset), sample, element, p). The same stream
// gives the same mask on every device and thread count.
struct DropoutArgs {
  uint64_t seed = 0, offset = 0;
  int64_t first_sample = 0, sample_size = 1;
  float p = 0;
};

// A block of an attention-probability matrix [B, H, Tq, Tk]: query rows
// [row0, row0 + rows) and keys [col0, col0 + cols) of every (b, h), stored
// contiguously as [B, H, rows, cols]. The banded window path holds its
// probabilities in such blocks; the dense path's whole matrix is one.
struct ProbabilityBlock {
  int64_t batch = 0, heads = 0, tq = 0, tk = 0;
  int64_t row0 = 0, rows = 0, col0 = 0, cols = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Memory, through the device's caching allocator.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
  // Work queued on `stream` (core/stream.h) uses the block at ptr: when it
  // is freed it waits for that work before anyone reuses it. Devices whose
  // work is done when the call returns have nothing to wait for.
  virtual void record_stream(void* /*ptr*/, std::uintptr_t /*stream*/) {}
  virtual void copy_from_host(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes) = 0;

  // out[i] = value, converted to out's dtype.
  virtual void fill(const View& out, double value) = 0;
  // out[i] = in[i], converting dtype if they differ. Shapes are equal.
  virtual void copy(const View& out, const View& in) = 0;

  // Elementwise. All views have out's shape (broadcast inputs carry stride 0).
  virtual void unary(UnaryOp op, const View& out, const View& in, float scalar) = 0;
  virtual void binary(BinaryOp op, const View& out, const View& a, const View& b) = 0;
  virtual void where(const View& out, const View& cond, const View& a, const View& b) = 0;

  // out (contiguous, `outer` elements) = reduce over the trailing
  // `in.ndim - outer_dims` dims of `in` for each index of its leading dims.
  virtual void reduce(ReduceOp op, const View& out, const View& in, int outer_dims) = 0;

  virtual void gemm(const GemmArgs& args) = 0;

  // Row-wise over contiguous [rows, cols]; log=true gives log_softmax.
  virtual void softmax(bool log, float* out, const float* in, int64_t rows, int64_t cols) = 0;
  // grad_in from the forward output y and grad_out.
  virtual void softmax_backward(bool log, float* grad_in, const float* y, const float* grad_out,
                                int64_t rows, int64_t cols) = 0;

  // Causal attention weights in one pass over scores x [B, H, Tq, Tk]
  // (contiguous; `rows` = B*H*Tq): for query i of head h,
  //   y[.., i, j] = softmax_j(scale * x[.., i, j] - alibi[h] * (offset + i - j))
  // over the keys j <= offset + i; other keys get 0, and a row with no key
  // is all zeros. alibi: one slope per head (host memory), or null.
  // Attention dropout fused in (`dropout` non-null, p > 0): `dropped` also
  // gets y * Z, Z = keep / (1 - p) with the decisions of
  // core/attention_dropout.h for row r = (b * heads + h) * tq + i, while y
  // stays undropped (the backward needs it). Keys past the causal limit
  // have y = 0 and draw no numbers.
  virtual void causal_softmax(float* y, const float* x, int64_t rows, int64_t heads, int64_t tq,
                              int64_t tk, int64_t offset, float scale, const float* alibi,
                              const AttentionDropoutArgs* dropout = nullptr, float* dropped = nullptr) = 0;
  // dx = scale * y * (g - sum_j g * y), zero past the causal limit, where
  // g = dy, or with dropout g = dy * Z (dy is then the gradient of the
  // dropped weights, and Z is regenerated).
  virtual void causal_softmax_backward(float* dx, const float* y, const float* dy, int64_t rows,
                                       int64_t heads, int64_t tq, int64_t tk, int64_t offset,
                                       float scale, const AttentionDropoutArgs* dropout = nullptr) = 0;

  // out[i] = (add ? add[i] : 0) + (kept(i) ? in[i] / (1 - p) : 0), for n
  // contiguous elements. The forward of dropout (in = x), its backward (in =
  // the upstream gradient: the same mask, regenerated), and dropout fused
  // with the residual add that follows it (add = the residual).
  virtual void dropout(float* out, const float* in, const float* add, int64_t n,
                       const DropoutArgs& args) = 0;

  // Attention dropout on a block of probabilities (or of their gradient,
  // for the backward): out = in * keep / (1 - p), each element kept as
  // core/attention_dropout.h decides for its (b, h, row0 + r, col0 + c).
  virtual void attention_dropout(float* out, const float* in, const ProbabilityBlock& block,
                                 const AttentionDropoutArgs& args) = 0;

  // out[i, :] = table[idx[i], :]. Returns -1 if all indices are in
  // [0, table_rows), otherwise the position of the first bad index.
  virtual int64_t gather_rows(float* out, const float* table, const int64_t* idx, int64_t n,
                              int64_t row_size, int64_t table_rows) = 0;
  // table[idx[i], :] += src[i, :]  (the backward of gather_rows).
  virtual void scatter_add_rows(float* table, const int64_t* idx, const float* src, int64_t n,
                                int64_t row_size) = 0;

  // Running sum along contiguous rows; reverse=true sums from the right
  // (the backward of cumsum).
  virtual void cumsum(float* out, const float* in, int64_t rows, int64_t cols, bool reverse) = 0;

  // ---- chunkwise causal linear attention (attention/linear_chunked.cpp) ----

  // The scan that carries the state from chunk to chunk. `in` holds `groups`
  // runs of `steps` blocks of `width` floats; each block gets the sum of the
  // blocks before it in its run (reverse: after it), not counting itself:
  //   out[g, s, :] = sum over s' < s (reverse: s' > s) of in[g, s', :]
  // so the first block (reverse: the last) gets zeros. out may be in.
  virtual void chunk_scan(float* out, const float* in, int64_t groups, int64_t steps,
                          int64_t width, bool reverse) = 0;
  // Zeroes the strict upper triangle (column j > row i) of each of `count`
  // contiguous size x size matrices, in place: key j after query i.
  virtual void causal_mask(float* a, int64_t count, int64_t size) = 0;
  // Rows of u [rows, dv + 1] hold a numerator and, in the last column, its
  // denominator: out [rows, dv] = u[r, e] / (u[r, dv] + eps).
  virtual void linear_attention_normalise(float* out, const float* u, int64_t rows, int64_t dv,
                                          float eps) = 0;
  // Its backward, for dout [rows, dv]: with den = u[r, dv] + eps,
  //   du[r, e < dv] = dout[r, e] / den
  //   du[r, dv]     = -sum_e dout[r, e] u[r, e] / den^2
  virtual void linear_attention_normalise_backward(float* du, const float* u, const float* dout,
                                                   int64_t rows, int64_t dv, float eps) = 0;

  // ---- fused layers (one pass each; see core/cpu/fused.cpp for the math) ----

  // LayerNorm over contiguous rows: y = (x - mean) * rstd * w + b, saving
  // mean and rstd = 1/sqrt(var + eps) per row for the backward. w and b may
  // be null (no affine part).
  virtual void layer_norm(float* y, float* mean, float* rstd, const float* x, const float* w,
                          const float* b, int64_t rows, int64_t cols, float eps) = 0;
  // dx (written), dw and db (written; null when w/b are null).
  virtual void layer_norm_backward(float* dx, float* dw, float* db, const float* dy,
                                   const float* x, const float* mean, const float* rstd,
                                   const float* w, int64_t rows, int64_t cols) = 0;
  // RMSNorm: y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps).
  virtual void rms_norm(float* y, float* rstd, const float* x, const float* w, int64_t rows,
                        int64_t cols, float eps) = 0;
  virtual void rms_norm_backward(float* dx, float* dw, const float* dy, const float* x,
                                 const float* rstd, const float* w, int64_t rows,
                                 int64_t cols) = 0;
  // Per-row cross-entropy -log softmax(logits)[target], saving each row's
  // logsumexp. Returns -1, or the first row whose target is outside [0, cols).
  virtual int64_t cross_entropy(float* loss, float* lse, const float* logits,
                                const int64_t* targets, int64_t rows, int64_t cols) = 0;
  // dlogits[r] = (softmax(logits[r]) - onehot(target[r])) * dloss[r].
  virtual void cross_entropy_backward(float* dlogits, const float* logits, const float* lse,
                                      const int64_t* targets, const float* dloss, int64_t rows,
                                      int64_t cols) = 0;

  // One AdamW update, in place, of each of `count` tensors (decoupled
  // weight decay, each tensor its own: 0 for gains and biases). All of a
  // model's parameters come in one call, so the GPU can update up to 32
  // tensors per launch instead of launching once per tensor.
  struct AdamW {
    float lr, beta1, beta2, eps;
    float bias_correction1, bias_correction2;  // 1 - beta^t
  };
  struct AdamWTensor {
    float* param;
    const float* grad;
    float* m;
    float* v;
    int64_t n;
    float weight_decay;
  };
  virtual void adamw(const AdamWTensor* tensors, int count, const AdamW& h) = 0;

  // Tiled attention with an online softmax: never holds a Tq x Tk matrix.
  // The backward recomputes the probabilities from q, k and the saved lse;
  // dq, dk, dv are written (dk/dv summed over the query heads sharing them).
  // Devices without it fail with a message naming the device.
  // `dropout` (null = none) drops probabilities as core/attention_dropout.h
  // says: out = (P * Z) V with Z = keep / (1 - p), the softmax normalised
  // over the undropped P; the backward regenerates Z. It travels beside
  // FlashArgs, not in it: chapter 14's student kernel implements FlashArgs
  // as it is and never sees dropout.
  // `products`: see FlashProducts.
  virtual void flash_attention_forward(const FlashArgs& args,
                                       const AttentionDropoutArgs* dropout = nullptr,
                                       FlashProducts products = FlashProducts::Float32);
  virtual void flash_attention_backward(const FlashArgs& args, const float* dout, float* dq,
                                        float* dk, float* dv,
                                        const AttentionDropoutArgs* dropout = nullptr,
                                        FlashProducts products = FlashProducts::Float32);
  // The same over the blocks of `blocks` only, which alone say which pairs
  // are allowed (args.causal false, args.window 0): the time is that of the
  // blocks visited, not of Tq x Tk. A separate entry point, not a FlashArgs
  // field, for the reason dropout is one.
  virtual void block_sparse_flash_forward(const FlashArgs& args, const BlockList& blocks,
                                          const AttentionDropoutArgs* dropout = nullptr);
  virtual void block_sparse_flash_backward(const FlashArgs& args, const BlockList& blocks,
                                           const float* dout, float* dq, float* dk, float* dv,
                                           const AttentionDropoutArgs* dropout = nullptr);
};

}  // namespace attn
