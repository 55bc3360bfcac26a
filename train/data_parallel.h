// Data-parallel training: N processes (ranks), each with a whole copy of
// the model, share one global batch. Each rank trains on its rows, the
// gradients are averaged over the ranks, and every rank then takes the same
// optimizer step, so the copies stay identical. The result is one process
// training on the whole batch, up to the order of the gradient sums.
//
//   mpirun -np 2 attnlab train --data-parallel --batch 16 ...   (8 rows each)
//
// What keeps the ranks in step:
//   - every rank draws the global batch's starts with the same generator and
//     builds only its rows (BatchPart), so the data order is the one process's;
//   - dropout numbers a sample by its place in the global batch, so the masks
//     are the one process's too;
//   - anything one rank alone may see (a stop signal, the time budget, the run
//     folder's metrics, which only rank 0 reads and writes) is agreed before
//     it changes what the ranks do.
// Rank 0 alone writes files: the run folder is its.
#pragma once
#include <cstdint>
#include <vector>

#include "core/comm/communicator.h"
#include "core/tensor.h"
#include "train/dataset.h"

namespace attn {

class DataParallel {
 public:
  // Over the job's processes (comm::world(); one process when not started
  // with --data-parallel, and then every call below is the identity).
  explicit DataParallel(comm::Communicator& comm = comm::world()) : comm_(comm) {}

  int rank() const { return comm_.rank(); }
  int ranks() const { return comm_.size(); }
  bool writes_files() const { return rank() == 0; }
  // This rank's rows of a global batch of `batch` sequences; fails naming
  // both numbers when they do not divide.
  BatchPart part(int64_t batch) const;

  // Replaces each parameter's gradient with its mean over the ranks. The
  // gradients travel in buckets of about 4 MiB: a bucket is on its way while
  // the next is packed, and no single message grows with the model.
  void average_gradients(const std::vector<Tensor*>& params);
  // The mean over the ranks of a value each computed on its rows.
  double mean(double value);
  // A stop signal (stop_signals.h) that reached any rank, the same on all:
  // they stop at the same step, or one would wait for the others forever.
  int agreed_stop_signal();
  // What rank 0 decided (from the files or clock only it reads), on every rank.
  bool rank0_decides(bool decision);
  // Fails, naming the step, unless every rank holds bitwise the same
  // parameters: the promise above, checked where a checkpoint is written.
  void check_in_step(const std::vector<Tensor*>& params, int64_t step);

 private:
  comm::Communicator& comm_;
};

}  // namespace attn
