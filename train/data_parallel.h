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
//
// With the `ring` attention variant the ranks split the tokens of every
// sequence instead of the rows of the batch (context parallelism,
// attention/ring.h): every rank takes all the rows, each its share of the
// positions, and ring attention lets its queries meet the other ranks'
// keys. Everything else above holds as it is.
#pragma once
#include <cstdint>
#include <vector>

#include "attention/ring.h"
#include "core/comm/communicator.h"
#include "core/tensor.h"
#include "train/dataset.h"

namespace attn {

// What the ranks split: the rows of each batch, or the tokens of each sequence.
enum class ParallelOver { Batch, Sequence };

class DataParallel {
 public:
  // Over the job's processes (comm::world(); one process when not started
  // with --data-parallel, and then every call below is the identity).
  explicit DataParallel(comm::Communicator& comm = comm::world(), ParallelOver over = ParallelOver::Batch,
                        RingSplit split = RingSplit::Zigzag)
      : comm_(comm), over_(over), split_(split) {}

  int rank() const { return comm_.rank(); }
  int ranks() const { return comm_.size(); }
  bool writes_files() const { return rank() == 0; }
  // Fails, naming the numbers, unless the batch (or each sequence) splits
  // evenly over the ranks.
  void check_split(int64_t batch, int64_t block) const;
  // This rank's share of the next batch that `gen` draws (every rank draws
  // the same batch): its rows, or its positions of every row.
  Batch local_batch(const TextDataset& data, Split split, int64_t batch, int64_t block, Generator& gen,
                    const Device& device) const;
  // The number dropout gives this rank's first sample at `step`: its place
  // in the global batch, so that the masks are one process's (rows split);
  // or a number of its own (tokens split: no two ranks share a mask).
  int64_t first_sample(int64_t step, int64_t batch) const;

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
  ParallelOver over_;
  RingSplit split_;
};

}  // namespace attn
