// Chunkwise causal linear attention as one autograd op (linear.h has the
// math, linear_chunked.h the interface). The host code only lines up
// batched products: the same code runs on the CPU (OpenBLAS) and on the GPU
// (cuBLAS; a fixed number of launches whatever T is).
//
// Cut the T positions into nc chunks of c (the last one padded with zero
// rows, which add nothing). For one K/V head and chunk, let
//   Q  [R, m]        the chunk's rows of phi(q) for the g = H / Hkv query heads
//                    that read this K/V head, stacked (R = g c): heads that
//                    share K and V share their state too, so GQA runs one
//                    product per K/V head and never copies K or V per head
//   K  [c, m]        the chunk's rows of phi(k)
//   V  [c, d_v + 1]  its rows of v, with a column of ones appended
// The ones carry the normaliser: sum_j (q . k_j) is the numerator of a value
// that is 1 for every key, so one set of products gives numerator and
// denominator side by side, in U's last column.
//
// Forward, each line one batched call over the (batch, K/V head, chunk)
// entries (all of them on the GPU; on the CPU the per-chunk lines run in
// passes over a few entries at a time, which stay in cache: in_passes):
//   KV_c = K_c^T V_c                         gemm           [m, d_v + 1]
//   S_c  = sum over c' < c of KV_c'          chunk_scan     (the state before chunk c)
//   A_c  = Q_c K_c^T, keys after the query zeroed   gemm, causal_mask  [R, c]
//   U_c  = Q_c S_c + A_c V_c                 two gemms into one output
//   out  = U[:, :d_v] / (U[:, d_v] + eps)     linear_attention_normalise
// The scan is the only step that walks the chunks in order, and it moves
// nc states of m x (d_v + 1) floats: the products hold all the work.
//
// Backward from dout, the same shapes in reverse:
//   dU   = the normalisation's backward      linear_attention_normalise_backward
//   dS_c = Q_c^T dU_c
//   G_c  = sum over c' > c of dS_c'          chunk_scan, reversed: KV_c is in
//                                            the state of every later chunk
//   dA_c = dU_c V_c^T, keys after the query zeroed
//   dQ_c = dA_c K_c + dU_c S_c^T
//   dK_c = dA_c^T Q_c + V_c G_c^T
//   dV_c = A_c^T dU_c + K_c G_c              (its first d_v columns: the ones are no input)
//
// Memory: the backward keeps Q, K, V, the states S, A and U: per head
// T (m + d_v + c + d_v) floats plus (T / c) m (d_v + 1) for the states,
// linear in T. Never T x T, and one graph node for all the chunks.
#include "attention/linear_chunked.h"

#include <algorithm>
#include <vector>

#include "autograd/checks.h"
#include "autograd/node.h"
#include "core/dispatch.h"

namespace attn {

namespace {

// How [B, Hkv * g, T, w] tensors are cut into the chunked layout
// [B, Hkv, nc, g, c, w]: per K/V head and chunk, the g heads' c rows stacked.
// K and V have g = 1.
struct Chunking {
  int64_t batch, kv_heads, g, t, c, nc;
  int64_t count() const { return batch * kv_heads * nc; }  // (batch, K/V head, chunk) entries
  int64_t rows() const { return g * c; }                   // R: rows of one entry
  bool padded() const { return nc * c != t; }
};

// Copies rows t < T, columns < w between x [B, Hkv * g, T, w] (any strides)
// and the chunked buffer p [count, rows, pw] (contiguous, pw >= w). Whole
// chunks are one strided copy, the ragged last chunk a second one.
void copy_chunks(Backend& be, const Chunking& k, const Tensor& x, const Tensor& p, int64_t w,
                 bool into_p) {
  const Shape& xs = x.strides();
  const int64_t pw = p.shape().back();
  auto piece = [&](int64_t first_chunk, int64_t chunks, int64_t rows) {
    if (chunks == 0 || rows == 0) return;
    const Shape shape = {k.batch, k.kv_heads, k.g, chunks, rows, w};
    const Tensor xv = make_view(x, shape, {xs[0], k.g * xs[1], xs[1], k.c * xs[2], xs[2], xs[3]},
                                x.offset() + first_chunk * k.c * xs[2]);
    const int64_t entry = k.rows() * pw;
    const Tensor pv =
        make_view(p, shape, {k.kv_heads * k.nc * entry, k.nc * entry, k.c * pw, entry, pw, 1},
                  p.offset() + first_chunk * entry);
    if (into_p)
      be.copy(pv.view_desc(), xv.view_desc());
    else
      be.copy(xv.view_desc(), pv.view_desc());
  };
  const int64_t whole = k.t / k.c;
  piece(0, whole, k.c);
  piece(whole, 1, k.t - whole * k.c);
}

// x [B, Hkv * g, T, w] as a chunked [count, rows, w] buffer (padding rows
// zero). x itself when it is laid out so already: one query head per K/V
// head, whole chunks, contiguous.
Tensor to_chunks(Backend& be, const Chunking& k, const Tensor& x) {
  const int64_t w = x.shape()[3];
  if (k.g == 1 && !k.padded() && x.is_contiguous()) return x;
  const Shape shape = {k.count(), k.rows(), w};
  Tensor p = k.padded() ? zeros(shape, DType::Float32, x.device())
                        : empty(shape, DType::Float32, x.device());
  copy_chunks(be, k, x, p, w, true);
  return p;
}

// v [B, Hkv, T, d_v] as chunked [count, c, d_v + 1] rows [v_j, 1].
Tensor values_and_ones(Backend& be, const Chunking& k, const Tensor& v) {
  const int64_t dv = v.shape()[3], rows = k.count() * k.c;
  const Shape shape = {k.count(), k.c, dv + 1};
  Tensor p = k.padded() ? zeros(shape, DType::Float32, v.device())
                        : empty(shape, DType::Float32, v.device());
  copy_chunks(be, k, v, p, dv, true);
  be.fill(make_view(p, {rows}, {dv + 1}, p.offset() + dv).view_desc(), 1.0);
  return p;
}

// The way back: p [count, rows, w] as a contiguous [B, Hkv * g, T, w].
Tensor from_chunks(Backend& be, const Chunking& k, const Tensor& p) {
  const int64_t w = p.shape().back();
  const int64_t heads = k.kv_heads * k.g;
  if (k.g == 1 && !k.padded())
    return make_view(p, {k.batch, heads, k.t, w}, {heads * k.t * w, k.t * w, w, 1}, p.offset());
  Tensor x = empty({k.batch, heads, k.t, w}, DType::Float32, p.device());
  copy_chunks(be, k, x, p, w, false);
  return x;
}

// One operand of a batch of products: entry n's [rows, cols] matrix starts
// at data + n * rows * cols, rows contiguous. Read as it is, or as its
// transpose [cols, rows] (BLAS's trans flag: nothing is copied).
struct Operand {
  float* data;
  int64_t step, ld;
  bool transposed;
  Operand from(int64_t first) const { return {data + first * step, step, ld, transposed}; }
};
Operand as_is(const Tensor& t, int64_t rows, int64_t cols) {
  return {t.data<float>(), rows * cols, cols, false};
}
Operand transposed(const Tensor& t, int64_t rows, int64_t cols) {
  return {t.data<float>(), rows * cols, cols, true};
}

// c[n] = a[n] b[n] (accumulate: c[n] += a[n] b[n]) for each of `count`
// entries; a[n] is m x k, b[n] k x n as read, c[n] m x n. A b operand may
// be wider than n: its first n columns are used.
void products(Backend& be, int64_t count, int64_t m, int64_t n, int64_t k, const Operand& a,
              const Operand& b, const Operand& c, bool accumulate) {
  std::vector<int64_t> a_offsets(count), b_offsets(count);
  for (int64_t i = 0; i < count; ++i) a_offsets[i] = i * a.step, b_offsets[i] = i * b.step;
  GemmArgs g;
  g.batch = count, g.m = m, g.n = n, g.k = k;
  g.a = a.data, g.b = b.data, g.c = c.data;
  g.lda = a.ld, g.ldb = b.ld;
  g.trans_a = a.transposed, g.trans_b = b.transposed;
  g.a_offsets = a_offsets.data(), g.b_offsets = b_offsets.data();
  g.beta = accumulate ? 1.0f : 0.0f;
  be.gemm(g);
}

// Calls step(first, count) for consecutive ranges of the entries [0, n).
// On the CPU a range holds as many entries as keep the matrices its steps
// touch (entry_bytes per entry) within kPassBytes, about a core's share of
// the last-level cache, so each step finds what the one before wrote still
// in cache. (In one sweep over every entry, each step streamed whole [T, ...]
// buffers through memory, and the time per token grew with T: at 16K, 8.2
// us against 5.8 at 1K; in passes of 2 MiB, 7.7.) The GPU takes all
// entries at once: the fewest launches.
constexpr int64_t kPassBytes = int64_t{2} << 20;

int64_t entries_per_pass(const Device& device, int64_t n, int64_t entry_bytes) {
  return device.is_cpu() ? std::clamp<int64_t>(kPassBytes / entry_bytes, 1, n) : n;
}

template <class Step>
void in_passes(int64_t n, int64_t per_pass, Step&& step) {
  for (int64_t first = 0; first < n; first += per_pass) step(first, std::min(per_pass, n - first));
}

}  // namespace

Tensor linear_attention_chunked(const Tensor& fq_in, const Tensor& fk_in, const Tensor& v_in,
                                int64_t chunk, float eps, const char* op) {
  for (const Tensor* t : {&fq_in, &fk_in, &v_in}) {
    require_defined(op, *t);
    require_float(op, *t);
  }
  const Device device = common_device(op, {fq_in, fk_in, v_in});
  check(chunk >= 1, op, ": chunk must be >= 1, got ", chunk);
  check(fq_in.dim() == 4 && fk_in.dim() == 4 && v_in.dim() == 4, op,
        ": expected phi(q) [B, H, T, m], phi(k) [B, Hkv, T, m] and v [B, Hkv, T, d_v], got ",
        shape_str(fq_in.shape()), ", ", shape_str(fk_in.shape()), ", ", shape_str(v_in.shape()));
  const int64_t B = fq_in.shape()[0], H = fq_in.shape()[1], T = fq_in.shape()[2];
  const int64_t m = fq_in.shape()[3], Hkv = fk_in.shape()[1], dv = v_in.shape()[3];
  check(fk_in.shape()[0] == B && v_in.shape()[0] == B && v_in.shape()[1] == Hkv &&
            fk_in.shape()[3] == m && fk_in.shape()[2] == v_in.shape()[2],
        op, ": phi(q) ", shape_str(fq_in.shape()), ", phi(k) ", shape_str(fk_in.shape()), " and v ",
        shape_str(v_in.shape()), " disagree on batch, K/V heads, keys or feature width");
  check(Hkv >= 1 && H % Hkv == 0, op, ": ", Hkv, " K/V heads do not divide ", H, " query heads");
  check(fk_in.shape()[2] == T, op, ": causal linear attention needs as many keys as queries, got ",
        fk_in.shape()[2], " keys for ", T, " queries");
  check(T > 0, op, ": no positions");
  check(m >= 1 && dv >= 1, op, ": feature width ", m, " and value width ", dv,
        " must be >= 1");

  const int64_t c = std::min(chunk, T);
  const Chunking by_query{B, Hkv, H / Hkv, T, c, (T + c - 1) / c};
  Chunking by_key = by_query;
  by_key.g = 1;
  const int64_t N = by_query.count(), R = by_query.rows(), W = dv + 1, groups = B * Hkv;
  Backend& be = backend_for(device);

  const Tensor q = to_chunks(be, by_query, fq_in.detach());        // [N, R, m]
  const Tensor k = to_chunks(be, by_key, fk_in.detach());          // [N, c, m]
  const Tensor va = values_and_ones(be, by_key, v_in.detach());    // [N, c, W]

  // About the floats one entry's steps touch (the backward's, the larger).
  const int64_t entry_bytes =
      sizeof(float) * (2 * R * m + 2 * c * m + 2 * R * c + R * W + 2 * c * W + 2 * m * W);
  const int64_t per_pass = entries_per_pass(device, N, entry_bytes);

  const Tensor state = empty({N, m, W}, DType::Float32, device);
  products(be, N, m, W, c, transposed(k, c, m), as_is(va, c, W), as_is(state, m, W), false);
  be.chunk_scan(state.data<float>(), state.data<float>(), groups, by_query.nc, m * W, false);
  const Tensor a = empty({N, R, c}, DType::Float32, device);
  const Tensor u = empty({N, R, W}, DType::Float32, device);
  const Tensor out_chunks = empty({N, R, dv}, DType::Float32, device);
  in_passes(N, per_pass, [&](int64_t first, int64_t n) {
    const Operand Q = as_is(q, R, m).from(first), A = as_is(a, R, c).from(first),
                  U = as_is(u, R, W).from(first), V = as_is(va, c, W).from(first);
    products(be, n, R, c, m, Q, transposed(k, c, m).from(first), A, false);
    be.causal_mask(A.data, n * by_query.g, c);
    products(be, n, R, W, m, Q, as_is(state, m, W).from(first), U, false);
    products(be, n, R, W, c, A, V, U, true);
    be.linear_attention_normalise(as_is(out_chunks, R, dv).from(first).data, U.data, n * R, dv, eps);
  });
  const Tensor out = from_chunks(be, by_query, out_chunks);

  return record(out, op, {fq_in, fk_in, v_in},
                [by_query, by_key, m, dv, q, k, va, state, a, u, eps, per_pass](const Tensor& grad) {
    const int64_t N = by_query.count(), R = by_query.rows(), c = by_query.c, W = dv + 1;
    const Device device = grad.device();
    Backend& be = backend_for(device);
    const Tensor dout = to_chunks(be, by_query, grad);  // [N, R, dv]
    const Tensor du = empty({N, R, W}, DType::Float32, device);
    const Tensor dstate = empty({N, m, W}, DType::Float32, device);
    in_passes(N, per_pass, [&](int64_t first, int64_t n) {
      const Operand dU = as_is(du, R, W).from(first);
      be.linear_attention_normalise_backward(dU.data, as_is(u, R, W).from(first).data,
                                             as_is(dout, R, dv).from(first).data, n * R, dv, eps);
      products(be, n, m, W, R, transposed(q, R, m).from(first), dU, as_is(dstate, m, W).from(first),
               false);  // dS_c
    });
    // G_c: the gradient that reaches KV_c through every later state.
    be.chunk_scan(dstate.data<float>(), dstate.data<float>(), by_query.batch * by_query.kv_heads,
                  by_query.nc, m * W, true);
    const Tensor da = empty({per_pass, R, c}, DType::Float32, device);  // one pass at a time
    const Tensor dq = empty({N, R, m}, DType::Float32, device);
    const Tensor dk = empty({N, c, m}, DType::Float32, device);
    const Tensor dv_chunks = empty({N, c, dv}, DType::Float32, device);
    in_passes(N, per_pass, [&](int64_t first, int64_t n) {
      const Operand dU = as_is(du, R, W).from(first), dA = as_is(da, R, c);
      const Operand Q = as_is(q, R, m).from(first), K = as_is(k, c, m).from(first);
      const Operand V = as_is(va, c, W).from(first), G = as_is(dstate, m, W).from(first);
      products(be, n, R, c, W, dU, transposed(va, c, W).from(first), dA, false);
      be.causal_mask(dA.data, n * by_query.g, c);
      const Operand dQ = as_is(dq, R, m).from(first);
      products(be, n, R, m, c, dA, K, dQ, false);
      products(be, n, R, m, W, dU, transposed(state, m, W).from(first), dQ, true);
      const Operand dK = as_is(dk, c, m).from(first);
      products(be, n, c, m, R, transposed(da, R, c), Q, dK, false);
      products(be, n, c, m, W, V, transposed(dstate, m, W).from(first), dK, true);
      const Operand dV = as_is(dv_chunks, c, dv).from(first);
      products(be, n, c, dv, R, transposed(a, R, c).from(first), dU, dV, false);
      products(be, n, c, dv, m, K, G, dV, true);
    });
    return std::vector<Tensor>{from_chunks(be, by_query, dq), from_chunks(be, by_key, dk),
                               from_chunks(be, by_key, dv_chunks)};
  });
}

}  // namespace attn
