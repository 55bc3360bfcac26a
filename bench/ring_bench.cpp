// Ring attention's costs on N ranks (run under mpirun -np N): for each
// sequence length, the forward+backward time of this rank's share, the bytes
// it sent against the formula, the block pairs it computed, and its
// allocator peak, next to flash attention over the whole sequence in one
// process (rank 0 runs that alone first, the others wait at a barrier).
//
//   mpirun -np 4 build/default/bench_ring --lengths 2048,8192 --split zigzag
//
// One JSON object per length and rank on stdout.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "attention/flash.h"
#include "attention/ring.h"
#include "autograd/ops.h"
#include "core/allocator.h"
#include "core/threads.h"

using namespace attn;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Timing {
  double ms = 0;
  std::size_t peak = 0;
};

// Median forward+backward time of fn over `repeats` runs, and the allocator
// peak above what was live before (inputs excluded). `together`: every rank
// runs it, and they start each run at once.
template <class Fn>
Timing time_fn(int repeats, bool together, Fn fn) {
  fn();  // warm-up
  std::vector<double> t;
  cpu_allocator().reset_peak();
  const std::size_t before = cpu_allocator().stats().current;
  for (int i = 0; i < repeats; ++i) {
    if (together) comm::world().barrier();
    const double t0 = now_ms();
    fn();
    t.push_back(now_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return {t[t.size() / 2], cpu_allocator().stats().peak - before};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ring attention: time, bytes and memory per rank (run under mpirun)"};
  std::vector<int64_t> lengths = {2048, 8192};
  int64_t B = 1, H = 4, D = 64;
  int repeats = 3;
  std::string split_name = "zigzag";
  app.add_option("--lengths", lengths, "whole sequence lengths")->delimiter(',')->capture_default_str();
  app.add_option("--heads", H)->capture_default_str();
  app.add_option("--dim", D)->capture_default_str();
  app.add_option("--repeats", repeats)->capture_default_str();
  app.add_option("--split", split_name, "zigzag or contiguous")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    comm::start_processes(&argc, &argv);
    set_num_threads(std::max(1, physical_cores() / comm::world().local_size()));
    const int r = comm::world().rank(), n = comm::world().size();
    const RingSplit split = split_name == "contiguous" ? RingSplit::Contiguous : RingSplit::Zigzag;
    for (int64_t T : lengths) {
      Generator gen(7);
      const Tensor q = randn({B, H, T, D}, gen), k = randn({B, H, T, D}, gen), v = randn({B, H, T, D}, gen);
      Timing one;
      if (r == 0) {
        FlashOptions fo;
        one = time_fn(repeats, false, [&] {
          Tensor ql = q.detach().set_requires_grad(), kl = k.detach().set_requires_grad(),
                 vl = v.detach().set_requires_grad();
          sum(flash_attention(ql, kl, vl, fo)).backward();
        });
      }
      comm::world().barrier();
      const std::vector<int64_t> pos = shard_of(T, r, n, split).positions();
      const Tensor idx = from_ints(pos, {static_cast<int64_t>(pos.size())});
      const Tensor qs = index_select(q, 2, idx), ks = index_select(k, 2, idx), vs = index_select(v, 2, idx);
      RingOptions o;
      o.tokens = T;
      o.split = split;
      reset_ring_counters();
      const Timing ring = time_fn(repeats, true, [&] {
        Tensor ql = qs.detach().set_requires_grad(), kl = ks.detach().set_requires_grad(),
               vl = vs.detach().set_requires_grad();
        sum(ring_attention(ql, kl, vl, o)).backward();
      });
      const RingCounters c = ring_counters();
      const int64_t calls = repeats + 1;
      // Forward: N - 1 hops of K and V; backward: N - 1 hops of K, V, dK, dV
      // and a last one of dK, dV. Each block is B x H x T/N x d floats.
      const int64_t block_bytes = B * H * (T / n) * D * 4;
      const int64_t formula = n == 1 ? 0 : ((n - 1) * 2 + (n - 1) * 4 + 2) * block_bytes;
      std::printf("{\"ranks\": %d, \"rank\": %d, \"split\": \"%s\", \"T\": %lld, \"ring_ms\": %.2f, "
                  "\"one_process_flash_ms\": %.2f, \"bytes_sent\": %lld, \"bytes_formula\": %lld, "
                  "\"pairs\": %lld, \"peak_mib\": %.2f, \"one_process_peak_mib\": %.2f}\n",
                  n, r, split_name.c_str(), static_cast<long long>(T), ring.ms, one.ms,
                  static_cast<long long>(c.bytes_sent / calls), static_cast<long long>(formula),
                  static_cast<long long>(c.pairs_computed / calls), ring.peak / 1048576.0, one.peak / 1048576.0);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ring: %s\n", e.what());
    if (comm::world().size() > 1) comm::world().abort(1);
    return 1;
  }
  return 0;
}
