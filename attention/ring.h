// Ring attention (context parallelism): one sequence split over the ranks
// of a job, each rank holding the queries, keys and values of its tokens.
//
// Attention needs every query against every key, but no rank needs all the
// keys at once. Each rank keeps its queries and passes its K/V block to the
// next rank around a ring; after N - 1 hops every query has met every
// block. Each arriving block is folded into the queries' running (max, sum,
// output), exactly the online softmax that flash attention (chapter 11)
// runs over tiles: here the tiles live on other machines. A rank holds
// T / N tokens of activations and two K/V blocks (the one it works on and the
// one arriving), never the whole sequence.
//
// Causal masking: a key block that lies wholly after a query block is
// skipped, one wholly before is seen whole, and a block against itself takes
// the causal triangle. Split in order (Contiguous), rank 0 then does one
// block of work while the last rank does N: the ring waits for the slowest.
// Zigzag cuts the sequence into 2N chunks and gives rank r chunks r and
// 2N - 1 - r, one early and one late, so every rank does the same work.
//
// Backward recomputes the probabilities from the saved logsumexp (as flash
// attention does), block by block around the ring again; the K/V gradients
// travel with their block and arrive home after the last hop.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "attention/kernel.h"
#include "core/comm/communicator.h"
#include "core/tensor.h"

namespace attn {

enum class RingSplit { Contiguous, Zigzag };

// The global positions one rank holds: [begin, end) chunks, in the order
// its local tokens are stored (one chunk, or two for Zigzag). A sequence
// that does not divide evenly gives the first chunks one token more.
struct SequenceShard {
  std::vector<std::pair<int64_t, int64_t>> chunks;
  int64_t length() const;
  std::vector<int64_t> positions() const;  // every global position, in local order
};
SequenceShard shard_of(int64_t tokens, int rank, int ranks, RingSplit split);

struct RingOptions {
  int64_t tokens = 0;  // the whole sequence's length T
  RingSplit split = RingSplit::Zigzag;
  bool causal = true;
  float scale = 0;  // 0 = 1/sqrt(d)
};

// q, k, v: this rank's tokens, [B, H, T_rank, d] (T_rank = shard_of(...)
// .length()), on the CPU -> this rank's output [B, H, T_rank, d].
// Differentiable in q, k and v; every rank of `comm` must call it together.
Tensor ring_attention(const Tensor& q, const Tensor& k, const Tensor& v, const RingOptions& o,
                      comm::Communicator& comm = comm::world());

// What the calls of this process have sent (bytes) and computed (query
// block x key block pairs, skipped ones not counted), since the last reset:
// the cost figures of chapter 19, measured rather than assumed.
struct RingCounters {
  int64_t bytes_sent = 0;
  int64_t pairs_computed = 0;
};
RingCounters ring_counters();
void reset_ring_counters();

// ---- the `ring` variant in a GPT ----
//
// While a SequenceSplit lives (the trainer holds one around the steps and
// evaluations of a `ring` run over several ranks), each rank's model sees
// only its tokens: the GPT embeds them at their global positions and the
// ring kernel passes K/V between the ranks. Without one (sampling,
// `attnlab eval`, any single process) the same model sees whole sequences
// and the kernel is plain flash attention: a ring of one.
class SequenceSplit {
 public:
  SequenceSplit(comm::Communicator& comm, RingSplit split);
  ~SequenceSplit();
  SequenceSplit(const SequenceSplit&) = delete;
  SequenceSplit& operator=(const SequenceSplit&) = delete;
};
// The split in force: the communicator (nullptr when none) and how.
struct ActiveSplit {
  comm::Communicator* comm = nullptr;
  RingSplit split = RingSplit::Zigzag;
};
ActiveSplit active_sequence_split();

// The kernel of `ring[:split=zigzag|contiguous]` (causal, no attention dropout).
AttentionKernel ring_kernel(RingSplit split);

}  // namespace attn
