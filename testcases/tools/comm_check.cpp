// comm_check: run under `mpirun -np N` (N >= 2), every rank checks the MPI
// communicator and data-parallel averaging against values it can work out
// alone: what rank r contributes is a formula of r, so the expected sums,
// maxima, gathers and ring messages are known on every rank. Exits 0 when
// every check held on this rank; prints each one that did not.
#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/ops.h"
#include "core/comm/communicator.h"
#include "core/error.h"
#include "testcases/tools/rank_check.h"
#include "train/data_parallel.h"

using namespace attn;
using rank_check::expect;

int main(int argc, char** argv) {
  try {
    comm::start_processes(&argc, &argv);
    comm::Communicator& c = comm::world();
    const int r = c.rank(), n = c.size();
    expect(n >= 2, str("the job has ", n, " ranks; run it with mpirun -np 2 or more"));

    // Sums and maxima: rank r holds r + 1 + i / 4 at index i.
    std::vector<float> f(1000);
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(r + 1) + static_cast<float>(i) / 4;
    std::vector<float> fmax = f;
    c.all_reduce(f, comm::ReduceOp::Sum).wait();
    c.all_reduce(fmax, comm::ReduceOp::Max).wait();
    for (std::size_t i = 0; i < f.size(); ++i) {
      const double sum = n * (n + 1) / 2.0 + n * (static_cast<double>(i) / 4);
      expect(f[i] == static_cast<float>(sum), str("float sum at ", i, ": ", f[i], " != ", sum));
      expect(fmax[i] == static_cast<float>(n + static_cast<double>(i) / 4), str("float max at ", i, ": ", fmax[i]));
    }
    double d[2] = {0.5 * r, -1.0 * r};
    c.all_reduce(d, comm::ReduceOp::Sum).wait();
    expect(d[0] == 0.25 * n * (n - 1) && d[1] == -0.5 * n * (n - 1), str("double sums ", d[0], ", ", d[1]));

    // Gather: rank r sends {r, 10 r, 100 r}.
    const std::vector<float> mine = {1.0f * r, 10.0f * r, 100.0f * r};
    std::vector<float> all(3 * static_cast<std::size_t>(n));
    c.all_gather(mine, all).wait();
    for (int q = 0; q < n; ++q)
      expect(all[3 * q] == q && all[3 * q + 1] == 10.0f * q && all[3 * q + 2] == 100.0f * q,
             str("all_gather block of rank ", q));

    // Reduce-scatter: rank r contributes q + r at index q; part p (two
    // values) of the sum reaches rank p.
    std::vector<float> whole(2 * static_cast<std::size_t>(n)), part(2);
    for (std::size_t q = 0; q < whole.size(); ++q) whole[q] = static_cast<float>(q) + static_cast<float>(r);
    c.reduce_scatter(whole, part).wait();
    for (int i = 0; i < 2; ++i) {
      const double want = n * (2.0 * r + i) + n * (n - 1) / 2.0;
      expect(part[i] == static_cast<float>(want), str("reduce_scatter value ", i, ": ", part[i], " != ", want));
    }

    // A ring: send to the next rank, receive from the previous, both in flight.
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    std::vector<float> out(257), in(257);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(1000 * r + static_cast<int>(i));
    comm::Request sent = c.send(out, next);
    comm::Request got = c.recv(in, prev);
    got.wait();
    sent.wait();
    for (std::size_t i = 0; i < in.size(); ++i)
      expect(in[i] == static_cast<float>(1000 * prev + static_cast<int>(i)), str("ring value ", i, " from ", prev));

    // Data parallel: gradients of sizes that straddle the 4 MiB buckets
    // come back as the mean of every rank's (rank r's gradient is r + 1).
    DataParallel dp;
    std::vector<Tensor> params;
    for (int64_t size : {int64_t{3}, int64_t{(1 << 20) + 5}, int64_t{7}, int64_t{(1 << 20) - 1}})
      params.push_back(zeros({size}).set_requires_grad());
    Tensor loss = sum(params[0]) * 0.0f;
    for (const Tensor& p : params) loss = loss + sum(p * static_cast<float>(r + 1));
    loss.backward();
    std::vector<Tensor*> pointers;
    for (Tensor& p : params) pointers.push_back(&p);
    dp.average_gradients(pointers);
    const float mean = (n + 1) / 2.0f;
    for (const Tensor& p : params) {
      const std::vector<float> g = p.grad().to_vector();
      bool all_mean = true;
      for (float x : g) all_mean = all_mean && x == mean;
      expect(all_mean, str("averaged gradient of a ", g.size(), "-value parameter is not ", mean));
    }
    expect(dp.mean(r) == (n - 1) / 2.0, "mean of the ranks' numbers");
    expect(dp.rank0_decides(r == 0) && !dp.rank0_decides(r != 0), "rank 0's decision reaches every rank");

    // Identical parameters pass the check; one rank's changed value fails it on every rank.
    dp.check_in_step(pointers, 1);
    if (r == n - 1) params[2].data<float>()[3] = 1.0f;
    bool caught = false;
    try {
      dp.check_in_step(pointers, 2);
    } catch (const Error& e) {
      caught = std::string(e.what()).find("differ at step 2") != std::string::npos;
    }
    expect(caught, "check_in_step did not notice one rank's changed parameter");
  } catch (const std::exception& e) {
    std::printf("rank %d: error: %s\n", comm::world().rank(), e.what());
    return 1;
  }
  return rank_check::finish();
}
