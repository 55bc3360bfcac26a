// The single-process communicator and the choice of world() (communicator.h).
#include "core/comm/communicator.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace attn::comm {

Request& Request::operator=(Request&& other) noexcept {
  if (this != &other) {
    if (wait_) wait_();
    wait_ = std::move(other.wait_);
    other.wait_ = nullptr;
  }
  return *this;
}

Request::~Request() {
  if (wait_) wait_();
}

void Request::wait() {
  if (!wait_) return;
  auto w = std::move(wait_);
  wait_ = nullptr;
  w();
}

namespace {

// Rank 0 of 1: every reduction is the data itself, a gather is a copy, and
// a ring of one has no neighbour to send to.
class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_size() const override { return 1; }
  std::string name() const override { return "single process"; }
  Request all_reduce(std::span<float>, ReduceOp) override { return {}; }
  Request all_reduce(std::span<double>, ReduceOp) override { return {}; }
  Request all_gather(std::span<const float> in, std::span<float> out) override {
    check(out.size() == in.size(), "all_gather: the output holds ", out.size(), " values, expected ", in.size(),
          " (1 rank x ", in.size(), ")");
    std::copy(in.begin(), in.end(), out.begin());
    return {};
  }
  Request reduce_scatter(std::span<const float> in, std::span<float> out) override {
    check(out.size() == in.size(), "reduce_scatter: the output holds ", out.size(), " values, expected ", in.size(),
          " (", in.size(), " / 1 rank)");
    std::copy(in.begin(), in.end(), out.begin());
    return {};
  }
  Request send(std::span<const float>, int to) override {
    fail("send: rank ", to, " does not exist: this process runs alone (1 rank)");
  }
  Request recv(std::span<float>, int from) override {
    fail("recv: rank ", from, " does not exist: this process runs alone (1 rank)");
  }
  void barrier() override {}
  [[noreturn]] void abort(int status) override { std::exit(status); }
};

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> w = std::make_unique<SingleProcess>();
  return w;
}

}  // namespace

#ifdef ATTNLAB_HAVE_MPI
std::unique_ptr<Communicator> start_mpi(int* argc, char*** argv);  // mpi_communicator.cpp
bool processes_available() { return true; }
#else
bool processes_available() { return false; }
#endif

Communicator& world() { return *world_slot(); }

void start_processes(int* argc, char*** argv) {
  check(world().size() == 1 && world().name() == "single process",
        "start_processes: this process has already joined its job");
#ifdef ATTNLAB_HAVE_MPI
  world_slot() = start_mpi(argc, argv);
#else
  (void)argc;
  (void)argv;
  fail("attnlab was built without MPI, which several processes need; install it (Debian: "
       "apt-get install libopenmpi-dev openmpi-bin, or bash scripts/install-deps.sh) and rebuild");
#endif
}

}  // namespace attn::comm
