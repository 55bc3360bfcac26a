// The communicator over MPI (communicator.h): every call is MPI's own
// non-blocking collective or point-to-point transfer, waited for by the
// Request it returns. Built only where CMake found an MPI library.
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/comm/communicator.h"
#include "core/error.h"

namespace attn::comm {

namespace {

// MPI counts are ints: a longer buffer goes as several transfers.
constexpr int64_t kMaxCount = INT_MAX / 2;

Request wait_all(std::vector<MPI_Request> requests) {
  auto pending = std::make_shared<std::vector<MPI_Request>>(std::move(requests));
  return Request([pending] { MPI_Waitall(static_cast<int>(pending->size()), pending->data(), MPI_STATUSES_IGNORE); });
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Sum ? MPI_SUM : MPI_MAX; }

void check_count(const char* what, std::size_t n) {
  check(n <= static_cast<std::size_t>(kMaxCount), what, ": ", n, " values in one transfer; at most ", kMaxCount);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // The ranks that share this machine's memory are the ones sharing its cores.
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    std::string v(version, static_cast<std::size_t>(length));
    name_ = "MPI (" + v.substr(0, v.find_first_of(",\n")) + ")";
  }
  ~MpiCommunicator() override { MPI_Finalize(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }
  std::string name() const override { return name_; }

  Request all_reduce(std::span<float> data, ReduceOp op) override { return reduce(data, MPI_FLOAT, op); }
  Request all_reduce(std::span<double> data, ReduceOp op) override { return reduce(data, MPI_DOUBLE, op); }

  Request all_gather(std::span<const float> in, std::span<float> out) override {
    check(out.size() == in.size() * static_cast<std::size_t>(size_), "all_gather: the output holds ", out.size(),
          " values, expected ", in.size() * static_cast<std::size_t>(size_), " (", size_, " ranks x ", in.size(), ")");
    check_count("all_gather", in.size());
    std::vector<MPI_Request> r(1);
    MPI_Iallgather(in.data(), static_cast<int>(in.size()), MPI_FLOAT, out.data(), static_cast<int>(in.size()),
                   MPI_FLOAT, MPI_COMM_WORLD, r.data());
    return wait_all(std::move(r));
  }

  Request reduce_scatter(std::span<const float> in, std::span<float> out) override {
    check(in.size() == out.size() * static_cast<std::size_t>(size_), "reduce_scatter: ", in.size(),
          " values do not cut into ", size_, " parts of ", out.size(), " (the output's size)");
    check_count("reduce_scatter", out.size());
    std::vector<MPI_Request> r(1);
    MPI_Ireduce_scatter_block(in.data(), out.data(), static_cast<int>(out.size()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                              r.data());
    return wait_all(std::move(r));
  }

  Request send(std::span<const float> data, int to) override {
    check_peer("send", to);
    check_count("send", data.size());
    std::vector<MPI_Request> r(1);
    MPI_Isend(data.data(), static_cast<int>(data.size()), MPI_FLOAT, to, 0, MPI_COMM_WORLD, r.data());
    return wait_all(std::move(r));
  }

  Request recv(std::span<float> data, int from) override {
    check_peer("recv", from);
    check_count("recv", data.size());
    std::vector<MPI_Request> r(1);
    MPI_Irecv(data.data(), static_cast<int>(data.size()), MPI_FLOAT, from, 0, MPI_COMM_WORLD, r.data());
    return wait_all(std::move(r));
  }

  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  [[noreturn]] void abort(int status) override {
    MPI_Abort(MPI_COMM_WORLD, status);
    std::exit(status);  // MPI_Abort does not return; this tells the compiler so
  }

 private:
  template <class T>
  Request reduce(std::span<T> data, MPI_Datatype type, ReduceOp op) {
    std::vector<MPI_Request> r;
    for (std::size_t at = 0; at < data.size(); at += kMaxCount) {
      const auto n = static_cast<int>(std::min<std::size_t>(kMaxCount, data.size() - at));
      MPI_Request one;
      MPI_Iallreduce(MPI_IN_PLACE, data.data() + at, n, type, mpi_op(op), MPI_COMM_WORLD, &one);
      r.push_back(one);
    }
    return wait_all(std::move(r));
  }
  void check_peer(const char* what, int peer) const {
    check(peer >= 0 && peer < size_ && peer != rank_, what, ": rank ", peer, " is not another rank of this job (rank ",
          rank_, " of ", size_, ")");
  }

  int rank_ = 0, size_ = 1, local_size_ = 1;
  std::string name_;
};

}  // namespace

std::unique_ptr<Communicator> start_mpi(int* argc, char*** argv) {
  int provided = 0;
  // One thread calls MPI (the main one); the CPU pool's threads never do.
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  return std::make_unique<MpiCommunicator>();
}

}  // namespace attn::comm
