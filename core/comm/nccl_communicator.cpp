// The communicator over NCCL (nccl_communicator.h).
#include "core/comm/nccl_communicator.h"

#include <cstdlib>

#include "core/error.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace attn::comm {

namespace {

void check_nccl(int result, const char* what) {
  if (result == kNcclSuccess) return;
  fail("NCCL: ", what, " failed: ", nccl_library().ncclGetErrorString(result), " (", result, ")");
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const Device& device, int rank, int size, const NcclUniqueId& id)
      : device_(device), rank_(rank), size_(size), stream_(Stream::create(device)) {
    check(device.is_cuda(), "NCCL: its buffers are GPU memory; got device ", device.str());
    check(size >= 1 && rank >= 0 && rank < size, "NCCL: rank ", rank, " of ", size, " ranks");
    // NVLink multicast (NVLS) stays off: the machines it would run on keep it disabled.
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    const NcclLibrary& lib = nccl_library();
    const StreamGuard on_device(stream_);  // makes the device current for NCCL
    check_nccl(lib.ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
    name_ = "NCCL " + nccl_version(lib) + " (" + lib.path + ")";
  }
  ~NcclCommunicator() override {
    stream_.synchronize();
    nccl_library().ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return size_; }  // one machine: every GPU of the job is here
  std::string name() const override { return name_; }

  Request all_reduce(std::span<float> data, ReduceOp op) override {
    return queue("ncclAllReduce", [&](const NcclLibrary& l) {
      return l.ncclAllReduce(data.data(), data.data(), data.size(), kNcclFloat32, nccl_op(op), comm_, s());
    });
  }
  Request all_reduce(std::span<double> data, ReduceOp op) override {
    return queue("ncclAllReduce", [&](const NcclLibrary& l) {
      return l.ncclAllReduce(data.data(), data.data(), data.size(), kNcclFloat64, nccl_op(op), comm_, s());
    });
  }
  Request all_gather(std::span<const float> in, std::span<float> out) override {
    check(out.size() == in.size() * static_cast<std::size_t>(size_), "all_gather: the output holds ", out.size(),
          " values, expected ", in.size() * static_cast<std::size_t>(size_), " (", size_, " ranks x ", in.size(), ")");
    return queue("ncclAllGather", [&](const NcclLibrary& l) {
      return l.ncclAllGather(in.data(), out.data(), in.size(), kNcclFloat32, comm_, s());
    });
  }
  Request reduce_scatter(std::span<const float> in, std::span<float> out) override {
    check(in.size() == out.size() * static_cast<std::size_t>(size_), "reduce_scatter: ", in.size(),
          " values do not cut into ", size_, " parts of ", out.size(), " (the output's size)");
    return queue("ncclReduceScatter", [&](const NcclLibrary& l) {
      return l.ncclReduceScatter(in.data(), out.data(), out.size(), kNcclFloat32, kNcclSum, comm_, s());
    });
  }
  Request send(std::span<const float> data, int to) override {
    check_peer("send", to);
    return queue("ncclSend", [&](const NcclLibrary& l) {
      return l.ncclSend(data.data(), data.size(), kNcclFloat32, to, comm_, s());
    });
  }
  Request recv(std::span<float> data, int from) override {
    check_peer("recv", from);
    return queue("ncclRecv", [&](const NcclLibrary& l) {
      return l.ncclRecv(data.data(), data.size(), kNcclFloat32, from, comm_, s());
    });
  }
  void barrier() override {
    // NCCL has no barrier: an all-reduce every rank must join, waited for.
    if (!one_.defined()) one_ = zeros({1}, DType::Float32, device_);
    all_reduce(std::span<float>(one_.data<float>(), 1), ReduceOp::Sum).wait();
  }
  [[noreturn]] void abort(int status) override {
    nccl_library().ncclCommAbort(comm_);
    std::_Exit(status);
  }

 private:
  static int nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? kNcclSum : kNcclMax; }
  CudaStream s() const { return reinterpret_cast<CudaStream>(stream_.id()); }
  void check_peer(const char* what, int peer) const {
    check(peer >= 0 && peer < size_ && peer != rank_, what, ": rank ", peer, " is not another rank of ",
          size_, " (this is rank ", rank_, ")");
  }
  // Queues one NCCL call on the communicator's stream, after the work this
  // thread has queued on the device so far; the request waits for it.
  template <class Call>
  Request queue(const char* what, Call call) {
    stream_.wait_for(Stream::current(device_));
    const StreamGuard on_device(stream_);
    check_nccl(call(nccl_library()), what);
    Stream stream = stream_;
    return Request([stream] { stream.synchronize(); });
  }

  Device device_;
  int rank_, size_;
  Stream stream_;
  NcclComm comm_ = nullptr;
  std::string name_;
  Tensor one_;  // the barrier's float, in GPU memory
};

}  // namespace

NcclUniqueId nccl_unique_id() {
  NcclUniqueId id{};
  check_nccl(nccl_library().ncclGetUniqueId(&id), "ncclGetUniqueId");
  return id;
}

std::unique_ptr<Communicator> nccl_communicator(const Device& device, int rank, int size,
                                                const NcclUniqueId& id) {
  return std::make_unique<NcclCommunicator>(device, rank, size, id);
}

}  // namespace attn::comm
