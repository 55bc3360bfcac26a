// Chapter 17, basic suite: the groups, the per-head mask by hand, the
// README's worked example, the simplest equivalences, the windowed cache on
// a short sequence, and the classic mistakes. Expected numbers are worked
// out in the README or in a comment beside them.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "lesson_test.h"
#include "multiscale.h"

using namespace attn;
using namespace lesson_test;
using lesson17::ScaleGroup;

namespace {

// The 0/1 pattern of one head with window w (0 = full causal).
std::vector<double> band(int64_t tq, int64_t tk, int64_t w, int64_t offset) {
  std::vector<double> m;
  for (int64_t i = 0; i < tq; ++i)
    for (int64_t j = 0; j < tk; ++j) {
      const int64_t p = offset + i;
      m.push_back(j <= p && (w == 0 || j > p - w) ? 1 : 0);
    }
  return m;
}

// The README's worked example: T = 4, d = 1, the same q, k, v in both heads.
struct Example {
  Tensor q = from_vector({1, 1, 2, 0, /**/ 1, 1, 2, 0}, {1, 2, 4, 1});
  Tensor k = from_vector({0, 1, 1, 2, /**/ 0, 1, 1, 2}, {1, 2, 4, 1});
  Tensor v = from_vector({1, 0, 0, 1, 2, 2, 4, 0, /**/ 1, 0, 0, 1, 2, 2, 4, 0}, {1, 2, 4, 2});
};

std::string group_str(const ScaleGroup& g) {
  return "{first_head " + std::to_string(g.first_head) + ", heads " + std::to_string(g.heads) +
         ", window " + std::to_string(g.window) + "}";
}

}  // namespace

// ------------------------------------------------------------------ groups

TEST(ScaleGroups, SixHeadsAmongThreeWindowsInOrder) {
  const std::vector<ScaleGroup> g = lesson17::scale_groups(6, {8, 32, 0});
  ASSERT_EQ(g.size(), 3u) << "one group per window";
  const int64_t want[3][3] = {{0, 2, 8}, {2, 2, 32}, {4, 2, 0}};
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(g[i].first_head == want[i][0] && g[i].heads == want[i][1] && g[i].window == want[i][2])
        << "group " << i << ": expected {first_head " << want[i][0] << ", heads " << want[i][1]
        << ", window " << want[i][2] << "}, got " << group_str(g[i]);
}

TEST(ScaleGroups, RejectsWindowsThatDoNotDivideTheHeads) {
  EXPECT_TRUE(rejects("scale_groups(4, {8, 32, 0})", [] { lesson17::scale_groups(4, {8, 32, 0}); },
                      "3 windows cannot split 4 heads evenly"));
}

TEST(ScaleGroups, RejectsANegativeWindowAndAnEmptyList) {
  EXPECT_TRUE(rejects("scale_groups(4, {8, -1})", [] { lesson17::scale_groups(4, {8, -1}); },
                      "a window is a number of keys, 0 or more"));
  EXPECT_TRUE(rejects("scale_groups(4, {})", [] { lesson17::scale_groups(4, {}); },
                      "with no window there is nothing to split the heads among"));
}

// ------------------------------------------------------------------ the mask

TEST(MultiscaleMask, ThreeHeadsByHand) {
  // Heads 0, 1, 2 with windows 1, 2, 0 over T = 4.
  const Tensor m = lesson17::multiscale_mask(lesson17::scale_groups(3, {1, 2, 0}), 4, 4);
  ASSERT_EQ(m.dtype(), DType::Bool) << "multiscale_mask must return a bool tensor (true = may see)";
  EXPECT_TRUE(close("multiscale_mask(windows 1, 2, 0; T = 4)", m,
                    {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1,  // W = 1: the diagonal
                     1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1,  // W = 2: itself and one back
                     1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1},  // W = 0: causal
                    {3, 4, 4}));
}

TEST(MultiscaleMask, OffsetPlacesTheQueriesAfterTheCache) {
  // Two queries at positions 4 and 5 over 6 keys; heads 0-1 window 3, heads 2-3 full.
  const Tensor m = lesson17::multiscale_mask(lesson17::scale_groups(4, {3, 0}), 2, 6, 4);
  std::vector<double> want;
  for (int64_t w : {3, 3, 0, 0}) {
    const std::vector<double> b = band(2, 6, w, 4);
    want.insert(want.end(), b.begin(), b.end());
  }
  EXPECT_TRUE(close("multiscale_mask(windows 3, 0; Tq 2, Tk 6, offset 4)", m, want, {4, 2, 6}));
}

// ------------------------------------------------------------------ attention

TEST(WorkedExample, WindowTwoAndFullHeadsMatchTheReadme) {
  const Example e;
  Tensor weights;
  const Tensor out = lesson17::multiscale_attention_masked(e.q, e.k, e.v,
                                                           lesson17::scale_groups(2, {2, 0}), 0, &weights);
  // Head 0 (W = 2) and head 1 (full): they agree on queries 0, 1 and part on 2, 3.
  EXPECT_TRUE(close("out", out,
                    {1, 0, 0.268941, 0.731059, 1, 1.5, 3, 1,  //
                     1, 0, 0.268941, 0.731059, 1, 1.404933, 1.75, 0.75},
                    {1, 2, 4, 2}));
  EXPECT_TRUE(close("weights", weights,
                    {1, 0, 0, 0, 0.268941, 0.731059, 0, 0, 0, 0.5, 0.5, 0, 0, 0, 0.5, 0.5,  //
                     1, 0, 0, 0, 0.268941, 0.731059, 0, 0, 0.063379, 0.468311, 0.468311, 0,
                     0.25, 0.25, 0.25, 0.25},
                    {1, 2, 4, 4}));
}

TEST(Equivalence, EveryHeadFullIsCausalAttention) {
  const Tensor q = random_tensor({2, 4, 6, 3}, 1), k = random_tensor({2, 4, 6, 3}, 2),
               v = random_tensor({2, 4, 6, 3}, 3);
  const Tensor scores = mul(matmul(q, transpose(k, -2, -1)), 1.0f / std::sqrt(3.0f));
  const Tensor future = eq(tril(ones({6, 6})), 0.0);
  const Tensor causal = matmul(softmax(masked_fill(scores, future, -1e9f), -1), v);
  EXPECT_TRUE(close("windows 0, 0 (every head full)",
                    lesson17::multiscale_attention_masked(q, k, v, lesson17::scale_groups(4, {0, 0})),
                    causal));
}

// ------------------------------------------------------------------ the cache

TEST(WindowedCache, KeepsTheLastWKeysPerGroup) {
  // Windows 3 and 0 over 2 heads, one token at a time: after 7 tokens the
  // windowed head keeps positions 4, 5, 6; the full head keeps all 7.
  lesson17::WindowedCache cache(lesson17::scale_groups(2, {3, 0}));
  for (int64_t t = 0; t < 7; ++t) {
    const Tensor k = full({1, 2, 1, 2}, static_cast<float>(t)), v = full({1, 2, 1, 2}, -static_cast<float>(t));
    cache.append(k, v);
  }
  ASSERT_EQ(cache.length(), 7);
  EXPECT_TRUE(close("keys of the W = 3 group", cache.keys(0), {4, 4, 5, 5, 6, 6}, {1, 1, 3, 2}));
  EXPECT_TRUE(close("values of the W = 0 group", cache.values(1),
                    {0, 0, -1, -1, -2, -2, -3, -3, -4, -4, -5, -5, -6, -6}, {1, 1, 7, 2}));
}

// ------------------------------------------------------------------ mistakes

TEST(Mistakes, HeadsAssignedToTheWrongScale) {
  // Four heads, windows {1, 0}: heads 0 and 1 see only themselves, heads 2
  // and 3 everything. Dealing the windows out in turn (head h gets
  // windows[h % 2]) gives head 1 the full window instead.
  const Tensor m = lesson17::multiscale_mask(lesson17::scale_groups(4, {1, 0}), 3, 3);
  std::vector<double> want;
  for (int64_t w : {1, 1, 0, 0}) {
    const std::vector<double> b = band(3, 3, w, 0);
    want.insert(want.end(), b.begin(), b.end());
  }
  EXPECT_TRUE(close("multiscale_mask(4 heads, windows 1, 0)", m, want, {4, 3, 3}))
      << "the heads split into blocks in the order of the list: heads 0..H/n-1 take the first "
         "window, the next H/n heads the second, ... (not windows[h % n])";
}

TEST(Mistakes, WindowOneTokenTooWide) {
  // Window 2: query 3 sees keys 2 and 3, never key 1 (= p - W).
  const Tensor m = lesson17::multiscale_mask(lesson17::scale_groups(1, {2}), 4, 4);
  EXPECT_TRUE(close("multiscale_mask(window 2)", m, band(4, 4, 2, 0), {1, 4, 4}))
      << "W counts the query's own key: keep j > p - W, not j >= p - W";
}

TEST(Mistakes, CacheDropsKeysAWindowStillNeeds) {
  // Appending two tokens at a time: the first new query still needs the
  // W - 1 old keys before it. Compare with attention over the whole sequence.
  const Tensor q = random_tensor({1, 2, 8, 4}, 11), k = random_tensor({1, 2, 8, 4}, 12),
               v = random_tensor({1, 2, 8, 4}, 13);
  const auto groups = lesson17::scale_groups(2, {3, 0});
  const Tensor whole = lesson17::multiscale_attention_masked(q, k, v, groups);
  lesson17::WindowedCache cache(groups);
  for (int64_t s = 0; s < 8; s += 2) {
    cache.append(narrow(k, 2, s, 2), narrow(v, 2, s, 2));
    const Tensor step = lesson17::attend_cached(narrow(q, 2, s, 2), cache);
    ASSERT_TRUE(close("tokens " + std::to_string(s) + ", " + std::to_string(s + 1) +
                          " through the cache vs the whole sequence",
                      step, narrow(whole, 2, s, 2)))
        << "keep the W - 1 newest old keys before adding the new ones: the first new token "
           "reaches back W - 1 keys";
  }
}

TEST(Mistakes, CacheKeepsMoreThanTheWindowNeeds) {
  // After 10 single-token appends, windows 4 and 0 over 2 heads of size 2:
  // 4 + 10 kept tokens x 2 (K and V) x 2 floats x 4 bytes = 224 bytes.
  lesson17::WindowedCache cache(lesson17::scale_groups(2, {4, 0}));
  for (int64_t t = 0; t < 10; ++t) cache.append(random_tensor({1, 2, 1, 2}, 20 + t), random_tensor({1, 2, 1, 2}, 40 + t));
  EXPECT_EQ(cache.bytes(), 224u)
      << "a window of W needs its W newest keys (itself included) once a token is appended; "
         "keeping more makes the cache grow with the sequence";
}

TEST(Mistakes, CacheKeepsViewsOfTheCallersTensors) {
  // A view (narrow) of the appended k shares its storage: the cache would
  // keep the caller's whole [B, H, T, d] tensor alive, every head of it.
  lesson17::WindowedCache cache(lesson17::scale_groups(4, {2, 0}));
  const Tensor k = random_tensor({1, 4, 3, 2}, 60), v = random_tensor({1, 4, 3, 2}, 61);
  cache.append(k, v);
  const float* kept = cache.keys(1).data<float>();
  const float* begin = k.data<float>();
  EXPECT_FALSE(kept >= begin && kept < begin + k.numel())
      << "the cache must own copies of its heads (.clone() after narrow: a narrow that happens to be contiguous is still a view), not views into k";
}
