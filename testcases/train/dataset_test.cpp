// Tests for TextDataset: the train/val split and random batches of windows.
#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/dataset.h"
#include "train/tokenizer.h"
#include "testcases/error_of.h"

using namespace attn;

namespace {

// Ids equal to their position, so a token tells where it was read from.
std::vector<int32_t> positions(int64_t n) {
  std::vector<int32_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST(Dataset, SplitSizes) {
  EXPECT_EQ(TextDataset(positions(1000)).size(Split::Train), 900);
  EXPECT_EQ(TextDataset(positions(1000)).size(Split::Val), 100);
  EXPECT_EQ(TextDataset(positions(100), 0.25).size(Split::Val), 25);
  EXPECT_EQ(TextDataset(positions(10), 0.0).size(Split::Train), 10);
}

TEST(Dataset, BatchShapeAndType) {
  const TextDataset data(positions(1000));
  Generator gen(0);
  const Batch b = data.get_batch(Split::Train, 4, 8, gen, Device::cpu());
  EXPECT_EQ(b.x.shape(), (Shape{4, 8}));
  EXPECT_EQ(b.y.shape(), (Shape{4, 8}));
  EXPECT_EQ(b.x.dtype(), DType::Int64);
  EXPECT_EQ(b.y.dtype(), DType::Int64);
}

TEST(Dataset, YIsXShiftedByOne) {
  const TextDataset data(positions(1000));
  Generator gen(1);
  const int64_t B = 6, T = 16;
  const Batch b = data.get_batch(Split::Train, B, T, gen, Device::cpu());
  const std::vector<int64_t> x = b.x.to_int_vector(), y = b.y.to_int_vector();
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(y[r * T + t], x[r * T + t] + 1);                  // the next token
      if (t + 1 < T) {
        EXPECT_EQ(x[r * T + t + 1], y[r * T + t]);  // a contiguous window
      }
    }
  }
}

TEST(Dataset, WindowsStayInsideTheirSplit) {
  const TextDataset data(positions(500));  // train 0..449, val 450..499
  Generator gen(2);
  for (int i = 0; i < 200; ++i) {
    for (int64_t v : data.get_batch(Split::Train, 4, 10, gen).y.to_int_vector()) {
      EXPECT_LT(v, 450);
    }
    const Batch val = data.get_batch(Split::Val, 4, 10, gen);
    for (const Tensor& t : {val.x, val.y}) {
      for (int64_t v : t.to_int_vector()) {
        EXPECT_GE(v, 450) << "a val window read a train token";
        EXPECT_LT(v, 500);
      }
    }
  }
}

TEST(Dataset, EveryStartIsReachable) {
  // Val has 10 tokens; with block 3 the starts are 450..456 (7 of them).
  const TextDataset data(positions(100), 0.1);
  Generator gen(3);
  std::set<int64_t> starts;
  for (int i = 0; i < 200; ++i) starts.insert(data.get_batch(Split::Val, 1, 3, gen).x.to_int_vector()[0]);
  EXPECT_EQ(starts, (std::set<int64_t>{90, 91, 92, 93, 94, 95, 96}));
  // The smallest split that works: exactly block + 1 tokens, one window.
  const Batch b = data.get_batch(Split::Val, 2, 9, gen);
  EXPECT_EQ(b.x.to_int_vector()[0], 90);
  EXPECT_EQ(b.y.to_int_vector()[8], 99);
}

TEST(Dataset, SameGeneratorStateSameBatch) {
  const TextDataset data(positions(10000));
  Generator a(42);
  data.get_batch(Split::Train, 8, 32, a);  // move somewhere into the run
  // A checkpoint stores the state; a resumed run restores it.
  const auto saved = a.state();
  const Batch first = data.get_batch(Split::Train, 8, 32, a);
  Generator resumed(999);
  resumed.set_state(saved);
  const Batch again = data.get_batch(Split::Train, 8, 32, resumed);
  EXPECT_EQ(first.x.to_int_vector(), again.x.to_int_vector());
  EXPECT_EQ(first.y.to_int_vector(), again.y.to_int_vector());
  EXPECT_EQ(a.state(), resumed.state());
}

TEST(Dataset, DifferentStatesDiffer) {
  const TextDataset data(positions(10000));
  Generator a(1), b(2);
  EXPECT_NE(data.get_batch(Split::Train, 8, 32, a).x.to_int_vector(),
            data.get_batch(Split::Train, 8, 32, b).x.to_int_vector());
  // Consecutive batches from one generator differ too.
  EXPECT_NE(data.get_batch(Split::Train, 8, 32, a).x.to_int_vector(),
            data.get_batch(Split::Train, 8, 32, a).x.to_int_vector());
}

TEST(Dataset, BlockTooLargeForSplit) {
  const TextDataset data(positions(2000));  // val has 200
  Generator gen(0);
  EXPECT_EQ(error_of([&] { data.get_batch(Split::Val, 4, 512, gen); }),
            "data: block size 512 needs at least 513 tokens in the val split, which has 200; "
            "use a smaller --block or a larger corpus");
  EXPECT_NE(error_of([&] { data.get_batch(Split::Train, 4, 1800, gen); })
                .find("needs at least 1801 tokens in the train split, which has 1800"),
            std::string::npos);
  // block == split size: no room for the last target.
  EXPECT_NE(error_of([&] { data.get_batch(Split::Val, 1, 200, gen); }).find("needs at least 201"),
            std::string::npos);
}

TEST(Dataset, BadArguments) {
  const TextDataset data(positions(100));
  Generator gen(0);
  EXPECT_EQ(error_of([&] { data.get_batch(Split::Train, 0, 4, gen); }),
            "data: batch size 0 must be at least 1");
  EXPECT_EQ(error_of([&] { data.get_batch(Split::Train, 2, 0, gen); }),
            "data: block size 0 must be at least 1");
  EXPECT_EQ(error_of([] { TextDataset({}, 0.1); }), "data: the dataset has no tokens");
  EXPECT_EQ(error_of([] { TextDataset({1, 2, 3}, 1.0); }), "data: val_fraction 1 must be in [0, 1)");
}

TEST(Dataset, WithTokenizerGivesRealText) {
  std::string text;
  for (int i = 0; i < 50; ++i) text += "The whale — 🐋 — swam on. ";
  const CharTokenizer tok = CharTokenizer::from_text(text, "t");
  const TextDataset data(tok.encode_corpus(text));
  Generator gen(7);
  const Batch b = data.get_batch(Split::Train, 3, 12, gen);
  const std::vector<int64_t> x = b.x.to_int_vector();
  for (int r = 0; r < 3; ++r) {
    const std::string window = tok.decode(std::vector<int64_t>(x.begin() + r * 12, x.begin() + (r + 1) * 12));
    EXPECT_NE(text.find(window), std::string::npos) << window;
  }
}

// Data parallel: the parts of a batch, laid one after another, are the
// whole batch, and every part leaves the generator where the whole would.
TEST(Dataset, BatchPartsTogetherAreTheWholeBatch) {
  const TextDataset data(positions(10000));
  for (int64_t parts : {1, 2, 4}) {
    Generator whole_gen(5);
    const Batch whole = data.get_batch(Split::Train, 8, 16, whole_gen);
    std::vector<int64_t> x, y;
    for (int64_t i = 0; i < parts; ++i) {
      Generator gen(5);
      const Batch b = data.get_batch(Split::Train, 8, 16, gen, Device::cpu(), {i, parts});
      EXPECT_EQ(b.x.shape(), (Shape{8 / parts, 16}));
      EXPECT_EQ(gen.state(), whole_gen.state()) << "part " << i << " of " << parts;
      const std::vector<int64_t> bx = b.x.to_int_vector(), by = b.y.to_int_vector();
      x.insert(x.end(), bx.begin(), bx.end());
      y.insert(y.end(), by.begin(), by.end());
    }
    EXPECT_EQ(x, whole.x.to_int_vector()) << parts << " parts";
    EXPECT_EQ(y, whole.y.to_int_vector()) << parts << " parts";
  }
  Generator gen(0);
  EXPECT_EQ(error_of([&] { data.get_batch(Split::Train, 6, 4, gen, Device::cpu(), {0, 4}); }),
            "data: part 0 of 4 of a batch of 6: expected an index below a count that divides it");
  EXPECT_EQ(error_of([&] { data.get_batch(Split::Train, 8, 4, gen, Device::cpu(), {4, 4}); }),
            "data: part 4 of 4 of a batch of 8: expected an index below a count that divides it");
}
