// `attnlab lesson grade [NN...]`: grades a student's build, test by test.
//
// Every test of a chapter's suites runs alone in its own process
// (`--gtest_filter=Suite.Name`) under a time and a memory limit
// (train/child_process.h), so a test that loops, allocates without bound or
// crashes costs its own points and no other test's. Points come from the
// chapter's grading.json (train/grade_weights.h). Before anything runs, the
// grader checks that the student's library is not built from the reference
// solution. `--hidden DIR` adds a teacher's own tests, compiled against the
// student's library and shown after the due date.
#pragma once
#include <string>
#include <vector>

#include "train/child_process.h"
#include "train/grade_report.h"
#include "train/grade_weights.h"

namespace attn {

struct GradeOptions {
  std::vector<std::string> chapters;  // as given ("04", "gqa"); empty = every chapter
  double timeout_s = 60;              // per test
  int64_t memory_mb = 4096;           // per test; 0 = no limit
  std::string format = "table";       // table | gradescope | junit
  std::string output;                 // file to write ("" = standard output)
  std::string hidden;                 // folder of hidden tests: DIR/NN_name/*.cpp
  bool solution = false;              // teacher's check: grade the reference solution instead
};

// Checks every option (before anything runs); an error names the option,
// the value and what was expected.
void check_grade_options(const GradeOptions& o);

// Grades and writes the report; returns the exit status (0 once written,
// whatever the score).
int lesson_grade(const GradeOptions& o);

// The pieces, for tests and for other front ends.

// Grades one gtest program test by test. `list_from` is the program whose
// --gtest_list_tests names the tests (the solution's build of the same
// suite, so that the set of tests never depends on the student's code);
// "" = the program itself.
std::vector<TestResult> grade_program(const std::string& program, const std::string& suite,
                                      const GradingWeights& weights, const ChildLimits& limits,
                                      const std::string& list_from = "");

// The tests a gtest program lists, "Suite.Name" (DISABLED_ ones left out).
std::vector<std::string> list_gtest_tests(const std::string& program, const ChildLimits& limits);

// Marks a chapter "not started" when no test passed and every failure is the
// stub's NotImplemented message; returns whether it did.
bool mark_not_started(ChapterResult& chapter);

// Throws when the student's library of `chapter` is built from the
// reference solution: a stub file with the solution's text (whitespace
// aside), or, in the build's compile_commands.json, a solution/ source
// compiled into lessonNN_student.
void check_not_the_solution(const std::string& chapter, const std::string& source_dir, const std::string& build_dir);

}  // namespace attn
