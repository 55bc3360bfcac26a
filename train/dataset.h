// The training data of a char-level language model: one long sequence of
// token ids, split into a train part and a held-out val part, and random
// windows cut from it as (input, target) batches.
//
// The only state batching uses is the Generator passed in: the data position
// of a run IS that generator's state, so a checkpoint that stores the state
// resumes on exactly the batches the run would have seen.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/random.h"
#include "core/tensor.h"

namespace attn {

enum class Split { Train, Val };

// x: int64 [B, T] token ids; y: the same windows shifted one token to the
// right, so y[b][t] is the token that follows x[b][0..t].
struct Batch {
  Tensor x, y;
};

// Which rows of a batch a process builds: part `index` of `count` equal
// parts (data parallel, data_parallel.h). Every part draws all of the
// batch's starts, so the generator moves on alike in every process.
struct BatchPart {
  int64_t index = 0, count = 1;
};

class TextDataset {
 public:
  // The first (1 - val_fraction) of the ids train, the rest is val. A split
  // by position rather than at random: val text the model never saw, not
  // sentences whose neighbours it trained on.
  // Ids are 4 bytes each (CharTokenizer::encode_corpus): the dataset is what
  // a run keeps of its corpus, and with 8-byte ids it was most of the memory.
  explicit TextDataset(std::vector<int32_t> ids, double val_fraction = 0.1);

  int64_t size(Split split) const;
  // The split's tokens in order (length evaluation reads the val text whole).
  std::vector<int64_t> tokens(Split split) const;
  // `batch` windows of `block` + 1 tokens at random starts inside `split`;
  // of them, the rows of `part` (batch / part.count rows).
  Batch get_batch(Split split, int64_t batch, int64_t block, Generator& gen,
                  Device device = Device::cpu(), BatchPart part = {}) const;

 private:
  // [begin, end) of the split's tokens within ids_.
  std::pair<int64_t, int64_t> range(Split split) const;
  std::vector<int32_t> ids_;
  int64_t train_end_ = 0;
};

}  // namespace attn
