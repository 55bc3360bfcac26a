#include "train/lesson_grade.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "train/files.h"
#include "train/lesson_runner.h"

namespace attn {

namespace fs = std::filesystem;

namespace {

// Every suite runs single-threaded, as under ctest: the same numbers on
// every machine, and no test's threads fighting the next one's.
const std::vector<std::string> kSuiteEnv = {"ATTNLAB_THREADS=1", "OPENBLAS_NUM_THREADS=1", "GTEST_COLOR=no"};
constexpr std::size_t kMessageChars = 4000;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string last_chars(const std::string& text, std::size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

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
TestResult judge(const std::string& name, const ChildResult& run, const fs::path& report, const ChildLimits& limits) {
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

fs::path chapter_dir(const std::string& chapter) { return fs::path(ATTNLAB_SOURCE_DIR) / "lessons" / chapter; }

fs::path suite_path(const std::string& chapter, const std::string& suite, const std::string& impl) {
  return fs::path(build_dir()) / "lessons" / ("lesson" + chapter.substr(0, 2) + "_" + suite + "_" + impl);
}

std::vector<fs::path> sources_in(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && (e.path().extension() == ".cpp" || e.path().extension() == ".cu"))
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The folder of a chapter's hidden tests in DIR: DIR/NN_name or DIR/NN.
fs::path hidden_folder(const std::string& hidden, const std::string& chapter) {
  for (const fs::path& p : {fs::path(hidden) / chapter, fs::path(hidden) / chapter.substr(0, 2)})
    if (fs::is_directory(p)) return p;
  return {};
}

// Builds lessonNN_hidden_{student,solution} from the teacher's files: the
// build has one such target per chapter (lessons/CMakeLists.txt), compiled
// from build/lessons/hidden/lessonNN_hidden.cpp, which this writes to
// include the teacher's files. Same flags as the chapter's own suites, and
// no reconfiguring of the student's build.
void build_hidden(const std::string& chapter, const std::vector<fs::path>& files) {
  const std::string num = chapter.substr(0, 2);
  std::string text = "// Written by `attnlab lesson grade --hidden`: the teacher's tests of chapter " + chapter + ".\n";
  for (const fs::path& f : files) text += "#include \"" + fs::canonical(f).string() + "\"\n";
  const fs::path wrapper = fs::path(build_dir()) / "lessons" / "hidden" / ("lesson" + num + "_hidden.cpp");
  check(fs::exists(wrapper), "lesson grade: --hidden: this build has no hidden-test target for ", chapter, " (",
        wrapper.string(), " is missing); configure it again with cmake");
  if (read_file(wrapper) != text) write_text_atomically(wrapper.string(), text);  // unchanged: no rebuild
  ChildLimits build_limits;
  build_limits.timeout_s = 600;
  const ChildResult r = run_limited({ATTNLAB_CMAKE_COMMAND, "--build", build_dir(), "--target",
                                     "lesson" + num + "_hidden_student", "lesson" + num + "_hidden_solution"},
                                    build_limits);
  if (r.timed_out || r.exit_code != 0) {
    std::fprintf(stderr, "%s\n", last_chars(r.output, 6000).c_str());
    fail("lesson grade: --hidden: the hidden tests of ", chapter, " do not build against the student's library ",
         "(the compiler's output is above)");
  }
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
    TestResult t = judge(names[i], run, report, limits);
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

void check_not_the_solution(const std::string& chapter, const std::string& source_dir, const std::string& build) {
  const fs::path dir = fs::path(source_dir) / "lessons" / chapter;
  // Whitespace aside, so that re-indenting a copy does not pass.
  auto squeeze = [](const std::string& text) {
    std::string s;
    for (const char c : text)
      if (!std::isspace(static_cast<unsigned char>(c))) s += c;
    return s;
  };
  for (const fs::path& sol : sources_in(dir / "solution")) {
    const fs::path mine = dir / sol.filename();
    if (fs::exists(mine) && squeeze(read_file(mine)) == squeeze(read_file(sol)))
      fail("lesson grade: ", chapter, ": lessons/", chapter, "/", sol.filename().string(),
           " has the reference solution's text (solution/", sol.filename().string(),
           "); refusing to grade the solution as a student's work");
  }
  // The build's own record: which files went into the student's library.
  const fs::path commands = fs::path(build) / "compile_commands.json";
  if (!fs::exists(commands)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(commands));
  } catch (const nlohmann::json::exception&) {
    return;  // not ours to judge; the content check above still holds
  }
  const std::string target = "lesson" + chapter.substr(0, 2) + "_student.dir";
  const std::string solution_dir = (dir / "solution").string() + "/";
  for (const auto& entry : j) {
    const std::string file = entry.value("file", ""), out = entry.value("output", entry.value("command", ""));
    if (contains(out, target) && file.rfind(solution_dir, 0) == 0)
      fail("lesson grade: ", chapter, ": the build compiles ", file, " into the student's library (",
           target.substr(0, target.size() - 4), ", per ", commands.string(),
           "); refusing to grade the solution as a student's work");
  }
}

void check_grade_options(const GradeOptions& o) {
  check(o.timeout_s > 0 && o.timeout_s <= 3600, "lesson grade: --timeout-s must be in (0, 3600] seconds, got ",
        o.timeout_s);
  // Below 256 MB, OpenBLAS cannot get its work buffer and retries forever:
  // every test would time out instead of running.
  check(o.memory_mb == 0 || (o.memory_mb >= 256 && o.memory_mb <= 1048576),
        "lesson grade: --memory-mb must be 0 (no limit) or in 256..1048576, got ", o.memory_mb);
  check(o.format == "table" || o.format == "gradescope" || o.format == "junit",
        "lesson grade: --format must be table, gradescope or junit, got '", o.format, "'");
  for (const std::string& c : o.chapters) find_chapter(c);
  if (!o.output.empty()) {
    const fs::path parent = fs::absolute(o.output).parent_path();
    check(fs::is_directory(parent), "lesson grade: --output '", o.output, "': the folder ", parent.string(),
          " does not exist");
    check(!fs::is_directory(o.output), "lesson grade: --output '", o.output, "' is a folder; give a file name ",
          "such as results.json");
  }
  if (!o.hidden.empty()) {
    check(fs::is_directory(o.hidden), "lesson grade: --hidden '", o.hidden, "': no such folder");
    int chapters = 0;
    for (const auto& e : fs::directory_iterator(o.hidden)) {
      if (!e.is_directory()) continue;
      const std::string name = e.path().filename().string();
      std::string found;
      try {
        found = find_chapter(name);
      } catch (const Error&) {
        fail("lesson grade: --hidden '", o.hidden, "': folder '", name, "' names no chapter (expected NN_name, ",
             "e.g. 01_softmax_attention)");
      }
      check(!sources_in(e.path()).empty(), "lesson grade: --hidden '", o.hidden, "': folder '", name,
            "' holds no .cpp test file");
      ++chapters;
    }
    check(chapters > 0, "lesson grade: --hidden '", o.hidden, "': no chapter folder in it (expected ", o.hidden,
          "/NN_name/*.cpp, e.g. ", o.hidden, "/01_softmax_attention/extra_test.cpp)");
  }
}

int lesson_grade(const GradeOptions& o) {
  check_grade_options(o);
  std::vector<std::string> chapters;
  for (const std::string& c : o.chapters) chapters.push_back(find_chapter(c));
  if (chapters.empty()) chapters = lesson_chapters();
  const std::string impl = o.solution ? "solution" : "student";

  // Every check before any test runs: weights readable, the student's code
  // really the student's, the build not older than the code.
  std::vector<GradingWeights> weights;
  for (const std::string& c : chapters) {
    weights.push_back(load_grading_weights((chapter_dir(c) / "grading.json").string()));
    if (o.solution || !fs::exists(suite_path(c, "basic", impl))) continue;
    check_not_the_solution(c, ATTNLAB_SOURCE_DIR, build_dir());
    const auto built = fs::last_write_time(suite_path(c, "basic", impl));
    for (const fs::path& src : sources_in(chapter_dir(c)))
      check(fs::last_write_time(src) <= built, "lesson grade: ", c, ": ", src.filename().string(),
            " changed after the suites were built; build again (cmake --build --preset student) before grading");
  }

  ChildLimits limits;
  limits.timeout_s = o.timeout_s;
  limits.memory_mb = o.memory_mb;
  GradeReport report;
  report.note = str("attnlab lesson grade: ", o.solution ? "the reference solution (teacher's check)" : "the student's code",
                    ", each test alone, limits ", o.timeout_s, " s and ",
                    o.memory_mb == 0 ? std::string("no memory limit")
                    : memory_limit_supported() ? str(o.memory_mb, " MB")
                                               : std::string("no memory limit (a sanitizer build cannot enforce one)"),
                    " per test");
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < chapters.size(); ++i) {
    const std::string& c = chapters[i];
    ChapterResult cr{c, "graded", {}};
    for (const char* suite : {"basic", "advanced"}) {
      const fs::path prog = suite_path(c, suite, impl);
      if (!fs::exists(prog)) continue;
      const fs::path twin = suite_path(c, suite, "solution");
      const std::vector<TestResult> r =
          grade_program(prog.string(), suite, weights[i], limits, fs::exists(twin) ? twin.string() : "");
      cr.tests.insert(cr.tests.end(), r.begin(), r.end());
    }
    if (cr.tests.empty()) {
      cr.state = "not built";
      report.chapters.push_back(cr);
      continue;
    }
    const fs::path hidden = o.hidden.empty() ? fs::path() : hidden_folder(o.hidden, c);
    if (!hidden.empty()) {
      build_hidden(c, sources_in(hidden));
      const std::vector<TestResult> r = grade_program(suite_path(c, "hidden", impl).string(), "hidden", weights[i],
                                                      limits, suite_path(c, "hidden", "solution").string());
      cr.tests.insert(cr.tests.end(), r.begin(), r.end());
    }
    mark_not_started(cr);
    report.chapters.push_back(cr);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const std::string text = o.format == "gradescope" ? report_gradescope(report)
                           : o.format == "junit"    ? report_junit(report)
                                                    : report_table(report);
  if (o.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    write_text_atomically(o.output, text);
    std::printf("lesson grade: %.2f / %.2f points; %s report written to %s\n", report.points(), report.max_points(),
                o.format.c_str(), o.output.c_str());
  }
  return 0;
}

}  // namespace attn
