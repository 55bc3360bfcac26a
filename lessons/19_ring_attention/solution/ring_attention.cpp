// Chapter 19 — reference solution: the ring schedule over simulated ranks,
// written with the autograd ops, so the backward comes from autograd.
// attention/ring.cpp runs the same schedule over MPI, with a hand-written
// backward that recomputes instead (README, "The backward").
#include "ring_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "core/error.h"

namespace lesson19 {

using namespace attn;

Shard shard_of(int64_t tokens, int rank, int ranks, Split split) {
  check(ranks >= 1 && rank >= 0 && rank < ranks, "shard_of: rank ", rank, " of ", ranks,
        ": expected 0 <= rank < ranks");
  const int64_t pieces = split == Split::Zigzag ? 2 * int64_t{ranks} : ranks;
  check(tokens >= pieces, "shard_of: ", tokens, " tokens cannot be cut into ", pieces, " pieces for ", ranks,
        " ranks", split == Split::Zigzag ? " (zigzag: two pieces per rank)" : "",
        "; expected at least one token per piece");
  // The first tokens % pieces pieces take one token more, so none is left over.
  auto start = [&](int64_t c) { return c * (tokens / pieces) + std::min(c, tokens % pieces); };
  auto piece = [&](int64_t c) { return Chunk{start(c), start(c + 1)}; };
  Shard s;
  s.chunks.push_back(piece(rank));
  if (split == Split::Zigzag) s.chunks.push_back(piece(pieces - 1 - rank));
  return s;
}

bool sees_any(Chunk queries, Chunk keys, bool causal) {
  // The earliest key against the latest query: if even that pair is in the
  // future, every pair is.
  return !causal || keys.begin <= queries.end - 1;
}

Tensor future_mask(Chunk queries, Chunk keys) {
  std::vector<bool> hidden;
  for (int64_t i = queries.begin; i < queries.end; ++i)
    for (int64_t j = keys.begin; j < keys.end; ++j) hidden.push_back(j > i);
  return from_bools(hidden, {queries.length(), keys.length()});
}

void fold(RunningSoftmax& state, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& hidden,
          float scale) {
  Tensor scores = mul(matmul(q, transpose(k, 2, 3)), scale);
  if (hidden.defined()) scores = masked_fill(scores, hidden, -std::numeric_limits<float>::infinity());
  // The max only keeps exp() in range: the output does not depend on it, so
  // no gradient needs to flow through it.
  const Tensor block_max = max(scores, 3, true).detach();
  const Tensor m = state.m.defined() ? maximum(state.m, block_max) : block_max;
  const Tensor p = exp(sub(scores, m));
  const Tensor p_sum = sum(p, {3}, true), pv = matmul(p, v);
  if (state.m.defined()) {
    // Old terms were exp(s - m_old); against the new max they are
    // exp(s - m_old) * exp(m_old - m).
    const Tensor rescale = exp(sub(state.m, m));
    state.l = add(mul(state.l, rescale), p_sum);
    state.acc = add(mul(state.acc, rescale), pv);
  } else {
    state.l = p_sum;
    state.acc = pv;
  }
  state.m = m;
}

Tensor ring_attention_simulated(const Tensor& q, const Tensor& k, const Tensor& v, int ranks, Split split,
                                bool causal, std::vector<Fold>* log) {
  check(ranks >= 1, "ring_attention_simulated: ranks=", ranks, ": expected 1 or more");
  check(q.dim() == 4 && q.shape() == k.shape() && q.shape() == v.shape(),
        "ring_attention_simulated: expected q, k and v of one shape [B, H, T, d], got ", shape_str(q.shape()),
        ", ", shape_str(k.shape()), " and ", shape_str(v.shape()));
  const int64_t T = q.size(2);
  const float scale = 1.0f / std::sqrt(static_cast<float>(q.size(3)));
  auto rows = [](const Tensor& t, Chunk c) { return narrow(t, 2, c.begin, c.length()); };

  std::vector<std::pair<Chunk, Tensor>> outputs;  // every query chunk's output, from every rank
  for (int r = 0; r < ranks; ++r) {
    const Shard mine = shard_of(T, r, ranks, split);
    std::vector<RunningSoftmax> running(mine.chunks.size());
    for (int step = 0; step < ranks; ++step) {
      // Blocks move to the next rank each step: what rank r holds at step s
      // started s ranks before it.
      const int from = (r - step + ranks) % ranks;
      const Shard block = shard_of(T, from, ranks, split);
      for (std::size_t i = 0; i < mine.chunks.size(); ++i)
        for (const Chunk& keys : block.chunks) {
          const Chunk& queries = mine.chunks[i];
          if (!sees_any(queries, keys, causal)) continue;
          // Only a block that reaches past the first query needs the mask
          // (with these splits: the diagonal); the others are seen whole.
          // The mask is made on the CPU: it goes where the scores are.
          const Tensor hidden = causal && keys.end - 1 > queries.begin
                                    ? future_mask(queries, keys).to(q.device())
                                    : Tensor();
          fold(running[i], rows(q, queries), rows(k, keys), rows(v, keys), hidden, scale);
          if (log) log->push_back({r, step, from, queries, keys});
        }
    }
    for (std::size_t i = 0; i < mine.chunks.size(); ++i)
      outputs.emplace_back(mine.chunks[i], div(running[i].acc, running[i].l));
  }
  // Back to global order: the chunks of all ranks tile 0 .. T - 1.
  std::sort(outputs.begin(), outputs.end(),
            [](const auto& a, const auto& b) { return a.first.begin < b.first.begin; });
  std::vector<Tensor> in_order;
  for (const auto& chunk_out : outputs) in_order.push_back(chunk_out.second);
  return in_order.size() == 1 ? in_order.front() : cat(in_order, 2);
}

}  // namespace lesson19
