// The results of `attnlab lesson grade` and the three ways they are
// written: a terminal table per chapter, Gradescope's results.json, and
// JUnit XML (what CI servers and GitHub Classroom read).
#pragma once
#include <string>
#include <vector>

namespace attn {

enum class Outcome { passed, failed, timed_out, out_of_memory, crashed, skipped };

// "passed", "failed", "timed out", "out of memory", "crashed", "skipped".
const char* outcome_name(Outcome o);

struct TestResult {
  std::string suite;     // basic | advanced | hidden (or a fixture's own label)
  std::string name;      // gtest's "Suite.Name"
  Outcome outcome = Outcome::failed;
  double points = 0;     // earned
  double max_points = 0; // 0 for a skipped test (it counts neither way)
  double seconds = 0;
  std::string message;   // what went wrong, in words a student can act on ("" when passed)
};

struct ChapterResult {
  std::string chapter;   // "01_softmax_attention"
  std::string state;     // graded | not started | not built
  std::vector<TestResult> tests;
  double points() const;
  double max_points() const;
  int count(Outcome o) const;
};

struct GradeReport {
  std::vector<ChapterResult> chapters;
  double seconds = 0;
  std::string note;      // one line on how it was graded (limits, what was run)
  double points() const;
  double max_points() const;
};

std::string report_table(const GradeReport& r);
std::string report_gradescope(const GradeReport& r);
std::string report_junit(const GradeReport& r);

// XML 1.0 text: & < > " ' escaped, control characters XML cannot carry replaced by '?'.
std::string xml_escape(const std::string& text);

}  // namespace attn
