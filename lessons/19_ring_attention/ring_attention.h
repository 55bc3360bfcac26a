// Chapter 19: ring attention, one sequence over many processes.
//
// N ranks share one sequence of T tokens: each holds the queries, keys and
// values of its own tokens. The K/V blocks travel around a ring (rank r
// sends to r + 1 and receives from r - 1), so at step s rank r holds the
// block that started on rank (r - s) mod N, and folds it into the running
// softmax (max, sum, unnormalised output) of its queries: chapter 11's
// online softmax, with the tiles living on other machines.
//
// Here the N ranks are simulated in one process: the "block of rank j" is
// the rows of the whole k, v that rank j holds. What you write is the
// schedule (who holds which block when, which pairs of chunks meet, which
// are skipped) and the fold; attention/ring.cpp runs the same schedule over
// MPI.
//
// Shapes: B batch, H heads, T tokens, d the head size.
// q, k, v [B, H, T, d] (the whole sequence, global order).
//
// You implement shard_of, sees_any, future_mask, fold and
// ring_attention_simulated in ring_attention.cpp, with the ops of
// autograd/ops.h (so backward comes for free). Shard's methods and
// pairs_per_rank are given (ring_attention_glue.cpp).
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace lesson19 {

using attn::Tensor;

// How the sequence is cut among the ranks.
//   Contiguous: N pieces in order, rank r holds piece r.
//   Zigzag:     2N pieces, rank r holds pieces r and 2N - 1 - r (one early,
//               one late), so that every rank has the same causal work.
enum class Split { Contiguous, Zigzag };

// The global positions begin .. end - 1.
struct Chunk {
  int64_t begin = 0, end = 0;
  int64_t length() const { return end - begin; }
  bool operator==(const Chunk&) const = default;
};

// The chunks one rank holds, in the order its local tokens are stored.
struct Shard {
  std::vector<Chunk> chunks;
  int64_t length() const;                  // given: tokens held
  std::vector<int64_t> positions() const;  // given: every global position, in local order
};

// YOUR PART 1. The tokens rank `rank` of `ranks` holds. Cut 0 .. tokens - 1
// into P pieces (P = ranks, or 2 * ranks for Zigzag): piece c starts at
// c * (tokens / P) + min(c, tokens % P), so the first tokens % P pieces are
// one token longer and no token is left over. Contiguous: { piece rank };
// Zigzag: { piece rank, piece 2 * ranks - 1 - rank }.
// Throws attn::Error (attn::check) unless 0 <= rank < ranks and tokens >= P;
// the message names the values and what was expected.
Shard shard_of(int64_t tokens, int rank, int ranks, Split split);

// YOUR PART 2. Whether some query of `queries` may see some key of `keys`:
// always when not causal; under the causal mask (key position <= query
// position) exactly when the first key is not after the last query.
// The ring skips every pair of chunks for which this is false.
bool sees_any(Chunk queries, Chunk keys, bool causal);

// YOUR PART 3. The causal mask between two chunks, by GLOBAL position:
// bool [queries.length(), keys.length()], true where key keys.begin + j lies
// after query queries.begin + i (hidden), false where it may be seen.
Tensor future_mask(Chunk queries, Chunk keys);

// A query chunk's running softmax over the key blocks folded in so far
// (chapter 11's m, l and acc, one per query row):
//   m   [B, H, nq, 1]  the largest score seen
//   l   [B, H, nq, 1]  sum of exp(score - m)
//   acc [B, H, nq, d]  sum of exp(score - m) * v
// All undefined before the first fold. The output is acc / l.
struct RunningSoftmax {
  Tensor m, l, acc;
};

// YOUR PART 4. Folds one key/value chunk into a query chunk's state.
// q [B, H, nq, d], k and v [B, H, nk, d]; `hidden` is undefined (every key
// visible) or a bool [nq, nk] mask, true = hidden (-inf score); scores are
// scale * q k^T. The new max rescales what was summed under the old one.
// Every query row sees at least one key in the first fold of its chunk.
void fold(RunningSoftmax& state, const Tensor& q, const Tensor& k, const Tensor& v,
          const Tensor& hidden, float scale);

// One fold the ring did: at `step`, rank `rank` held the block of rank
// `from` and folded its key chunk `keys` into its query chunk `queries`.
struct Fold {
  int rank = 0, step = 0, from = 0;
  Chunk queries, keys;
};

// YOUR PART 5. Ring attention over `ranks` simulated ranks -> [B, H, T, d],
// equal to softmax(q k^T / sqrt(d), causal or not) v. For each rank r, for
// step s = 0 .. ranks - 1, the block of rank (r - s) mod ranks arrives;
// every (query chunk of r, key chunk of that block) pair that sees_any is
// folded (with future_mask when causal and some key lies after some query)
// and appended to `log` when given. Then each rank's output, acc / l, is
// put back in global order. Throws attn::Error for ranks < 1 or q, k, v
// that are not one shape [B, H, T, d].
Tensor ring_attention_simulated(const Tensor& q, const Tensor& k, const Tensor& v, int ranks,
                                Split split, bool causal, std::vector<Fold>* log = nullptr);

// Given. The work of each rank: how many chunk pairs it folded.
std::vector<int64_t> pairs_per_rank(const std::vector<Fold>& log, int ranks);

}  // namespace lesson19
