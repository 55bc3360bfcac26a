// Data-parallel training over the job's communicator (data_parallel.h).
#include "train/data_parallel.h"

#include <cstring>

#include "core/error.h"
#include "train/stop_signals.h"

namespace attn {

namespace {

// Floats per gradient bucket: 4 MiB.
constexpr std::size_t kBucketFloats = std::size_t{1} << 20;

}  // namespace

void DataParallel::check_split(int64_t batch, int64_t block) const {
  if (ranks() == 1) return;  // one process splits nothing (a ring of one takes any --block)
  if (over_ == ParallelOver::Batch) {
    check(batch % ranks() == 0, "train: --batch ", batch, " does not split evenly over ", ranks(),
          " ranks; use a multiple of ", ranks());
    return;
  }
  const int64_t pieces = split_ == RingSplit::Zigzag ? 2 * ranks() : ranks();
  check(block % pieces == 0, "train: --block ", block, " does not split evenly over ", ranks(), " ranks for ring ",
        "attention (", pieces, split_ == RingSplit::Zigzag ? " zigzag chunks" : " chunks",
        "); use a multiple of ", pieces);
}

Batch DataParallel::local_batch(const TextDataset& data, Split split, int64_t batch, int64_t block,
                                Generator& gen, const Device& device) const {
  check_split(batch, block);
  if (over_ == ParallelOver::Batch) return data.get_batch(split, batch, block, gen, device, {rank(), ranks()});
  const Batch whole = data.get_batch(split, batch, block, gen, device);
  if (ranks() == 1) return whole;
  const std::vector<int64_t> positions = shard_of(block, rank(), ranks(), split_).positions();
  const auto width = static_cast<int64_t>(positions.size());
  auto columns = [&](const Tensor& ids) {
    const std::vector<int64_t> all = ids.to_int_vector();
    std::vector<int64_t> mine;
    for (int64_t row = 0; row < batch; ++row)
      for (int64_t p : positions) mine.push_back(all[row * block + p]);
    return from_ints(mine, {batch, width}, device);
  };
  return {columns(whole.x), columns(whole.y)};
}

int64_t DataParallel::first_sample(int64_t step, int64_t batch) const {
  if (over_ == ParallelOver::Batch) return step * batch + rank() * (batch / ranks());
  return (step * ranks() + rank()) * batch;
}

void DataParallel::average_gradients(const std::vector<Tensor*>& params) {
  if (ranks() == 1) return;
  std::vector<Tensor> grads;
  for (Tensor* p : params) {
    const Tensor g = p->grad();
    if (!g.defined()) continue;
    check(g.device().is_cpu() && g.is_contiguous(), "data parallel: gradients must be contiguous CPU tensors");
    grads.push_back(g);
  }
  // Cut the gradients, in parameter order, into buckets; send each as soon
  // as it is packed. A tensor may straddle two buckets.
  struct Bucket {
    std::vector<float> values;
    comm::Request sum;
  };
  std::vector<Bucket> buckets;
  std::vector<float> packing;
  auto send_bucket = [&] {
    buckets.push_back({std::move(packing), {}});
    buckets.back().sum = comm_.all_reduce(buckets.back().values, comm::ReduceOp::Sum);
    packing = {};
  };
  for (const Tensor& g : grads) {
    const float* at = g.data<float>();
    for (std::size_t left = static_cast<std::size_t>(g.numel()); left > 0;) {
      if (packing.empty()) packing.reserve(kBucketFloats);
      const std::size_t n = std::min(left, kBucketFloats - packing.size());
      packing.insert(packing.end(), at, at + n);
      at += n;
      left -= n;
      if (packing.size() == kBucketFloats) send_bucket();
    }
  }
  if (!packing.empty()) send_bucket();
  // Unpack in the same order, dividing the sums into means.
  const auto n_ranks = static_cast<float>(ranks());
  std::size_t bucket = 0, pos = 0;
  if (!buckets.empty()) buckets[0].sum.wait();
  for (const Tensor& g : grads) {
    float* at = g.data<float>();
    for (std::size_t left = static_cast<std::size_t>(g.numel()); left > 0;) {
      if (pos == buckets[bucket].values.size()) {
        buckets[++bucket].sum.wait();
        pos = 0;
      }
      const std::size_t n = std::min(left, buckets[bucket].values.size() - pos);
      for (std::size_t i = 0; i < n; ++i) at[i] = buckets[bucket].values[pos + i] / n_ranks;
      at += n;
      pos += n;
      left -= n;
    }
  }
}

double DataParallel::mean(double value) {
  double v[1] = {value};
  comm_.all_reduce(v, comm::ReduceOp::Sum).wait();
  return v[0] / ranks();
}

int DataParallel::agreed_stop_signal() {
  double s[1] = {static_cast<double>(stop_signal())};
  comm_.all_reduce(s, comm::ReduceOp::Max).wait();
  return static_cast<int>(s[0]);
}

bool DataParallel::rank0_decides(bool decision) {
  double d[1] = {rank() == 0 && decision ? 1.0 : 0.0};
  comm_.all_reduce(d, comm::ReduceOp::Max).wait();
  return d[0] != 0;
}

void DataParallel::check_in_step(const std::vector<Tensor*>& params, int64_t step) {
  if (ranks() == 1) return;
  // FNV-1a over the parameters' bytes; its two 32-bit halves are exact as
  // doubles. Equal on every rank iff max(h) == -max(-h) for both halves.
  uint64_t h = 14695981039346656037ull;
  for (const Tensor* p : params)
    for (float x : p->to_vector()) {
      uint32_t bits;
      std::memcpy(&bits, &x, sizeof bits);
      for (int byte = 0; byte < 4; ++byte) h = (h ^ ((bits >> (8 * byte)) & 0xffu)) * 1099511628211ull;
    }
  const double hi = static_cast<double>(h >> 32), lo = static_cast<double>(h & 0xffffffffu);
  double v[4] = {hi, lo, -hi, -lo};
  comm_.all_reduce(v, comm::ReduceOp::Max).wait();
  check(v[0] == -v[2] && v[1] == -v[3], "data parallel: the ranks' parameters differ at step ", step,
        " (they must stay identical); this is a bug, please report it with the command line");
}

}  // namespace attn
