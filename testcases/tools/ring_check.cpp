// ring_check: run under `mpirun -np N`. Every rank builds the same whole
// q, k, v (one seed), computes flash attention on all of it in-process as
// the reference, then ring attention on its own shard over the job, and
// checks its rows of the output and of dq, dk, dv against the reference's
// rows: causal and not, contiguous and zigzag splits, a sequence that
// divides over the ranks and one that does not. It also checks the work
// and the bytes each rank's forward took against their formulas.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "attention/flash.h"
#include "attention/ring.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "testcases/tools/rank_check.h"
#include "core/random.h"

using namespace attn;
using rank_check::expect;

namespace {

float max_diff(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  if (x.size() != y.size()) return INFINITY;
  float d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) d = std::isnan(x[i] - y[i]) ? INFINITY : std::max(d, std::fabs(x[i] - y[i]));
  return d;
}

void check_case(int64_t tokens, bool causal, RingSplit split) {
  const int r = comm::world().rank(), n = comm::world().size();
  const std::string name = str("T=", tokens, causal ? " causal" : " bidirectional",
                               split == RingSplit::Zigzag ? " zigzag" : " contiguous", " on ", n, " ranks");
  const int64_t B = 2, H = 2, d = 8;
  Generator gen(1234 + static_cast<uint64_t>(tokens));
  Tensor q = randn({B, H, tokens, d}, gen).set_requires_grad();
  Tensor k = randn({B, H, tokens, d}, gen).set_requires_grad();
  Tensor v = randn({B, H, tokens, d}, gen).set_requires_grad();
  const Tensor w = randn({B, H, tokens, d}, gen);  // the loss sum(out * w) weighs every output
  FlashOptions fo;
  fo.causal = causal;
  const Tensor ref = flash_attention(q, k, v, fo);
  sum(ref * w).backward();

  const std::vector<int64_t> pos = shard_of(tokens, r, n, split).positions();
  const Tensor idx = from_ints(pos, {static_cast<int64_t>(pos.size())});
  auto mine = [&](const Tensor& t) { return index_select(t.detach(), 2, idx); };
  Tensor ql = mine(q).set_requires_grad(), kl = mine(k).set_requires_grad(), vl = mine(v).set_requires_grad();
  RingOptions ro;
  ro.tokens = tokens;
  ro.causal = causal;
  ro.split = split;
  reset_ring_counters();
  const Tensor out = ring_attention(ql, kl, vl, ro);
  const RingCounters forward = ring_counters();
  sum(out * mine(w)).backward();
  const float tol = 2e-5f;
  expect(max_diff(out, mine(ref)) <= tol, name + ": output differs by " + std::to_string(max_diff(out, mine(ref))));
  expect(max_diff(ql.grad(), mine(q.grad())) <= tol, name + ": dq differs by " + std::to_string(max_diff(ql.grad(), mine(q.grad()))));
  expect(max_diff(kl.grad(), mine(k.grad())) <= tol, name + ": dk differs by " + std::to_string(max_diff(kl.grad(), mine(k.grad()))));
  expect(max_diff(vl.grad(), mine(v.grad())) <= tol, name + ": dv differs by " + std::to_string(max_diff(vl.grad(), mine(v.grad()))));

  // Work: query chunk x key chunk pairs. Causal and contiguous, rank r meets
  // the blocks of ranks 0..r; zigzag, every rank meets 2N + 1 pairs.
  const int64_t pairs = !causal ? (split == RingSplit::Zigzag ? 4 * n : n) : split == RingSplit::Zigzag ? 2 * n + 1 : r + 1;
  expect(forward.pairs_computed == pairs, name + ": forward computed " + std::to_string(forward.pairs_computed) +
                                              " block pairs, expected " + std::to_string(pairs));
  // Bytes: N - 1 hops, each carrying one rank's K and V.
  if (tokens % (2 * n) == 0) {
    const int64_t bytes = (n - 1) * 2 * B * H * (tokens / n) * d * 4;
    expect(forward.bytes_sent == bytes, name + ": forward sent " + std::to_string(forward.bytes_sent) +
                                            " bytes, expected " + std::to_string(bytes));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    comm::start_processes(&argc, &argv);
    const int n = comm::world().size();
    for (int64_t tokens : {int64_t{8} * n, int64_t{8} * n + 3})
      for (bool causal : {true, false})
        for (RingSplit split : {RingSplit::Contiguous, RingSplit::Zigzag}) check_case(tokens, causal, split);
  } catch (const std::exception& e) {
    std::printf("rank %d: error: %s\n", comm::world().rank(), e.what());
    return 1;
  }
  return rank_check::finish();
}
