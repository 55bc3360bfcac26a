// The single-process communicator (core/comm/communicator.h): what every
// rank-aware caller sees when no job was started. The MPI side is tested
// under mpirun by testcases/train/data_parallel.sh (comm_check).
#include <gtest/gtest.h>

#include <vector>

#include "core/comm/communicator.h"
#include "testcases/error_of.h"

using namespace attn;

TEST(Communicator, AloneIsRankZeroOfOne) {
  comm::Communicator& c = comm::world();
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.local_size(), 1);
  // A reduction over one rank is the data itself; a gather is a copy.
  std::vector<float> v = {1.5f, -2.0f, 3.25f};
  c.all_reduce(v, comm::ReduceOp::Sum).wait();
  EXPECT_EQ(v, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  double d[2] = {4.0, -1.0};
  c.all_reduce(d, comm::ReduceOp::Max).wait();
  EXPECT_EQ(d[0], 4.0);
  EXPECT_EQ(d[1], -1.0);
  std::vector<float> out(3);
  c.all_gather(v, out).wait();
  EXPECT_EQ(out, v);
  std::vector<float> part(3);
  c.reduce_scatter(v, part).wait();
  EXPECT_EQ(part, v);
  c.barrier();
}

TEST(Communicator, AloneHasNoNeighboursAndSaysSo) {
  comm::Communicator& c = comm::world();
  std::vector<float> v(4), out(8);
  EXPECT_EQ(error_of([&] { c.send(v, 1); }), "send: rank 1 does not exist: this process runs alone (1 rank)");
  EXPECT_EQ(error_of([&] { c.recv(v, 0); }), "recv: rank 0 does not exist: this process runs alone (1 rank)");
  EXPECT_EQ(error_of([&] { c.all_gather(v, out); }),
            "all_gather: the output holds 8 values, expected 4 (1 rank x 4)");
}

TEST(Communicator, RequestWaitsOnceWhetherAskedOrDropped) {
  int waits = 0;
  {
    comm::Request r([&] { ++waits; });
    r.wait();
    r.wait();  // a second wait has nothing left to wait for
    EXPECT_EQ(waits, 1);
  }
  EXPECT_EQ(waits, 1);
  {
    comm::Request dropped([&] { ++waits; });
    comm::Request moved = std::move(dropped);  // the transfer moves with it
  }
  EXPECT_EQ(waits, 2);  // dropped without wait(): its destructor waited
}

TEST(Communicator, WithoutMpiStartingAJobIsAClearError) {
  if (comm::processes_available()) GTEST_SKIP() << "this build has MPI: starting a job here would start one";
  int argc = 0;
  char** argv = nullptr;
  EXPECT_EQ(error_of([&] { comm::start_processes(&argc, &argv); }),
            "attnlab was built without MPI, which several processes need; install it (Debian: apt-get install "
            "libopenmpi-dev openmpi-bin, or bash scripts/install-deps.sh) and rebuild");
}
