#include "train/grade_report.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace attn {

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::passed: return "passed";
    case Outcome::failed: return "failed";
    case Outcome::timed_out: return "timed out";
    case Outcome::out_of_memory: return "out of memory";
    case Outcome::crashed: return "crashed";
    case Outcome::skipped: return "skipped";
  }
  return "?";
}

double ChapterResult::points() const {
  double s = 0;
  for (const TestResult& t : tests) s += t.points;
  return s;
}

double ChapterResult::max_points() const {
  double s = 0;
  for (const TestResult& t : tests) s += t.max_points;
  return s;
}

int ChapterResult::count(Outcome o) const {
  int n = 0;
  for (const TestResult& t : tests) n += t.outcome == o ? 1 : 0;
  return n;
}

double GradeReport::points() const {
  double s = 0;
  for (const ChapterResult& c : chapters) s += c.points();
  return s;
}

double GradeReport::max_points() const {
  double s = 0;
  for (const ChapterResult& c : chapters) s += c.max_points();
  return s;
}

namespace {

// 40, 1.5, 1.74: points as a person writes them.
std::string points_text(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", p);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

std::string first_line(const std::string& text) {
  const std::size_t nl = text.find('\n');
  return nl == std::string::npos ? text : text.substr(0, nl);
}

bool is_file_line(const std::string& line) {  // gtest's "path/to/test.cpp:103"
  const std::size_t colon = line.rfind(':');
  return colon != std::string::npos && colon + 1 < line.size() &&
         line.find_first_not_of("0123456789", colon + 1) == std::string::npos;
}

// The line of a message that says what went wrong, from its first failure:
// the suite's own words where it added some (the last line, when it is not
// gtest's "Expected: true" or "x evaluates to y"), else what a check
// returned ("  Actual: false (first at [0,1]: expected 0.27, got 0.12)"),
// else the first line that is not gtest's "file:line". For a test that did
// not finish (timed out, crashed), the grader's own first line.
std::string headline(const TestResult& t) {
  const std::string& message = t.message;
  if (t.outcome != Outcome::failed) return first_line(message);
  const std::string first = message.substr(0, message.find("\n\n"));
  std::vector<std::string> lines;
  std::istringstream in(first);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && !is_file_line(line)) lines.push_back(line);
  if (lines.empty()) return first_line(message);
  auto starts = [](const std::string& line, const char* with) { return line.rfind(with, 0) == 0; };
  const std::string& last = lines.back();
  const bool gtest_own = starts(last, "Expected") || starts(last, "  Actual") || starts(last, "Value of") ||
                         starts(last, "  Which is") || starts(last, "    Which is") ||
                         last.find(" evaluates to ") != std::string::npos;
  if (lines.size() > 1 && !gtest_own) return last;
  for (const std::string& line : lines)
    if (starts(line, "  Actual: false (") && line.back() == ')') return line.substr(17, line.size() - 18);
  return lines.front();
}

std::string chapter_number(const std::string& chapter) { return chapter.substr(0, 2); }

}  // namespace

std::string report_table(const GradeReport& r) {
  std::string out = str(r.note, "\n\n");
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %15s %6s %6s %9s %7s %7s %7s  %s\n", "chapter", "points", "passed", "failed",
                "timed out", "crashed", "memory", "skipped", "state");
  out += line;
  for (const ChapterResult& c : r.chapters) {
    const std::string pts = points_text(c.points()) + " / " + points_text(c.max_points());
    std::snprintf(line, sizeof line, "%-24s %15s %6d %6d %9d %7d %7d %7d  %s\n", c.chapter.c_str(), pts.c_str(),
                  c.count(Outcome::passed), c.count(Outcome::failed), c.count(Outcome::timed_out),
                  c.count(Outcome::crashed), c.count(Outcome::out_of_memory), c.count(Outcome::skipped),
                  c.state.c_str());
    out += line;
  }
  const std::string total = points_text(r.points()) + " / " + points_text(r.max_points());
  std::snprintf(line, sizeof line, "%-24s %15s\n", "total", total.c_str());
  out += line;
  // What lost points, one line each (a stub chapter is one line: "not started").
  bool header = false;
  for (const ChapterResult& c : r.chapters) {
    if (c.state != "graded") continue;
    for (const TestResult& t : c.tests) {
      if (t.outcome == Outcome::passed || t.outcome == Outcome::skipped) continue;
      if (!header) out += "\ntests that lost points:\n";
      header = true;
      out += str("  ", chapter_number(c.chapter), " ", t.suite, " ", t.name, " (", points_text(t.max_points),
                 "): ", outcome_name(t.outcome), ": ", headline(t), "\n");
    }
  }
  return out;
}

std::string report_gradescope(const GradeReport& r) {
  nlohmann::json tests = nlohmann::json::array();
  std::string summary = r.note + "\n";
  double score = 0;
  for (const ChapterResult& c : r.chapters) {
    summary += str(c.chapter, ": ", points_text(c.points()), " / ", points_text(c.max_points()), " (", c.state, ")\n");
    int number = 0;
    for (const TestResult& t : c.tests) {
      std::string output = t.outcome == Outcome::passed ? "passed" : str(outcome_name(t.outcome), ": ", t.message);
      nlohmann::json test = {{"name", str(c.chapter, " / ", t.suite, " / ", t.name)},
                             {"number", str(chapter_number(c.chapter), ".", ++number)},
                             {"score", t.points},
                             {"max_score", t.max_points},
                             {"output", output},
                             {"tags", {c.chapter, t.suite}},
                             {"visibility", t.suite == "hidden" ? "after_due_date" : "visible"}};
      // A skipped test (0 of 0 points) is neither passed nor failed.
      if (t.outcome != Outcome::skipped) test["status"] = t.outcome == Outcome::passed ? "passed" : "failed";
      tests.push_back(test);
      score += t.points;
    }
  }
  const nlohmann::json results = {
      {"score", score},
      {"execution_time", static_cast<int>(std::lround(r.seconds))},
      {"output", summary},
      {"stdout_visibility", "hidden"},
      {"extra_data", {{"max_score", r.max_points()}}},
      {"tests", tests},
  };
  // A student's program may print bytes that are not UTF-8: replace them
  // rather than fail to write the grade.
  return results.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += (u < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') ? '?' : ch;
    }
  }
  return out;
}

std::string report_junit(const GradeReport& r) {
  int all = 0, failures = 0, errors = 0, skipped = 0;
  std::string suites;
  for (const ChapterResult& c : r.chapters) {
    const int f = c.count(Outcome::failed);
    const int e = c.count(Outcome::timed_out) + c.count(Outcome::crashed) + c.count(Outcome::out_of_memory);
    const int s = c.count(Outcome::skipped);
    double seconds = 0;
    for (const TestResult& t : c.tests) seconds += t.seconds;
    all += static_cast<int>(c.tests.size());
    failures += f;
    errors += e;
    skipped += s;
    suites += str("  <testsuite name=\"", xml_escape(c.chapter), "\" tests=\"", c.tests.size(), "\" failures=\"", f,
                  "\" errors=\"", e, "\" skipped=\"", s, "\" time=\"", seconds, "\">\n",
                  "    <properties>\n      <property name=\"state\" value=\"", xml_escape(c.state),
                  "\"/>\n      <property name=\"points\" value=\"", points_text(c.points()),
                  "\"/>\n      <property name=\"max_points\" value=\"", points_text(c.max_points()),
                  "\"/>\n    </properties>\n");
    for (const TestResult& t : c.tests) {
      suites += str("    <testcase name=\"", xml_escape(t.name), "\" classname=\"", xml_escape(c.chapter + "." + t.suite),
                    "\" time=\"", t.seconds, "\"");
      const std::string msg = xml_escape(headline(t));
      const std::string body = xml_escape(t.message);
      switch (t.outcome) {
        case Outcome::passed: suites += "/>\n"; break;
        case Outcome::skipped: suites += str(">\n      <skipped message=\"", msg, "\"/>\n    </testcase>\n"); break;
        case Outcome::failed:
          suites += str(">\n      <failure message=\"", msg, "\" type=\"failed\">", body, "</failure>\n    </testcase>\n");
          break;
        default: {
          std::string type = outcome_name(t.outcome);
          for (char& ch : type)
            if (ch == ' ') ch = '_';
          suites += str(">\n      <error message=\"", msg, "\" type=\"", type, "\">", body, "</error>\n    </testcase>\n");
        }
      }
    }
    suites += "  </testsuite>\n";
  }
  return str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"attnlab lesson grade\" tests=\"", all,
             "\" failures=\"", failures, "\" errors=\"", errors, "\" skipped=\"", skipped, "\" time=\"", r.seconds,
             "\">\n", suites, "</testsuites>\n");
}

}  // namespace attn
