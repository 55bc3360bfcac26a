// A fake lesson suite for the grader's tests (testcases/train/lesson_grade_test.cpp):
// stand-ins for a student's code that is right, wrong, endless, greedy or
// crashing, chosen by GRADE_FIXTURE_BEHAVIOUR:
//   pass        every test passes
//   one_broken  only Fixture.Fails fails
//   misbehave   each test does what its name says
// Real chapters stay untouched; the grader cannot tell this from one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::string behaviour() {
  const char* b = std::getenv("GRADE_FIXTURE_BEHAVIOUR");
  return b ? b : "pass";
}

bool misbehave() { return behaviour() == "misbehave"; }

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

}  // namespace

TEST(Fixture, Passes) { EXPECT_EQ(2 + 2, 4); }

TEST(Fixture, PassesToo) { EXPECT_TRUE(true); }

TEST(Fixture, Fails) {
  const double row_sum = behaviour() == "pass" ? 1.0 : 0.5;
  EXPECT_EQ(row_sum, 1.0) << "softmax row 0 sums to " << row_sum << ", expected 1: divide by the row's sum";
}

TEST(Fixture, Loops) {
  volatile bool forever = misbehave();
  while (forever) {
  }
}

TEST(Fixture, Allocates) {
  if (!misbehave()) return;
  // A sanitizer build runs without a memory limit (train/child_process.h).
  if (kAsan) GTEST_SKIP() << "no memory limit under AddressSanitizer";
  std::vector<std::vector<char>> hoard;
  for (;;) hoard.emplace_back(64 << 20, 'x');  // touched, so it is really used
}

TEST(Fixture, Segfaults) {
  volatile int* volatile nowhere = nullptr;  // volatile twice: the compiler keeps the load and the store
  if (misbehave()) *nowhere = 1;
}

TEST(Fixture, Aborts) {
  if (misbehave()) std::abort();
}

TEST(Fixture, ExitsEarly) {
  if (misbehave()) std::exit(0);
}

TEST(Fixture, Skips) { GTEST_SKIP() << "needs a GPU"; }

TEST(Fixture, DISABLED_NeverRuns) { FAIL(); }
