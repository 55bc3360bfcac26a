#include "train/grade_suite.h"

#include <stdlib.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace attn {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}


std::string last_chars(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}


namespace {

// Every suite runs single-threaded, as under ctest: the same numbers on
// every machine, and no test's threads fighting the next one's.
const std::vector<std::string> kSuiteEnv = {"ATTNLAB_THREADS=1", "OPENBLAS_NUM_THREADS=1", "GTEST_COLOR=no"};
constexpr std::size_t kMessageChars = 4000;

std::string first_chars(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : text.substr(0, n) + "\n... (cut)";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// An allocation refused by the memory limit: C++'s bad_alloc, or attnlab's
// own allocator saying so.
bool says_out_of_memory(const std::string& text) {
  return contains(text, "std::bad_alloc") || contains(text, ": out of memory: asked for");
}

// A temporary folder for gtest's JSON reports, removed when done.
struct TempFolder {
  fs::path path;
  TempFolder() {
    std::string templ = (fs::temp_directory_path() / "attnlab-grade-XXXXXX").string();
    check(mkdtemp(templ.data()) != nullptr, "lesson grade: cannot make a temporary folder in ",
          fs::temp_directory_path().string());
    path = templ;
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// What the program printed, without gtest's own banner lines ("Running
// main()", "[ RUN      ]", ...): the student's prints and crash reports.
std::string printed(const std::string& output) {
  std::string out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("Running main() from", 0) == 0 || line.rfind("Note: Google Test filter", 0) == 0 ||
        line.rfind("[==", 0) == 0 || line.rfind("[--", 0) == 0 || line.rfind("[ RUN", 0) == 0)
      continue;
    out += line + "\n";
  }
  return out.empty() ? "(nothing)" : last_chars(out, 1500);
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

// One test's outcome from its process and gtest's JSON report.
TestResult judge(const std::string& name, const ChildResult& run, const std::string& report,
                 const ChildLimits& limits) {
  TestResult t;
  t.name = name;
  t.seconds = run.seconds;
  const std::string tail = printed(run.output);
  if (run.timed_out) {
    t.outcome = Outcome::timed_out;
    t.message = str("stopped after ", limits.timeout_s, " s, the time limit (--timeout-s ", limits.timeout_s,
                    "): an endless loop, or far too slow. Its last output:\n", tail);
    return t;
  }
  nlohmann::json j;
  bool have_report = false;
  if (fs::exists(report)) {
    try {
      j = nlohmann::json::parse(read_file(report));
      have_report = true;
    } catch (const nlohmann::json::exception&) {
    }
  }
  const nlohmann::json* entry = nullptr;
  if (have_report && j.contains("testsuites") && j["testsuites"].is_array())
    for (const auto& suite : j["testsuites"])
      if (suite.contains("testsuite") && suite["testsuite"].is_array())
        for (const auto& test : suite["testsuite"])
          if (suite.value("name", "") + "." + test.value("name", "") == name) entry = &test;
  if (entry == nullptr) {
    // No report: the process ended before gtest could write one.
    const bool memory = says_out_of_memory(run.output) ||
                        (limits.memory_mb > 0 && run.peak_rss_mb * 10 >= limits.memory_mb * 9);
    if (memory) {
      t.outcome = Outcome::out_of_memory;
      t.message = str("stopped by the memory limit (--memory-mb ", limits.memory_mb,
                      "): the code allocated more than that. Its last output:\n", tail);
    } else if (run.signal != 0) {
      t.outcome = Outcome::crashed;
      t.message = str("the test crashed: ", signal_description(run.signal), " after ", seconds_text(run.seconds),
                      ". Its last output:\n", tail);
    } else {
      t.outcome = Outcome::crashed;
      t.message = str("the program exited (status ", run.exit_code, ") in the middle of the test, before ",
                      "it reported a result: an exit() or a crash handler in the code under test? Its last output:\n",
                      tail);
    }
    return t;
  }
  if (entry->value("result", "") == "SKIPPED") {
    t.outcome = Outcome::skipped;
    t.message = "skipped";
    for (const auto& s : entry->value("skipped", nlohmann::json::array()))
      t.message = "skipped: " + s.value("message", "");
    return t;
  }
  std::string failures;
  for (const auto& f : entry->value("failures", nlohmann::json::array())) {
    std::string text = f.value("failure", "");
    if (text.rfind("unknown file\n", 0) == 0) text = text.substr(13);  // an exception: gtest has no line to name
    failures += (failures.empty() ? "" : "\n\n") + text;
  }
  if (!failures.empty()) {
    t.outcome = says_out_of_memory(failures) ? Outcome::out_of_memory : Outcome::failed;
    t.message = t.outcome == Outcome::out_of_memory
                    ? str("stopped by the memory limit (--memory-mb ", limits.memory_mb, "): ", failures)
                    : failures;
    t.message = first_chars(t.message, kMessageChars);
    return t;
  }
  if (run.exit_code != 0) {
    // The test passed, then the program failed on its way out (a crash in
    // a destructor of the code under test, at exit).
    t.outcome = Outcome::crashed;
    t.message = str("the test passed, then the program ", run.signal ? signal_description(run.signal) : "failed",
                    " on its way out (exit status ", run.exit_code, "). Its last output:\n", tail);
    return t;
  }
  t.outcome = Outcome::passed;
  return t;
}

}  // namespace

std::vector<std::string> list_gtest_tests(const std::string& program, const ChildLimits& limits) {
  const ChildResult r = run_limited({program, "--gtest_list_tests"}, limits, kSuiteEnv);
  check(!r.timed_out && r.exit_code == 0, "lesson grade: cannot list the tests of ", program, " (",
        r.timed_out ? "timed out" : r.signal ? signal_description(r.signal) : str("exit status ", r.exit_code),
        "): ", last_chars(r.output, 300));
  std::vector<std::string> names;
  std::string suite;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    line = line.substr(0, line.find("  #"));  // "  # GetParam() = ..." of parameterised tests
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line.empty()) continue;
    if (line[0] != ' ') {
      suite = line.back() == '.' ? line.substr(0, line.size() - 1) : "";
    } else if (!suite.empty()) {
      const std::string test = line.substr(line.find_first_not_of(' '));
      if (suite.rfind("DISABLED_", 0) != 0 && test.rfind("DISABLED_", 0) != 0) names.push_back(suite + "." + test);
    }
  }
  return names;
}

std::vector<TestResult> grade_program(const std::string& program, const std::string& suite,
                                      const GradingWeights& weights, const ChildLimits& limits,
                                      const std::string& list_from) {
  const std::vector<std::string> names = list_gtest_tests(list_from.empty() ? program : list_from, limits);
  const std::vector<double> points = test_points(weights, suite, names);
  const TempFolder reports;
  std::vector<TestResult> out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const fs::path report = reports.path / ("test" + std::to_string(i) + ".json");
    const ChildResult run = run_limited(
        {program, "--gtest_filter=" + names[i], "--gtest_output=json:" + report.string()}, limits, kSuiteEnv);
    TestResult t = judge(names[i], run, report.string(), limits);
    t.suite = suite;
    t.max_points = t.outcome == Outcome::skipped ? 0.0 : points[i];
    t.points = t.outcome == Outcome::passed ? points[i] : 0.0;
    out.push_back(t);
  }
  return out;
}

bool mark_not_started(ChapterResult& chapter) {
  int failed = 0;
  for (const TestResult& t : chapter.tests) {
    if (t.outcome == Outcome::skipped) continue;
    // The stubs say "NN name: implement f in ..." or "f is not implemented
    // yet"; a suite's rejects() passes the message on.
    const bool stub = t.outcome == Outcome::failed &&
                      (contains(t.message, ": implement ") || contains(lower(t.message), "not implemented"));
    if (!stub) return false;
    ++failed;
  }
  if (failed == 0) return false;
  chapter.state = "not started";
  for (TestResult& t : chapter.tests)
    if (t.outcome == Outcome::failed) t.message = "not started (the stub still throws NotImplemented): " + t.message;
  return true;
}

}  // namespace attn
