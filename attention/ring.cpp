// Ring attention over the job's communicator (ring.h). The products are the
// library's ops (BLAS underneath); what is particular to the ring is which
// blocks meet, the online-softmax fold, and the hops.
#include "attention/ring.h"

#include "attention/flash.h"

#include <cmath>
#include <limits>
#include <optional>

#include "autograd/engine.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/dispatch.h"
#include "core/error.h"

namespace attn {

namespace {

RingCounters counters;

// How a key chunk is seen by a query chunk. Chunks come from one partition
// of the positions, so two chunks are the same or do not overlap.
enum class Seen { None, Whole, Triangle };

Seen seen(std::pair<int64_t, int64_t> q, std::pair<int64_t, int64_t> k, bool causal) {
  if (!causal) return Seen::Whole;
  if (k == q) return Seen::Triangle;        // the block against itself
  if (k.second <= q.first) return Seen::Whole;  // every key before every query
  return Seen::None;                        // every key after every query
}

// The chunks of a tensor laid out as `shard` says (dim 2), each copied out
// once as a dense tensor: the flash kernel reads dense operands, and every
// chunk meets several others.
std::vector<Tensor> chunks(const Tensor& t, const SequenceShard& shard) {
  std::vector<Tensor> out;
  int64_t start = 0;
  for (const auto& [begin, end] : shard.chunks) {
    out.push_back(narrow(t, 2, start, end - begin).contiguous());
    start += end - begin;
  }
  return out;
}

Tensor join(const std::vector<Tensor>& chunks) { return chunks.size() == 1 ? chunks[0] : cat(chunks, 2); }

// ---- the hops: tensors packed into one message per hop ----

std::vector<float> pack(const std::vector<Tensor>& tensors) {
  std::vector<float> buf;
  for (const Tensor& t : tensors) {
    const Tensor c = t.contiguous();
    buf.insert(buf.end(), c.data<float>(), c.data<float>() + c.numel());
  }
  return buf;
}

std::vector<Tensor> unpack(const std::vector<float>& buf, const std::vector<Shape>& shapes) {
  std::vector<Tensor> out;
  std::size_t at = 0;
  for (const Shape& s : shapes) {
    const auto n = static_cast<std::size_t>(numel(s));
    out.push_back(from_vector(std::vector<float>(buf.begin() + at, buf.begin() + at + n), s));
    at += n;
  }
  return out;
}

// One hop of the ring: this rank's message goes to the next rank while the
// previous rank's (of `in_floats`) comes in. Started before the work on the
// current block, finished after it, so the transfer hides behind compute.
class Hop {
 public:
  Hop(comm::Communicator& comm, std::vector<float> out, std::size_t in_floats)
      : out_(std::move(out)), in_(in_floats) {
    const int n = comm.size(), r = comm.rank();
    got_ = comm.recv(in_, (r + n - 1) % n);
    sent_ = comm.send(out_, (r + 1) % n);
    counters.bytes_sent += static_cast<int64_t>(out_.size() * sizeof(float));
  }
  std::vector<float> finish() {
    got_.wait();
    sent_.wait();
    return std::move(in_);
  }

 private:
  std::vector<float> out_, in_;
  comm::Request got_, sent_;
};

// A query chunk's attention over the key chunks folded in so far: its
// output and each row's logsumexp. lse = m + log(l) in chapter 11's terms
// (row max m, row sum l), so folding a block in is chapter 11's rescaling.
struct Running {
  Tensor out, lse;  // [B, H, Tq, d] and [B, H, Tq]
};

// [B, H, T] -> [B, H, T, 1], to scale the rows of a [B, H, T, d] output.
Tensor per_row(const Tensor& lse) { return reshape(lse, {lse.size(0), lse.size(1), lse.size(2), 1}); }

// Folds one key/value chunk into the running state: flash attention over
// the pair gives its own (out, lse); the two combine as softmaxes over
// disjoint sets of keys do, each weighted by its share of the total.
void fold(Running& r, const Tensor& q, const Tensor& k, const Tensor& v, Seen how, float scale) {
  FlashOptions fo;
  fo.causal = how == Seen::Triangle;
  fo.scale = scale;
  Tensor lse;
  const Tensor out = flash_attention(q, k, v, fo, &lse);
  if (!r.out.defined()) {
    r = {out, lse};
    return;
  }
  const Tensor m = maximum(r.lse, lse);
  const Tensor total = m + log(exp(r.lse - m) + exp(lse - m));
  r.out = r.out * exp(per_row(r.lse - total)) + out * exp(per_row(lse - total));
  r.lse = total;
}

// The gradients one pair contributes, by the flash kernel's recomputing
// backward run with the whole row's output and logsumexp: it then forms
// the true probabilities P = exp(S - lse) of these keys, and dQ, dK, dV
// of the pair are exactly their terms of the sums.
struct PairGrads {
  Tensor dq, dk, dv;
};

// Every operand dense (chunks()).
PairGrads pair_grads(const Tensor& qc, const Tensor& kc, const Tensor& vc, const Tensor& oc, const Tensor& lc,
                     const Tensor& dc, Seen how, float scale) {
  PairGrads g{empty(qc.shape()), empty(kc.shape()), empty(vc.shape())};
  FlashArgs a;
  a.q = qc.data<float>(), a.k = kc.data<float>(), a.v = vc.data<float>();
  a.out = const_cast<float*>(oc.data<float>()), a.lse = const_cast<float*>(lc.data<float>());
  a.batch = qc.size(0), a.heads = a.kv_heads = qc.size(1), a.tq = qc.size(2), a.tk = kc.size(2), a.dim = qc.size(3);
  a.causal = how == Seen::Triangle;
  a.scale = scale;
  a.q_at = contiguous_layout(a.heads, a.tq, a.dim);
  a.k_at = a.v_at = contiguous_layout(a.heads, a.tk, a.dim);
  backend_for(qc.device()).flash_attention_backward(a, dc.data<float>(), g.dq.data<float>(), g.dk.data<float>(),
                                                    g.dv.data<float>());
  return g;
}

Shape with_tokens(Shape s, int64_t tokens) {
  s[2] = tokens;
  return s;
}

// dq, dk, dv of ring_attention: the K/V block goes round again, now with
// its gradients, which every rank adds to; the last hop takes them home.
std::vector<Tensor> ring_backward(const Tensor& q, Tensor k, Tensor v, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout, const RingOptions& o, float scale, comm::Communicator& comm) {
  const int n = comm.size(), r = comm.rank();
  const SequenceShard mine = shard_of(o.tokens, r, n, o.split);
  // This rank's side of every pair, cut once.
  const std::vector<Tensor> qs = chunks(q, mine), outs = chunks(out, mine), lses = chunks(lse, mine),
                            douts = chunks(dout, mine);
  std::vector<Tensor> dq;
  for (const Tensor& qi : qs) dq.push_back(zeros(qi.shape()));
  Tensor dk = zeros(k.shape()), dv = zeros(v.shape());
  for (int step = 0; step < n; ++step) {
    const SequenceShard from = shard_of(o.tokens, (r - step + n) % n, n, o.split);
    const std::vector<Tensor> ks = chunks(k, from), vs = chunks(v, from);
    std::vector<Tensor> dks = chunks(dk, from), dvs = chunks(dv, from);
    for (std::size_t j = 0; j < from.chunks.size(); ++j)
      for (std::size_t i = 0; i < mine.chunks.size(); ++i) {
        const Seen how = seen(mine.chunks[i], from.chunks[j], o.causal);
        if (how == Seen::None) continue;
        ++counters.pairs_computed;
        const PairGrads g = pair_grads(qs[i], ks[j], vs[j], outs[i], lses[i], douts[i], how, scale);
        dq[i] = dq[i] + g.dq;
        dks[j] = dks[j] + g.dk;
        dvs[j] = dvs[j] + g.dv;
      }
    dk = join(dks);
    dv = join(dvs);
    if (n == 1) break;
    // Every hop but the last carries the block on; the last carries only
    // its gradients, to the rank the block came from.
    const int64_t prev_tokens = shard_of(o.tokens, (r - step - 1 + 2 * n) % n, n, o.split).length();
    const Shape in_shape = with_tokens(k.shape(), prev_tokens);
    if (step + 1 < n) {
      Hop hop(comm, pack({k, v, dk, dv}), 4 * static_cast<std::size_t>(numel(in_shape)));
      std::vector<Tensor> in = unpack(hop.finish(), {in_shape, in_shape, in_shape, in_shape});
      k = in[0], v = in[1], dk = in[2], dv = in[3];
    } else {
      Hop hop(comm, pack({dk, dv}), 2 * static_cast<std::size_t>(numel(in_shape)));
      std::vector<Tensor> in = unpack(hop.finish(), {in_shape, in_shape});
      dk = in[0], dv = in[1];
    }
  }
  return {join(dq), dk, dv};
}

}  // namespace

int64_t SequenceShard::length() const {
  int64_t n = 0;
  for (const auto& [begin, end] : chunks) n += end - begin;
  return n;
}

std::vector<int64_t> SequenceShard::positions() const {
  std::vector<int64_t> p;
  for (const auto& [begin, end] : chunks)
    for (int64_t t = begin; t < end; ++t) p.push_back(t);
  return p;
}

SequenceShard shard_of(int64_t tokens, int rank, int ranks, RingSplit split) {
  check(ranks >= 1 && rank >= 0 && rank < ranks, "ring_attention: rank ", rank, " of ", ranks,
        ": expected 0 <= rank < ranks");
  const int64_t pieces = split == RingSplit::Zigzag ? 2 * ranks : ranks;
  check(tokens >= pieces, "ring_attention: ", tokens, " tokens cannot be split into ", pieces, " chunks for ",
        ranks, " ranks", split == RingSplit::Zigzag ? " (zigzag: two chunks per rank)" : "",
        "; use a longer sequence or fewer ranks");
  // Piece c starts after c pieces of tokens / pieces tokens, the first
  // tokens % pieces of them one longer.
  auto start = [&](int64_t c) { return c * (tokens / pieces) + std::min(c, tokens % pieces); };
  auto piece = [&](int64_t c) { return std::pair<int64_t, int64_t>{start(c), start(c + 1)}; };
  SequenceShard s;
  s.chunks.push_back(piece(rank));
  if (split == RingSplit::Zigzag) s.chunks.push_back(piece(pieces - 1 - rank));
  return s;
}

Tensor ring_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const RingOptions& o,
                      comm::Communicator& comm) {
  const char* op = "ring_attention";
  check(q_in.dim() == 4 && k_in.dim() == 4 && v_in.dim() == 4 && k_in.shape() == v_in.shape() &&
            q_in.shape() == k_in.shape(),
        op, ": expected q, k and v of one shape [B, H, T_rank, d], got ", shape_str(q_in.shape()), ", ",
        shape_str(k_in.shape()), " and ", shape_str(v_in.shape()));
  for (const Tensor* t : {&q_in, &k_in, &v_in})
    check(t->device().is_cpu(), op, ": runs on the CPU (its messages go through MPI in host memory); got a tensor on ",
          t->device().str());
  const int n = comm.size(), r = comm.rank();
  const SequenceShard mine = shard_of(o.tokens, r, n, o.split);
  check(q_in.size(2) == mine.length(), op, ": rank ", r, " of ", n, " holds ", mine.length(), " of the ", o.tokens,
        " tokens, but q has ", q_in.size(2));
  const float scale = o.scale > 0 ? o.scale : 1.0f / std::sqrt(static_cast<float>(q_in.size(3)));

  Tensor q, k, v;
  std::vector<Running> running(mine.chunks.size());
  {
    NoGradGuard no_grad;
    q = q_in.detach().contiguous(), k = k_in.detach().contiguous(), v = v_in.detach().contiguous();
    const std::vector<Tensor> qs = chunks(q, mine);
    Tensor kb = k, vb = v;  // the block in hand: this rank's first, then each arriving one
    for (int step = 0; step < n; ++step) {
      const SequenceShard from = shard_of(o.tokens, (r - step + n) % n, n, o.split);
      std::optional<Hop> hop;
      if (step + 1 < n) {
        const int64_t prev_tokens = shard_of(o.tokens, (r - step - 1 + 2 * n) % n, n, o.split).length();
        hop.emplace(comm, pack({kb, vb}), 2 * static_cast<std::size_t>(numel(with_tokens(k.shape(), prev_tokens))));
      }
      const std::vector<Tensor> ks = chunks(kb, from), vs = chunks(vb, from);
      for (std::size_t i = 0; i < mine.chunks.size(); ++i)
        for (std::size_t j = 0; j < from.chunks.size(); ++j) {
          const Seen how = seen(mine.chunks[i], from.chunks[j], o.causal);
          if (how == Seen::None) continue;
          ++counters.pairs_computed;
          fold(running[i], qs[i], ks[j], vs[j], how, scale);
        }
      if (hop) {
        const SequenceShard next_block = shard_of(o.tokens, (r - step - 1 + 2 * n) % n, n, o.split);
        const Shape in_shape = with_tokens(k.shape(), next_block.length());
        std::vector<Tensor> in = unpack(hop->finish(), {in_shape, in_shape});
        kb = in[0], vb = in[1];
      }
    }
  }
  // Every query chunk met its own block (causal: its own triangle, where each
  // query sees itself), so every row's logsumexp is finite.
  std::vector<Tensor> outs, lses;
  for (const Running& run : running) {
    outs.push_back(run.out);
    lses.push_back(run.lse);
  }
  const Tensor out = join(outs), lse = join(lses);
  // The backward keeps q, k, v, out and lse: O(T d) per rank, no score matrix.
  return record(out, op, {q_in, k_in, v_in},
                [q, k, v, out = out.detach(), lse, o, scale, &comm](const Tensor& g) {
                  return ring_backward(q, k, v, out, lse, g, o, scale, comm);
                });
}

RingCounters ring_counters() { return counters; }
void reset_ring_counters() { counters = {}; }

namespace {
ActiveSplit active;
}  // namespace

SequenceSplit::SequenceSplit(comm::Communicator& comm, RingSplit split) {
  check(active.comm == nullptr, "SequenceSplit: a sequence split is already in force");
  active = {&comm, split};
}

SequenceSplit::~SequenceSplit() { active = {}; }

ActiveSplit active_sequence_split() { return active; }

AttentionKernel ring_kernel(RingSplit split) {
  return [split](const AttentionCall& c) {
    check(c.alibi.empty(), "attention ring: no alibi (its bias needs the global positions of both sides)");
    FlashOptions fo;
    fo.offset = c.offset;
    fo.scale = c.scale;
    const ActiveSplit s = active_sequence_split();
    // A ring of one: the whole sequence is here (and a cache may hold the past).
    if (s.comm == nullptr || s.comm->size() == 1) return flash_attention(c.q, c.k, c.v, fo);
    check(split == s.split, "attention ring: the model splits its sequence ",
          split == RingSplit::Zigzag ? "zigzag" : "contiguous", ", the run another way");
    check(c.offset == 0 && c.q.size(2) == c.k.size(2), "attention ring: a KV cache cannot be split over ranks");
    check(c.k.size(1) == c.q.size(1), "attention ring: needs as many K/V heads as query heads");
    RingOptions o;
    o.tokens = c.q.size(2) * s.comm->size();
    o.split = split;
    o.scale = c.scale;
    return ring_attention(c.q, c.k, c.v, o, *s.comm);
  };
}

}  // namespace attn
