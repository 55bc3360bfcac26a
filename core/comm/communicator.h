// The processes of one job and what they exchange: the collectives of data
// parallel training (all-reduce), of ring attention (sends to the next rank,
// receives from the previous) and a few small agreements (barrier, abort).
//
// One interface, so that callers never name the library underneath: MPI
// between CPU processes today (mpi_communicator.cpp), NCCL between GPUs
// beside it later. Every transfer returns a Request to wait on rather than
// blocking, because a GPU library's calls are ordered on a stream and
// overlapping communication with computation needs that shape from the start.
//
// A process that was not started for several ranks (no --data-parallel, or a
// build without MPI) has the single-process communicator: rank 0 of 1, where
// an all-reduce leaves the data as it is. Callers write one code path.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace attn::comm {

// A transfer in flight. wait() returns once this rank's part is done (the
// buffers may be read or reused); a Request is waited for at most once, and
// one dropped without wait() waits in its destructor, so no transfer can
// outlive the buffers its caller owns.
class Request {
 public:
  Request() = default;
  explicit Request(std::function<void()> wait) : wait_(std::move(wait)) {}
  Request(Request&& other) noexcept : wait_(std::move(other.wait_)) { other.wait_ = nullptr; }
  Request& operator=(Request&& other) noexcept;
  Request(const Request&) = delete;
  Request& operator=(const Request&) = delete;
  ~Request();
  void wait();

 private:
  std::function<void()> wait_;
};

enum class ReduceOp { Sum, Max };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Ranks on this machine (they share its cores: each takes its part of them).
  virtual int local_size() const = 0;
  // "MPI (Open MPI 4.1.4)", "single process": for messages and reports.
  virtual std::string name() const = 0;

  // Every rank passes the same n; afterwards every rank holds the same
  // element-wise sum (or max), computed in an order that depends only on the
  // number of ranks and n, so a run repeats bit for bit.
  virtual Request all_reduce(std::span<float> data, ReduceOp op) = 0;
  virtual Request all_reduce(std::span<double> data, ReduceOp op) = 0;
  // out[r * in.size() + i] = rank r's in[i]; every rank passes the same size.
  virtual Request all_gather(std::span<const float> in, std::span<float> out) = 0;
  // The sum over ranks of `in`, cut in size() equal parts: rank r receives
  // part r (out.size() = in.size() / size()). With all_gather it is an
  // all-reduce in two halves, which is how sharded optimizers use it.
  virtual Request reduce_scatter(std::span<const float> in, std::span<float> out) = 0;
  // Point to point, for rings: the receiver names the sender and the size.
  virtual Request send(std::span<const float> data, int to) = 0;
  virtual Request recv(std::span<float> data, int from) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with this exit status (after a rank's error,
  // so that the others do not wait for it forever).
  [[noreturn]] virtual void abort(int status) = 0;
};

// The job's communicator: the single-process one until start_processes().
Communicator& world();
// Joins the job this process was started in (by mpirun) and makes it
// world(). Call once, before any other call of this header; argc/argv may
// be rewritten by the launcher's library. A build without MPI fails here
// with what to install.
void start_processes(int* argc, char*** argv);
// Whether this build can start processes (was built with MPI).
bool processes_available();

}  // namespace attn::comm
