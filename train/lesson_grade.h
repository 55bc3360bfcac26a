// `attnlab lesson grade [NN...]`: grades a student's build, test by test.
//
// Every test of a chapter's suites runs alone under a time and a memory
// limit (train/grade_suite.h). Points come from the chapter's grading.json
// (train/grade_weights.h). Before anything runs, the grader checks that the
// student's library is not built from the reference solution. `--hidden
// DIR` adds a teacher's own tests, compiled against the student's library
// and shown after the due date.
#pragma once
#include <string>
#include <vector>

#include "train/grade_suite.h"

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

// Throws when the student's library of `chapter` is built from the
// reference solution: a stub file with the solution's text (whitespace
// aside), or, in the build's compile_commands.json, a solution/ source
// compiled into lessonNN_student.
void check_not_the_solution(const std::string& chapter, const std::string& source_dir, const std::string& build_dir);

}  // namespace attn
