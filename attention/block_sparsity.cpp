// Compiling a pattern to a block list: see block_sparsity.h.
#include "attention/block_sparsity.h"

#include <algorithm>

#include "core/error.h"

namespace attn {

int64_t causal_count(int64_t p, int64_t j0, int64_t j1) {
  return std::max<int64_t>(0, std::min(j1, p + 1) - j0);
}

BlockSparsity::BlockSparsity(int64_t tq, int64_t tk, int64_t offset, int64_t block,
                             const PairRule& rule)
    : tq_(tq), tk_(tk), offset_(offset), block_(block) {
  const char* op = "block_sparsity";
  check(block >= 1 && block <= 64, op, ": block ", block, " outside 1..64 (one word of bits per row)");
  check(tq >= 0 && tk >= 0 && offset >= 0, op, ": ", tq, " queries at offset ", offset, " over ",
        tk, " keys");
  query_blocks_ = (tq + block - 1) / block;
  key_blocks_ = (tk + block - 1) / block;
  row_begin_.push_back(0);
  for (int64_t qb = 0; qb < query_blocks_; ++qb) {
    const int64_t i0 = qb * block, i1 = std::min(i0 + block, tq);
    const int64_t last = offset + i1 - 1;  // the block's last position: no key after it
    for (int64_t kb = 0; kb < key_blocks_ && kb * block <= last; ++kb) {
      const int64_t j0 = kb * block, j1 = std::min(j0 + block, tk);
      int64_t seen = 0;
      for (int64_t i = i0; i < i1; ++i) seen += rule.count(offset + i, j0, j1);
      if (seen == 0) continue;  // skipped: the whole point
      row_key_.push_back(kb);
      if (seen == (i1 - i0) * (j1 - j0)) {
        row_mask_.push_back(-1);  // every pair: no mask to apply
        continue;
      }
      row_mask_.push_back(static_cast<int64_t>(masks_.size()) / block);
      for (int64_t i = i0; i < i0 + block; ++i) {  // rows past tq stay 0
        uint64_t word = 0;
        for (int64_t j = j0; i < i1 && j < j1; ++j)
          if (rule.allows(offset + i, j)) word |= uint64_t{1} << (j - j0);
        masks_.push_back(word);
      }
    }
    row_begin_.push_back(static_cast<int64_t>(row_key_.size()));
  }
  // The same entries by key block, query blocks ascending (a counting sort).
  col_begin_.assign(key_blocks_ + 1, 0);
  for (int64_t kb : row_key_) ++col_begin_[kb + 1];
  for (int64_t kb = 0; kb < key_blocks_; ++kb) col_begin_[kb + 1] += col_begin_[kb];
  col_query_.resize(row_key_.size());
  col_mask_.resize(row_key_.size());
  std::vector<int64_t> next(col_begin_.begin(), col_begin_.end() - 1);
  for (int64_t qb = 0; qb < query_blocks_; ++qb) {
    for (int64_t e = row_begin_[qb]; e < row_begin_[qb + 1]; ++e) {
      const int64_t at = next[row_key_[e]]++;
      col_query_[at] = qb;
      col_mask_[at] = row_mask_[e];
    }
  }
}

BlockList BlockSparsity::list() const {
  BlockList l;
  l.block = block_, l.query_blocks = query_blocks_, l.key_blocks = key_blocks_;
  l.row_begin = row_begin_.data(), l.row_key = row_key_.data(), l.row_mask = row_mask_.data();
  l.col_begin = col_begin_.data(), l.col_query = col_query_.data(), l.col_mask = col_mask_.data();
  l.masks = masks_.data();
  return l;
}

Tensor BlockSparsity::mask() const {
  std::vector<bool> keep(static_cast<size_t>(tq_ * tk_), false);
  for (int64_t qb = 0; qb < query_blocks_; ++qb) {
    for (int64_t e = row_begin_[qb]; e < row_begin_[qb + 1]; ++e) {
      const int64_t j0 = row_key_[e] * block_, m = row_mask_[e];
      for (int64_t i = qb * block_; i < std::min(tq_, (qb + 1) * block_); ++i)
        for (int64_t j = j0; j < std::min(tk_, j0 + block_); ++j)
          keep[static_cast<size_t>(i * tk_ + j)] =
              m < 0 || (masks_[static_cast<size_t>(m * block_ + i - qb * block_)] >> (j - j0) & 1);
    }
  }
  return from_bools(keep, {tq_, tk_});
}

std::shared_ptr<const BlockSparsity> BlockSparsityCache::get(int64_t tq, int64_t tk, int64_t offset) {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (size_t n = 0; n < kept_.size(); ++n) {
    const auto& s = kept_[n];
    if (s->tq() == tq && s->tk() == tk && s->offset() == offset) {
      auto found = s;
      kept_.erase(kept_.begin() + static_cast<std::ptrdiff_t>(n));
      kept_.push_back(found);
      return found;
    }
  }
  auto made = std::make_shared<const BlockSparsity>(tq, tk, offset, block_, rule_);
  if (kept_.size() == kKept) kept_.erase(kept_.begin());
  kept_.push_back(made);
  return made;
}

}  // namespace attn
