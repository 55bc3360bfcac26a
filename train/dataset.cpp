// Train/val split and random batches of token windows (see dataset.h).
#include "train/dataset.h"

#include <cmath>

#include "core/error.h"

namespace attn {

namespace {
const char* split_name(Split split) { return split == Split::Train ? "train" : "val"; }
}  // namespace

TextDataset::TextDataset(std::vector<int32_t> ids, double val_fraction) : ids_(std::move(ids)) {
  check(!ids_.empty(), "data: the dataset has no tokens");
  check(val_fraction >= 0 && val_fraction < 1, "data: val_fraction ", val_fraction,
        " must be in [0, 1)");
  const auto n = static_cast<int64_t>(ids_.size());
  train_end_ = n - static_cast<int64_t>(std::llround(static_cast<double>(n) * val_fraction));
}

std::pair<int64_t, int64_t> TextDataset::range(Split split) const {
  if (split == Split::Train) return {0, train_end_};
  return {train_end_, static_cast<int64_t>(ids_.size())};
}

int64_t TextDataset::size(Split split) const {
  const auto [begin, end] = range(split);
  return end - begin;
}

std::vector<int64_t> TextDataset::tokens(Split split) const {
  const auto [begin, end] = range(split);
  return {ids_.begin() + begin, ids_.begin() + end};
}

Batch TextDataset::get_batch(Split split, int64_t batch, int64_t block, Generator& gen,
                             Device device, BatchPart part) const {
  check(batch >= 1, "data: batch size ", batch, " must be at least 1");
  check(part.count >= 1 && batch % part.count == 0 && part.index >= 0 && part.index < part.count, "data: part ",
        part.index, " of ", part.count, " of a batch of ", batch, ": expected an index below a count that divides it");
  check(block >= 1, "data: block size ", block, " must be at least 1");
  const auto [begin, end] = range(split);
  const int64_t n = end - begin;
  // A window needs block inputs plus one more token for the last target.
  check(n >= block + 1, "data: block size ", block, " needs at least ", block + 1,
        " tokens in the ", split_name(split), " split, which has ", n,
        "; use a smaller --block or a larger corpus");

  const int64_t rows = batch / part.count, first = part.index * rows;
  std::vector<int64_t> x(static_cast<std::size_t>(rows * block));
  std::vector<int64_t> y(x.size());
  for (int64_t b = 0; b < batch; ++b) {
    // Starts in [0, n - block): the target of the last input, start + block,
    // is still inside the split, so val windows never read train tokens.
    const int64_t start = begin + static_cast<int64_t>(gen.below(static_cast<uint64_t>(n - block)));
    if (b < first || b >= first + rows) continue;
    for (int64_t t = 0; t < block; ++t) {
      x[(b - first) * block + t] = ids_[start + t];
      y[(b - first) * block + t] = ids_[start + t + 1];
    }
  }
  return {from_ints(x, {rows, block}, device), from_ints(y, {rows, block}, device)};
}

}  // namespace attn
