// Grading one gtest program test by test: every test alone in its own
// process (`--gtest_filter=Suite.Name`) under the limits of
// train/child_process.h, judged from its exit and gtest's JSON report, so
// that a test that loops, allocates without bound or crashes costs its own
// points and no other test's.
#pragma once
#include <string>
#include <vector>

#include "train/child_process.h"
#include "train/grade_report.h"
#include "train/grade_weights.h"

namespace attn {

// The tests a gtest program lists, "Suite.Name" (DISABLED_ ones left out).
std::vector<std::string> list_gtest_tests(const std::string& program, const ChildLimits& limits);

// Grades `program` test by test; `suite` (basic, advanced, hidden) picks the
// points in `weights`. `list_from` is the program whose --gtest_list_tests
// names the tests (the solution's build of the same suite, so that the set
// of tests, and the maximum score, never depend on the student's code);
// "" = the program itself.
std::vector<TestResult> grade_program(const std::string& program, const std::string& suite,
                                      const GradingWeights& weights, const ChildLimits& limits,
                                      const std::string& list_from = "");

// Marks a chapter "not started" when no test passed and every failure is the
// stub's NotImplemented message; returns whether it did.
bool mark_not_started(ChapterResult& chapter);

// Small text helpers the grader's files share.
std::string read_file(const std::string& path);  // the whole file ("" if unreadable)
std::string last_chars(const std::string& text, std::size_t n);

}  // namespace attn
